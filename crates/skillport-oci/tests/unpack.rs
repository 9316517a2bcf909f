// Safe unpacking: hostile layers are refused and leave nothing behind; good ones round-trip.

mod common;

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{build_skill, write_skill};
use flate2::Compression as Level;
use flate2::write::GzEncoder;
use skillport_oci::spec::{Descriptor, media};
use skillport_oci::{
    Compression, ReadError, Staged, Store, UnpackError, UnpackLimits, unpack_verified,
};

/// A tar entry written with raw header bytes, so that paths the `tar` crate itself would
/// refuse to write (`..`, absolute) can be made.
struct RawEntry<'a> {
    path: &'a str,
    kind: tar::EntryType,
    mode: u32,
    link: &'a str,
    data: &'a [u8],
}

fn file<'a>(path: &'a str, data: &'a [u8]) -> RawEntry<'a> {
    RawEntry {
        path,
        kind: tar::EntryType::Regular,
        mode: 0o644,
        link: "",
        data,
    }
}

fn link<'a>(kind: tar::EntryType, path: &'a str, target: &'a str) -> RawEntry<'a> {
    RawEntry {
        path,
        kind,
        mode: 0o777,
        link: target,
        data: b"",
    }
}

fn tar_bytes(entries: &[RawEntry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_old_mut().name;
        name[..entry.path.len()].copy_from_slice(entry.path.as_bytes());
        let linkname = &mut header.as_old_mut().linkname;
        linkname[..entry.link.len()].copy_from_slice(entry.link.as_bytes());
        header.set_entry_type(entry.kind);
        header.set_mode(entry.mode);
        header.set_size(entry.data.len() as u64);
        header.set_cksum();
        builder.append(&header, entry.data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Level::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Unpacks `entries` (gzip) into a fresh parent folder; returns the result and the parent's
/// listing afterwards.
fn unpack(entries: &[RawEntry]) -> (Result<Staged, UnpackError>, tempfile::TempDir) {
    let parent = tempfile::tempdir().unwrap();
    let layer = gzip(&tar_bytes(entries));
    let result = Staged::unpack(
        layer.as_slice(),
        Compression::Gzip,
        parent.path(),
        UnpackLimits::default(),
    );
    (result, parent)
}

fn assert_refused(entries: &[RawEntry], expected: &str) {
    let (result, parent) = unpack(entries);
    let err = result.expect_err("hostile layer must be refused");
    let message = err.to_string();
    assert!(
        message.contains(expected),
        "error {message:?} should mention {expected:?}"
    );
    assert_eq!(
        fs::read_dir(parent.path()).unwrap().count(),
        0,
        "nothing may be left behind after {message}"
    );
}

#[test]
fn refuses_parent_directory_paths() {
    assert_refused(&[file("../evil", b"x")], "paths with ..");
    assert_refused(&[file("a/../../evil", b"x")], "paths with ..");
}

#[test]
fn refuses_absolute_paths() {
    assert_refused(&[file("/tmp/evil", b"x")], "absolute paths");
}

#[test]
fn refuses_links_that_escape() {
    let symlink = tar::EntryType::Symlink;
    assert_refused(&[link(symlink, "etc", "/etc")], "points outside");
    assert_refused(&[link(symlink, "a/up", "../../x")], "points outside");
    // Each link's text stays inside; together they lead out.
    assert_refused(
        &[link(symlink, "d", "."), link(symlink, "e", "d/..")],
        "does not resolve to a file inside",
    );
    // A link listed before the links above it: made after them, it would be made through
    // them, outside the folder.
    assert_refused(
        &[
            link(symlink, "e/x", "y"),
            link(symlink, "d", "."),
            link(symlink, "e", "d/.."),
        ],
        "below a symbolic link",
    );
    assert_refused(
        &[link(symlink, "a/b", "c"), link(symlink, "a", "sub")],
        "below a symbolic link",
    );
    // Writing through a link, even one that points inside.
    assert_refused(
        &[link(symlink, "l", "."), file("l/x", b"x")],
        "below a symbolic link",
    );
    assert_refused(
        &[link(symlink, "dangling", "nothing-here")],
        "does not resolve",
    );
}

#[test]
fn refuses_hard_links_to_anything_but_an_extracted_file() {
    let hard = tar::EntryType::Link;
    assert_refused(&[link(hard, "passwd", "/etc/passwd")], "hard link");
    assert_refused(&[link(hard, "x", "not-yet")], "hard link");
    assert_refused(&[link(hard, "x", "../../etc/passwd")], "hard link");
}

#[test]
fn refuses_devices_fifos_and_setuid() {
    let mut device = file("dev", b"");
    device.kind = tar::EntryType::Char;
    assert_refused(&[device], "device nodes");
    let mut block = file("blk", b"");
    block.kind = tar::EntryType::Block;
    assert_refused(&[block], "device nodes");
    let mut fifo = file("fifo", b"");
    fifo.kind = tar::EntryType::Fifo;
    assert_refused(&[fifo], "named pipes");
    let mut setuid = file("run", b"#!/bin/sh\n");
    setuid.mode = 0o4755;
    assert_refused(&[setuid], "setuid");
}

#[test]
fn refuses_duplicates() {
    assert_refused(&[file("a", b"1"), file("a", b"2")], "appears twice");
}

#[test]
fn stops_a_decompression_bomb_at_the_limit() {
    // 64 MiB of zeros compress to about 64 KiB; the limit is 8 MiB.
    let parent = tempfile::tempdir().unwrap();
    let mut encoder = GzEncoder::new(Vec::new(), Level::best());
    {
        let mut builder = tar::Builder::new(&mut encoder);
        let mut header = tar::Header::new_gnu();
        header.set_size(64 << 20);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(
                &mut header,
                "zeros",
                io::Read::take(io::repeat(0), 64 << 20),
            )
            .unwrap();
        builder.finish().unwrap();
    }
    let layer = encoder.finish().unwrap();
    assert!(layer.len() < 1 << 20, "the bomb is small: {}", layer.len());
    let limits = UnpackLimits {
        max_bytes: 8 << 20,
        max_entries: 100,
    };
    let err = Staged::unpack(layer.as_slice(), Compression::Gzip, parent.path(), limits)
        .expect_err("bomb must be refused");
    assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
    assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 0);

    // Many small entries hit the entry limit instead.
    let many: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
    let entries: Vec<RawEntry> = many.iter().map(|p| file(p, b"")).collect();
    let layer = gzip(&tar_bytes(&entries));
    let err = Staged::unpack(layer.as_slice(), Compression::Gzip, parent.path(), limits)
        .expect_err("too many entries");
    assert!(matches!(err, UnpackError::TooManyEntries { .. }), "{err}");
}

#[test]
fn unpacks_plain_gzip_and_zstd_layers_with_links_inside() {
    let symlink = tar::EntryType::Symlink;
    let mut dir = file("./refs/", b"");
    dir.kind = tar::EntryType::Directory;
    dir.mode = 0o700;
    let entries = [
        dir,
        file("./SKILL.md", b"---\nname: x\n---\n"),
        file("refs/a.md", b"A"),
        link(tar::EntryType::Link, "refs/b.md", "refs/a.md"),
        link(symlink, "alias.md", "refs/a.md"),
        link(symlink, "refs/up.md", "../SKILL.md"),
    ];
    let tar = tar_bytes(&entries);
    let zstd = zstd::encode_all(tar.as_slice(), 3).unwrap();
    for (bytes, compression) in [
        (tar.clone(), Compression::None),
        (gzip(&tar), Compression::Gzip),
        (zstd, Compression::Zstd),
    ] {
        let parent = tempfile::tempdir().unwrap();
        let staged = Staged::unpack(
            bytes.as_slice(),
            compression,
            parent.path(),
            UnpackLimits::default(),
        )
        .unwrap();
        let dest = parent.path().join("skill");
        let unpacked = staged.publish(&dest).unwrap();
        assert_eq!(unpacked.files, 3, "{compression:?}");
        assert_eq!(
            unpacked.tree_hash(),
            skillport_oci::tree_hash::tree_hash(&dest).unwrap()
        );
        assert_eq!(fs::read(dest.join("refs/b.md")).unwrap(), b"A");
        assert_eq!(fs::read(dest.join("alias.md")).unwrap(), b"A");
        assert_eq!(
            fs::read(dest.join("refs/up.md")).unwrap(),
            b"---\nname: x\n---\n"
        );
        assert_eq!(
            fs::read_link(dest.join("alias.md")).unwrap(),
            Path::new("refs/a.md")
        );
        let listing: Vec<_> = fs::read_dir(parent.path()).unwrap().collect();
        assert_eq!(listing.len(), 1, "only the published folder remains");
    }
}

#[test]
fn publish_refuses_a_non_empty_destination_and_accepts_an_empty_one() {
    let parent = tempfile::tempdir().unwrap();
    let layer = gzip(&tar_bytes(&[file("SKILL.md", b"x")]));
    let dest = parent.path().join("dest");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("keep.txt"), "mine").unwrap();
    let staged = Staged::unpack(
        layer.as_slice(),
        Compression::Gzip,
        parent.path(),
        UnpackLimits::default(),
    )
    .unwrap();
    let err = staged.publish(&dest).unwrap_err();
    assert!(
        matches!(err, UnpackError::DestinationExists { .. }),
        "{err}"
    );
    assert_eq!(fs::read(dest.join("keep.txt")).unwrap(), b"mine");
    assert_eq!(
        fs::read_dir(parent.path()).unwrap().count(),
        1,
        "staging removed"
    );

    fs::remove_file(dest.join("keep.txt")).unwrap();
    let staged = Staged::unpack(
        layer.as_slice(),
        Compression::Gzip,
        parent.path(),
        UnpackLimits::default(),
    )
    .unwrap();
    staged.publish(&dest).unwrap();
    assert_eq!(fs::read(dest.join("SKILL.md")).unwrap(), b"x");
}

#[test]
fn a_layer_whose_bytes_do_not_match_its_digest_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let layer = gzip(&tar_bytes(&[file("SKILL.md", b"honest")]));
    let mut descriptor = Descriptor::of(media::LAYER_TAR_GZIP, &layer);
    let tampered = gzip(&tar_bytes(&[file("SKILL.md", b"evil!!")]));
    let err = unpack_verified(
        tampered.as_slice(),
        &descriptor,
        Compression::Gzip,
        parent.path(),
    )
    .unwrap_err();
    assert!(matches!(err, ReadError::DigestMismatch { .. }), "{err}");
    assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 0);

    // The right bytes with trailing garbage: the digest covers the whole blob.
    let mut padded = layer.clone();
    padded.extend_from_slice(b"garbage");
    let err = unpack_verified(
        padded.as_slice(),
        &descriptor,
        Compression::Gzip,
        parent.path(),
    )
    .unwrap_err();
    assert!(matches!(err, ReadError::DigestMismatch { .. }), "{err}");

    descriptor.size += 1;
    let err = unpack_verified(
        layer.as_slice(),
        &descriptor,
        Compression::Gzip,
        parent.path(),
    )
    .unwrap_err();
    assert!(matches!(err, ReadError::SizeMismatch { .. }), "{err}");
    assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 0);
}

#[test]
fn export_round_trips_a_built_skill_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let dir = write_skill(tmp.path(), "csv-summary");
    let built = build_skill(&store, &dir, "csv-summary:1", None);
    let image = skillport_oci::skill_image(&store, &built.descriptor).unwrap();
    let out = tmp.path().join("out");
    let unpacked = skillport_oci::export(&store, &image, &out).unwrap();
    assert_eq!(unpacked.files, 4);
    for file in [
        "SKILL.md",
        "scripts/summarize.py",
        "references/deep/notes.md",
        "references/data.bin",
    ] {
        assert_eq!(
            fs::read(out.join(file)).unwrap(),
            fs::read(dir.join(file)).unwrap(),
            "{file}"
        );
    }
    let mode = |p: &str| fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("scripts/summarize.py"), 0o755);
    assert_eq!(mode("SKILL.md"), 0o644);
    assert_eq!(mode("."), 0o755);

    // A corrupted layer blob in the store is caught before anything is published.
    let blob = store.blob_path(&built.layer.digest);
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 9;
    bytes[last] ^= 0xff;
    fs::write(&blob, bytes).unwrap();
    let err = skillport_oci::export(&store, &image, &tmp.path().join("out2")).unwrap_err();
    assert!(!tmp.path().join("out2").exists(), "{err}");
}

#[test]
fn agentskills_artifact_layers_unpack_from_their_one_folder() {
    let mut folder = file("pdf-tools/", b"");
    folder.kind = tar::EntryType::Directory;
    let layer = gzip(&tar_bytes(&[
        folder,
        file("pdf-tools/SKILL.md", b"---\nname: pdf-tools\n---\n"),
        file("pdf-tools/refs/a.md", b"A"),
    ]));
    let format = skillport_oci::LayerFormat {
        compression: Compression::Gzip,
        in_folder: true,
    };
    let parent = tempfile::tempdir().unwrap();
    let staged = Staged::unpack(
        layer.as_slice(),
        format,
        parent.path(),
        UnpackLimits::default(),
    )
    .unwrap();
    let dest = parent.path().join("pdf-tools");
    staged.publish(&dest).unwrap();
    assert_eq!(fs::read(dest.join("refs/a.md")).unwrap(), b"A");
    assert!(dest.join("SKILL.md").is_file());

    let two_folders = gzip(&tar_bytes(&[
        file("a/SKILL.md", b"x"),
        file("b/SKILL.md", b"y"),
    ]));
    let parent = tempfile::tempdir().unwrap();
    let err = Staged::unpack(
        two_folders.as_slice(),
        format,
        parent.path(),
        UnpackLimits::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("one top-level folder"), "{err}");
    assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 0);
}

#[test]
fn agentskills_layer_with_a_hard_link_unpacks_with_the_link_name_stripped_of_its_folder() {
    let layer = gzip(&tar_bytes(&[
        file("pdf-tools/SKILL.md", b"---\nname: pdf-tools\n---\n"),
        link(
            tar::EntryType::Link,
            "pdf-tools/README.md",
            "pdf-tools/SKILL.md",
        ),
    ]));
    let format = skillport_oci::LayerFormat {
        compression: Compression::Gzip,
        in_folder: true,
    };
    let parent = tempfile::tempdir().unwrap();
    let staged = Staged::unpack(
        layer.as_slice(),
        format,
        parent.path(),
        UnpackLimits::default(),
    )
    .unwrap();
    let dest = parent.path().join("pdf-tools");
    staged.publish(&dest).unwrap();
    assert_eq!(
        fs::read(dest.join("README.md")).unwrap(),
        fs::read(dest.join("SKILL.md")).unwrap()
    );

    // A hard link out of the one folder is still refused.
    let outside = gzip(&tar_bytes(&[
        file("pdf-tools/SKILL.md", b"x"),
        link(tar::EntryType::Link, "pdf-tools/b", "other/SKILL.md"),
    ]));
    let parent = tempfile::tempdir().unwrap();
    let err = Staged::unpack(
        outside.as_slice(),
        format,
        parent.path(),
        UnpackLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Unsafe { .. }), "{err}");
}

/// The tree hashed while unpacking is the one `tree_hash` reads back from the disk, whatever
/// the layer's shape: folders named or only implied (and named after their files), execute
/// bits, hard links to executables, links, empty folders, names that sort around `/`; at the
/// layer root and inside one folder.
#[test]
fn the_tree_hashed_while_unpacking_is_the_tree_on_disk() {
    fn directory(path: &str) -> RawEntry<'_> {
        let mut entry = file(path, b"");
        entry.kind = tar::EntryType::Directory;
        entry.mode = 0o700;
        entry
    }
    fn executable<'a>(path: &'a str, data: &'a [u8]) -> RawEntry<'a> {
        let mut entry = file(path, data);
        entry.mode = 0o750;
        entry
    }
    let symlink = tar::EntryType::Symlink;
    let shapes: [(&str, bool); 2] = [("", false), ("pdf/", true)];
    for (prefix, in_folder) in shapes {
        let paths: Vec<String> = [
            "SKILL.md",
            "deep/er/x.md",
            "deep",
            "bin/run",
            "bin/run2",
            "empty",
            "a-b",
            "a/b",
            "a0",
            "alias",
            "bin/up",
        ]
        .iter()
        .map(|path| format!("{prefix}{path}"))
        .collect();
        let mut entries = vec![
            file(&paths[0], b"---\nname: pdf\n---\n"),
            file(&paths[1], b"deep"),
            directory(&paths[2]),
            executable(&paths[3], b"#!/bin/sh\n"),
            link(tar::EntryType::Link, &paths[4], &paths[3]),
            directory(&paths[5]),
            file(&paths[6], b"1"),
            file(&paths[7], b"2"),
            file(&paths[8], b"3"),
            link(symlink, &paths[9], "deep/er/x.md"),
            link(symlink, &paths[10], "../SKILL.md"),
        ];
        if in_folder {
            entries.insert(0, directory("pdf/"));
        }
        let format = skillport_oci::LayerFormat {
            compression: Compression::Gzip,
            in_folder,
        };
        let parent = tempfile::tempdir().unwrap();
        let layer = gzip(&tar_bytes(&entries));
        let staged = Staged::unpack(
            layer.as_slice(),
            format,
            parent.path(),
            UnpackLimits::default(),
        )
        .unwrap();
        let (on_disk, listed) =
            skillport_oci::tree_hash::tree_hash_with_entries(staged.path()).unwrap();
        assert_eq!(staged.unpacked().tree, listed, "{prefix:?}");
        assert_eq!(staged.unpacked().tree_hash(), on_disk, "{prefix:?}");
        // Seven files (the hard link is one more), their bytes as the folder lists them.
        assert_eq!(staged.unpacked().files, 7, "{prefix:?}");
        assert_eq!(staged.unpacked().bytes, 18 + 4 + 2 * 10 + 3, "{prefix:?}");
        let dest = parent.path().join("pdf");
        let published = staged.publish(&dest).unwrap();
        assert_eq!(
            published.tree_hash(),
            skillport_oci::tree_hash::tree_hash(&dest).unwrap()
        );
    }
}

/// Paths that differ only in case: one folder on a case-insensitive file system, so the tree
/// is read back from the disk there; here (case-sensitive) it is the same either way.
#[test]
fn paths_differing_only_in_case_are_hashed_as_the_disk_holds_them() {
    let (result, _parent) = unpack(&[file("SKILL.md", b"x"), file("A/x", b"1"), file("a/y", b"2")]);
    let staged = result.unwrap();
    let (on_disk, listed) =
        skillport_oci::tree_hash::tree_hash_with_entries(staged.path()).unwrap();
    assert_eq!(staged.unpacked().tree, listed);
    assert_eq!(staged.unpacked().tree_hash(), on_disk);
}
