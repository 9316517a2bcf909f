// Publishing one staged skill: its SKILL.md checked leniently, its files counted and
// tree-hashed, then swapped into `<into>/<target>` in one rename, and its index entry built.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use skillport_skill::{Diagnostic, LoadError, Mode};
use tempfile::TempDir;

use super::{Action, Context, Done};
use crate::error::SkillError;
use crate::index::IndexEntry;
use crate::into_folder::{Tally, tally};
use crate::plan::PlannedSkill;

/// What the content was fetched at.
pub(super) enum Revision {
    Digest(String),
    Commit(String),
}

/// Checks the staged skill, then swaps it into `<into>/<target>`; the staging folder (with the
/// old content, if any) is deleted afterwards. `unpacked`, when the skill came from a layer,
/// holds its counts and tree as hashed while unpacking; otherwise the folder is read for them.
pub(super) async fn publish_staged(
    context: &Arc<Context>,
    skill: &PlannedSkill,
    staging: TempDir,
    staged: PathBuf,
    revision: Revision,
    unpacked: Option<skillport_oci::Unpacked>,
    extra_warnings: Vec<String>,
) -> Result<Done, SkillError> {
    let context = context.clone();
    let skill = skill.clone();
    tokio::task::spawn_blocking(move || {
        let source = skill.source().expect("validated");
        let origin = source.to_string();
        let checked = check_skill(&staged, &origin)?;
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            let origin = origin.clone();
            move |source| SkillError::Io {
                origin,
                action,
                path,
                source,
            }
        };
        let (counted, tree_hash) = match unpacked {
            Some(unpacked) => (
                Tally {
                    files: unpacked.files as u64,
                    bytes: unpacked.bytes,
                },
                unpacked.tree_hash(),
            ),
            None => (
                tally(&staged).map_err(io("reading", &staged))?,
                // Hashed where nobody else writes; the rename below moves these very files.
                skillport_oci::tree_hash::tree_hash(&staged).map_err(|source| {
                    SkillError::Hash {
                        origin: origin.clone(),
                        source,
                    }
                })?,
            ),
        };
        let target = skill.target();
        let dest = context.folder.path().join(target);
        let existed = std::fs::symlink_metadata(&dest).is_ok();
        context
            .folder
            .swap_in(&staged, &staging, target)
            .map_err(io("moving the skill to", &dest))?;
        if let Err(err) = staging.close() {
            tracing::warn!("removing the previous {}: {err}", dest.display());
        }
        let (digest, commit) = match revision {
            Revision::Digest(digest) => (Some(digest), None),
            Revision::Commit(commit) => (None, Some(commit)),
        };
        let mut warnings = checked.warnings;
        warnings.extend(extra_warnings);
        Ok(Done {
            action: if existed {
                Action::Replaced
            } else {
                Action::Fetched
            },
            entry: IndexEntry {
                name: skill.name.clone(),
                description: checked.description,
                version: checked.version,
                path: target.to_owned(),
                source,
                digest,
                commit,
                tree_hash: Some(tree_hash),
                files: counted.files,
                bytes: counted.bytes,
                warnings,
            },
        })
    })
    .await
    .expect("publishing does not panic")
}

/// What lenient validation tells about a fetched skill.
pub(crate) struct Checked {
    pub description: String,
    pub version: Option<String>,
    pub warnings: Vec<String>,
}

/// Loads the staged folder as agents do (leniently). A missing or unusable SKILL.md fails the
/// skill; rule violations become warnings; skill.yaml is optional, so its errors are warnings
/// too.
pub(crate) fn check_skill(dir: &Path, origin: &str) -> Result<Checked, SkillError> {
    match skillport_skill::load(dir, Mode::Lenient) {
        Ok(skill) => Ok(Checked {
            version: skill
                .card
                .as_ref()
                .map(|card| card.metadata.version.clone())
                .filter(|version| !version.is_empty())
                .or_else(|| skill.frontmatter.metadata.get("version").cloned()),
            description: skill.frontmatter.description,
            warnings: skill
                .warnings
                .iter()
                .map(|d| diagnostic_line(dir, d, false))
                .collect(),
        }),
        Err(LoadError::MissingSkillMd { .. } | LoadError::NotADirectory { .. }) => {
            Err(SkillError::NoSkillMd {
                origin: origin.to_owned(),
            })
        }
        Err(LoadError::Read { path, source }) => Err(SkillError::Io {
            origin: origin.to_owned(),
            action: "reading",
            path: path
                .strip_prefix(dir)
                .map(Path::to_path_buf)
                .unwrap_or(path),
            source,
        }),
        Err(LoadError::Invalid { diagnostics, .. }) => {
            let is_skill_md = |d: &&Diagnostic| d.file.file_name() == Some("SKILL.md".as_ref());
            let errors: Vec<&Diagnostic> = diagnostics
                .iter()
                .filter(is_skill_md)
                .filter(|d| d.is_error())
                .collect();
            if let Some(first) = errors.first() {
                return Err(SkillError::Unusable {
                    origin: origin.to_owned(),
                    first: diagnostic_line(dir, first, false),
                    count: errors.len(),
                });
            }
            // Only skill.yaml is wrong: read SKILL.md alone.
            let skill_md = dir.join("SKILL.md");
            let text = std::fs::read_to_string(&skill_md).map_err(|source| SkillError::Io {
                origin: origin.to_owned(),
                action: "reading",
                path: "SKILL.md".into(),
                source,
            })?;
            let folder = dir
                .file_name()
                .map(|name| name.to_string_lossy().into_owned());
            let (frontmatter, _, _) =
                skillport_skill::parse_skill_md(&text, &skill_md, folder.as_deref(), Mode::Lenient);
            let frontmatter = frontmatter.ok_or_else(|| SkillError::Unusable {
                origin: origin.to_owned(),
                first: "SKILL.md has no usable frontmatter".into(),
                count: 1,
            })?;
            Ok(Checked {
                version: frontmatter.metadata.get("version").cloned(),
                description: frontmatter.description,
                warnings: diagnostics
                    .iter()
                    .map(|d| diagnostic_line(dir, d, d.is_error()))
                    .collect(),
            })
        }
    }
}

/// `SKILL.md:3:7: message`, the file relative to the skill folder.
fn diagnostic_line(dir: &Path, diagnostic: &Diagnostic, ignored: bool) -> String {
    let file = diagnostic
        .file
        .strip_prefix(dir)
        .unwrap_or(&diagnostic.file)
        .display();
    let mut line = format!("{file}");
    if let Some(number) = diagnostic.line {
        let _ = write!(line, ":{number}");
        if let Some(column) = diagnostic.column {
            let _ = write!(line, ":{column}");
        }
    }
    line.push_str(": ");
    line.push_str(&diagnostic.message);
    if ignored {
        line.push_str(" (skill.yaml ignored)");
    }
    chain_free(&line)
}

/// Diagnostics are one line already; keep them so.
fn chain_free(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}
