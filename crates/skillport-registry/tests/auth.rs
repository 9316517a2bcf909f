//! Credentials files: every format, registry matching, the merge of several files, discovery,
//! and that no secret ever reaches a message.
//!
//! Every password in `fixtures/auth/` contains `NEVER-PRINT`, so one substring check (plus the
//! base64 forms, listed below) proves a string carries no secret.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use skillport_registry::auth::{
    AuthError, AuthFile, AuthFileFormat, Credential, Credentials, Found, Secret, normalize_registry,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/auth");

/// The `auth` values of the fixtures: base64 of `user:password`.
const ENCODED_SECRETS: [&str; 11] = [
    "aHViLXVzZXI6cHctTkVWRVItUFJJTlQtaHVi",
    "YWxpY2U6cHctTkVWRVItUFJJTlQtZG9ja2Vy",
    "dGVhbS1hOnB3LU5FVkVSLVBSSU5ULXRlYW0tYQ",
    "dGVhbS1iOnB3LU5FVkVSLVBSSU5ULXRlYW0tYg",
    "cXVheS1ib3Q6cHctTkVWRVItUFJJTlQtcXVheQ",
    "bGVnYWN5OnB3LU5FVkVSLVBSSU5ULWxlZ2FjeQ",
    "azhzLXVzZXI6cHctTkVWRVItUFJJTlQtazhz",
    "bm9jb2xvbi1wdy1ORVZFUi1QUklOVA",
    "Zmlyc3Q6cHctTkVWRVItUFJJTlQtZmlyc3Q",
    "c2Vjb25kOnB3LU5FVkVSLVBSSU5ULXNlY29uZA",
    "dGhpcmQ6cHctTkVWRVItUFJJTlQtdGhpcmQ",
];

#[track_caller]
fn assert_no_secret(text: &str) {
    assert!(
        !text.contains("NEVER-PRINT"),
        "a secret leaked into: {text}"
    );
    for encoded in ENCODED_SECRETS {
        assert!(
            !text.contains(encoded),
            "an encoded secret leaked into: {text}"
        );
    }
}

fn fixture_path(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn fixture(name: &str) -> AuthFile {
    AuthFile::read(&fixture_path(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn basic(found: &Found) -> (&str, &str) {
    match &found.credential {
        Credential::Basic { username, password } => (username, password.expose()),
        Credential::IdentityToken(_) => {
            panic!("expected a password, got a token from {}", found.source)
        }
    }
}

fn lookup(credentials: &Credentials, registry: &str, repository: &str) -> Found {
    credentials
        .lookup(registry, repository)
        .expect("lookup")
        .unwrap_or_else(|| panic!("no credential for {registry}/{repository}"))
}

// ---------------------------------------------------------------------------------------------
// Formats

#[test]
fn docker_config_reads_auth_username_password_identitytoken_and_helpers() {
    let file = fixture("docker-config.json");
    assert_eq!(file.format(), AuthFileFormat::DockerConfig);
    assert_eq!(
        file.registries().collect::<Vec<_>>(),
        [
            "docker.io",
            "plain.example.com",
            "registry.example.com:5000",
            "token.example.com"
        ],
        "the empty store.example.com placeholder holds no credential"
    );
    assert_eq!(
        file.cred_helpers().collect::<Vec<_>>(),
        [
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "ecr-login"),
            ("europe-docker.pkg.dev", "gcloud")
        ]
    );
    assert_eq!(file.creds_store(), Some("desktop"));
    // With a credsStore, docker writes `{}` placeholders: not worth a warning.
    assert!(file.warnings().is_empty(), "{:?}", file.warnings());

    let credentials = Credentials::from_files(vec![file]);
    let hub = lookup(&credentials, "docker.io", "library/alpine");
    assert_eq!(basic(&hub), ("hub-user", "pw-NEVER-PRINT-hub"));
    assert_eq!(
        hub.source.entry(),
        Some("auths[\"https://index.docker.io/v1/\"]")
    );
    assert_eq!(
        hub.source.file(),
        fixture_path("docker-config.json").display().to_string()
    );

    let port = lookup(&credentials, "registry.example.com:5000", "skills/pdf");
    assert_eq!(basic(&port), ("alice", "pw-NEVER-PRINT-docker"));

    let plain = lookup(&credentials, "plain.example.com", "x");
    assert_eq!(basic(&plain), ("bob", "pw-NEVER-PRINT-plain"));

    let token = lookup(&credentials, "token.example.com", "x");
    assert_eq!(
        token.credential,
        Credential::IdentityToken(Secret::new("pw-NEVER-PRINT-identity"))
    );
}

#[test]
fn podman_auth_json_has_path_scoped_entries() {
    let credentials = Credentials::from_files(vec![fixture("podman-auth.json")]);
    let team_a = lookup(&credentials, "reg.example.com", "team-a/tools/pdf");
    assert_eq!(basic(&team_a), ("team-a", "pw-NEVER-PRINT-team-a"));
    assert_eq!(
        team_a.source.entry(),
        Some("auths[\"reg.example.com/team-a\"]")
    );
    let team_b = lookup(&credentials, "reg.example.com", "team-b/pdf");
    assert_eq!(basic(&team_b), ("team-b", "pw-NEVER-PRINT-team-b"));
    // Neither team: the registry-wide entry.
    let other = lookup(&credentials, "reg.example.com", "team-c/pdf");
    assert_eq!(basic(&other), ("alice", "pw-NEVER-PRINT-docker"));
    // `team-ab` is not under `team-a`: matching is by path component, not by string prefix.
    let prefix = lookup(&credentials, "reg.example.com", "team-ab/pdf");
    assert_eq!(basic(&prefix).0, "alice");
    // Namespace-only entry: quay.io itself has none.
    assert_eq!(
        basic(&lookup(&credentials, "quay.io", "org/skill")).0,
        "quay-bot"
    );
    assert!(
        credentials
            .lookup("quay.io", "other/skill")
            .unwrap()
            .is_none()
    );
    // podman writes Docker Hub as `docker.io`; references may use any alias.
    for alias in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
        assert_eq!(
            basic(&lookup(&credentials, alias, "library/alpine")).0,
            "hub-user"
        );
    }
}

#[test]
fn kubernetes_dockerconfigjson_prefers_auth_over_username_and_password() {
    let file = fixture("k8s-dockerconfigjson.json");
    assert_eq!(file.format(), AuthFileFormat::DockerConfig);
    assert!(file.warnings().is_empty(), "{:?}", file.warnings());
    let credentials = Credentials::from_files(vec![file]);
    let found = lookup(&credentials, "registry.example.com", "skills/pdf");
    assert_eq!(basic(&found), ("k8s-user", "pw-NEVER-PRINT-k8s"));
}

#[test]
fn legacy_dockercfg_is_the_map_without_auths() {
    let file = fixture("legacy-dockercfg.json");
    assert_eq!(file.format(), AuthFileFormat::LegacyDockercfg);
    assert_eq!(
        file.registries().collect::<Vec<_>>(),
        ["docker.io", "legacy.example.com"]
    );
    let credentials = Credentials::from_files(vec![file]);
    assert_eq!(
        basic(&lookup(&credentials, "docker.io", "library/busybox")),
        ("legacy", "pw-NEVER-PRINT-legacy")
    );
    let found = lookup(&credentials, "legacy.example.com", "x/y");
    assert_eq!(
        found.source.entry(),
        Some("entry \"https://legacy.example.com/v1/\"")
    );
}

#[test]
fn files_without_auths_are_docker_configs_not_legacy_files() {
    for (text, format) in [
        ("{}", AuthFileFormat::DockerConfig),
        (
            r#"{"proxies": {"default": {}}}"#,
            AuthFileFormat::DockerConfig,
        ),
        (r#"{"credsStore": "desktop"}"#, AuthFileFormat::DockerConfig),
        (
            r#"{"r.example.com": {"auth": "", "email": ""}}"#,
            AuthFileFormat::LegacyDockercfg,
        ),
    ] {
        let file = AuthFile::parse(text.as_bytes(), "inline").unwrap();
        assert_eq!(file.format(), format, "{text}");
    }
    let empty = AuthFile::parse(b"  \n", "empty pull secret").unwrap();
    assert_eq!(empty.warnings(), ["empty pull secret is empty"]);
    let no_auths = AuthFile::parse(br#"{"auths": {}}"#, "pull secret \"x\"").unwrap();
    assert_eq!(
        no_auths.warnings(),
        ["pull secret \"x\" has no credentials (\"auths\" is empty)"]
    );
}

#[test]
fn bad_entries_are_warnings_naming_the_key_and_never_the_value() {
    let file = AuthFile::parse(
        &std::fs::read(fixture_path("bad-entries.json")).unwrap(),
        "pull secret \"bad\"",
    )
    .expect("bad entries do not fail the file");
    assert_eq!(
        file.registries().collect::<Vec<_>>(),
        ["good.example.com", "wrapped.example.com"]
    );
    let warnings = file.warnings().join("\n");
    let expected = [
        "auths[\"badbase64.example.com\"] in pull secret \"bad\" has an \"auth\" that is not valid base64; ignored",
        "auths[\"empty-auth.example.com\"] in pull secret \"bad\" has no credential; ignored",
        "auths[\"empty.example.com\"] in pull secret \"bad\" has no credential; ignored",
        "duplicate entry for good.example.com in pull secret \"bad\": auths[\"https://good.example.com/\"] ignored, auths[\"good.example.com\"] is used",
        "auths[\"nocolon.example.com\"] in pull secret \"bad\" has an \"auth\" that does not decode to username:password; ignored",
        "auths[\"notobject.example.com\"] in pull secret \"bad\" is not an object; ignored",
        "auths[\"number.example.com\"] in pull secret \"bad\" has an \"auth\" that is not a string; ignored",
        "auths[\"registrytoken.example.com\"] in pull secret \"bad\" holds only a \"registrytoken\", which is not supported; ignored",
        "auths[\"useronly.example.com\"] in pull secret \"bad\" has a username but no password; ignored",
    ];
    assert_eq!(file.warnings(), expected, "\n{warnings}");
    assert_no_secret(&warnings);

    let credentials = Credentials::from_files(vec![file]);
    // Line-wrapped, unpadded base64 still decodes.
    assert_eq!(
        basic(&lookup(&credentials, "wrapped.example.com", "x")),
        ("team-a", "pw-NEVER-PRINT-team-a")
    );
    assert_eq!(
        basic(&lookup(&credentials, "good.example.com", "x")).0,
        "alice"
    );
    for ignored in [
        "empty.example.com",
        "badbase64.example.com",
        "nocolon.example.com",
    ] {
        assert!(
            credentials.lookup(ignored, "x").unwrap().is_none(),
            "{ignored}"
        );
    }
}

#[test]
fn whole_file_errors_name_the_file_and_never_quote_it() {
    for (name, reason) in [
        (
            "truncated.json",
            "the JSON ends too early (line 1, column 64)",
        ),
        ("not-json.json", "not valid JSON (line 1, column 40)"),
        (
            "secret-manifest.json",
            "this is a Kubernetes manifest, not the .dockerconfigjson file a Secret holds",
        ),
    ] {
        let error = AuthFile::read(&fixture_path(name)).unwrap_err();
        let AuthError::Parse { label, reason: got } = &error else {
            panic!("{name}: {error:?}");
        };
        assert_eq!(label, &fixture_path(name).display().to_string());
        assert_eq!(got, reason, "{name}");
        assert_no_secret(&format!("{error} {error:?}"));
    }
    let error = AuthFile::parse(br#"["pw-NEVER-PRINT-array"]"#, "x").unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid credentials file x: expected a JSON object at the top level"
    );
    let error = AuthFile::parse(br#"{"auths": "pw-NEVER-PRINT-str"}"#, "x").unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid credentials file x: \"auths\" is not an object"
    );
    let error = AuthFile::read(Path::new("/nonexistent/skillport/config.json")).unwrap_err();
    assert!(matches!(error, AuthError::Read { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "cannot read /nonexistent/skillport/config.json"
    );
}

#[test]
fn helper_settings_that_cannot_work_are_warned_about() {
    let file = AuthFile::parse(
        br#"{
            "credHelpers": {
                "reg.example.com/team-a": "pass",
                "bad.example.com": "../../bin/sh",
                "num.example.com": 7,
                "reg.example.com": "ecr-login"
            },
            "auths": {"reg.example.com": {"auth": "YWxpY2U6cHctTkVWRVItUFJJTlQtZG9ja2Vy"}}
        }"#,
        "config",
    )
    .unwrap();
    assert_eq!(
        file.cred_helpers().collect::<Vec<_>>(),
        [("reg.example.com", "ecr-login")]
    );
    assert_eq!(
        file.warnings(),
        [
            "credHelpers[\"bad.example.com\"] in config does not name a helper program; ignored",
            "credHelpers[\"num.example.com\"] in config does not name a helper program; ignored",
            "credHelpers[\"reg.example.com/team-a\"] in config names a repository path; helpers \
             apply to whole registries, so it is ignored",
            "auths[\"reg.example.com\"] in config is not used: credHelpers[\"reg.example.com\"] \
             hands that registry to docker-credential-ecr-login",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Registry names

#[test]
fn normalize_registry_table() {
    for (key, normalized) in [
        ("https://index.docker.io/v1/", "docker.io"),
        ("http://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("registry.hub.docker.com", "docker.io"),
        ("docker.io", "docker.io"),
        ("DOCKER.IO", "docker.io"),
        ("docker.io/library", "docker.io/library"),
        ("Registry.Example.COM", "registry.example.com"),
        ("registry.example.com/", "registry.example.com"),
        ("https://registry.example.com", "registry.example.com"),
        ("https://registry.example.com/v2/", "registry.example.com"),
        ("registry.example.com/v2", "registry.example.com"),
        ("localhost:5000", "localhost:5000"),
        ("https://localhost:5000/v2/", "localhost:5000"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("reg.example.com:443", "reg.example.com:443"),
        ("reg.example.com/team-a", "reg.example.com/team-a"),
        ("reg.example.com/team-a/", "reg.example.com/team-a"),
        (
            "reg.example.com//team-a/tools",
            "reg.example.com/team-a/tools",
        ),
        // A URL names a whole registry (docker's ConvertToHostname, containers/image).
        ("https://reg.example.com/team-a", "reg.example.com"),
        ("  quay.io/org  ", "quay.io/org"),
        ("", ""),
    ] {
        assert_eq!(normalize_registry(key), normalized, "{key:?}");
    }
}

#[test]
fn host_and_port_are_one_registry_name() {
    let file = AuthFile::parse(
        br#"{"auths": {
            "reg.example.com:5000": {"auth": "Zmlyc3Q6cHctTkVWRVItUFJJTlQtZmlyc3Q="},
            "reg.example.com": {"auth": "c2Vjb25kOnB3LU5FVkVSLVBSSU5ULXNlY29uZA=="}
        }}"#,
        "config",
    )
    .unwrap();
    let credentials = Credentials::from_files(vec![file]);
    assert_eq!(
        basic(&lookup(&credentials, "reg.example.com:5000", "a/b")).0,
        "first"
    );
    assert_eq!(
        basic(&lookup(&credentials, "reg.example.com", "a/b")).0,
        "second"
    );
    assert!(
        credentials
            .lookup("reg.example.com:5001", "a/b")
            .unwrap()
            .is_none()
    );
    assert!(
        credentials
            .lookup("other.example.com", "a/b")
            .unwrap()
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------------
// Merging files (the in-pod case)

fn three_pull_secrets() -> Credentials {
    let parse = |name: &str, secret: &str| {
        AuthFile::parse(
            &std::fs::read(fixture_path(name)).unwrap(),
            format!("pull secret {secret:?}"),
        )
        .unwrap()
    };
    Credentials::from_files(vec![
        parse("pull-secret-artifactory.json", "artifactory"),
        parse("pull-secret-ecr.json", "ecr"),
        parse("pull-secret-hub.json", "hub"),
    ])
}

#[test]
fn the_first_file_with_a_match_wins() {
    let credentials = three_pull_secrets();
    // Both artifactory and ecr have reg.example.com; ecr even has a more specific
    // reg.example.com/team-a. The first file still wins: later files never override.
    for repository in ["skills/pdf", "team-a/pdf"] {
        let found = lookup(&credentials, "reg.example.com", repository);
        assert_eq!(basic(&found), ("first", "pw-NEVER-PRINT-first"));
        assert_eq!(found.source.file(), "pull secret \"artifactory\"");
    }
    // A registry only a later file has.
    let ecr = lookup(&credentials, "ecr.example.com", "skills/pdf");
    assert_eq!(basic(&ecr).0, "second");
    assert_eq!(
        ecr.source.to_string(),
        "auths[\"ecr.example.com\"] in pull secret \"ecr\""
    );
    let hub = lookup(&credentials, "docker.io", "library/alpine");
    assert_eq!(basic(&hub).0, "third");
    assert!(credentials.lookup("quay.io", "x").unwrap().is_none());
}

#[test]
fn duplicates_across_files_are_warned_about() {
    let credentials = three_pull_secrets();
    assert_eq!(
        credentials.warnings(),
        [
            "duplicate entry for reg.example.com in pull secret \"ecr\" ignored: pull secret \
             \"artifactory\" already has one",
            "entry for reg.example.com/team-a in pull secret \"ecr\" is never used: pull secret \
             \"artifactory\" has one for reg.example.com, which matches first",
            "duplicate entry for ecr.example.com in pull secret \"hub\" ignored: pull secret \
             \"ecr\" already has one",
        ]
    );
}

#[test]
fn a_more_specific_key_in_an_earlier_file_does_not_shadow_a_later_registry_entry() {
    let first = AuthFile::parse(
        br#"{"auths": {"reg.example.com/team-a": {"auth": "Zmlyc3Q6cHctTkVWRVItUFJJTlQtZmlyc3Q="}}}"#,
        "a",
    )
    .unwrap();
    let second = AuthFile::parse(
        br#"{"auths": {"reg.example.com": {"auth": "c2Vjb25kOnB3LU5FVkVSLVBSSU5ULXNlY29uZA=="}}}"#,
        "b",
    )
    .unwrap();
    let credentials = Credentials::from_files(vec![first, second]);
    assert!(
        credentials.warnings().is_empty(),
        "{:?}",
        credentials.warnings()
    );
    assert_eq!(
        basic(&lookup(&credentials, "reg.example.com", "team-a/x")).0,
        "first"
    );
    assert_eq!(
        basic(&lookup(&credentials, "reg.example.com", "team-b/x")).0,
        "second"
    );
}

// ---------------------------------------------------------------------------------------------
// Discovery

struct Home {
    dir: tempfile::TempDir,
    vars: HashMap<&'static str, OsString>,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = HashMap::new();
        vars.insert("HOME", dir.path().join("home").into_os_string());
        vars.insert("XDG_RUNTIME_DIR", dir.path().join("run").into_os_string());
        Home { dir, vars }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn write(&self, relative: &str, user: &str) -> PathBuf {
        use base64::Engine as _;
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw-NEVER-PRINT"));
        let text = format!(
            r#"{{"auths": {{"reg.example.com": {{"auth": "{auth}"}}, "{user}.example.com": {{"auth": "{auth}"}}}}}}"#
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn set(&mut self, name: &'static str, relative: &str) {
        self.vars.insert(name, self.path(relative).into_os_string());
    }

    fn discover(&self) -> Result<Credentials, AuthError> {
        Credentials::discover_with(|name| self.vars.get(name).cloned())
    }
}

#[test]
fn discovery_follows_podmans_order() {
    let mut home = Home::new();
    home.set("XDG_CONFIG_HOME", "xdg-config");
    home.set("DOCKER_CONFIG", "docker-config");
    let paths = Credentials::discovery_paths(|name| home.vars.get(name).cloned());
    assert_eq!(
        paths,
        [
            home.path("run/containers/auth.json"),
            home.path("xdg-config/containers/auth.json"),
            home.path("docker-config/config.json"),
            home.path("home/.dockercfg"),
        ]
    );
    home.vars.remove("XDG_CONFIG_HOME");
    home.vars.remove("DOCKER_CONFIG");
    let paths = Credentials::discovery_paths(|name| home.vars.get(name).cloned());
    assert_eq!(
        paths,
        [
            home.path("run/containers/auth.json"),
            home.path("home/.config/containers/auth.json"),
            home.path("home/.docker/config.json"),
            home.path("home/.dockercfg"),
        ]
    );

    // Each file has reg.example.com and a registry of its own: the first file wins the shared
    // one, the others still supply theirs.
    home.write("run/containers/auth.json", "runtime");
    home.write("home/.config/containers/auth.json", "config");
    home.write("home/.docker/config.json", "docker");
    let credentials = home.discover().unwrap();
    assert_eq!(
        credentials.files().len(),
        3,
        "the missing .dockercfg is skipped"
    );
    assert_eq!(
        basic(&lookup(&credentials, "reg.example.com", "x")).0,
        "runtime"
    );
    assert_eq!(
        basic(&lookup(&credentials, "config.example.com", "x")).0,
        "config"
    );
    assert_eq!(
        basic(&lookup(&credentials, "docker.example.com", "x")).0,
        "docker"
    );
    assert_eq!(
        lookup(&credentials, "docker.example.com", "x")
            .source
            .file(),
        home.path("home/.docker/config.json").display().to_string()
    );
}

#[test]
fn registry_auth_file_alone_replaces_the_search() {
    let mut home = Home::new();
    home.write("home/.docker/config.json", "docker");
    let explicit = home.write("elsewhere/auth.json", "explicit");
    home.set("REGISTRY_AUTH_FILE", "elsewhere/auth.json");
    assert_eq!(
        Credentials::discovery_paths(|name| home.vars.get(name).cloned()),
        [explicit]
    );
    let credentials = home.discover().unwrap();
    assert_eq!(
        basic(&lookup(&credentials, "reg.example.com", "x")).0,
        "explicit"
    );
    assert!(
        credentials
            .lookup("docker.example.com", "x")
            .unwrap()
            .is_none()
    );
}

#[test]
fn docker_config_overrides_the_home_docker_folder() {
    let mut home = Home::new();
    home.write("home/.docker/config.json", "home");
    home.write("custom/config.json", "custom");
    home.set("DOCKER_CONFIG", "custom");
    let credentials = home.discover().unwrap();
    assert_eq!(
        basic(&lookup(&credentials, "reg.example.com", "x")).0,
        "custom"
    );
    assert!(
        credentials
            .lookup("home.example.com", "x")
            .unwrap()
            .is_none()
    );
}

#[test]
fn discovery_with_no_files_finds_nothing() {
    let home = Home::new();
    let credentials = home.discover().unwrap();
    assert!(credentials.files().is_empty());
    assert!(
        credentials
            .lookup("reg.example.com", "x")
            .unwrap()
            .is_none()
    );
    assert_eq!(credentials.to_string(), "no credentials files");
}

#[test]
fn an_invalid_or_unreadable_file_is_an_error_naming_it() {
    let home = Home::new();
    let path = home.path("home/.docker/config.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, r#"{"auths": {"r": {"auth": "pw-NEVER-PRINT"#).unwrap();
    let error = home.discover().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "invalid credentials file {}: the JSON ends too early (line 1, column 40)",
            path.display()
        )
    );
    assert_no_secret(&format!("{error:?}"));

    // A folder where the file should be cannot be read (root can read any file, so a mode
    // change would not do).
    let home = Home::new();
    let path = home.path("run/containers/auth.json");
    std::fs::create_dir_all(&path).unwrap();
    let error = home.discover().unwrap_err();
    assert!(
        matches!(&error, AuthError::Read { path: got, .. } if got == &path),
        "{error:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Nothing secret in any output

#[test]
fn no_formatting_of_any_value_shows_a_secret() {
    let mut outputs = Vec::new();
    let secret = Secret::new("pw-NEVER-PRINT-secret");
    outputs.push(format!("{secret} {secret:?} {secret:#?}"));
    assert_eq!(secret.to_string(), "<redacted>");
    assert_eq!(format!("{secret:?}"), "<redacted>");

    // docker-config.json last: its credsStore ("desktop", not installed here) would be asked
    // for every registry the earlier files lack.
    let names = [
        "podman-auth.json",
        "k8s-dockerconfigjson.json",
        "legacy-dockercfg.json",
        "pull-secret-artifactory.json",
        "pull-secret-ecr.json",
        "pull-secret-hub.json",
        "docker-config.json",
    ];
    let files: Vec<AuthFile> = names.iter().map(|name| fixture(name)).collect();
    for file in &files {
        outputs.push(format!("{file} {file:?} {file:#?}"));
    }
    let bad = fixture("bad-entries.json");
    outputs.push(format!("{bad} {bad:?} {:?}", bad.warnings()));
    let credentials = Credentials::from_files(files);
    outputs.push(format!("{credentials} {credentials:?} {credentials:#?}"));
    outputs.push(credentials.warnings().join("\n"));
    let mut found_any = 0;
    for (registry, repository) in [
        ("docker.io", "library/alpine"),
        ("registry.example.com:5000", "x"),
        ("plain.example.com", "x"),
        ("token.example.com", "x"),
        ("reg.example.com", "team-a/x"),
        ("quay.io", "org/x"),
        ("registry.example.com", "x"),
        ("legacy.example.com", "x"),
    ] {
        let found = lookup(&credentials, registry, repository);
        found_any += 1;
        let credential = &found.credential;
        outputs.push(format!(
            "{found} {found:?} {found:#?} {credential} {credential:?} {}",
            found.source
        ));
    }
    assert_eq!(found_any, 8);

    let errors = [
        AuthFile::read(&fixture_path("truncated.json")).unwrap_err(),
        AuthFile::read(&fixture_path("not-json.json")).unwrap_err(),
        AuthFile::parse(br#"{"auths": 1, "x": "pw-NEVER-PRINT"}"#, "x").unwrap_err(),
        AuthFile::read(Path::new("/nonexistent/pw-file")).unwrap_err(),
        AuthError::HelperMissing {
            helper: "ecr-login".into(),
            registry: "reg.example.com".into(),
            setting: "credHelpers[\"reg.example.com\"]".into(),
            file: "config".into(),
        },
    ];
    for error in &errors {
        outputs.push(format!("{error} {error:?} {:?}", error.hint()));
    }
    for output in &outputs {
        assert_no_secret(output);
    }
    // The check itself can fail: the secrets really are in what was looked up.
    let found = lookup(&credentials, "plain.example.com", "x");
    assert_eq!(found.credential.secret().expose(), "pw-NEVER-PRINT-plain");
}
