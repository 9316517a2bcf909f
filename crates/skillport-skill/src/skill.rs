// Loading a skill folder: SKILL.md (required) and skill.yaml (optional), validated together so
// that one run reports every problem in both files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::card::{SkillCard, read_card};
use crate::diagnostic::{Diagnostic, Mode, Report};
use crate::frontmatter::{Frontmatter, read_skill_md};

/// A skill folder that passed validation.
#[derive(Debug, Clone, Serialize)]
pub struct Skill {
    /// The folder, as given to [`load`].
    pub dir: PathBuf,
    /// SKILL.md's frontmatter.
    pub frontmatter: Frontmatter,
    /// SKILL.md after the frontmatter.
    pub body: String,
    /// skill.yaml, when the folder has one.
    pub card: Option<SkillCard>,
    /// Rules the skill breaks that lenient mode let through (always empty in strict mode).
    pub warnings: Vec<Diagnostic>,
}

/// Why a skill folder could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The path is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The folder has no SKILL.md.
    #[error(
        "no SKILL.md in {}{}",
        dir.display(),
        other_case.as_ref().map(|name| format!(
            " (there is a {name}: the name is SKILL.md, in capitals)"
        )).unwrap_or_default()
    )]
    MissingSkillMd {
        /// The folder.
        dir: PathBuf,
        /// A file named `SKILL.md` in another case (`skill.md`), if there is one.
        other_case: Option<String>,
    },
    /// A file or the folder could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// SKILL.md or skill.yaml break the rules; `diagnostics` says where and how.
    #[error("{} is not a valid skill ({})", dir.display(), count_errors(diagnostics))]
    Invalid {
        /// The folder.
        dir: PathBuf,
        /// The skill's `name`, when SKILL.md gave one (however it broke the rules).
        name: Option<String>,
        /// Every problem found, errors and warnings, SKILL.md first, each file by line.
        diagnostics: Vec<Diagnostic>,
    },
}

/// Reads and validates `<dir>/SKILL.md` and, when present, `<dir>/skill.yaml`.
///
/// SKILL.md's `name` must equal the folder name, and skill.yaml's `metadata.name` must equal
/// SKILL.md's `name`. Every problem in both files is reported at once. In lenient mode the
/// specification's rules are warnings (returned in [`Skill::warnings`]); problems in skill.yaml
/// are errors in both modes.
pub fn load(dir: &Path, mode: Mode) -> Result<Skill, LoadError> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| LoadError::Read { path, source }
    };
    if !fs::metadata(dir).map_err(read_error(dir))?.is_dir() {
        return Err(LoadError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    let skill_md = dir.join("SKILL.md");
    let text = match fs::read(&skill_md) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(LoadError::MissingSkillMd {
                dir: dir.to_owned(),
                other_case: other_case(dir, "SKILL.md"),
            });
        }
        Err(error) => return Err(read_error(&skill_md)(error)),
    };
    let folder = folder_name(dir).map_err(read_error(dir))?;
    let (frontmatter, body, mut diagnostics) = match String::from_utf8(text) {
        Ok(text) => {
            let (frontmatter, body, report) = read_skill_md(&text, &skill_md, Some(&folder), mode);
            (frontmatter, body, report.finish())
        }
        Err(_) => (None, String::new(), vec![not_utf8(&skill_md)]),
    };

    let card_path = dir.join("skill.yaml");
    let card = match fs::read(&card_path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(read_error(&card_path)(error)),
        Ok(bytes) => match String::from_utf8(bytes) {
            Err(_) => {
                diagnostics.push(not_utf8(&card_path));
                None
            }
            Ok(text) => {
                let (card, name_at, mut report) = read_card(&text, &card_path);
                if let (Some(card), Some(frontmatter)) = (&card, &frontmatter)
                    && !card.metadata.name.is_empty()
                    && card.metadata.name != frontmatter.name
                {
                    report.error(
                        name_at,
                        format!(
                            "metadata.name {:?} does not match SKILL.md's name {:?}",
                            card.metadata.name, frontmatter.name
                        ),
                    );
                }
                diagnostics.extend(report.finish());
                card
            }
        },
    };

    match frontmatter {
        Some(frontmatter) if !diagnostics.iter().any(Diagnostic::is_error) => Ok(Skill {
            dir: dir.to_owned(),
            frontmatter,
            body,
            card,
            warnings: diagnostics,
        }),
        frontmatter => Err(LoadError::Invalid {
            dir: dir.to_owned(),
            name: frontmatter.map(|f| f.name),
            diagnostics,
        }),
    }
}

/// The name of a file in `dir` that is `name` in another case, if there is one.
fn other_case(dir: &Path, name: &str) -> Option<String> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|found| found != name && found.eq_ignore_ascii_case(name))
}

/// The folder's own name; `.` and paths ending in `..` are resolved first.
pub fn folder_name(dir: &Path) -> io::Result<String> {
    let name = match dir.file_name() {
        Some(name) => name.to_owned(),
        None => fs::canonicalize(dir)?
            .file_name()
            .map(ToOwned::to_owned)
            .unwrap_or_default(),
    };
    Ok(name.to_string_lossy().into_owned())
}

/// "1 error", "3 errors".
fn count_errors(diagnostics: &[Diagnostic]) -> String {
    match diagnostics.iter().filter(|d| d.is_error()).count() {
        1 => "1 error".to_owned(),
        n => format!("{n} errors"),
    }
}

fn not_utf8(file: &Path) -> Diagnostic {
    let mut report = Report::new(file.to_owned(), Mode::Strict, 0);
    report.error(None, "file is not valid UTF-8; save it as UTF-8");
    report.finish().remove(0)
}
