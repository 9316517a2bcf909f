//! `login`: writes a Docker config.json as `docker login` does without a credential store, keeps
//! everything else in it, and is read back by the same code that reads pull secrets. With a
//! credential store: `auth_helpers.rs`.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use skillport_registry::auth::{AuthError, AuthFile, Credential, Credentials, Secret, login};

const PASSWORD: &str = "pw-NEVER-PRINT-login";

fn password() -> Secret {
    Secret::new(PASSWORD)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn lookup(path: &Path, registry: &str) -> Option<Credential> {
    Credentials::from_files(vec![AuthFile::read(path).unwrap()])
        .lookup(registry, "skills/pdf")
        .unwrap()
        .map(|found| found.credential)
}

#[track_caller]
fn assert_no_secret(text: &str) {
    assert!(
        !text.contains("NEVER-PRINT"),
        "a secret leaked into: {text}"
    );
    let encoded = STANDARD.encode(format!("user:{PASSWORD}"));
    assert!(
        !text.contains(&encoded),
        "an encoded secret leaked into: {text}"
    );
}

#[test]
fn creates_a_private_config_in_a_private_folder() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("new/.docker/config.json");
    login(&path, "registry.example.com", "user", &password()).unwrap();

    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(&home.path().join("new")), 0o700);
    let expected = STANDARD.encode(format!("user:{PASSWORD}"));
    assert_eq!(
        read_json(&path),
        json!({"auths": {"registry.example.com": {"auth": expected}}})
    );
    assert_eq!(
        lookup(&path, "registry.example.com"),
        Some(Credential::Basic {
            username: "user".into(),
            password: password()
        })
    );
    let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["config.json"],
        "no temporary file is left behind"
    );
}

#[test]
fn keeps_every_other_field_and_entry_and_replaces_aliases_of_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let before = json!({
        "auths": {
            "https://registry.example.com/v1/": {"auth": "c3RhbGU6cHctTkVWRVItUFJJTlQtc3RhbGU="},
            "registry.example.com": {"identitytoken": "pw-NEVER-PRINT-old-token"},
            "other.example.com": {"auth": "b3RoZXI6c2VjcmV0", "email": "o@example.com"},
            "registry.example.com/team-a": {"auth": "dGVhbTpzZWNyZXQ="}
        },
        "credHelpers": {"123456789012.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"},
        "proxies": {"default": {"httpProxy": "http://proxy.example.com:3128"}},
        "HttpHeaders": {"User-Agent": "custom"},
        "psFormat": "table {{.ID}}",
        "currentContext": "rootless"
    });
    fs::write(&path, serde_json::to_vec(&before).unwrap()).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();

    login(&path, "https://Registry.Example.com", "user", &password()).unwrap();

    let mut expected = before.clone();
    let auths = expected["auths"].as_object_mut().unwrap();
    auths.remove("https://registry.example.com/v1/");
    auths.insert(
        "registry.example.com".into(),
        json!({"auth": STANDARD.encode(format!("user:{PASSWORD}"))}),
    );
    assert_eq!(read_json(&path), expected);
    assert_eq!(mode(&path), 0o600, "the rewritten file is private");
    // The old identity token no longer shadows the new password.
    assert_eq!(
        lookup(&path, "registry.example.com"),
        Some(Credential::Basic {
            username: "user".into(),
            password: password()
        })
    );
    // The path-scoped entry is another scope, kept as it was.
    let team = Credentials::from_files(vec![AuthFile::read(&path).unwrap()])
        .lookup("registry.example.com", "team-a/x")
        .unwrap()
        .unwrap();
    assert_eq!(
        team.source.entry(),
        Some("auths[\"registry.example.com/team-a\"]")
    );
}

#[test]
fn docker_hub_is_written_under_dockers_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    fs::write(
        &path,
        r#"{"auths": {"docker.io": {"auth": "c3RhbGU6cHctTkVWRVItUFJJTlQtc3RhbGU="}, "index.docker.io": {}}}"#,
    )
    .unwrap();
    login(&path, "docker.io", "user", &password()).unwrap();
    let written = read_json(&path);
    let keys: Vec<&String> = written["auths"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["https://index.docker.io/v1/"]);
    assert!(matches!(
        lookup(&path, "registry-1.docker.io"),
        Some(Credential::Basic { username, .. }) if username == "user"
    ));
}

#[test]
fn a_second_login_replaces_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    login(&path, "localhost:5000", "first", &Secret::new("one")).unwrap();
    login(&path, "localhost:5000", "second", &Secret::new("two")).unwrap();
    assert_eq!(
        lookup(&path, "localhost:5000"),
        Some(Credential::Basic {
            username: "second".into(),
            password: Secret::new("two")
        })
    );
    assert_eq!(read_json(&path)["auths"].as_object().unwrap().len(), 1);
}

#[test]
fn a_symlinked_config_stays_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("dotfiles/docker.json");
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::write(&target, r#"{"currentContext": "default"}"#).unwrap();
    let link = dir.path().join(".docker/config.json");
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();

    login(&link, "registry.example.com", "user", &password()).unwrap();

    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let written = read_json(&target);
    assert_eq!(written["currentContext"], "default");
    assert!(written["auths"]["registry.example.com"]["auth"].is_string());
}

#[test]
fn never_overwrites_a_file_it_cannot_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    for before in [
        r#"{"auths": {"r": {"auth": "pw-NEVER-PRINT"#,
        r#"["not", "an", "object"]"#,
        r#"{"https://index.docker.io/v1/": {"auth": "bGVnYWN5OnB3LU5FVkVSLVBSSU5ULWxlZ2FjeQ=="}}"#,
        r#"{"auths": "pw-NEVER-PRINT"}"#,
    ] {
        fs::write(&path, before).unwrap();
        let error = login(&path, "registry.example.com", "user", &password()).unwrap_err();
        assert!(
            matches!(&error, AuthError::Parse { .. }),
            "{before}: {error:?}"
        );
        assert_no_secret(&format!("{error} {error:?}"));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            before,
            "the file is untouched"
        );
    }
    // An empty file is an empty config, as docker reads it.
    fs::write(&path, "").unwrap();
    login(&path, "registry.example.com", "user", &password()).unwrap();
    assert!(lookup(&path, "registry.example.com").is_some());
}

#[test]
fn bad_input_is_refused_without_showing_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    for (registry, username, password, reason) in [
        ("", "user", PASSWORD, "the registry name is empty"),
        ("reg.example.com", "", PASSWORD, "the username is empty"),
        (
            "reg.example.com",
            "us:er",
            PASSWORD,
            "the username contains ':', which basic auth cannot carry",
        ),
        ("reg.example.com", "user", "", "the password is empty"),
    ] {
        let error = login(&path, registry, username, &Secret::new(password)).unwrap_err();
        let AuthError::Login { reason: got, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(got, reason);
        assert_no_secret(&format!("{error} {error:?}"));
    }
    assert!(!path.exists(), "nothing is written for refused input");

    // A folder that cannot be created: the error names it, not the password.
    let blocker = dir.path().join("file");
    fs::write(&blocker, "").unwrap();
    let error = login(
        &blocker.join("config.json"),
        "r.example.com",
        "user",
        &password(),
    )
    .unwrap_err();
    assert!(
        matches!(&error, AuthError::Write { .. } | AuthError::Read { .. }),
        "{error:?}"
    );
    assert_no_secret(&format!("{error} {error:?}"));
}
