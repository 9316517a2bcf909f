//! Docker credential helpers, for real: small shell scripts named `docker-credential-<name>` in
//! a temporary folder, found through `Credentials::with_helper_path` (never by changing this
//! process's environment: tests run in parallel). Each script records its argv, stdin and
//! environment, so the tests can check what a helper is given.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use skillport_registry::auth::{
    AuthError, AuthFile, Credential, CredentialStore, Credentials, Found, Secret,
    login_with_helper_path, logout_with_helper_path,
};

/// A folder of helper scripts and what they recorded.
struct Helpers {
    dir: tempfile::TempDir,
}

impl Helpers {
    fn new() -> Helpers {
        Helpers {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Install `docker-credential-<name>` running `body` under /bin/sh, with stdin already read
    /// into `$input`. `$LOG` in the body is replaced by the folder where it may record things (no
    /// environment variable is used, so the helper's environment stays what `lookup` gives it).
    /// Each run records through its own file and a rename, so concurrent runs do not mix.
    fn install(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        let log = self.dir().display().to_string();
        let script = format!(
            "#!/bin/sh\n\
             printf '%s\\n' \"$@\" > '{log}/{name}.argv'\n\
             env > '{log}/{name}.env'\n\
             cat > '{log}/{name}.stdin.'$$\n\
             input=\"$(cat '{log}/{name}.stdin.'$$)\"\n\
             mv '{log}/{name}.stdin.'$$ '{log}/{name}.stdin'\n\
             echo run >> '{log}/{name}.runs'\n\
             {}\n",
            body.replace("$LOG", &log)
        );
        let path = self.dir().join(format!("docker-credential-{name}"));
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The standard helper: knows reg.example.com (a password) and Docker Hub (a token).
    fn install_standard(&self, name: &str) {
        self.install(
            name,
            r#"case "$input" in
  reg.example.com) printf '{"ServerURL":"reg.example.com","Username":"helper-user","Secret":"pw-NEVER-PRINT-helper"}\n' ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"https://index.docker.io/v1/","Username":"<token>","Secret":"pw-NEVER-PRINT-idtoken"}\n' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac"#,
        );
    }

    fn recorded(&self, name: &str, what: &str) -> Option<String> {
        fs::read_to_string(self.dir().join(format!("{name}.{what}"))).ok()
    }

    fn runs(&self, name: &str) -> usize {
        self.recorded(name, "runs")
            .map_or(0, |runs| runs.lines().count())
    }

    /// `PATH` for the helpers: their folder first, then the system's (for `cat`, `env`, …).
    fn search_path(&self) -> String {
        format!("{}:/usr/bin:/bin", self.dir().display())
    }

    fn credentials(&self, configs: &[&str]) -> Credentials {
        let files = configs
            .iter()
            .enumerate()
            .map(|(index, text)| {
                AuthFile::parse(text.as_bytes(), format!("config {index}")).unwrap()
            })
            .collect();
        Credentials::from_files(files).with_helper_path(self.search_path())
    }
}

#[track_caller]
fn assert_no_secret(text: &str) {
    assert!(
        !text.contains("NEVER-PRINT"),
        "a secret leaked into: {text}"
    );
}

fn found(credentials: &Credentials, registry: &str, repository: &str) -> Found {
    credentials
        .lookup(registry, repository)
        .expect("lookup")
        .unwrap_or_else(|| panic!("no credential for {registry}"))
}

#[test]
fn cred_helpers_answer_before_auths_and_get_the_server_url_on_stdin() {
    let helpers = Helpers::new();
    helpers.install_standard("test");
    let credentials = helpers.credentials(&[r#"{
        "credHelpers": {"reg.example.com": "test"},
        "auths": {"reg.example.com": {"auth": "c3RhbGU6cHctTkVWRVItUFJJTlQtc3RhbGU="}}
    }"#]);
    let found = found(&credentials, "reg.example.com", "skills/pdf");
    assert_eq!(
        found.credential,
        Credential::Basic {
            username: "helper-user".into(),
            password: Secret::new("pw-NEVER-PRINT-helper"),
        }
    );
    assert_eq!(found.source.helper(), Some("test"));
    assert_eq!(
        found.source.to_string(),
        "credential helper docker-credential-test (credHelpers[\"reg.example.com\"] in config 0)"
    );
    assert_eq!(
        helpers.recorded("test", "stdin").as_deref(),
        Some("reg.example.com")
    );
    assert_eq!(helpers.recorded("test", "argv").as_deref(), Some("get\n"));
    let environment = helpers.recorded("test", "env").unwrap();
    assert!(
        environment.contains(&format!("PATH={}", helpers.search_path())),
        "the helper runs with the given search path"
    );
    assert_no_secret(&environment);
    assert_no_secret(&format!("{found} {found:?}"));
}

#[test]
fn a_token_username_means_an_identity_token_and_docker_hub_is_asked_by_its_v1_url() {
    let helpers = Helpers::new();
    helpers.install_standard("hub");
    let credentials =
        helpers.credentials(&[r#"{"credHelpers": {"https://index.docker.io/v1/": "hub"}}"#]);
    let found = found(&credentials, "registry-1.docker.io", "library/alpine");
    assert_eq!(
        found.credential,
        Credential::IdentityToken(Secret::new("pw-NEVER-PRINT-idtoken"))
    );
    assert_eq!(
        helpers.recorded("hub", "stdin").as_deref(),
        Some("https://index.docker.io/v1/")
    );
}

#[test]
fn not_found_is_no_credential_and_the_next_file_is_asked() {
    let helpers = Helpers::new();
    helpers.install_standard("stdout");
    // Some helpers say it on stderr.
    helpers.install(
        "stderr",
        r#"echo "credentials not found in native keychain" >&2; exit 1"#,
    );
    for helper in ["stdout", "stderr"] {
        let alone = helpers.credentials(&[&format!(
            r#"{{"credHelpers": {{"other.example.com": "{helper}"}}}}"#
        )]);
        assert!(
            alone.lookup("other.example.com", "x").unwrap().is_none(),
            "{helper}"
        );
        assert_eq!(
            helpers.recorded(helper, "stdin").as_deref(),
            Some("other.example.com")
        );

        let merged = helpers.credentials(&[
            &format!(r#"{{"credHelpers": {{"other.example.com": "{helper}"}}}}"#),
            r#"{"auths": {"other.example.com": {"auth": "c2Vjb25kOnB3LU5FVkVSLVBSSU5ULXNlY29uZA=="}}}"#,
        ]);
        let found = found(&merged, "other.example.com", "x");
        assert_eq!(found.source.file(), "config 1", "{helper}");
    }
}

#[test]
fn creds_store_is_asked_when_the_file_has_no_inline_credential() {
    let helpers = Helpers::new();
    helpers.install_standard("store");
    let credentials = helpers.credentials(&[r#"{
        "credsStore": "store",
        "auths": {
            "reg.example.com": {},
            "inline.example.com": {"auth": "Zmlyc3Q6cHctTkVWRVItUFJJTlQtZmlyc3Q="}
        }
    }"#]);
    assert!(
        credentials.warnings().is_empty(),
        "{:?}",
        credentials.warnings()
    );

    let inline = found(&credentials, "inline.example.com", "x");
    assert_eq!(inline.source.entry(), Some("auths[\"inline.example.com\"]"));
    assert_eq!(
        helpers.runs("store"),
        0,
        "an inline credential needs no helper"
    );

    let stored = found(&credentials, "reg.example.com", "x");
    assert_eq!(
        stored.source.to_string(),
        "credential helper docker-credential-store (credsStore in config 0)"
    );
    assert!(
        credentials
            .lookup("unknown.example.com", "x")
            .unwrap()
            .is_none()
    );
    assert_eq!(helpers.runs("store"), 2);
}

#[test]
fn a_missing_helper_names_the_helper_the_registry_and_the_file() {
    let helpers = Helpers::new();
    // Present but not executable counts as missing too.
    fs::write(
        helpers.dir().join("docker-credential-noexec"),
        "#!/bin/sh\n",
    )
    .unwrap();
    for helper in ["absent", "noexec"] {
        let credentials = helpers.credentials(&[&format!(
            r#"{{"credHelpers": {{"reg.example.com:5000": "{helper}"}}}}"#
        )]);
        let error = credentials.lookup("reg.example.com:5000", "x").unwrap_err();
        let AuthError::HelperMissing {
            helper: name,
            registry,
            setting,
            file,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(
            (name.as_str(), registry.as_str()),
            (helper, "reg.example.com:5000")
        );
        assert_eq!(setting, "credHelpers[\"reg.example.com:5000\"]");
        assert_eq!(file, "config 0");
        assert_eq!(
            error.to_string(),
            format!(
                "credential helper docker-credential-{helper} for reg.example.com:5000 not found \
                 on PATH (set by credHelpers[\"reg.example.com:5000\"] in config 0)"
            )
        );
        assert_eq!(
            error.hint().unwrap(),
            format!(
                "install docker-credential-{helper}, or remove credHelpers[\"reg.example.com:5000\"] \
                 from config 0"
            )
        );
    }
    // A missing credsStore helper is the same error, naming the setting.
    let credentials = helpers.credentials(&[r#"{"credsStore": "desktop.exe"}"#]);
    let error = credentials.lookup("reg.example.com", "x").unwrap_err();
    assert_eq!(
        error.hint().unwrap(),
        "install docker-credential-desktop.exe, or remove credsStore from config 0"
    );
}

#[test]
fn a_helper_printing_garbage_fails_without_echoing_it() {
    let helpers = Helpers::new();
    helpers.install("garbage", "echo 'here you go: pw-NEVER-PRINT-garbage'");
    helpers.install("nosecret", r#"printf '{"ServerURL":"r","Username":"u"}'"#);
    let credentials = helpers.credentials(&[
        r#"{"credHelpers": {"a.example.com": "garbage", "b.example.com": "nosecret"}}"#,
    ]);
    let error = credentials.lookup("a.example.com", "x").unwrap_err();
    assert_eq!(
        error.to_string(),
        "credential helper docker-credential-garbage failed for a.example.com: it printed \
         something other than a JSON credential (expected ServerURL, Username, Secret)"
    );
    let error = credentials.lookup("b.example.com", "x").unwrap_err();
    assert_eq!(
        error.to_string(),
        "credential helper docker-credential-nosecret failed for b.example.com: its answer has \
         no string \"Secret\""
    );
}

#[test]
fn a_failing_helper_shows_its_first_line_only_when_it_cannot_hold_a_secret() {
    let helpers = Helpers::new();
    helpers.install(
        "plain",
        "echo '  error getting credentials: no profile named dev  ' >&2; echo 'second line' >&2; exit 3",
    );
    helpers.install(
        "tokenish",
        "echo 'token AbCdEf0123456789GhIjKlMn was rejected'; exit 1",
    );
    helpers.install(
        "json",
        r#"printf '{"Username":"u","Secret":"pw-NEVER-PRINT-json"}'; exit 1"#,
    );
    // Echoes a password that another file holds inline: short, lowercase, not token-shaped.
    helpers.install("echo", "echo 'bad password pw-never-print-inline'; exit 1");
    let credentials = helpers.credentials(&[
        r#"{"credHelpers": {"plain.example.com": "plain", "tokenish.example.com": "tokenish",
            "json.example.com": "json", "echo.example.com": "echo"}}"#,
        r#"{"auths": {"x.example.com": {"username": "x", "password": "pw-never-print-inline"}}}"#,
    ]);
    let message = |registry: &str| match credentials.lookup(registry, "x").unwrap_err() {
        AuthError::HelperFailed { message, .. } => message,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        message("plain.example.com"),
        "exit status 3: error getting credentials: no profile named dev"
    );
    for registry in [
        "tokenish.example.com",
        "json.example.com",
        "echo.example.com",
    ] {
        let text = message(registry);
        assert_eq!(
            text, "exit status 1 (its message is not shown: it may hold a secret)",
            "{registry}"
        );
    }
    let error = credentials.lookup("echo.example.com", "x").unwrap_err();
    let shown = format!("{error} {error:?} {:?}", error.hint());
    assert!(!shown.to_lowercase().contains("never-print"), "{shown}");
    assert!(!shown.contains("AbCdEf0123456789GhIjKlMn"));
}

#[test]
fn a_helper_that_hangs_is_killed_after_the_timeout() {
    let helpers = Helpers::new();
    helpers.install("slow", "exec sleep 20");
    let credentials = helpers
        .credentials(&[r#"{"credHelpers": {"reg.example.com": "slow"}}"#])
        .with_helper_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let error = credentials.lookup("reg.example.com", "x").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        error.to_string(),
        "credential helper docker-credential-slow failed for reg.example.com: it did not answer \
         within 300 ms"
    );
}

#[test]
fn a_helper_answer_is_asked_for_once() {
    let helpers = Helpers::new();
    helpers.install_standard("once");
    let credentials = helpers.credentials(&[
        r#"{"credHelpers": {"reg.example.com": "once", "other.example.com": "once"}}"#,
    ]);
    for repository in ["a/b", "c/d", "e"] {
        found(&credentials, "reg.example.com", repository);
        assert!(
            credentials
                .lookup("other.example.com", repository)
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(helpers.runs("once"), 2, "one run for each server URL");
}

#[test]
fn lookups_from_many_threads_share_one_credentials_value() {
    let helpers = Helpers::new();
    helpers.install_standard("shared");
    let credentials = helpers.credentials(&[r#"{"credHelpers": {"reg.example.com": "shared"}}"#]);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let found = found(&credentials, "reg.example.com", "x");
                assert_eq!(found.credential.secret().expose(), "pw-NEVER-PRINT-helper");
            });
        }
    });
}

/// The search path given is the only place helpers are looked for.
#[test]
fn helpers_are_looked_for_only_on_the_given_path() {
    let helpers = Helpers::new();
    let elsewhere = Helpers::new();
    elsewhere.install_standard("test");
    let credentials = helpers.credentials(&[r#"{"credHelpers": {"reg.example.com": "test"}}"#]);
    assert!(matches!(
        credentials.lookup("reg.example.com", "x"),
        Err(AuthError::HelperMissing { .. })
    ));
    let with_both = credentials.with_helper_path(format!(
        "{}:{}",
        helpers.dir().display(),
        elsewhere.search_path()
    ));
    assert!(with_both.lookup("reg.example.com", "x").unwrap().is_some());
}

/// A helper that keeps what `store` gives it in a file and answers `get` and `erase` from it:
/// enough of docker-credential-helpers' protocol to see what `login` and `logout` hand over.
fn install_keeper(helpers: &Helpers, name: &str) {
    helpers.install(
        name,
        r#"case "$1" in
  store) printf '%s' "$input" > "$LOG/kept" ;;
  get) if [ -f "$LOG/kept" ]; then cat "$LOG/kept"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) if [ -f "$LOG/kept" ]; then rm "$LOG/kept"; else echo "credentials not found in native keychain"; exit 1; fi ;;
esac"#,
    );
}

/// With `credsStore`, `login` hands the credential to the helper's `store` on stdin (never argv
/// or the environment), drops the password the file held for that registry, and `lookup` reads
/// it back through the helper; `logout` erases it there.
#[test]
fn login_and_logout_use_the_credential_store_the_config_names() {
    let helpers = Helpers::new();
    install_keeper(&helpers, "keeper");
    let config = helpers.dir().join("config.json");
    fs::write(
        &config,
        r#"{"credsStore": "keeper", "auths": {"reg.example.com": {"auth": "c3RhbGU6cHctTkVWRVItUFJJTlQtc3RhbGU="}, "other.example.com": {"auth": "b3RoZXI6c2VjcmV0"}}}"#,
    )
    .unwrap();
    let path = helpers.search_path();
    let saved = login_with_helper_path(
        &config,
        "reg.example.com",
        "robot",
        &Secret::new("pw-NEVER-PRINT-login"),
        Some(path.as_ref()),
    )
    .unwrap();
    assert_eq!(
        saved,
        CredentialStore::Helper {
            helper: "keeper".into(),
            setting: "credsStore".into(),
            file: config.clone(),
        }
    );
    assert_eq!(
        helpers.recorded("keeper", "argv").as_deref(),
        Some("store\n")
    );
    let given: serde_json::Value =
        serde_json::from_str(&helpers.recorded("keeper", "stdin").unwrap()).unwrap();
    assert_eq!(
        given,
        serde_json::json!({"ServerURL": "reg.example.com", "Username": "robot", "Secret": "pw-NEVER-PRINT-login"})
    );
    assert_no_secret(&helpers.recorded("keeper", "env").unwrap());
    let written = fs::read_to_string(&config).unwrap();
    assert_no_secret(&written);
    assert!(written.contains("other.example.com"), "{written}");
    assert!(written.contains("credsStore"), "{written}");

    let credentials = Credentials::from_files(vec![AuthFile::read(&config).unwrap()])
        .with_helper_path(helpers.search_path());
    assert_eq!(
        found(&credentials, "reg.example.com", "skills/pdf").credential,
        Credential::Basic {
            username: "robot".into(),
            password: Secret::new("pw-NEVER-PRINT-login"),
        }
    );

    let removed = logout_with_helper_path(&config, "reg.example.com", Some(path.as_ref())).unwrap();
    assert_eq!(
        removed,
        [saved],
        "erased from the helper; the file held nothing more"
    );
    assert_eq!(
        helpers.recorded("keeper", "argv").as_deref(),
        Some("erase\n")
    );
    assert!(!helpers.dir().join("kept").exists());
    let again = logout_with_helper_path(&config, "reg.example.com", Some(path.as_ref())).unwrap();
    assert!(again.is_empty(), "nothing left to remove: {again:?}");
}

/// `credHelpers[host]` wins over `credsStore`, as docker picks; a path-scoped login is refused
/// with a helper (one credential per host); a missing or failing helper is an error naming it
/// and its setting, the file stays as it was, and the password never shows.
#[test]
fn login_through_a_helper_fails_plainly_and_changes_nothing() {
    let helpers = Helpers::new();
    install_keeper(&helpers, "keeper");
    helpers.install("echoer", r#"echo "refused: $input"; exit 3"#);
    let config = helpers.dir().join("config.json");
    let before = r#"{"credsStore": "keeper", "credHelpers": {"reg.example.com": "echoer", "gone.example.com": "absent"}}"#;
    fs::write(&config, before).unwrap();
    let path = helpers.search_path();
    let login = |registry: &str| {
        login_with_helper_path(
            &config,
            registry,
            "robot",
            &Secret::new("pw-NEVER-PRINT-login"),
            Some(path.as_ref()),
        )
        .unwrap_err()
    };

    let failed = login("reg.example.com");
    assert!(
        matches!(failed, AuthError::HelperFailed { .. }),
        "{failed:?}"
    );
    let message = failed.to_string();
    assert_no_secret(&message);
    assert!(
        message.starts_with(
            "credential helper docker-credential-echoer failed for reg.example.com: exit status 3"
        ),
        "{message}"
    );
    assert!(
        !helpers.dir().join("kept").exists(),
        "credHelpers, not credsStore, was asked"
    );

    let missing = login("gone.example.com");
    assert_eq!(
        missing.to_string(),
        format!(
            "credential helper docker-credential-absent for gone.example.com not found on PATH \
             (set by credHelpers[\"gone.example.com\"] in {})",
            config.display()
        )
    );

    let scoped = login("new.example.com/team-a").to_string();
    assert!(
        scoped.contains("keeps one credential per registry host; log in to new.example.com"),
        "{scoped}"
    );
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        before,
        "the file is untouched"
    );
}
