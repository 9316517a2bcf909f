//! Hostile content from a real registry: layers made by hand with `..` entries, absolute paths,
//! links out of the skill, a decompression bomb, and a blob changed in the registry's storage
//! after the push. Each skill fails naming itself, nothing of it reaches `--into` or anywhere
//! else, and a good skill in the same plan is published all the same.

mod common;

use std::fs;

use common::{
    RawEntry, Site, failure_of, fast_options, file, plan, push_layer, push_skill, run, skill_md,
    symlink, tar_gz, top_level, write_skill,
};
use skillport_fetch::FetchOptions;
use skillport_fetch::plan::PlannedSkill;
use skillport_oci::spec::media;

#[test]
fn hostile_layers_fail_their_skill_and_leave_nothing_behind() {
    let work = tempfile::tempdir().unwrap();
    let a = Site::start(&work.path().join("secrets"), "artifactory");
    let into = work.path().join("skills");
    let unique = format!("skillport-hostile-{}", std::process::id());
    let absolute = format!("/tmp/{unique}-absolute");
    let sibling = format!("../{unique}-sibling");
    let md = skill_md("x");

    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "dotdot",
            tar_gz(&[file("SKILL.md", &md), file(&sibling, b"escaped")]),
            &["layer entry", "paths with .. are not allowed"],
        ),
        (
            "absolute",
            tar_gz(&[file("SKILL.md", &md), file(&absolute, b"escaped")]),
            &["layer entry", "absolute paths are not allowed"],
        ),
        (
            "etc-link",
            tar_gz(&[file("SKILL.md", &md), symlink("etc", "/etc")]),
            &["layer entry \"etc\"", "points outside the skill"],
        ),
        (
            "through-link",
            tar_gz(&[
                file("SKILL.md", &md),
                symlink("up", ".."),
                file("up/escaped.txt", b"escaped"),
            ]),
            &["layer entry", "refused"],
        ),
        (
            "bomb",
            // 64 MiB of zeros, about 64 KiB compressed, against an 8 MiB limit.
            tar_gz(&[
                file("SKILL.md", &md),
                RawEntry {
                    path: "zeros.bin",
                    kind: tar::EntryType::Regular,
                    mode: 0o644,
                    link: "",
                    data: &vec![0u8; 64 << 20],
                },
            ]),
            &["expands past the limit of 8388608 bytes"],
        ),
    ];
    let good_dir = write_skill(&work.path().join("src"), "good", &[]);
    let (good_ref, _) = push_skill(&a, work.path(), &good_dir, "good", "1");
    let mut skills = vec![PlannedSkill::image("good", &good_ref)];
    let mut references = Vec::new();
    for (name, layer, _) in &cases {
        let (reference, _) = push_layer(&a, work.path(), name, "1", layer, media::LAYER_TAR_GZIP);
        skills.push(PlannedSkill::image(*name, &reference));
        references.push(reference);
    }
    let options = FetchOptions {
        max_skill_bytes: 8 << 20,
        ..fast_options()
    };
    let report = run(&plan(skills, &[&a]), &into, &options);

    assert!(
        report.outcomes[0].result.is_ok(),
        "the good skill is published"
    );
    for ((name, _, needles), reference) in cases.iter().zip(&references) {
        let mut needles = needles.to_vec();
        needles.push(reference);
        let message = failure_of(&report, name, &needles, &[&a.password()]);
        assert!(
            !message.contains("attempts"),
            "content is not retried: {message}"
        );
    }
    assert_eq!(top_level(&into), ["good", "index.json"]);
    assert!(!std::path::Path::new(&absolute).exists());
    assert!(!work.path().join(format!("{unique}-sibling")).exists());
    let listed: Vec<String> = common::index(&into)
        .skills
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed, ["good"]);
}

#[test]
fn a_blob_changed_in_the_registry_is_refused_by_its_digest() {
    let work = tempfile::tempdir().unwrap();
    let a = Site::start(&work.path().join("secrets"), "artifactory");
    let layer = tar_gz(&[
        file("SKILL.md", &skill_md("tampered")),
        file("a.txt", b"honest"),
    ]);
    let (reference, _) = push_layer(
        &a,
        work.path(),
        "tampered",
        "1",
        &layer,
        media::LAYER_TAR_GZIP,
    );
    // Same size, one byte changed: only the digest can tell.
    let mut forged = layer.clone();
    let middle = forged.len() / 2;
    forged[middle] ^= 0xff;
    let digest = format!("sha256:{}", skillport_oci::Digest::sha256(&layer).hex());
    fs::write(a.registry.blob_file(&digest), &forged).unwrap();

    let into = work.path().join("skills");
    let report = run(
        &plan(vec![PlannedSkill::image("tampered", &reference)], &[&a]),
        &into,
        &fast_options(),
    );
    failure_of(
        &report,
        "tampered",
        &[&a.host(), "does not match its digest", &digest],
        &[&a.password()],
    );
    assert_eq!(top_level(&into), ["index.json"]);
}

#[test]
fn an_uncompressed_layer_with_hard_links_is_fine() {
    // Not hostile: the same safety rules accept ordinary tar features.
    let work = tempfile::tempdir().unwrap();
    let a = Site::start(&work.path().join("secrets"), "artifactory");
    let mut builder = tar::Builder::new(Vec::new());
    let md = skill_md("plain");
    let mut header = tar::Header::new_gnu();
    header.set_size(md.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "SKILL.md", md.as_slice())
        .unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Link);
    link.set_mode(0o644);
    link.set_size(0);
    link.set_cksum();
    builder
        .append_link(&mut link, "README.md", "SKILL.md")
        .unwrap();
    let layer = builder.into_inner().unwrap();
    let (reference, _) = push_layer(&a, work.path(), "plain", "1", &layer, media::LAYER_TAR);
    let into = work.path().join("skills");
    let report = run(
        &plan(vec![PlannedSkill::image("plain", &reference)], &[&a]),
        &into,
        &fast_options(),
    );
    assert!(report.is_success(), "{:?}", report.termination_message());
    assert_eq!(fs::read(into.join("plain/README.md")).unwrap(), md);
    let entry = &common::index(&into).skills[0];
    assert_eq!((entry.files, entry.bytes), (2, 2 * md.len() as u64));
}
