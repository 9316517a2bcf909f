//! `<into>/index.json`: what the skill folder holds, for the agent and for the next run.
//!
//! The index always describes what is on disk: every entry's folder holds exactly the content
//! its digest or commit names, whose [tree hash](skillport_oci::tree_hash) is `treeHash`; the
//! next `skillport fetch` skips a skill only when its folder still has that hash. Paths
//! are relative to the folder holding `index.json`, because the agent container may mount
//! that folder somewhere else than the init container did.
//!
//! ```json
//! {
//!   "apiVersion": "skillport.dev/v1alpha1",
//!   "kind": "SkillIndex",
//!   "skills": [
//!     {"name": "pdf-tools", "description": "…", "version": "1.2.0", "path": "pdf-tools",
//!      "source": {"image": "registry.example.com/skills/pdf-tools:1.2.0"},
//!      "digest": "sha256:…", "treeHash": "sha256:…", "files": 12, "bytes": 40960,
//!      "warnings": []}
//!   ]
//! }
//! ```

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use skillport_oci::Digest;

use crate::plan::{API_VERSION, INDEX_FILE, Source};

/// The index's `kind`.
pub const INDEX_KIND: &str = "SkillIndex";

/// The whole index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkillIndex {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`INDEX_KIND`].
    pub kind: String,
    /// The skills on disk, in plan order.
    pub skills: Vec<IndexEntry>,
}

/// One skill on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexEntry {
    /// The name the plan gives it.
    pub name: String,
    /// SKILL.md's `description`.
    pub description: String,
    /// skill.yaml's `metadata.version`, else SKILL.md's `metadata.version`; `null` when
    /// neither says.
    pub version: Option<String>,
    /// The skill's folder, relative to the folder holding `index.json`.
    pub path: String,
    /// Where it came from, as the plan wrote it.
    pub source: Source,
    /// For images: the digest the reference resolved to (the index or manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// For git: the commit checked out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The folder's [tree hash](skillport_oci::tree_hash) as published: what a re-run (and
    /// `skillport verify`) compares the folder with before trusting it. Absent only in an
    /// index written before it was recorded; such an entry is never trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_hash: Option<Digest>,
    /// Regular files in the folder, and their bytes, for people and agents reading the index.
    pub files: u64,
    pub bytes: u64,
    /// What lenient validation of SKILL.md (and skill.yaml) let through, as
    /// `SKILL.md:LINE:COLUMN: message`.
    pub warnings: Vec<String>,
}

impl SkillIndex {
    pub fn new(skills: Vec<IndexEntry>) -> SkillIndex {
        SkillIndex {
            api_version: API_VERSION.to_owned(),
            kind: INDEX_KIND.to_owned(),
            skills,
        }
    }

    /// The index in `into`; `Ok(None)` when there is none or it cannot be used (from another
    /// version, or damaged), in which case everything is fetched again.
    pub fn read(into: &Path) -> io::Result<Option<SkillIndex>> {
        let path = into.join(INDEX_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        match serde_json::from_slice::<SkillIndex>(&bytes) {
            Ok(index) if index.api_version == API_VERSION && index.kind == INDEX_KIND => {
                Ok(Some(index))
            }
            Ok(_) => {
                tracing::warn!(
                    "{} is from another version; fetching everything",
                    path.display()
                );
                Ok(None)
            }
            Err(err) => {
                tracing::warn!(
                    "{} is unreadable ({err}); fetching everything",
                    path.display()
                );
                Ok(None)
            }
        }
    }

    /// The entry for skill `name`.
    pub fn entry(&self, name: &str) -> Option<&IndexEntry> {
        self.skills.iter().find(|entry| entry.name == name)
    }

    /// Writes `<into>/index.json` through a temporary file in `into` and a rename, readable by
    /// everyone (the agent may run as another user).
    pub fn write(&self, into: &Path) -> io::Result<PathBuf> {
        let mut text = serde_json::to_vec_pretty(self).expect("an index serialises");
        text.push(b'\n');
        let mut file = tempfile::Builder::new()
            .prefix(".skillport-index-")
            .tempfile_in(into)?;
        file.write_all(&text)?;
        file.as_file().sync_all()?;
        fs::set_permissions(file.path(), fs::Permissions::from_mode(0o644))?;
        let path = into.join(INDEX_FILE);
        file.persist(&path).map_err(|err| err.error)?;
        Ok(path)
    }
}
