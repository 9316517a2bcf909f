//! The plan format: one fixture file per case under `fixtures/plans/`, checked two ways.
//!
//! - Our parser (`FetchPlan::parse`): `valid/` plans parse and re-serialise to a snapshot;
//!   `invalid/` and `semantic/` plans are refused, with every problem named by skill (snapshot).
//! - `docs/plan.schema.json` with the Python `jsonschema` package (Draft 2020-12) from
//!   `target/test-venv`: it accepts `valid/` and `semantic/` (what a schema cannot express:
//!   uniqueness, reference syntax, passwords in URLs) and refuses `invalid/`.
//!
//! The plans in docs/fetch.md are checked both ways too, and a plan built in code (as the
//! operator builds it) is pinned by a snapshot: the operator and the init container must agree
//! on every byte.

use std::path::{Path, PathBuf};
use std::process::Command;

use skillport_fetch::plan::{
    CredentialFile, FetchPlan, GitSpec, LAYERS_FILE, PlannedLayer, PlannedSkill,
};
use skillport_fetch::{PlanError, Source};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plans")
}

#[test]
fn fixtures_parse_or_fail_as_snapshotted() {
    insta::glob!("fixtures/plans/*/*.json", |path| {
        let kind = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let bytes = std::fs::read(path).unwrap();
        match (kind, FetchPlan::parse(&bytes)) {
            ("valid", Ok(plan)) => insta::assert_snapshot!(plan.to_json()),
            ("valid", Err(err)) => panic!("{} should parse: {err}", path.display()),
            (_, Ok(_)) => panic!("{} should be refused", path.display()),
            (_, Err(err)) => {
                let message = err.to_string();
                assert!(
                    !message.contains("SECRET-TOKEN"),
                    "a password leaked: {message}"
                );
                assert!(err.hint().is_some());
                insta::assert_snapshot!(message);
            }
        }
    });
}

#[test]
fn problems_name_their_skill_and_come_all_at_once() {
    let bytes = std::fs::read(fixtures().join("invalid/several-problems.json")).unwrap();
    let Err(PlanError::Invalid { problems }) = FetchPlan::parse(&bytes) else {
        panic!("refused")
    };
    let subjects: Vec<Option<&str>> = problems.iter().map(|p| p.subject.as_deref()).collect();
    assert_eq!(
        subjects,
        [
            Some("skill \"Bad Name\""),
            Some("skill \"Bad Name\""),
            Some("skill \"ok\"")
        ]
    );
}

/// Runs the schema over `files`; returns whether each is valid.
fn schema_verdicts(files: &[PathBuf]) -> Vec<bool> {
    let venv = std::env::var_os("SKILLPORT_TEST_VENV")
        .map_or_else(|| workspace_root().join("target/test-venv"), PathBuf::from);
    let python = venv.join("bin/python");
    let script = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
for path in sys.argv[2:]:
    print("valid" if validator.is_valid(json.load(open(path))) else "invalid")
"#;
    let output = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(workspace_root().join("docs/plan.schema.json"))
        .args(files)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "{} does not run ({err}); scripts/test.sh makes the virtualenv",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "the jsonschema check failed (is the `jsonschema` package in {}?):\n{}",
        venv.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line == "valid")
        .collect()
}

#[test]
fn the_json_schema_agrees_with_the_parser() {
    let mut files = Vec::new();
    for kind in ["valid", "invalid", "semantic"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(fixtures().join(kind))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        found.sort();
        files.extend(found);
    }
    let verdicts = schema_verdicts(&files);
    assert_eq!(verdicts.len(), files.len());
    for (file, schema_valid) in files.iter().zip(verdicts) {
        let kind = file
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let expected = kind != "invalid";
        assert_eq!(
            schema_valid,
            expected,
            "docs/plan.schema.json says {} of {kind}/{}",
            if schema_valid { "valid" } else { "invalid" },
            file.file_name().unwrap().to_string_lossy()
        );
    }
}

/// The ```json blocks of docs/fetch.md that are plans.
fn documented_plans() -> Vec<String> {
    let text = std::fs::read_to_string(workspace_root().join("docs/fetch.md")).unwrap();
    let mut plans = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```json" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            let block = block.join("\n");
            if block.contains("\"FetchPlan\"") {
                plans.push(block);
            }
        }
    }
    plans
}

#[test]
fn the_plans_in_the_docs_are_valid_both_ways() {
    let plans = documented_plans();
    assert!(!plans.is_empty(), "docs/fetch.md shows a plan");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        FetchPlan::parse(plan.as_bytes())
            .unwrap_or_else(|err| panic!("the plan in docs/fetch.md #{i} is refused: {err}"));
        let file = dir.path().join(format!("doc-{i}.json"));
        std::fs::write(&file, plan).unwrap();
        files.push(file);
    }
    assert!(schema_verdicts(&files).into_iter().all(|valid| valid));
}

#[test]
fn a_plan_built_in_code_serialises_stably_and_reads_back() {
    let plan = FetchPlan {
        skills: vec![
            PlannedSkill::image(
                "pdf-tools",
                "registry.example.com/skills/pdf-tools:1.2.0@sha256:\
                 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            PlannedSkill::git(
                "code-review",
                GitSpec {
                    url: "https://git.example.com/org/skills.git".into(),
                    reference: "v1.0.0".into(),
                    path: Some("skills/code-review".into()),
                },
            )
            .with_target("review"),
        ],
        pull_secrets: vec![CredentialFile {
            name: "artifactory".into(),
            path: "/var/run/skillport/pull-secrets/artifactory/.dockerconfigjson".into(),
        }],
        ..FetchPlan::new()
    };
    plan.validate().unwrap();
    let json = plan.to_json();
    insta::assert_snapshot!(json);
    assert_eq!(FetchPlan::parse(json.as_bytes()).unwrap(), plan);
    assert_eq!(plan.skills[1].target(), "review");
    assert_eq!(plan.skills[0].target(), "pdf-tools");
    assert!(matches!(plan.skills[1].source(), Some(Source::Git(_))));
    // The same source serialises the same way in the index.
    assert_eq!(
        serde_json::to_value(plan.skills[1].source().unwrap()).unwrap(),
        serde_json::json!({"git": {
            "url": "https://git.example.com/org/skills.git",
            "ref": "v1.0.0",
            "path": "skills/code-review"
        }})
    );
}

fn layer(byte: char) -> PlannedLayer {
    PlannedLayer {
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_owned(),
        digest: format!("sha256:{}", byte.to_string().repeat(64)),
        size: 1234,
        in_folder: false,
    }
}

#[test]
fn layers_travel_beside_the_plan_and_apply_to_their_image_only() {
    let image = |name: &str| format!("127.0.0.1:5000/skills/{name}@sha256:{}", "ab".repeat(32));
    let mut written = FetchPlan::new();
    written.skills = vec![
        PlannedSkill {
            layer: Some(layer('c')),
            ..PlannedSkill::image("a", image("a"))
        },
        PlannedSkill {
            layer: Some(layer('d')),
            ..PlannedSkill::image("b", image("b"))
        },
        PlannedSkill::image("c", image("c")),
    ];
    written.validate().unwrap();
    // plan.json never holds them: a skillport older than the operator refuses unknown fields.
    let plan_json = written.to_json();
    assert!(!plan_json.contains("layer"), "{plan_json}");
    let layers_json = written.layers_json().expect("two skills have layers");
    insta::assert_snapshot!(layers_json);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.json"), &plan_json).unwrap();
    // Skill b's entry is for another image (a stale file): it is left out. Unknown fields are
    // ignored, so later operators may add to the file.
    let mut layers: serde_json::Value = serde_json::from_str(&layers_json).unwrap();
    layers["layers"]["b"]["image"] = serde_json::json!(image("other"));
    layers["later"] = serde_json::json!(true);
    std::fs::write(dir.path().join(LAYERS_FILE), layers.to_string()).unwrap();
    let read = FetchPlan::read(&dir.path().join("plan.json")).unwrap();
    let got: Vec<Option<PlannedLayer>> = read.skills.iter().map(|s| s.layer.clone()).collect();
    assert_eq!(got, vec![Some(layer('c')), None, None]);

    // Without the file, the plan reads as before.
    std::fs::remove_file(dir.path().join(LAYERS_FILE)).unwrap();
    let read = FetchPlan::read(&dir.path().join("plan.json")).unwrap();
    assert!(read.skills.iter().all(|s| s.layer.is_none()));

    // A layer this skillport cannot use (a newer operator's media type, a broken digest) is
    // left out with a warning naming the file and the skill: the manifests are read instead.
    layers["layers"]["a"]["digest"] = serde_json::json!("sha256:nothex");
    layers["layers"]["b"]["image"] = serde_json::json!(image("b"));
    layers["layers"]["b"]["mediaType"] = serde_json::json!("application/vnd.example.layer.v9");
    let mut plan = FetchPlan::read(&dir.path().join("plan.json")).unwrap();
    let warnings = plan.apply_layers(layers.to_string().as_bytes());
    assert!(plan.skills.iter().all(|s| s.layer.is_none()));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("layers.json: skill \"a\"") && warnings[0].contains("sha256:nothex"),
        "{warnings:?}"
    );
    assert!(warnings[1].contains("vnd.example.layer.v9"), "{warnings:?}");
    // Not JSON at all: a warning, and the plan as it is.
    std::fs::write(dir.path().join(LAYERS_FILE), "{").unwrap();
    let read = FetchPlan::read(&dir.path().join("plan.json")).unwrap();
    assert!(read.skills.iter().all(|s| s.layer.is_none()));
    assert_eq!(plan.apply_layers(b"{").len(), 1);
}
