//! Fetching plans from real registries (the CNCF distribution registry with TLS and basic
//! auth, two of them, one pull secret each): what lands in `--into`, the index, idempotent
//! re-runs, replacement, removal, and what a failure leaves behind.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{
    Site, contents, failure_of, fast_options, index, listing, plan, push_skill, run, top_level,
    write_skill,
};
use skillport_fetch::plan::{PlannedLayer, PlannedSkill};
use skillport_fetch::{Action, Source};

fn actions(report: &skillport_fetch::Report) -> Vec<(String, Option<Action>)> {
    report
        .outcomes
        .iter()
        .map(|outcome| {
            (
                outcome.name.clone(),
                outcome.result.as_ref().ok().map(|done| done.action),
            )
        })
        .collect()
}

fn names(list: &[(&str, Option<Action>)]) -> Vec<(String, Option<Action>)> {
    list.iter()
        .map(|(name, action)| ((*name).to_owned(), *action))
        .collect()
}

#[test]
fn skills_from_two_registries_with_one_pull_secret_each() {
    let work = tempfile::tempdir().unwrap();
    let secrets = work.path().join("secrets");
    let a = Site::start(&secrets, "artifactory");
    let b = Site::start(&secrets, "ecr");
    let src = work.path().join("src");
    let pdf = write_skill(
        &src,
        "pdf-tools",
        &[
            ("scripts/run.sh", b"#!/bin/sh\necho pdf\n"),
            ("references/spec.md", b"# Spec\n"),
            ("assets/empty.txt", b""),
        ],
    );
    let review = write_skill(
        &src,
        "code-review",
        &[("references/rules.md", b"be kind\n")],
    );
    let (pdf_ref, pdf_digest) = push_skill(&a, work.path(), &pdf, "pdf-tools", "1.2.0");
    let (review_ref, review_digest) = push_skill(&b, work.path(), &review, "code-review", "2.0.0");
    let pinned = format!("{review_ref}@{review_digest}");

    let into = work.path().join("skills");
    let plan = plan(
        vec![
            PlannedSkill::image("pdf-tools", &pdf_ref),
            PlannedSkill::image("code-review", &pinned).with_target("review"),
        ],
        &[&a, &b],
    );
    let report = run(&plan, &into, &fast_options());
    assert!(report.is_success(), "{:?}", report.termination_message());
    assert_eq!(
        actions(&report),
        names(&[
            ("pdf-tools", Some(Action::Fetched)),
            ("code-review", Some(Action::Fetched))
        ])
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    // Only the skill folders and the index; the files as built, modes normalised.
    assert_eq!(top_level(&into), ["index.json", "pdf-tools", "review"]);
    assert_eq!(contents(&into.join("pdf-tools")), contents(&pdf));
    assert_eq!(contents(&into.join("review")), contents(&review));
    let mode = |path: &str| fs::metadata(into.join(path)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("pdf-tools"), 0o755);
    assert_eq!(mode("pdf-tools/scripts/run.sh"), 0o755);
    assert_eq!(mode("pdf-tools/SKILL.md"), 0o644);
    assert_eq!(
        mode("index.json"),
        0o644,
        "the agent may run as another user"
    );

    let index = index(&into);
    assert_eq!(index.api_version, "skillport.dev/v1alpha1");
    assert_eq!(index.kind, "SkillIndex");
    let [first, second] = index.skills.as_slice() else {
        panic!("two entries: {index:?}")
    };
    assert_eq!(first.name, "pdf-tools");
    assert_eq!(first.path, "pdf-tools");
    assert_eq!(first.source, Source::Image(pdf_ref.clone()));
    assert_eq!(first.digest.as_deref(), Some(pdf_digest.as_str()));
    assert_eq!(first.commit, None);
    assert_eq!(first.version.as_deref(), Some("1.0.0"));
    assert_eq!(first.description, "Test skill pdf-tools. Use it in tests.");
    assert_eq!(
        (first.files, first.bytes),
        (4, 26 + fs::metadata(pdf.join("SKILL.md")).unwrap().len())
    );
    assert!(first.warnings.is_empty());
    assert_eq!(second.name, "code-review");
    assert_eq!(second.path, "review");
    assert_eq!(second.source, Source::Image(pinned));
    assert_eq!(second.digest.as_deref(), Some(review_digest.as_str()));
    // The target renames the folder in --into: that is the plan's choice, not a skill whose
    // name differs from its folder, so no warning (it would repeat on every run).
    assert!(second.warnings.is_empty(), "{:?}", second.warnings);
}

#[test]
fn the_index_has_exactly_the_documented_shape() {
    let work = tempfile::tempdir().unwrap();
    let a = Site::start(&work.path().join("secrets"), "artifactory");
    let dir = write_skill(&work.path().join("src"), "shape", &[]);
    let (reference, _) = push_skill(&a, work.path(), &dir, "shape", "1");
    let into = work.path().join("skills");
    run(
        &plan(vec![PlannedSkill::image("shape", &reference)], &[&a]),
        &into,
        &fast_options(),
    );
    // Read as plain JSON, without our types: what an agent sees.
    let value: serde_json::Value =
        serde_json::from_slice(&fs::read(into.join("index.json")).unwrap()).unwrap();
    let top: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["apiVersion", "kind", "skills"]);
    let entry = value["skills"][0].as_object().unwrap();
    let mut keys: Vec<&str> = entry.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bytes",
            "description",
            "digest",
            "files",
            "name",
            "path",
            "source",
            "treeHash",
            "version",
            "warnings"
        ]
    );
    assert!(entry["name"].is_string() && entry["description"].is_string());
    assert!(entry["version"].is_string() || entry["version"].is_null());
    assert_eq!(entry["source"], serde_json::json!({ "image": reference }));
    assert!(entry["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(entry["files"].is_u64() && entry["bytes"].is_u64());
    // The same tree hash `skillport verify` and local install compute over the folder.
    let dir = into.join(entry["path"].as_str().unwrap());
    assert_eq!(
        entry["treeHash"],
        skillport_oci::tree_hash::tree_hash(&dir)
            .unwrap()
            .to_string()
    );
    assert!(entry["warnings"].is_array());
    assert_eq!(entry["path"], "shape");
    assert!(
        into.join(entry["path"].as_str().unwrap())
            .join("SKILL.md")
            .is_file()
    );
}

#[test]
fn a_second_run_skips_and_a_pinned_skill_needs_no_registry() {
    let work = tempfile::tempdir().unwrap();
    let secrets = work.path().join("secrets");
    let mut a = Site::start(&secrets, "artifactory");
    let src = work.path().join("src");
    let pinned_dir = write_skill(&src, "pinned", &[("data.txt", b"pinned\n")]);
    let tagged_dir = write_skill(&src, "tagged", &[("data.txt", b"tagged\n")]);
    let (pinned_ref, pinned_digest) = push_skill(&a, work.path(), &pinned_dir, "pinned", "1");
    let (tagged_ref, _) = push_skill(&a, work.path(), &tagged_dir, "tagged", "1");
    let plan = plan(
        vec![
            PlannedSkill::image("pinned", format!("{pinned_ref}@{pinned_digest}")),
            PlannedSkill::image("tagged", &tagged_ref),
        ],
        &[&a],
    );
    let into = work.path().join("skills");
    run(&plan, &into, &fast_options());
    let first = fs::read(into.join("index.json")).unwrap();
    let before = listing(&into);

    let report = run(&plan, &into, &fast_options());
    assert_eq!(
        actions(&report),
        names(&[
            ("pinned", Some(Action::UpToDate)),
            ("tagged", Some(Action::UpToDate))
        ])
    );
    assert_eq!(fs::read(into.join("index.json")).unwrap(), first);
    assert_eq!(listing(&into), before);

    // With the registry gone, the pinned skill is still up to date (no request at all); the
    // tag cannot be checked, so that skill fails, but its folder and entry stay.
    a.registry.stop();
    let report = run(&plan, &into, &fast_options());
    assert_eq!(
        actions(&report),
        names(&[("pinned", Some(Action::UpToDate)), ("tagged", None)])
    );
    failure_of(
        &report,
        "tagged",
        &[&a.host(), "cannot connect"],
        &[&a.password()],
    );
    assert_eq!(fs::read(into.join("index.json")).unwrap(), first);
    assert_eq!(listing(&into), before);
}

#[test]
fn a_moved_tag_or_a_damaged_folder_is_replaced_in_one_step() {
    let work = tempfile::tempdir().unwrap();
    let a = Site::start(&work.path().join("secrets"), "artifactory");
    let src = work.path().join("src");
    let v1 = write_skill(
        &src.join("v1"),
        "moving",
        &[("data.txt", b"one\n"), ("old.txt", b"x")],
    );
    let v2 = write_skill(&src.join("v2"), "moving", &[("data.txt", b"two\n")]);
    let (reference, digest1) = push_skill(&a, work.path(), &v1, "moving", "stable");
    let plan = plan(vec![PlannedSkill::image("moving", &reference)], &[&a]);
    let into = work.path().join("skills");
    run(&plan, &into, &fast_options());
    assert_eq!(contents(&into.join("moving")), contents(&v1));

    let (_, digest2) = push_skill(&a, work.path(), &v2, "moving", "stable");
    assert_ne!(digest1, digest2);
    let report = run(&plan, &into, &fast_options());
    assert_eq!(
        actions(&report),
        names(&[("moving", Some(Action::Replaced))])
    );
    assert_eq!(contents(&into.join("moving")), contents(&v2));
    assert_eq!(
        index(&into).skills[0].digest.as_deref(),
        Some(digest2.as_str())
    );
    assert_eq!(top_level(&into), ["index.json", "moving"]);

    // Someone deleted a file: the folder no longer matches the index, so it is fetched again.
    fs::remove_file(into.join("moving/data.txt")).unwrap();
    let report = run(&plan, &into, &fast_options());
    assert_eq!(
        actions(&report),
        names(&[("moving", Some(Action::Replaced))])
    );
    assert_eq!(contents(&into.join("moving")), contents(&v2));
}

/// Issue 7, finding 9: a re-run compared only the file count and byte total, so an edit that
/// kept every size survived it. The tree hash in the index catches it, and a change of the
/// execute bit too.
#[test]
fn rerun_replaces_a_same_size_edit() {
    let work = tempfile::tempdir().unwrap();
    let a = Site::start(&work.path().join("secrets"), "artifactory");
    let dir = write_skill(
        &work.path().join("src"),
        "edited",
        &[("data.txt", b"genuine\n")],
    );
    let (reference, digest) = push_skill(&a, work.path(), &dir, "edited", "1");
    // Pinned: the only thing that can make the re-run fetch is the folder itself.
    let plan = plan(
        vec![PlannedSkill::image(
            "edited",
            format!("{reference}@{digest}"),
        )],
        &[&a],
    );
    let into = work.path().join("skills");
    run(&plan, &into, &fast_options());
    let file = into.join("edited/data.txt");

    fs::write(&file, b"tampered").unwrap();
    let report = run(&plan, &into, &fast_options());
    assert_eq!(
        actions(&report),
        names(&[("edited", Some(Action::Replaced))])
    );
    assert_eq!(fs::read(&file).unwrap(), b"genuine\n");

    fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
    let report = run(&plan, &into, &fast_options());
    assert_eq!(
        actions(&report),
        names(&[("edited", Some(Action::Replaced))])
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o644
    );

    // Untouched, it is up to date again.
    let report = run(&plan, &into, &fast_options());
    assert_eq!(
        actions(&report),
        names(&[("edited", Some(Action::UpToDate))])
    );
}

#[test]
fn a_target_without_an_index_entry_is_replaced_and_other_folders_are_left_alone() {
    let work = tempfile::tempdir().unwrap();
    let a = Site::start(&work.path().join("secrets"), "artifactory");
    let src = work.path().join("src");
    let keep = write_skill(&src, "keep", &[]);
    let (keep_ref, _) = push_skill(&a, work.path(), &keep, "keep", "1");
    let gone = write_skill(&src, "gone", &[]);
    let (gone_ref, _) = push_skill(&a, work.path(), &gone, "gone", "1");

    let into = work.path().join("skills");
    fs::create_dir_all(into.join("keep/junk")).unwrap();
    fs::write(into.join("keep/junk/file"), b"stale").unwrap();
    fs::create_dir_all(into.join("notes")).unwrap();
    fs::write(into.join("notes/mine.txt"), b"not skillport's").unwrap();

    let both = plan(
        vec![
            PlannedSkill::image("keep", &keep_ref),
            PlannedSkill::image("gone", &gone_ref),
        ],
        &[&a],
    );
    let report = run(&both, &into, &fast_options());
    assert_eq!(
        actions(&report),
        names(&[
            ("keep", Some(Action::Replaced)),
            ("gone", Some(Action::Fetched))
        ])
    );
    assert_eq!(contents(&into.join("keep")), contents(&keep));

    // "gone" leaves the plan: its folder goes; "notes" was never ours and stays.
    let one = plan(vec![PlannedSkill::image("keep", &keep_ref)], &[&a]);
    let report = run(&one, &into, &fast_options());
    assert_eq!(actions(&report), names(&[("keep", Some(Action::UpToDate))]));
    assert_eq!(report.removed, ["gone"]);
    assert_eq!(top_level(&into), ["index.json", "keep", "notes"]);
    assert_eq!(
        fs::read(into.join("notes/mine.txt")).unwrap(),
        b"not skillport's"
    );
    assert_eq!(index(&into).skills.len(), 1);
}

#[test]
fn a_failed_skill_does_not_stop_the_others_and_the_index_lists_what_is_in_place() {
    let work = tempfile::tempdir().unwrap();
    let secrets = work.path().join("secrets");
    let a = Site::start(&secrets, "artifactory");
    let b = Site::start(&secrets, "ecr");
    let src = work.path().join("src");
    let good = write_skill(&src, "good", &[]);
    let (good_ref, _) = push_skill(&a, work.path(), &good, "good", "1");
    let other = write_skill(&src, "other", &[]);
    let (other_ref, _) = push_skill(&b, work.path(), &other, "other", "1");

    // Only a's pull secret: b answers 401, and the message says which secret lacked it.
    let mut only_a = plan(
        vec![
            PlannedSkill::image("good", &good_ref),
            PlannedSkill::image("other", &other_ref),
            PlannedSkill::image("missing", format!("{}/skills/missing:1", a.host())),
        ],
        &[&a],
    );
    only_a.ca_files.push(b.ca_file());
    let into = work.path().join("skills");
    let report = run(&only_a, &into, &fast_options());
    assert!(!report.is_success());
    assert!(report.outcomes[0].result.is_ok());
    let message = failure_of(
        &report,
        "other",
        &[
            &b.host(),
            "401 unauthorized",
            "pull secret \"artifactory\" has no entry for this host",
        ],
        &[&a.password(), &b.password()],
    );
    let hint = report.failures().next().unwrap().hint().unwrap();
    assert!(
        hint.contains(&b.host()) && hint.contains("imagePullSecret"),
        "{hint}"
    );
    failure_of(
        &report,
        "missing",
        &[&a.host(), "not found"],
        &[&a.password()],
    );
    assert_eq!(
        report.termination_message().unwrap(),
        format!("{message} (also failed: \"missing\")")
    );
    assert_eq!(top_level(&into), ["good", "index.json"]);
    let listed: Vec<String> = index(&into).skills.into_iter().map(|e| e.name).collect();
    assert_eq!(listed, ["good"]);

    // With both secrets, a re-run skips what arrived and fetches the rest.
    let mut both = only_a.clone();
    both.pull_secrets.push(b.pull_secret());
    both.skills.pop();
    let report = run(&both, &into, &fast_options());
    assert_eq!(
        actions(&report),
        names(&[
            ("good", Some(Action::UpToDate)),
            ("other", Some(Action::Fetched))
        ])
    );
}

#[test]
fn wrong_credentials_name_the_secret_and_never_the_password() {
    let work = tempfile::tempdir().unwrap();
    let secrets = work.path().join("secrets");
    let a = Site::start(&secrets, "artifactory");
    let dir = write_skill(&work.path().join("src"), "guarded", &[]);
    let (reference, _) = push_skill(&a, work.path(), &dir, "guarded", "1");
    let wrong = "wrong-NEVER-PRINT-0123";
    let forged = secrets.join("forged/.dockerconfigjson");
    fs::create_dir_all(forged.parent().unwrap()).unwrap();
    let auth = base64_encode(&format!("skillport:{wrong}"));
    fs::write(
        &forged,
        serde_json::json!({ "auths": { a.host(): { "auth": auth } } }).to_string(),
    )
    .unwrap();
    let mut plan = plan(vec![PlannedSkill::image("guarded", &reference)], &[]);
    plan.pull_secrets
        .push(skillport_fetch::plan::CredentialFile {
            name: "forged".into(),
            path: forged.display().to_string(),
        });
    plan.ca_files.push(a.ca_file());
    let report = run(&plan, &work.path().join("skills"), &fast_options());
    failure_of(
        &report,
        "guarded",
        &[&a.host(), "401", "pull secret \"forged\"", "refused"],
        &[wrong, &a.password(), &auth],
    );
}

#[test]
fn empty_and_duplicate_pull_secret_entries_are_warnings() {
    let work = tempfile::tempdir().unwrap();
    let secrets = work.path().join("secrets");
    let a = Site::start(&secrets, "artifactory");
    let dir = write_skill(&work.path().join("src"), "warned", &[]);
    let (reference, _) = push_skill(&a, work.path(), &dir, "warned", "1");
    let empty = secrets.join("empty/.dockerconfigjson");
    fs::create_dir_all(empty.parent().unwrap()).unwrap();
    fs::write(&empty, b"").unwrap();
    let mut plan = plan(vec![PlannedSkill::image("warned", &reference)], &[&a]);
    // The same secret again under another name: its entry is shadowed by the first.
    plan.pull_secrets
        .push(skillport_fetch::plan::CredentialFile {
            name: "copy".into(),
            path: a.secret_file.display().to_string(),
        });
    plan.pull_secrets
        .push(skillport_fetch::plan::CredentialFile {
            name: "empty".into(),
            path: empty.display().to_string(),
        });
    let report = run(&plan, &work.path().join("skills"), &fast_options());
    assert!(report.is_success(), "{:?}", report.termination_message());
    let warnings = report.warnings.join("\n");
    assert!(
        warnings.contains("pull secret \"empty\" is empty"),
        "{warnings}"
    );
    assert!(
        warnings.contains("duplicate entry") && warnings.contains("pull secret \"copy\""),
        "{warnings}"
    );
    assert!(!warnings.contains(&a.password()));
}

#[test]
fn an_unreadable_pull_secret_stops_the_run_before_anything_is_fetched() {
    let work = tempfile::tempdir().unwrap();
    let a = Site::start(&work.path().join("secrets"), "artifactory");
    let mut plan = plan(
        vec![PlannedSkill::image("x", format!("{}/skills/x:1", a.host()))],
        &[&a],
    );
    plan.pull_secrets
        .push(skillport_fetch::plan::CredentialFile {
            name: "absent".into(),
            path: work
                .path()
                .join("nope/.dockerconfigjson")
                .display()
                .to_string(),
        });
    let into = work.path().join("skills");
    let err = common::try_run(&plan, &into, &fast_options()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("pull secret \"absent\": cannot read"),
        "{message}"
    );
    assert!(err.hint().is_some());
    assert_eq!(listing(&into), Vec::<String>::new(), "nothing written");
}

#[test]
fn skill_md_is_checked_before_publishing() {
    let work = tempfile::tempdir().unwrap();
    let a = Site::start(&work.path().join("secrets"), "artifactory");
    // Lenient: a name that breaks the rules and a broken skill.yaml are warnings.
    let sloppy = common::tar_gz(&[
        common::file(
            "SKILL.md",
            b"---\nname: Sloppy_Name\ndescription: Breaks the naming rule.\n---\nbody\n",
        ),
        common::file(
            "skill.yaml",
            b"apiVersion: skillimage.io/v1alpha1\nkind: Nope\n",
        ),
    ]);
    let (sloppy_ref, _) = common::push_layer(
        &a,
        work.path(),
        "sloppy",
        "1",
        &sloppy,
        skillport_oci::spec::media::LAYER_TAR_GZIP,
    );
    // Hand-made layers: no SKILL.md at all, and a SKILL.md without frontmatter.
    let none = common::tar_gz(&[common::file("README.md", b"no skill here\n")]);
    let (none_ref, _) = common::push_layer(
        &a,
        work.path(),
        "no-skill-md",
        "1",
        &none,
        skillport_oci::spec::media::LAYER_TAR_GZIP,
    );
    let bare = common::tar_gz(&[common::file("SKILL.md", b"# just a title\n")]);
    let (bare_ref, _) = common::push_layer(
        &a,
        work.path(),
        "bare",
        "1",
        &bare,
        skillport_oci::spec::media::LAYER_TAR_GZIP,
    );
    let plan = plan(
        vec![
            PlannedSkill::image("sloppy", &sloppy_ref),
            PlannedSkill::image("no-skill-md", &none_ref),
            PlannedSkill::image("bare", &bare_ref),
        ],
        &[&a],
    );
    let into = work.path().join("skills");
    let report = run(&plan, &into, &fast_options());
    let entry = &report.outcomes[0].result.as_ref().unwrap().entry;
    assert_eq!(entry.description, "Breaks the naming rule.");
    let warnings = entry.warnings.join("\n");
    assert!(warnings.contains("SKILL.md:2"), "{warnings}");
    assert!(
        warnings.contains("skill.yaml") && warnings.contains("(skill.yaml ignored)"),
        "{warnings}"
    );
    failure_of(&report, "no-skill-md", &[&none_ref, "no SKILL.md"], &[]);
    failure_of(
        &report,
        "bare",
        &[&bare_ref, "SKILL.md cannot be used"],
        &[],
    );
    assert_eq!(top_level(&into), ["index.json", "sloppy"]);
}

fn base64_encode(text: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_plan_naming_the_layer_downloads_it_without_the_manifests() {
    let work = tempfile::tempdir().unwrap();
    let secrets = work.path().join("secrets");
    let a = Site::start(&secrets, "artifactory");
    let src = work.path().join("src");
    let first = write_skill(&src, "first", &[("data.txt", b"first\n")]);
    let other = write_skill(&src, "other", &[("data.txt", b"other\n")]);
    let (first_ref, first_digest) = push_skill(&a, work.path(), &first, "first", "1");
    // Another image of the same repository: a registry serves a repository's blobs only.
    let (other_ref, _) = push_skill(&a, work.path(), &other, "first", "2");
    let pinned = format!("{first_ref}@{first_digest}");
    // The layer as the operator reads it when it resolves the image.
    let layer_of = |reference: &str| {
        let skill = common::block_on(a.client.skill_layer(&reference.parse().unwrap())).unwrap();
        PlannedLayer {
            media_type: skill.layer.media_type,
            digest: skill.layer.digest.to_string(),
            size: skill.layer.size,
            in_folder: skill.format.in_folder,
        }
    };
    let with_layer = |layer: PlannedLayer| {
        plan(
            vec![PlannedSkill {
                layer: Some(layer),
                ..PlannedSkill::image("first", &pinned)
            }],
            &[&a],
        )
    };
    let by_manifests = work.path().join("by-manifests");
    run(
        &plan(vec![PlannedSkill::image("first", &pinned)], &[&a]),
        &by_manifests,
        &fast_options(),
    );

    // Its own layer: the same folder and the same index entry as through the manifests.
    let into = work.path().join("by-layer");
    run(&with_layer(layer_of(&pinned)), &into, &fast_options());
    assert_eq!(
        contents(&into.join("first")),
        contents(&by_manifests.join("first"))
    );
    assert_eq!(index(&into).skills, index(&by_manifests).skills);

    // The manifests are not read: a plan naming another image's layer gets that layer (the
    // operator vouches for the plan, as it does for the digest).
    let into = work.path().join("other-layer");
    run(&with_layer(layer_of(&other_ref)), &into, &fast_options());
    assert_eq!(fs::read(into.join("first/data.txt")).unwrap(), b"other\n");

    // A layer the registry does not have: the manifests are read after all.
    let mut missing = layer_of(&pinned);
    missing.digest = format!("sha256:{}", "0".repeat(64));
    let into = work.path().join("missing-layer");
    run(&with_layer(missing), &into, &fast_options());
    assert_eq!(
        contents(&into.join("first")),
        contents(&by_manifests.join("first"))
    );

    // A size that does not match what the registry sends fails the skill, naming the layer.
    let mut wrong = layer_of(&pinned);
    wrong.size -= 1;
    let report = run(
        &with_layer(wrong.clone()),
        &work.path().join("wrong"),
        &fast_options(),
    );
    failure_of(&report, "first", &[&wrong.digest[..19]], &[&a.password()]);
}
