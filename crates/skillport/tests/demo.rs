// `skillport demo` as the README runs it (from the workspace root, the built-in examples), into
// a temporary `--out`, and from anywhere else.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{
    Sandbox, assert_blobs_match_their_names, assert_same_tree, folder_names, path_str, run, tree,
    write_minimal_skill,
};

/// The example skill folders (those with a SKILL.md), sorted.
fn examples() -> Vec<PathBuf> {
    let root = common::workspace_root().join("examples");
    assert!(
        root.is_dir(),
        "{} is missing: the demo builds the example skills shipped in the repository",
        root.display()
    );
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("SKILL.md").is_file())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "{} holds no skill folders",
        root.display()
    );
    dirs
}

#[test]
fn demo_builds_and_exports_every_example() {
    let examples = examples();
    let sandbox = Sandbox::new();
    let out = sandbox.join("demo");
    let mut demo = sandbox.bare(&["demo", "--out", path_str(&out)]);
    demo.current_dir(common::workspace_root());
    let run = run(demo).success();

    let skills = out.join(".agents/skills");
    let names: Vec<String> = examples
        .iter()
        .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        folder_names(&skills),
        names,
        "one exported folder per example, named after it\n{run}"
    );
    for (dir, name) in examples.iter().zip(&names) {
        let exported = skills.join(name);
        assert_eq!(
            fs::read(exported.join("SKILL.md")).unwrap(),
            fs::read(dir.join("SKILL.md")).unwrap(),
            "exported {name}/SKILL.md equals the source"
        );
        // What an agent finds is itself a valid skill.
        sandbox.ok(&["validate", path_str(&exported)]);
        assert!(run.stdout.contains(&format!("built    {name}:")), "{run}");
    }

    // The demo's store is an ordinary store, listing one image per example.
    let store = out.join("store");
    let listed = common::run(sandbox.bare(&["--store", path_str(&store), "images", "--json"]))
        .success()
        .json();
    assert_eq!(listed.as_array().unwrap().len(), examples.len(), "{listed}");
    assert_blobs_match_their_names(&store);

    check_cluster_half(&out, &listed);

    // Running it again replaces its own output.
    let mut again = sandbox.bare(&["demo", "--out", path_str(&out)]);
    again.current_dir(common::workspace_root());
    common::run(again).success();
    assert_eq!(folder_names(&skills), names);
}

/// The cluster half: the Deployment rendered by `skillport-operator` (beside the test's
/// `skillport`, as `cargo nextest run --workspace` builds both) in both modes, each skill pinned
/// by the digest the store lists.
fn check_cluster_half(out: &std::path::Path, listed: &serde_json::Value) {
    let digests: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 3, "{listed}");
    let read = |file: &str| -> Vec<serde_json::Value> {
        let path = out.join("cluster").join(file);
        let text = fs::read_to_string(&path).unwrap_or_else(|err| {
            panic!(
                "{}: {err} (is skillport-operator built beside skillport? run the tests with \
                 --workspace)",
                path.display()
            )
        });
        serde_saphyr::from_multiple(&text).unwrap()
    };
    let image_volume = read("agent.image-volume.yaml");
    assert_eq!(image_volume.len(), 1, "image volumes need no ConfigMap");
    let spec = &image_volume[0]["spec"]["template"]["spec"];
    let references: Vec<&str> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|volume| volume["image"]["reference"].as_str())
        .collect();
    assert_eq!(references.len(), 3, "{spec}");
    for digest in &digests {
        assert!(
            references
                .iter()
                .any(|reference| reference.ends_with(&format!("@{digest}"))),
            "{digest} is mounted as an image volume: {references:?}"
        );
    }
    let init_container = read("agent.init-container.yaml");
    assert_eq!(
        init_container[1]["kind"], "ConfigMap",
        "the plan comes along"
    );
    let plan = init_container[1]["data"]["plan.json"].as_str().unwrap();
    for digest in &digests {
        assert!(plan.contains(digest), "the plan pins {digest}: {plan}");
    }
    assert_eq!(
        init_container[0]["spec"]["template"]["spec"]["initContainers"][0]["args"][0],
        "fetch"
    );
}

/// Without `skillport-operator` beside it or on PATH the demo still does the local half and says
/// how to get the cluster half.
#[test]
fn demo_without_the_operator_says_how_to_render() {
    let sandbox = Sandbox::new();
    let bin = sandbox.join("bin");
    fs::create_dir(&bin).unwrap();
    let alone = bin.join("skillport");
    fs::copy(env!("CARGO_BIN_EXE_skillport"), &alone).unwrap();
    let mut demo = std::process::Command::new(&alone);
    demo.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir(sandbox.path())
        .args(["demo", "--out", "demo"]);
    let run = run(demo).success();
    assert!(
        run.stdout
            .contains("cargo build --release -p skillport-operator"),
        "{run}"
    );
    assert!(
        run.stdout.contains("skillport-operator render --skillset"),
        "{run}"
    );
    assert!(sandbox.join("demo/cluster/skillset.yaml").is_file());
    assert!(
        !sandbox
            .join("demo/cluster/agent.image-volume.yaml")
            .exists()
    );
}

#[test]
fn every_example_validates_strictly() {
    let sandbox = Sandbox::new();
    let mut args = vec!["validate".to_owned()];
    args.extend(examples().iter().map(|d| path_str(d).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sandbox.ok(&args);
}

#[test]
fn demo_refuses_an_out_folder_it_did_not_make() {
    let sandbox = Sandbox::new();
    let out = sandbox.join("precious");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("data.txt"), "keep me\n").unwrap();
    let examples = sandbox.join("examples");
    write_minimal_skill(&examples, "one");
    let run = run(sandbox.bare(&[
        "demo",
        "--examples",
        path_str(&examples),
        "--out",
        path_str(&out),
    ]))
    .failure();
    assert!(run.error().contains("precious"), "{run}");
    assert_eq!(folder_names(&out), ["data.txt"], "nothing removed or added");
}

/// Outside the repository (no `examples/` here) the demo runs on the examples built into the
/// binary, which are the repository's `examples/` file for file, byte and mode alike.
#[test]
fn demo_runs_anywhere_with_the_built_in_examples() {
    let sandbox = Sandbox::new();
    assert!(!sandbox.path().join("examples").exists());
    let run = run(sandbox.bare(&["demo", "--out", "demo"])).success();
    for dir in examples() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let exported = sandbox.join("demo/.agents/skills").join(&name);
        assert_same_tree(&tree(&exported), &tree(&dir));
        assert_same_tree(
            &tree(&sandbox.join("demo/examples").join(&name)),
            &tree(&dir),
        );
    }
    assert!(run.stdout.contains("now finds 3 skills"), "{run}");
}
