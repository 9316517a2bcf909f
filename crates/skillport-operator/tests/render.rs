//! `skillport-operator render`, run as users run it: one folder per case under
//! `tests/fixtures/render/` with `skillset.yaml`, `workload.yaml`, optionally `lock.yaml` and
//! `args` (extra arguments, one per line, run in the case's folder). The snapshot is the exit
//! status, stdout and stderr.

use std::path::Path;
use std::process::Command;

#[test]
fn render() {
    insta::glob!("fixtures/render/*/skillset.yaml", |path| {
        let dir = path.parent().expect("a case folder");
        let mut command = Command::new(env!("CARGO_BIN_EXE_skillport-operator"));
        command
            .current_dir(dir)
            .env_remove("SKILLPORT_INIT_IMAGE")
            .args(["render", "--skillset", "skillset.yaml"])
            .args(["--workload", "workload.yaml"])
            .args(["--init-image", "registry.example.com/skillport:0.1.0"]);
        if dir.join("lock.yaml").exists() {
            command.args(["--lock", "lock.yaml"]);
        }
        if let Ok(args) = std::fs::read_to_string(dir.join("args")) {
            command.args(args.lines().filter(|line| !line.is_empty()));
        }
        let output = command.output().expect("running skillport-operator");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
            check_documents(&stdout, dir);
        }
        insta::assert_snapshot!(format!(
            "exit: {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            output.status.code().unwrap_or(-1)
        ));
    });
}

/// The output reads back as the workload (same kind and name) and, where there is a plan, a
/// ConfigMap the workload mounts.
fn check_documents(stdout: &str, dir: &Path) {
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(stdout).expect("the output is YAML");
    let workload: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("workload.yaml")).unwrap())
            .unwrap();
    assert_eq!(documents[0]["kind"], workload["kind"]);
    assert_eq!(
        documents[0]["metadata"]["name"],
        workload["metadata"]["name"]
    );
    if let Some(config_map) = documents.get(1) {
        assert_eq!(config_map["kind"], "ConfigMap");
        let mounted = documents[0]["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .any(|volume| volume["configMap"]["name"] == config_map["metadata"]["name"]);
        assert!(mounted, "the workload mounts the plan ConfigMap");
    }
}
