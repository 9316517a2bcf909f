//! Checking skills that are already mounted (image volumes), as the operator's `skillport-verify`
//! init container does, and writing the same `index.json` that [`fetch`](crate::fetch) writes,
//! so agents find skills the same way whichever delivery put them there.
//!
//! Some runtimes mount an `image` volume empty and report no error, so each mounted folder is
//! checked: it exists, is not empty, and has a usable `SKILL.md` (read leniently, as fetch reads
//! what it unpacks). Its files are counted and [tree-hashed](skillport_oci::tree_hash) with the
//! same code fetch uses, and the hash is recorded in the index; where an expected hash is given
//! (`tree_hash`), a different one fails the skill.
//!
//! Nothing is written but the index (through a temporary file and a rename).

use std::path::{Component, Path, PathBuf};

use skillport_oci::{Digest, Reference};

use crate::error::SkillError;
use crate::index::{IndexEntry, SkillIndex};
use crate::into_folder::tally;
use crate::plan::Source;
use crate::run::publish::check_skill;

/// One skill as mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    pub name: String,
    /// Where it is mounted, absolute.
    pub path: PathBuf,
    /// The image it was mounted from (`name@sha256:…`).
    pub image: String,
    /// The tree hash the folder must have, when known.
    pub tree_hash: Option<Digest>,
}

/// Checks every skill, in order, and returns the index for them, paths relative to
/// `index_root` (the folder where the agent sees `index.json`). The first failure ends it.
pub fn verify(skills: &[Mounted], index_root: &Path) -> Result<SkillIndex, SkillError> {
    let mut entries = Vec::with_capacity(skills.len());
    for skill in skills {
        entries.push(check(skill, index_root)?);
    }
    Ok(SkillIndex::new(entries))
}

fn check(skill: &Mounted, index_root: &Path) -> Result<IndexEntry, SkillError> {
    let origin = format!("skill {:?} ({})", skill.name, skill.image);
    let io = |action: &'static str| {
        let origin = origin.clone();
        let path = skill.path.clone();
        move |source| SkillError::Io {
            origin,
            action,
            path,
            source,
        }
    };
    let mut listing = std::fs::read_dir(&skill.path).map_err(io("reading the mounted folder"))?;
    if listing.next().is_none() {
        return Err(SkillError::EmptyMount {
            origin,
            path: skill.path.clone(),
        });
    }
    let checked = check_skill(&skill.path, &origin)?;
    let counted = tally(&skill.path).map_err(io("reading"))?;
    let tree_hash =
        skillport_oci::tree_hash::tree_hash(&skill.path).map_err(|source| SkillError::Hash {
            origin: origin.clone(),
            source,
        })?;
    if let Some(expected) = &skill.tree_hash
        && *expected != tree_hash
    {
        return Err(SkillError::Unusable {
            origin,
            first: format!(
                "the mounted files have tree hash {tree_hash}, the image records {expected}"
            ),
            count: 1,
        });
    }
    let digest = skill
        .image
        .parse::<Reference>()
        .ok()
        .and_then(|reference| reference.digest().map(ToString::to_string));
    Ok(IndexEntry {
        name: skill.name.clone(),
        description: checked.description,
        version: checked.version,
        path: relative(&skill.path, index_root),
        source: Source::Image(skill.image.clone()),
        digest,
        commit: None,
        tree_hash: Some(tree_hash),
        files: counted.files,
        bytes: counted.bytes,
        warnings: checked.warnings,
    })
}

/// `path` relative to `base` (both absolute): `pdf` for `/skills/pdf` from `/skills`,
/// `../opt/review` for `/opt/review`.
fn relative(path: &Path, base: &Path) -> String {
    let parts = |p: &Path| -> Vec<String> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    };
    let (path, base) = (parts(path), parts(base));
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut out: Vec<String> = std::iter::repeat_n("..".to_owned(), base.len() - common).collect();
    out.extend(path[common..].iter().cloned());
    if out.is_empty() {
        ".".to_owned()
    } else {
        out.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounted(dir: &Path, name: &str) -> Mounted {
        Mounted {
            name: name.into(),
            path: dir.join(name),
            image: format!("r.io/skills/{name}@sha256:{}", "a".repeat(64)),
            tree_hash: None,
        }
    }

    #[test]
    fn paths_are_relative_to_where_the_agent_sees_the_index() {
        assert_eq!(
            relative(Path::new("/skills/pdf"), Path::new("/skills")),
            "pdf"
        );
        assert_eq!(
            relative(Path::new("/opt/review"), Path::new("/skills")),
            "../opt/review"
        );
        assert_eq!(
            relative(Path::new("/skills/a/b"), Path::new("/skills")),
            "a/b"
        );
    }

    #[test]
    fn a_mounted_skill_is_indexed_with_its_tree_hash_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let skill = dir.path().join("pdf");
        std::fs::create_dir(&skill).unwrap();
        std::fs::write(
            skill.join("SKILL.md"),
            "---\nname: pdf\ndescription: Reads PDFs. Use it for PDFs.\nmetadata:\n  version: 2.0.0\n---\n# pdf\n",
        )
        .unwrap();
        let index = verify(&[mounted(dir.path(), "pdf")], dir.path()).unwrap();
        let entry = &index.skills[0];
        assert_eq!(entry.path, "pdf");
        assert_eq!(entry.version.as_deref(), Some("2.0.0"));
        assert_eq!(entry.digest, Some(format!("sha256:{}", "a".repeat(64))));
        assert_eq!(
            entry.tree_hash,
            Some(skillport_oci::tree_hash::tree_hash(&skill).unwrap())
        );
        assert_eq!(entry.files, 1);

        let mut wrong = mounted(dir.path(), "pdf");
        wrong.tree_hash = Some(format!("sha256:{}", "0".repeat(64)).parse().unwrap());
        let err = verify(&[wrong], dir.path()).unwrap_err().to_string();
        assert!(err.contains("tree hash"), "{err}");
    }

    #[test]
    fn an_empty_mount_and_a_folder_without_skill_md_fail_with_their_own_message() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        std::fs::create_dir(dir.path().join("other")).unwrap();
        std::fs::write(dir.path().join("other/README.md"), "not a skill").unwrap();
        let empty = verify(&[mounted(dir.path(), "empty")], dir.path()).unwrap_err();
        assert!(matches!(empty, SkillError::EmptyMount { .. }), "{empty}");
        assert!(empty.to_string().contains("is empty"));
        let other = verify(&[mounted(dir.path(), "other")], dir.path()).unwrap_err();
        assert!(matches!(other, SkillError::NoSkillMd { .. }), "{other}");
        let missing = verify(&[mounted(dir.path(), "missing")], dir.path()).unwrap_err();
        assert!(
            missing.to_string().contains("reading the mounted folder"),
            "{missing}"
        );
    }
}
