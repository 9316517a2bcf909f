//! `skillport demo`: the example skills built into a fresh store and exported as an agent sees
//! them (the local half), then attached to an example Deployment as the operator attaches them,
//! in both delivery modes (the cluster half, offline).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use skillport_oci::{BuildRequest, Digest, Store};

use crate::cli::{DemoArgs, ImagesArgs};
use crate::commands::{images, load_skill, parse_reference, resolve_skill, source_date_epoch};
use crate::output::{one_line, plural};

/// The repository's `examples/`, built into the binary so that `demo` runs anywhere: each
/// file's path, text and whether it is executable. `tests/demo.rs` checks that this is the
/// whole folder, byte for byte.
const EXAMPLES: [(&str, &str, bool); 7] = [
    (
        "commit-message/SKILL.md",
        include_str!("../../../examples/commit-message/SKILL.md"),
        false,
    ),
    (
        "commit-message/references/conventional-commits.md",
        include_str!("../../../examples/commit-message/references/conventional-commits.md"),
        false,
    ),
    (
        "csv-summary/SKILL.md",
        include_str!("../../../examples/csv-summary/SKILL.md"),
        false,
    ),
    (
        "csv-summary/scripts/summarize.py",
        include_str!("../../../examples/csv-summary/scripts/summarize.py"),
        true,
    ),
    (
        "release-notes/SKILL.md",
        include_str!("../../../examples/release-notes/SKILL.md"),
        false,
    ),
    (
        "release-notes/skill.yaml",
        include_str!("../../../examples/release-notes/skill.yaml"),
        false,
    ),
    (
        "release-notes/assets/template.md",
        include_str!("../../../examples/release-notes/assets/template.md"),
        false,
    ),
];

/// Writes the built-in examples into `dir` (new); returns it.
fn write_examples(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    for (path, text, executable) in EXAMPLES {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
        let mode = if executable { 0o755 } else { 0o644 };
        fs::set_permissions(&file, fs::Permissions::from_mode(mode))?;
    }
    Ok(dir.to_path_buf())
}

/// Builds every skill in the examples folder into a fresh store and exports each one as an
/// agent would see it (`<out>/.agents/skills/<name>`), printing each step.
pub fn demo(args: &DemoArgs) -> Result<ExitCode> {
    const MARKER: &str = ".skillport-demo";
    if args.out.exists() {
        if !args.out.join(MARKER).exists() {
            bail!(
                "{} exists and was not made by `skillport demo`; pass --out with a new folder",
                args.out.display()
            );
        }
        fs::remove_dir_all(&args.out)
            .with_context(|| format!("removing the previous demo in {}", args.out.display()))?;
    }
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    fs::write(
        args.out.join(MARKER),
        "made by `skillport demo`; safe to delete\n",
    )?;
    let store_root = args.out.join("store");
    let store = Store::open(&store_root)?;
    out!("store: {} (an OCI image layout)", store_root.display());

    let examples = match &args.examples {
        Some(dir) => dir.clone(),
        None => write_examples(&args.out.join("examples"))?,
    };
    let mut dirs: Vec<PathBuf> = fs::read_dir(&examples)
        .with_context(|| format!("reading the examples folder {}", examples.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("SKILL.md").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!(
            "{} holds no skill folders (folders with a SKILL.md)",
            examples.display()
        );
    }
    let skills_root = args.out.join(".agents/skills");
    fs::create_dir_all(&skills_root)?;
    let mut built_skills = Vec::new();
    for dir in &dirs {
        let skill = load_skill(dir, false)?;
        let entries = skillport_skill::walk(dir)?;
        let name = &skill.frontmatter.name;
        let version = skill
            .card
            .as_ref()
            .map(|card| card.metadata.version.clone())
            .or_else(|| skill.frontmatter.metadata.get("version").cloned())
            .unwrap_or_else(|| "latest".into());
        let reference = parse_reference(&format!("{name}:{version}"))?;
        let request = BuildRequest {
            skill: &skill,
            entries: &entries,
            generated_card: None,
            source_date_epoch: source_date_epoch()?,
            names: std::slice::from_ref(&reference),
        };
        let built = skillport_oci::build(&store, &request, &mut |_| {})
            .with_context(|| format!("building {}", dir.display()))?;
        out!(
            "built    {reference:<32} {}  ({})",
            built.digest(),
            plural(built.layer.files, "file")
        );
        let (_, image) = resolve_skill(&store, &reference.to_string())?;
        let dest = skills_root.join(name);
        skillport_oci::export(&store, &image, &dest)?;
        out!("exported {reference:<32} -> {}", dest.display());
        built_skills.push(BuiltSkill {
            name: name.clone(),
            version,
            digest: built.digest().clone(),
        });
    }
    out!();
    images(
        &store,
        &ImagesArgs {
            json: false,
            quiet: false,
            store: crate::cli::StoreOption::default(),
        },
    )?;
    out!();
    out!(
        "An agent pointed at {} now finds {}, each folder named after its skill.",
        skills_root.display(),
        plural(dirs.len(), "skill")
    );
    out!();
    cluster_half(&args.out.join("cluster"), &built_skills)?;
    Ok(ExitCode::SUCCESS)
}

/// A skill the demo built: its name, the tag it got, and the image digest.
struct BuiltSkill {
    name: String,
    version: String,
    digest: Digest,
}

/// Where the example SkillSet says the skills come from. `skillport push NAME:VERSION
/// REGISTRY/skills/NAME:VERSION` keeps the digest, so the lock holds for the pushed images too.
const DEMO_REGISTRY: &str = "registry.example.com/skills";
/// The init image handed to `render` (the operator's `--init-image`); `scripts/images.sh`
/// prints the real one for a cluster.
const DEMO_INIT_IMAGE: &str = "registry.example.com/skillport/skillport:0.1.0";

/// The cluster half, offline: writes an example SkillSet over the demo's skills, a Deployment
/// and a lock with the digests just built, and renders the Deployment with the skills attached
/// in both delivery modes by `skillport-operator render` — the operator's own translate, run as
/// a separate program because this binary (also the in-pod one) links no Kubernetes code.
fn cluster_half(dir: &Path, skills: &[BuiltSkill]) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |file: &str, text: &str| -> Result<PathBuf> {
        let path = dir.join(file);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    let skill_set = write("skillset.yaml", &skill_set_yaml(skills))?;
    let workload = write("deployment.yaml", DEPLOYMENT)?;
    let lock = write("lock.yaml", &lock_yaml(skills))?;
    out!(
        "cluster half: {} of {DEMO_REGISTRY} on the Deployment `agent` ({}, with {} and {})",
        plural(skills.len(), "skill"),
        workload.display(),
        skill_set.display(),
        lock.display()
    );
    let render_args = |delivery: &str| {
        vec![
            "render".to_owned(),
            "--skillset".to_owned(),
            skill_set.display().to_string(),
            "--workload".to_owned(),
            workload.display().to_string(),
            "--lock".to_owned(),
            lock.display().to_string(),
            "--delivery".to_owned(),
            delivery.to_owned(),
            "--init-image".to_owned(),
            DEMO_INIT_IMAGE.to_owned(),
        ]
    };
    let Some(operator) = find_operator() else {
        out!(
            "skillport-operator is neither beside this skillport nor on PATH, so the cluster half \
             stops here. Build it (`cargo build --release -p skillport-operator`) and run the demo \
             again, or render by hand:"
        );
        out!(
            "  skillport-operator {}",
            render_args("image-volume").join(" ")
        );
        return Ok(());
    };
    for (delivery, file) in [
        ("image-volume", "agent.image-volume.yaml"),
        ("init-container", "agent.init-container.yaml"),
    ] {
        let output = Command::new(&operator)
            .args(render_args(delivery))
            .output()
            .with_context(|| format!("running {}", operator.display()))?;
        if !output.status.success() {
            bail!(
                "{} render --delivery {delivery} failed: {}",
                operator.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let text = String::from_utf8(output.stdout).context("render printed no UTF-8")?;
        let path = write(file, &text)?;
        out!("{delivery:<15} -> {}", path.display());
        for line in summary(&text)? {
            out!("  {line}");
        }
    }
    out!(
        "Each file is what `kubectl apply` would send: the skills pinned by digest, read-only, \
         under /skills. Run the operator on a cluster and it does this to the live Deployment."
    );
    Ok(())
}

/// `skillport-operator` beside this executable (a cargo target folder, an unpacked release),
/// else on PATH.
fn find_operator() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()?
        .with_file_name("skillport-operator");
    if beside.is_file() {
        return Some(beside);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("skillport-operator"))
        .find(|path| path.is_file())
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: agent
  namespace: demo
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
        - name: agent
          image: registry.example.com/agents/agent:1.0
";

fn skill_set_yaml(skills: &[BuiltSkill]) -> String {
    let mut text = String::from(
        "apiVersion: skillport.dev/v1alpha1\nkind: SkillSet\nmetadata: {name: demo-skills, \
         namespace: demo}\nspec:\n  workloadRef: {kind: Deployment, name: agent}\n  skills:\n",
    );
    for skill in skills {
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "    - {{name: {}, image: \"{DEMO_REGISTRY}/{}:{}\"}}",
            skill.name, skill.name, skill.version
        );
    }
    text
}

/// The digests `render` pins, in the shape of a SkillSet's `status.skills`.
fn lock_yaml(skills: &[BuiltSkill]) -> String {
    let mut text = String::from("skills:\n");
    for skill in skills {
        let _ = writeln!(
            text,
            "  - {{name: {}, digest: \"{}\"}}",
            skill.name, skill.digest
        );
    }
    text
}

/// What the rendered Deployment got: skill volumes and where the agent container mounts them,
/// init containers, and the plan ConfigMap.
fn summary(rendered: &str) -> Result<Vec<String>> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(rendered).context("reading what render printed")?;
    let spec = documents
        .first()
        .map(|workload| &workload["spec"]["template"]["spec"])
        .context("render printed no workload")?;
    let mut lines = Vec::new();
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or_default();
        let source = if let Some(image) = volume["image"]["reference"].as_str() {
            format!("image volume {image}")
        } else if let Some(config_map) = volume["configMap"]["name"].as_str() {
            format!("ConfigMap {config_map}")
        } else {
            "emptyDir".to_owned()
        };
        lines.push(format!("volume {name}: {source}"));
    }
    for init in spec["initContainers"].as_array().into_iter().flatten() {
        let args: Vec<&str> = init["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        lines.push(one_line(
            &format!(
                "init container {}: {} {}",
                init["name"].as_str().unwrap_or_default(),
                init["image"].as_str().unwrap_or_default(),
                args.join(" ")
            ),
            120,
        ));
    }
    let agent = &spec["containers"][0];
    for mount in agent["volumeMounts"].as_array().into_iter().flatten() {
        lines.push(format!(
            "agent mounts {} at {}{}",
            mount["name"].as_str().unwrap_or_default(),
            mount["mountPath"].as_str().unwrap_or_default(),
            if mount["readOnly"] == true {
                " (read-only)"
            } else {
                ""
            }
        ));
    }
    if let Some(config_map) = documents.get(1) {
        lines.push(format!(
            "plus ConfigMap {}: the fetch plan",
            config_map["metadata"]["name"].as_str().unwrap_or_default()
        ));
    }
    Ok(lines)
}
