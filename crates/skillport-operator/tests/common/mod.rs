//! Translate fixtures (`tests/fixtures/translate/*.yaml`), shared by the snapshot test and the
//! API server test that creates what translate makes.

#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use skillport_operator::api::{ResolvedSkill, SkillSetSpec};
use skillport_operator::translate::{Mode, Options, SkillResources, TranslateError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    pub mode: Mode,
    pub skill_set: SkillSetFixture,
    pub template: PodTemplateSpec,
    #[serde(default)]
    pub options: Option<Options>,
    #[serde(default)]
    pub resolved: Option<Vec<ResolvedSkill>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillSetFixture {
    pub name: String,
    pub spec: SkillSetSpec,
}

/// A digest and a commit made from the skill's name, so fixtures need not spell them out.
pub fn resolved_by_name(spec: &SkillSetSpec) -> Vec<ResolvedSkill> {
    spec.skills
        .iter()
        .map(|skill| {
            let hash = hex::encode(Sha256::digest(skill.name.as_bytes()));
            ResolvedSkill {
                name: skill.name.clone(),
                digest: skill.image.as_ref().map(|_| format!("sha256:{hash}")),
                commit: skill.git.as_ref().map(|_| hash[..40].to_owned()),
                ..ResolvedSkill::default()
            }
        })
        .collect()
}

impl Case {
    pub fn read(path: &Path) -> Case {
        let text = std::fs::read_to_string(path).expect("reading the fixture");
        serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    /// The fixture's options, or an init image and the default resources.
    pub fn options(&self) -> Options {
        self.options
            .clone()
            .unwrap_or_else(|| Options::new("registry.example.com/skillport:0.1.0"))
    }

    /// What the fixture's SkillSet adds to its template.
    pub fn translate(&self) -> Result<SkillResources, TranslateError> {
        let resolved = self
            .resolved
            .clone()
            .unwrap_or_else(|| resolved_by_name(&self.skill_set.spec));
        SkillResources::new(
            &self.skill_set.name,
            &self.skill_set.spec,
            &resolved,
            &self.template,
            self.mode,
            &self.options(),
        )
    }
}

/// Every translate fixture, by file name, in order.
pub fn all() -> Vec<(String, Case)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/translate");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("reading the translate fixtures")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, Case::read(&path))
        })
        .collect()
}
