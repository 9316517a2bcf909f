//! Git sources against real git servers on 127.0.0.1: `git daemon` for the git protocol, and
//! `git http-backend` behind a small Python server for smart HTTP, plain and HTTPS with basic
//! auth (a test CA's certificate). Fixture repositories are built with the `git` CLI; the code
//! under test never runs it (`fetches_with_no_git_on_path` proves that).
//!
//! Every test gets its own repositories and servers (about a tenth of a second), so tests run
//! in parallel and under nextest alike. Both `git` and `python3` must be installed: a test
//! panics saying so rather than skipping.

#[path = "git/fixture.rs"]
mod fixture;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use skillport_fetch::git::{
    GitCredentials, GitError, GitFetched, GitOptions, GitSource, TOKEN_USERNAME, fetch,
};
use skillport_registry::auth::Secret;

use fixture::{Fixture, PASSWORD, TOKEN, USER};

fn source(url: &str, reference: &str, path: Option<&str>) -> GitSource {
    GitSource {
        url: url.into(),
        reference: reference.into(),
        path: path.map(Into::into),
    }
}

fn options() -> GitOptions {
    GitOptions {
        timeout: Duration::from_secs(30),
        ..GitOptions::default()
    }
}

/// Fetches into `<fixture out>/skill` and returns the result and that path.
fn fetch_into(
    fixture: &Fixture,
    source: &GitSource,
    credentials: Option<&GitCredentials>,
    options: &GitOptions,
) -> (Result<GitFetched, GitError>, std::path::PathBuf) {
    let dest = fixture.out().join("skill");
    (fetch(source, credentials, &dest, options), dest)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// After a failure: no destination, and nothing else left in its parent (no work folder).
fn assert_nothing_left(fixture: &Fixture, dest: &Path) {
    assert!(
        fs::symlink_metadata(dest).is_err(),
        "{} exists after a failed fetch",
        dest.display()
    );
    let leftovers: Vec<_> = fs::read_dir(fixture.out())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

/// Everything a user may see of an error: message, debug form and hint.
fn shown(err: &GitError) -> String {
    format!("{err}\n{err:?}\n{}", err.hint().unwrap_or_default())
}

#[test]
fn fetches_a_branch_sub_path_over_the_git_protocol() {
    let fixture = Fixture::new();
    let (fetched, dest) = fetch_into(
        &fixture,
        &source(&fixture.git_url(), "main", Some("skills/code-review")),
        None,
        &options(),
    );
    let fetched = fetched.unwrap();
    assert_eq!(fetched.commit, fixture.commits.main);
    assert_eq!(read(&dest.join("SKILL.md")), fixture::skill_md(3));
    assert_eq!(read(&dest.join("scripts/run.sh")), fixture::SCRIPT);
    assert_eq!(
        mode(&dest.join("scripts/run.sh")),
        0o755,
        "the executable bit is kept"
    );
    assert_eq!(mode(&dest.join("SKILL.md")), 0o644);
    assert_eq!(mode(&dest), 0o755);
    assert_eq!(
        fs::read_link(dest.join("latest")).unwrap(),
        Path::new("docs/notes.md"),
        "a link inside the skill is kept"
    );
    assert_eq!(read(&dest.join("latest")), fixture::NOTES);
    assert!(!dest.join("FEATURE.md").exists(), "only main's files");
    assert!(!dest.join("README.md").exists(), "only the sub-path");
    assert!(!dest.join("vendored").exists(), "the submodule is skipped");
    assert_eq!(fetched.submodules, ["vendored"]);
    // SKILL.md, scripts/run.sh, docs/notes.md; the link is not a file.
    assert_eq!(fetched.files, 3);
    let entries: Vec<_> = fs::read_dir(fixture.out())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        ["skill"],
        "no work folder is left beside the skill"
    );
}

#[test]
fn fetches_a_lightweight_tag() {
    let fixture = Fixture::new();
    let (fetched, dest) = fetch_into(
        &fixture,
        &source(&fixture.git_url(), "v2", Some("skills/code-review")),
        None,
        &options(),
    );
    assert_eq!(fetched.unwrap().commit, fixture.commits.second);
    assert_eq!(read(&dest.join("SKILL.md")), fixture::skill_md(2));
}

#[test]
fn fetches_an_annotated_tag_peeled_to_its_commit() {
    let fixture = Fixture::new();
    let (fetched, dest) = fetch_into(
        &fixture,
        &source(&fixture.git_url(), "release-2", Some("skills/code-review/")),
        None,
        &options(),
    );
    // The commit, not the tag object.
    assert_eq!(fetched.unwrap().commit, fixture.commits.second);
    assert_ne!(fixture.commits.second, fixture.commits.release_tag_object);
    assert_eq!(read(&dest.join("SKILL.md")), fixture::skill_md(2));
}

#[test]
fn fetches_a_commit_sha_that_no_ref_points_at() {
    let fixture = Fixture::new();
    // `first` is no branch or tag tip: the server must serve an unadvertised object, which git
    // does for protocol v2 (no uploadpack.allowAnySHA1InWant set in the fixture).
    let (fetched, dest) = fetch_into(
        &fixture,
        &source(
            &fixture.git_url(),
            &fixture.commits.first.to_uppercase(),
            Some("skills/code-review"),
        ),
        None,
        &options(),
    );
    assert_eq!(fetched.unwrap().commit, fixture.commits.first);
    assert_eq!(read(&dest.join("SKILL.md")), fixture::skill_md(1));
}

#[test]
fn fetches_another_branch_and_full_ref_names() {
    let fixture = Fixture::new();
    for reference in ["feature", "refs/heads/feature"] {
        let (fetched, dest) = fetch_into(
            &fixture,
            &source(&fixture.git_url(), reference, Some("skills/code-review")),
            None,
            &options(),
        );
        assert_eq!(
            fetched.unwrap().commit,
            fixture.commits.feature,
            "{reference}"
        );
        assert_eq!(read(&dest.join("FEATURE.md")), "feature\n");
        fs::remove_dir_all(&dest).unwrap();
    }
}

#[test]
fn fetches_the_repository_root_without_a_path() {
    let fixture = Fixture::new();
    let (fetched, dest) = fetch_into(
        &fixture,
        &source(&fixture.git_url(), "refs/tags/v2", None),
        None,
        &options(),
    );
    assert_eq!(fetched.unwrap().commit, fixture.commits.second);
    assert_eq!(read(&dest.join("README.md")), fixture::README);
    assert_eq!(
        read(&dest.join("skills/code-review/SKILL.md")),
        fixture::skill_md(2)
    );
    assert_eq!(mode(&dest.join("skills/code-review/scripts/run.sh")), 0o755);
    assert!(!dest.join(".git").exists());
}

#[test]
fn a_missing_ref_is_ref_not_found_naming_url_and_ref() {
    let fixture = Fixture::new();
    let missing_sha = "0123456789012345678901234567890123456789";
    for reference in ["no-such-branch", missing_sha] {
        let (result, dest) = fetch_into(
            &fixture,
            &source(&fixture.git_url(), reference, None),
            None,
            &options(),
        );
        let err = result.unwrap_err();
        assert!(
            matches!(&err, GitError::RefNotFound { reference: r, .. } if r == reference),
            "{reference}: {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&fixture.git_url()), "{message}");
        assert!(message.contains(reference), "{message}");
        assert!(err.hint().is_some());
        assert_nothing_left(&fixture, &dest);
    }
}

#[test]
fn a_missing_path_or_a_file_path_fails_clearly() {
    let fixture = Fixture::new();
    let (result, dest) = fetch_into(
        &fixture,
        &source(&fixture.git_url(), "main", Some("skills/nope")),
        None,
        &options(),
    );
    let err = result.unwrap_err();
    assert!(
        matches!(&err, GitError::PathNotFound { path, commit, .. }
            if path == "skills/nope" && *commit == fixture.commits.main),
        "{err:?}"
    );
    assert!(err.to_string().contains("skills/nope"), "{err}");
    assert_nothing_left(&fixture, &dest);

    let (result, dest) = fetch_into(
        &fixture,
        &source(&fixture.git_url(), "main", Some("README.md")),
        None,
        &options(),
    );
    let err = result.unwrap_err();
    assert!(
        matches!(&err, GitError::NotAFolder { path, .. } if path == "README.md"),
        "{err:?}"
    );
    assert_nothing_left(&fixture, &dest);

    let (result, dest) = fetch_into(
        &fixture,
        &source(&fixture.git_url(), "main", Some("../etc")),
        None,
        &options(),
    );
    assert!(matches!(result.unwrap_err(), GitError::Path { .. }));
    assert_nothing_left(&fixture, &dest);
}

#[test]
fn a_symlink_leaving_the_skill_is_refused() {
    let fixture = Fixture::new();
    let (result, dest) = fetch_into(
        &fixture,
        &source(&fixture.git_url(), "main", Some("skills/escaping")),
        None,
        &options(),
    );
    let err = result.unwrap_err();
    assert!(
        matches!(&err, GitError::Unsafe { path, .. } if path == "skills/escaping/readme-link"),
        "{err:?}"
    );
    assert!(err.to_string().contains("outside the skill"), "{err}");
    assert_nothing_left(&fixture, &dest);
}

#[test]
fn https_with_basic_auth_from_a_mounted_secret_folder() {
    let fixture = Fixture::new();
    // A kubernetes.io/basic-auth Secret as mounted: files behind `..data` links, with the
    // trailing newline `kubectl create secret --from-file` keeps.
    let secret = fixture.out_of_tree("secret");
    let data = secret.join("..2026_01_01_00_00_00.000000000");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("username"), format!("{USER}\n")).unwrap();
    fs::write(data.join("password"), format!("{PASSWORD}\r\n")).unwrap();
    fs::write(data.join("host"), format!("{}\n", fixture.https_host())).unwrap();
    std::os::unix::fs::symlink(data.file_name().unwrap(), secret.join("..data")).unwrap();
    for key in ["username", "password", "host"] {
        std::os::unix::fs::symlink(format!("..data/{key}"), secret.join(key)).unwrap();
    }
    let credentials = GitCredentials::read(&secret).unwrap();
    assert_eq!(credentials.username, USER);
    assert_eq!(credentials.password.expose(), PASSWORD);

    let (fetched, dest) = fetch_into(
        &fixture,
        &source(&fixture.https_url(), "v2", Some("skills/code-review")),
        Some(&credentials),
        &fixture.tls_options(),
    );
    assert_eq!(fetched.unwrap().commit, fixture.commits.second);
    assert_eq!(read(&dest.join("SKILL.md")), fixture::skill_md(2));
    assert_eq!(mode(&dest.join("scripts/run.sh")), 0o755);
}

#[test]
fn https_with_a_token_secret_and_a_commit_sha() {
    let fixture = Fixture::new();
    let secret = fixture.out_of_tree("token-secret");
    fs::create_dir_all(&secret).unwrap();
    fs::write(secret.join("token"), format!("{TOKEN}\n")).unwrap();
    fs::write(
        secret.join("host"),
        format!("https://{}/", fixture.https_host()),
    )
    .unwrap();
    let credentials = GitCredentials::read(&secret).unwrap();
    assert_eq!(credentials.username, TOKEN_USERNAME);

    // Over smart HTTP, protocol v2 serves an unadvertised commit too.
    let (fetched, dest) = fetch_into(
        &fixture,
        &source(
            &fixture.https_url(),
            &fixture.commits.first,
            Some("skills/code-review"),
        ),
        Some(&credentials),
        &fixture.tls_options(),
    );
    assert_eq!(fetched.unwrap().commit, fixture.commits.first);
    assert_eq!(read(&dest.join("SKILL.md")), fixture::skill_md(1));
}

#[test]
fn https_refuses_a_wrong_password_or_none_without_showing_it() {
    let fixture = Fixture::new();
    let wrong = "wrong-password-d41d8cd98f00";
    let credentials = GitCredentials::new(USER, Secret::new(wrong), &fixture.https_host()).unwrap();
    let (result, dest) = fetch_into(
        &fixture,
        &source(&fixture.https_url(), "main", None),
        Some(&credentials),
        &fixture.tls_options(),
    );
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            GitError::Auth {
                with_credentials: true,
                ..
            }
        ),
        "{err:?}"
    );
    let text = shown(&err);
    assert!(text.contains(&fixture.https_url()), "{text}");
    assert!(!text.contains(wrong), "the password leaked: {text}");
    assert!(!format!("{credentials:?}").contains(wrong));
    assert_nothing_left(&fixture, &dest);

    let (result, dest) = fetch_into(
        &fixture,
        &source(&fixture.https_url(), "main", None),
        None,
        &fixture.tls_options(),
    );
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            GitError::Auth {
                with_credentials: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.hint().unwrap().contains("Secret"));
    assert_nothing_left(&fixture, &dest);
}

#[test]
fn https_needs_the_servers_ca_unless_told_to_skip_verification() {
    let fixture = Fixture::new();
    let credentials = fixture.credentials();
    let (result, dest) = fetch_into(
        &fixture,
        &source(&fixture.https_url(), "main", None),
        Some(&credentials),
        &options(),
    );
    let err = result.unwrap_err();
    assert!(matches!(err, GitError::Connect { .. }), "{err:?}");
    assert!(!shown(&err).contains(PASSWORD));
    assert_nothing_left(&fixture, &dest);

    let insecure = GitOptions {
        insecure_skip_tls_verify: true,
        ..options()
    };
    let (fetched, _) = fetch_into(
        &fixture,
        &source(&fixture.https_url(), "main", Some("skills/code-review")),
        Some(&credentials),
        &insecure,
    );
    assert_eq!(fetched.unwrap().commit, fixture.commits.main);
}

#[test]
fn plain_http_works_without_credentials_and_never_carries_them() {
    let fixture = Fixture::new();
    let (fetched, dest) = fetch_into(
        &fixture,
        &source(&fixture.http_url(), "feature", Some("skills/code-review")),
        None,
        &options(),
    );
    assert_eq!(fetched.unwrap().commit, fixture.commits.feature);
    fs::remove_dir_all(&dest).unwrap();

    // Credentials bound to the plain-HTTP server's host are refused there, never sent.
    let http_host = fixture.http_url()["http://".len()..]
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let bound_to_http = GitCredentials::new(USER, Secret::new(PASSWORD), &http_host).unwrap();
    let (result, dest) = fetch_into(
        &fixture,
        &source(&fixture.http_url(), "feature", None),
        Some(&bound_to_http),
        &options(),
    );
    let err = result.unwrap_err();
    assert!(matches!(err, GitError::Url { .. }), "{err:?}");
    assert!(err.to_string().contains("https"), "{err}");
    assert_nothing_left(&fixture, &dest);

    // A repository the server does not have.
    let missing = fixture.http_url().replace("skills.git", "nothing.git");
    let (result, dest) = fetch_into(&fixture, &source(&missing, "main", None), None, &options());
    let err = result.unwrap_err();
    assert!(matches!(err, GitError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing), "{err}");
    assert_nothing_left(&fixture, &dest);
}

#[test]
fn a_url_with_credentials_in_it_is_refused_without_echoing_them() {
    let fixture = Fixture::new();
    let url = fixture
        .https_url()
        .replace("https://", &format!("https://{USER}:{PASSWORD}@"));
    let (result, dest) = fetch_into(&fixture, &source(&url, "main", None), None, &options());
    let err = result.unwrap_err();
    assert!(matches!(err, GitError::Url { .. }), "{err:?}");
    let text = shown(&err);
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(text.contains(&fixture.https_url()), "{text}");
    assert_nothing_left(&fixture, &dest);
}

#[test]
fn the_destination_must_be_absent_or_empty() {
    let fixture = Fixture::new();
    let dest = fixture.out().join("skill");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("keep.txt"), "mine").unwrap();
    let err = fetch(
        &source(&fixture.git_url(), "main", Some("skills/code-review")),
        None,
        &dest,
        &options(),
    )
    .unwrap_err();
    assert!(matches!(err, GitError::DestinationExists { .. }), "{err:?}");
    assert_eq!(read(&dest.join("keep.txt")), "mine");

    fs::remove_file(dest.join("keep.txt")).unwrap();
    fetch(
        &source(&fixture.git_url(), "main", Some("skills/code-review")),
        None,
        &dest,
        &options(),
    )
    .unwrap();
    assert_eq!(read(&dest.join("SKILL.md")), fixture::skill_md(3));
}

#[test]
fn limits_stop_large_skills_and_large_downloads() {
    let fixture = Fixture::new();
    let small_files = GitOptions {
        max_bytes: 100,
        ..options()
    };
    let (result, dest) = fetch_into(
        &fixture,
        &source(&fixture.git_url(), "main", Some("skills/code-review")),
        None,
        &small_files,
    );
    let err = result.unwrap_err();
    assert!(
        matches!(err, GitError::TooLarge { limit: 100, .. }),
        "{err:?}"
    );
    assert_nothing_left(&fixture, &dest);

    // The repository holds a 256 KiB incompressible file outside the skill: the whole
    // commit is downloaded, so the download cap applies to it.
    let small_download = GitOptions {
        max_download_bytes: 64 * 1024,
        ..options()
    };
    let (result, dest) = fetch_into(
        &fixture,
        &source(&fixture.git_url(), "main", Some("skills/code-review")),
        None,
        &small_download,
    );
    let err = result.unwrap_err();
    assert!(
        matches!(err, GitError::TooLarge { limit, .. } if limit == 64 * 1024),
        "{err:?}"
    );
    assert_nothing_left(&fixture, &dest);
}

#[test]
fn a_stalled_server_times_out() {
    let fixture = Fixture::new();
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(4) {
            held.push(stream);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let quick = GitOptions {
        timeout: Duration::from_millis(500),
        ..options()
    };
    for url in [
        format!("git://127.0.0.1:{port}/skills.git"),
        format!("http://127.0.0.1:{port}/skills.git"),
    ] {
        let started = Instant::now();
        let (result, dest) = fetch_into(&fixture, &source(&url, "main", None), None, &quick);
        let err = result.unwrap_err();
        assert!(matches!(err, GitError::Timeout { .. }), "{url}: {err:?}");
        assert!(err.to_string().contains("500ms"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url}: took {:?}",
            started.elapsed()
        );
        assert_nothing_left(&fixture, &dest);
    }
}

#[test]
fn credential_secrets_of_every_shape() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, files: &[(&str, &str)]| {
        let folder = dir.path().join(name);
        fs::create_dir(&folder).unwrap();
        for (key, value) in files {
            fs::write(folder.join(key), value).unwrap();
        }
        folder
    };
    let basic = GitCredentials::read(&write(
        "basic",
        &[
            ("username", "ann\n"),
            ("password", "s3cret-1\n"),
            ("host", "Git.Example.com\n"),
        ],
    ))
    .unwrap();
    assert_eq!(
        (basic.username.as_str(), basic.password.expose()),
        ("ann", "s3cret-1")
    );
    assert_eq!(basic.hosts, ["git.example.com:443"]);
    let token = GitCredentials::read(&write(
        "token",
        &[
            ("token", "s3cret-2"),
            ("host", "https://a.example, b.example:8443"),
        ],
    ))
    .unwrap();
    assert_eq!(
        (token.username.as_str(), token.password.expose()),
        (TOKEN_USERNAME, "s3cret-2")
    );
    assert_eq!(token.hosts, ["a.example:443", "b.example:8443"]);
    let named = GitCredentials::read(&write(
        "named",
        &[
            ("username", "bot"),
            ("token", "s3cret-3\n"),
            ("host", "h.example"),
        ],
    ))
    .unwrap();
    assert_eq!(
        (named.username.as_str(), named.password.expose()),
        ("bot", "s3cret-3")
    );
    assert!(!format!("{named:?}").contains("s3cret"));
    // A single file cannot say its host.
    let file = dir.path().join("just-a-token");
    fs::write(&file, "s3cret-4\n").unwrap();
    let err = GitCredentials::read(&file).unwrap_err();
    assert!(shown(&err).contains("host"), "{}", shown(&err));
    assert!(!shown(&err).contains("s3cret"));

    for (name, files) in [
        (
            "no-username",
            &[("password", "s3cret-5"), ("host", "h.example")][..],
        ),
        (
            "no-password",
            &[("username", "ann"), ("host", "h.example")][..],
        ),
        ("no-host", &[("token", "s3cret-9")][..]),
        (
            "bad-host",
            &[("token", "s3cret-9"), ("host", "user@h.example")][..],
        ),
        (
            "both",
            &[
                ("username", "ann"),
                ("password", "s3cret-6"),
                ("token", "s3cret-7"),
            ][..],
        ),
        ("empty", &[("token", "\n")][..]),
        ("two-lines", &[("token", "s3cret-8\nmore")][..]),
        ("nothing", &[][..]),
    ] {
        let err = GitCredentials::read(&write(name, files)).unwrap_err();
        assert!(
            matches!(err, GitError::Credentials { .. }),
            "{name}: {err:?}"
        );
        let text = shown(&err);
        assert!(!text.contains("s3cret"), "{name}: {text}");
        assert!(
            text.contains(name),
            "{name}: the message names the folder: {text}"
        );
    }
    let err = GitCredentials::read(&dir.path().join("absent")).unwrap_err();
    assert!(matches!(err, GitError::Credentials { .. }), "{err:?}");
}

#[test]
fn credentials_are_for_the_hosts_their_secret_names_only() {
    let one = GitCredentials::new("ann", Secret::new("s3cret"), "Git.Example.com").unwrap();
    assert!(one.is_for("https://git.example.com/org/skills.git"));
    assert!(one.is_for("https://GIT.example.com:443/org/skills.git"));
    assert!(!one.is_for("https://git.example.com:8443/org/skills.git"));
    assert!(!one.is_for("https://attacker.example/git.example.com/skills.git"));
    assert!(!one.is_for("https://git.example.com.attacker.example/skills.git"));
    let two = GitCredentials::new(
        "ann",
        Secret::new("s3cret"),
        "https://a.example/, b.example:8443",
    )
    .unwrap();
    assert!(two.is_for("https://a.example/x.git"));
    assert!(two.is_for("https://b.example:8443/x.git"));
    assert!(!two.is_for("https://b.example/x.git"));
}

/// Set in the child run of [`fetches_with_no_git_on_path`]: the git URL, the HTTPS URL, the
/// CA file, the secret folder and the output folder, separated by newlines.
const CHILD_VAR: &str = "SKILLPORT_GIT_TEST_NO_GIT_CHILD";

#[test]
fn fetches_with_no_git_on_path() {
    if let Some(setup) = std::env::var_os(CHILD_VAR) {
        // The child: PATH holds nothing; fetch over both transports.
        let setup = setup.into_string().unwrap();
        let [git_url, https_url, ca_file, secret, out] =
            setup.lines().collect::<Vec<_>>().try_into().unwrap();
        let credentials = GitCredentials::read(Path::new(secret)).unwrap();
        let tls = GitOptions {
            ca_files: vec![ca_file.into()],
            ..options()
        };
        let out = Path::new(out);
        fetch(
            &source(git_url, "main", Some("skills/code-review")),
            None,
            &out.join("over-git"),
            &options(),
        )
        .unwrap();
        fetch(
            &source(https_url, "main", Some("skills/code-review")),
            Some(&credentials),
            &out.join("over-https"),
            &tls,
        )
        .unwrap();
        return;
    }
    let fixture = Fixture::new();
    let empty = fixture.out_of_tree("empty-path");
    fs::create_dir(&empty).unwrap();
    let secret = fixture.out_of_tree("secret");
    fs::create_dir(&secret).unwrap();
    fs::write(secret.join("username"), USER).unwrap();
    fs::write(secret.join("password"), PASSWORD).unwrap();
    fs::write(secret.join("host"), fixture.https_host()).unwrap();
    let setup = [
        fixture.git_url(),
        fixture.https_url(),
        fixture.ca_file().display().to_string(),
        secret.display().to_string(),
        fixture.out().display().to_string(),
    ]
    .join("\n");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fetches_with_no_git_on_path",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PATH", &empty)
        .env(CHILD_VAR, setup)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the child run failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for dest in ["over-git", "over-https"] {
        assert_eq!(
            read(&fixture.out().join(dest).join("SKILL.md")),
            fixture::skill_md(3),
            "{dest}"
        );
    }
}

#[test]
fn redirects_are_followed_only_without_credentials() {
    let fixture = Fixture::new();
    let moved = fixture
        .http_url()
        .replace("/skills.git", "/moved/skills.git");
    let (fetched, dest) = fetch_into(&fixture, &source(&moved, "v2", None), None, &options());
    assert_eq!(fetched.unwrap().commit, fixture.commits.second);
    fs::remove_dir_all(&dest).unwrap();

    // Credentials are for the URL's host: a redirect is an error, not a hop.
    let moved = fixture
        .https_url()
        .replace("/skills.git", "/moved/skills.git");
    let (result, dest) = fetch_into(
        &fixture,
        &source(&moved, "v2", None),
        Some(&fixture.credentials()),
        &fixture.tls_options(),
    );
    let err = result.unwrap_err();
    assert!(matches!(err, GitError::Connect { .. }), "{err:?}");
    assert!(err.hint().unwrap().contains("redirect"), "{:?}", err.hint());
    assert_nothing_left(&fixture, &dest);
}

/// How `skillport fetch` calls it: reqwest's blocking client must not meet the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_in_spawn_blocking_on_a_tokio_runtime() {
    let fixture = Fixture::new();
    let jobs: Vec<_> = ["main", "v2"]
        .into_iter()
        .map(|reference| {
            let source = source(&fixture.https_url(), reference, Some("skills/code-review"));
            let dest = fixture.out().join(reference);
            let options = fixture.tls_options();
            let credentials = fixture.credentials();
            tokio::task::spawn_blocking(move || fetch(&source, Some(&credentials), &dest, &options))
        })
        .collect();
    let mut commits = Vec::new();
    for job in jobs {
        commits.push(job.await.unwrap().unwrap().commit);
    }
    assert_eq!(
        commits,
        [fixture.commits.main.clone(), fixture.commits.second.clone()]
    );
    assert_eq!(
        read(&fixture.out().join("v2/SKILL.md")),
        fixture::skill_md(2)
    );
}

#[test]
fn hostile_trees_are_refused() {
    let fixture = Fixture::new();
    for (branch, reason) in fixture::HOSTILE {
        let (result, dest) = fetch_into(
            &fixture,
            &source(&fixture.git_url(), branch, None),
            None,
            &options(),
        );
        let err = result.unwrap_err();
        assert!(
            matches!(&err, GitError::Unsafe { reason: r, .. } if r.contains(reason)),
            "{branch}: {err:?}"
        );
        assert_nothing_left(&fixture, &dest);
    }
}
