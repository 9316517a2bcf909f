//! The two files: the manifest (`skillport.json`, what the user asked for; edited by hand or by
//! `install`/`uninstall`) and the lock (`skillport.lock.json`, what was installed: the digest or
//! commit, the tree hash of the installed folder and what each file held, and where it went).
//!
//! Both are written deterministically: keys sorted, two-space indentation, a final newline, no
//! times — the same inputs give the same bytes. Their JSON Schemas are `docs/manifest.schema.json`
//! and `docs/lock.schema.json`.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "skillport.json";
/// The lock's file name.
pub const LOCK_FILE: &str = "skillport.lock.json";
/// The lock format's version.
pub const LOCK_VERSION: u32 = 1;

/// Where a skill comes from, as the user wrote it.
// No deny_unknown_fields on the three flattened types: serde does not support it with flatten.
// The JSON Schemas (additionalProperties: false) are the stricter contract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// An image reference (`registry.example.com/skills/pdf:1.2`, or pinned `…@sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A git repository URL (`https://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<String>,
    /// The git ref: a branch, a tag or a full commit SHA. [default: HEAD]
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The skill's folder inside the git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A local skill folder, relative to the project (built into the store first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
}

/// A source's kind, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    Image(&'a str),
    Git {
        url: &'a str,
        reference: &'a str,
        path: Option<&'a str>,
    },
    Folder(&'a str),
}

impl Source {
    pub fn image(reference: impl Into<String>) -> Source {
        Source {
            image: Some(reference.into()),
            ..Source::default()
        }
    }

    pub fn folder(path: impl Into<String>) -> Source {
        Source {
            folder: Some(path.into()),
            ..Source::default()
        }
    }

    /// What it is, or why it is not one thing.
    pub fn kind(&self) -> Result<Kind<'_>, String> {
        match (&self.image, &self.git, &self.folder) {
            (Some(image), None, None) if self.reference.is_none() && self.path.is_none() => {
                Ok(Kind::Image(image))
            }
            (None, Some(url), None) => Ok(Kind::Git {
                url,
                reference: self.reference.as_deref().unwrap_or("HEAD"),
                path: self.path.as_deref(),
            }),
            (None, None, Some(folder)) if self.reference.is_none() && self.path.is_none() => {
                Ok(Kind::Folder(folder))
            }
            _ => Err("give exactly one of image, git (with ref and path) or folder".to_owned()),
        }
    }

    /// A source from the command line: a folder (`./x`, `../x`, `/x`, or an existing folder),
    /// a git URL (`https://host/org/repo.git//skills/review@v1.0.0`), else an image reference.
    pub fn parse(text: &str) -> Result<Source, String> {
        if text.starts_with("./")
            || text.starts_with("../")
            || text.starts_with('/')
            || Path::new(text).is_dir()
        {
            return Ok(Source::folder(text));
        }
        for scheme in ["https://", "http://", "git://"] {
            if let Some(rest) = text.strip_prefix(scheme) {
                let host = rest.split('/').next().unwrap_or_default();
                if host.contains('@') {
                    return Err(format!(
                        "{scheme}{host}…: credentials do not belong in a git URL (they would be \
                         written to skillport.json); write the URL without `user@`"
                    ));
                }
                return Ok(parse_git(scheme, rest));
            }
        }
        Ok(Source::image(text))
    }
}

/// `host/org/repo.git[//path][@ref]` after the scheme.
fn parse_git(scheme: &str, rest: &str) -> Source {
    let (location, reference) = match rest.rsplit_once('@') {
        // An @ before the last / is userinfo or part of the path, not a ref.
        Some((location, reference)) if !reference.contains("//") && !location.is_empty() => {
            (location, Some(reference.to_owned()))
        }
        _ => (rest, None),
    };
    let (repository, path) = match location.split_once("//") {
        Some((repository, path)) => (repository, Some(path.trim_matches('/').to_owned())),
        None => (location, None),
    };
    Source {
        git: Some(format!("{scheme}{repository}")),
        reference,
        path: path.filter(|path| !path.is_empty()),
        ..Source::default()
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            Ok(Kind::Image(image)) => f.write_str(image),
            Ok(Kind::Git {
                url,
                reference,
                path,
            }) => {
                write!(f, "{url}")?;
                if let Some(path) = path {
                    write!(f, "//{path}")?;
                }
                write!(f, "@{reference}")
            }
            Ok(Kind::Folder(folder)) => f.write_str(folder),
            Err(_) => f.write_str("(invalid source)"),
        }
    }
}

/// One skill the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wanted {
    #[serde(flatten)]
    pub source: Source,
    /// Where it goes: agent names or folders, sorted. [default: agents]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

/// `skillport.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Skills by name (the name of their folder in each target).
    #[serde(default)]
    pub skills: BTreeMap<String, Wanted>,
}

/// One installed skill, as the lock records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Locked {
    /// The source as the manifest had it when this was installed.
    #[serde(flatten)]
    pub source: Source,
    /// The image digest (images, and folders as built).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The git commit (git sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The installed folder's tree hash (`skillport_oci::tree_hash`, as fetch records it).
    pub tree_hash: String,
    /// Every path in the folder: `file sha256:…`, `exec sha256:…`, `link TARGET` or `folder`.
    pub files: BTreeMap<String, String>,
    /// The folders it was installed to: relative to the project, or `~/…`.
    pub installed: Vec<String>,
}

/// `skillport.lock.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lock {
    pub lock_version: u32,
    #[serde(default)]
    pub skills: BTreeMap<String, Locked>,
}

impl Default for Lock {
    fn default() -> Lock {
        Lock {
            lock_version: LOCK_VERSION,
            skills: BTreeMap::new(),
        }
    }
}

/// Why a manifest or lock could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Reads the JSON file at `path`; `None` when there is none.
pub fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, FileError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FileError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|err| FileError::Invalid {
            path: path.to_owned(),
            reason: err.to_string(),
        })
}

impl Manifest {
    /// Every skill's source is one thing and every name a folder name.
    pub fn check(&self, path: &Path) -> Result<(), FileError> {
        for (name, wanted) in &self.skills {
            let invalid = |reason: String| FileError::Invalid {
                path: path.to_owned(),
                reason: format!("skill {name:?}: {reason}"),
            };
            if !skillport_skill::is_valid_name(name) {
                return Err(invalid(
                    "not a skill name (lowercase a-z, 0-9 and -)".to_owned(),
                ));
            }
            wanted.source.kind().map_err(invalid)?;
        }
        Ok(())
    }
}

impl Lock {
    /// The version, and every entry's name and folders: a lock is read from a repository, and
    /// the folders it lists are the ones install and uninstall may replace or delete.
    pub fn check(&self, path: &Path) -> Result<(), FileError> {
        for (name, locked) in &self.skills {
            let invalid = |reason: String| FileError::Invalid {
                path: path.to_owned(),
                reason: format!("skill {name:?}: {reason}"),
            };
            if !skillport_skill::is_valid_name(name) {
                return Err(invalid("not a skill name".to_owned()));
            }
            if let Some(folder) = locked
                .installed
                .iter()
                .find(|folder| !crate::targets::is_recorded_folder(folder, name))
            {
                return Err(invalid(format!(
                    "installed folder {folder:?} is not TARGET/{name} (no `.` or `..` parts); \
                     the lock was edited by hand"
                )));
            }
        }
        if self.lock_version != LOCK_VERSION {
            return Err(FileError::Invalid {
                path: path.to_owned(),
                reason: format!(
                    "lockVersion {} is not {LOCK_VERSION}; this skillport reads version \
                     {LOCK_VERSION}",
                    self.lock_version
                ),
            });
        }
        Ok(())
    }
}

/// `value` as the files are written: sorted keys (the types hold BTreeMaps), two spaces, a
/// final newline; through a temporary file and a rename.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), FileError> {
    let error = |source| FileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut text =
        serde_json::to_string_pretty(value).map_err(|err| error(io::Error::other(err)))?;
    text.push('\n');
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(error)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".skillport-")
        .tempfile_in(dir)
        .map_err(error)?;
    io::Write::write_all(&mut temp, text.as_bytes()).map_err(error)?;
    temp.persist(path).map_err(|err| error(err.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_from_the_command_line() {
        assert_eq!(
            Source::parse("registry.example.com/skills/pdf:1.2").unwrap(),
            Source::image("registry.example.com/skills/pdf:1.2")
        );
        assert_eq!(Source::parse("./mine").unwrap(), Source::folder("./mine"));
        let git = Source::parse("https://github.com/org/skills.git//skills/review@v1.0.0").unwrap();
        assert_eq!(
            git.git.as_deref(),
            Some("https://github.com/org/skills.git")
        );
        assert_eq!(git.path.as_deref(), Some("skills/review"));
        assert_eq!(git.reference.as_deref(), Some("v1.0.0"));
        assert_eq!(
            git.to_string(),
            "https://github.com/org/skills.git//skills/review@v1.0.0"
        );
        assert!(Source::parse("https://user@git.example.com/one.git").is_err());
        let root = Source::parse("https://git.example.com/one.git").unwrap();
        assert_eq!(root.reference, None);
        assert_eq!(root.path, None);
        assert_eq!(root.to_string(), "https://git.example.com/one.git@HEAD");
    }

    #[test]
    fn a_source_is_exactly_one_thing() {
        let both = Source {
            image: Some("x:1".into()),
            folder: Some("./x".into()),
            ..Source::default()
        };
        assert!(both.kind().is_err());
        let image_with_ref = Source {
            image: Some("x:1".into()),
            reference: Some("v1".into()),
            ..Source::default()
        };
        assert!(image_with_ref.kind().is_err());
    }
}
