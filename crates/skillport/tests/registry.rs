// The registry commands, as a user runs them, against the real distribution registry
// (skillport-testkit): login, push, pull, resolve, tags, remote inspect and export, and the
// one-line errors with hints for what goes wrong — never showing the password.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::{Run, Sandbox, digest_line, path_str, write_minimal_skill};
use serde_json::Value;
use skillport_testkit::Registry;

/// `skillport login HOST -u USER --password-stdin`, the password on stdin.
fn login(sandbox: &Sandbox, flags: &[&str], host: &str, user: &str, password: &str) -> Run {
    let mut args = flags.to_vec();
    args.extend(["login", host, "-u", user, "--password-stdin"]);
    let mut command = sandbox.bare(&args);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    Run {
        command: format!("skillport login {host} -u {user} --password-stdin"),
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn assert_no_secret(run: &Run, secret: &str) {
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "the password leaked\n{run}"
    );
}

/// `push`, `resolve` and `pull` with `--json`: the reference and the digest, for scripts.
fn json_outputs(sandbox: &Sandbox, ca: &str, remote: &str, digest: &str) {
    for command in ["push", "resolve", "pull"] {
        let args: Vec<&str> = if command == "push" {
            vec!["--ca-file", ca, "push", "pdf-tools:1.0.0", remote, "--json"]
        } else {
            vec!["--ca-file", ca, command, remote, "--json"]
        };
        let printed = sandbox.ok(&args).json();
        assert_eq!(printed["reference"], remote, "{command}: {printed}");
        assert_eq!(printed["digest"], digest, "{command}: {printed}");
    }
}

/// A remote `inspect --json` has the keys and, files aside, the values of a local one.
fn same_schema_as_local(sandbox: &Sandbox, inspected: &Value, local_name: &str) {
    let local = sandbox.ok(&["inspect", "--json", local_name]).json();
    let keys =
        |value: &Value| -> Vec<String> { value.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(inspected), keys(&local), "{inspected}\n{local}");
    for field in [
        "digest",
        "mediaType",
        "size",
        "manifest",
        "config",
        "layer",
        "annotations",
    ] {
        assert_eq!(inspected[field], local[field], "{field}");
    }
    assert!(
        inspected["layer"]["size"].as_u64().unwrap() > 0,
        "{inspected}"
    );
    assert_eq!(
        inspected["files"],
        Value::Null,
        "files are listed for local images only"
    );
}

#[test]
fn login_push_pull_resolve_tags_inspect_and_export_over_tls_with_auth() {
    let registry = Registry::tls_basic_auth();
    let (user, password) = registry.credentials().unwrap();
    let ca = path_str(registry.ca_file().unwrap()).to_owned();
    let sandbox = Sandbox::new();
    let skill = write_minimal_skill(sandbox.path(), "pdf-tools");
    let digest = sandbox.build(&skill, "pdf-tools:1.0.0");

    let run = login(
        &sandbox,
        &["--ca-file", &ca],
        &registry.host(),
        user,
        password,
    )
    .success();
    assert_no_secret(&run, password);
    let config = sandbox.join("home/.docker/config.json");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the Docker config holds a password");

    let remote = format!("{}/skills/pdf-tools:1.0.0", registry.host());
    let pushed = sandbox.ok(&["--ca-file", &ca, "push", "pdf-tools:1.0.0", &remote]);
    assert_eq!(digest_line(&pushed), digest, "push prints the image digest");
    let resolved = sandbox.ok(&["--ca-file", &ca, "resolve", &remote]);
    assert_eq!(resolved.stdout.trim(), digest);

    let latest = format!("{}/skills/pdf-tools:latest", registry.host());
    sandbox.ok(&["--ca-file", &ca, "push", "pdf-tools:1.0.0", &latest]);
    let repository = format!("{}/skills/pdf-tools", registry.host());
    let tags = sandbox
        .ok(&["--ca-file", &ca, "tags", &repository, "--json"])
        .json();
    let mut tags: Vec<&str> = tags
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["1.0.0", "latest"]);

    let inspected = sandbox
        .ok(&["--ca-file", &ca, "inspect", &remote, "--json"])
        .json();
    assert_eq!(inspected["digest"], digest);
    assert_eq!(
        inspected["annotations"]["io.agentskills.skill.name"],
        "pdf-tools"
    );
    assert_eq!(
        inspected["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    same_schema_as_local(&sandbox, &inspected, "pdf-tools:1.0.0");
    json_outputs(&sandbox, &ca, &remote, &digest);

    // Pull into a second, empty store; by tag and by digest.
    let other = Sandbox::new();
    std::fs::create_dir_all(other.join("home/.docker")).unwrap();
    std::fs::copy(&config, other.join("home/.docker/config.json")).unwrap();
    let pulled = other.ok(&["--ca-file", &ca, "pull", &remote]);
    assert_eq!(digest_line(&pulled), digest);
    let by_digest = format!("{}/skills/pdf-tools@{digest}", registry.host());
    other.ok(&["--ca-file", &ca, "pull", &by_digest]);
    let images = other.ok(&["images", "--json"]).json();
    let names: Vec<&str> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    assert_eq!(names, [remote.as_str(), by_digest.as_str()]);
    // Pulled by digest: no tag, as docker shows it (not the digest in the TAG column).
    assert_eq!(images[1]["tag"], Value::Null, "{images}");
    let table = other.ok(&["images"]);
    let row = table
        .stdout
        .lines()
        .find(|line| line.contains("<none>"))
        .unwrap_or_else(|| panic!("a row without a tag\n{table}"));
    assert!(!row.contains("sha256:"), "{row}");

    // Export straight from the registry, and from the pulled copy: same files as the source.
    let out = other.join("out/remote/pdf-tools");
    other.ok(&["--ca-file", &ca, "export", &remote, path_str(&out)]);
    assert_eq!(
        std::fs::read(out.join("SKILL.md")).unwrap(),
        std::fs::read(skill.join("SKILL.md")).unwrap()
    );
    let local_out = other.join("out/local");
    other.ok(&["export", "--local", &remote, path_str(&local_out)]);
    assert_eq!(
        std::fs::read(local_out.join("SKILL.md")).unwrap(),
        std::fs::read(skill.join("SKILL.md")).unwrap()
    );
}

#[test]
fn wrong_or_missing_credentials_fail_in_one_line_with_a_hint_and_no_secret() {
    let registry = Registry::basic_auth();
    let (user, password) = registry.credentials().unwrap();
    let sandbox = Sandbox::new();
    let remote = format!("{}/skills/x:1", registry.host());

    let run = sandbox.run(&["pull", &remote]).failure();
    assert!(run.error().contains(&registry.host()), "{run}");
    assert!(run.error().contains("no credentials"), "{run}");
    assert!(run.hint().unwrap().contains("skillport login"), "{run}");

    // login checks the password with the registry and saves nothing when it is refused.
    let wrong = "not-the-password-8d2f1c";
    let run = login(&sandbox, &[], &registry.host(), user, wrong).failure();
    assert!(
        run.error().contains(&format!(
            "wrong username or password for {}",
            registry.host()
        )),
        "{run}"
    );
    assert!(
        run.hint().is_none(),
        "no hint to run the login again\n{run}"
    );
    assert_no_secret(&run, wrong);
    assert!(!sandbox.join("home/.docker/config.json").exists(), "{run}");

    // A config that holds a wrong password (written by hand here) fails at the pull.
    let config = sandbox.join("home/.docker/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let entry =
        serde_json::json!({"auths": {registry.host(): {"username": user, "password": wrong}}});
    std::fs::write(&config, entry.to_string()).unwrap();
    let run = sandbox.run(&["pull", &remote]).failure();
    assert!(run.error().contains("401 unauthorized"), "{run}");
    assert!(run.error().contains(&remote), "names the reference\n{run}");
    assert!(run.hint().is_some(), "{run}");
    assert_no_secret(&run, wrong);
    assert_no_secret(&run, password);
    assert_eq!(
        run.stderr.lines().count(),
        2,
        "one error line and one hint\n{run}"
    );
}

#[test]
fn tls_without_the_ca_and_unknown_tags_say_what_to_do() {
    let registry = Registry::tls();
    let sandbox = Sandbox::new();
    let run = sandbox
        .run(&["resolve", &format!("{}/skills/x:1", registry.host())])
        .failure();
    assert!(run.hint().is_some_and(|h| h.contains("--ca-file")), "{run}");
    // One error line: the registry named once, the TLS reason once, no log line before it.
    assert_eq!(
        run.error(),
        format!(
            "resolving {}/skills/x:1: TLS: invalid peer certificate: UnknownIssuer",
            registry.host()
        ),
        "{run}"
    );
    assert!(run.stderr.starts_with("error: "), "{run}");

    let ca = path_str(registry.ca_file().unwrap()).to_owned();
    let run = sandbox
        .run(&[
            "--ca-file",
            &ca,
            "resolve",
            &format!("{}/skills/x:nope", registry.host()),
        ])
        .failure();
    assert!(run.error().contains("not found"), "{run}");
    assert!(run.hint().unwrap().contains("skillport tags"), "{run}");

    // Without a tag, the error says latest was tried.
    let bare = format!("{}/skills/x", registry.host());
    let run = sandbox.run(&["--ca-file", &ca, "pull", &bare]).failure();
    assert!(
        run.error()
            .contains(&format!("{bare}:latest (no tag given)")),
        "{run}"
    );
    // Without a registry, the example keeps what was written.
    let run = sandbox.run(&["pull", "skills/x:1"]).failure();
    assert!(
        run.error().contains("e.g. registry.example.com/skills/x:1"),
        "{run}"
    );

    // The CA in certs.d/<host:port>/ under the user's config folder: trusted without a flag.
    let trust = sandbox.join(&format!(
        "home/.config/skillport/certs.d/{}",
        registry.host()
    ));
    std::fs::create_dir_all(&trust).unwrap();
    std::fs::copy(registry.ca_file().unwrap(), trust.join("ca.crt")).unwrap();
    let run = sandbox
        .run(&["resolve", &format!("{}/skills/x:nope", registry.host())])
        .failure();
    assert!(
        run.error().contains("not found"),
        "TLS passed, the tag is unknown\n{run}"
    );
    std::fs::remove_dir_all(&trust).unwrap();

    // --insecure reaches it without the CA.
    let skill = write_minimal_skill(sandbox.path(), "x");
    sandbox.build(&skill, "x:1");
    let remote = format!("{}/skills/x:1", registry.host());
    sandbox.ok(&["--insecure", "push", "x:1", &remote]);
}

#[test]
fn push_needs_a_registry_and_two_authfiles_serve_two_registries() {
    let first = Registry::basic_auth();
    let second = Registry::basic_auth();
    let sandbox = Sandbox::new();
    let skill = write_minimal_skill(sandbox.path(), "x");
    sandbox.build(&skill, "x:1");

    let run = sandbox.run(&["push", "x:1"]).failure();
    assert!(run.error().contains("names no registry"), "{run}");

    let a = first.docker_config(&sandbox.join("a"));
    let b = second.docker_config(&sandbox.join("b"));
    for registry in [&first, &second] {
        let remote = format!("{}/skills/x:1", registry.host());
        sandbox.ok(&[
            "--authfile",
            path_str(&a),
            "--authfile",
            path_str(&b),
            "push",
            "x:1",
            &remote,
        ]);
    }
    // With only the first registry's file, the second refuses.
    let run = sandbox
        .run(&[
            "--authfile",
            path_str(&a),
            "resolve",
            &format!("{}/skills/x:1", second.host()),
        ])
        .failure();
    assert!(run.error().contains("no credentials"), "{run}");
}

#[test]
fn warnings_are_plain_text_when_stderr_is_not_a_terminal() {
    let registry = Registry::plain();
    let sandbox = Sandbox::new();
    // An entry with an empty `auth` is warned about, not used.
    let authfile = sandbox.join("config.json");
    let entry = serde_json::json!({"auths": {registry.host(): {"auth": ""}}});
    std::fs::write(&authfile, entry.to_string()).unwrap();
    let run = sandbox
        .run(&[
            "--authfile",
            path_str(&authfile),
            "resolve",
            &format!("{}/skills/none:1", registry.host()),
        ])
        .failure();
    assert!(run.stderr.contains("WARN"), "a warning is logged\n{run}");
    assert!(
        !run.stderr.contains('\u{1b}'),
        "no escape codes in a log file\n{run}"
    );
}

/// `logout` removes one registry's entry (whatever the spelling of its key) and keeps every
/// other setting; a second logout has nothing to remove and says so.
#[test]
fn logout_removes_one_registry_and_keeps_the_rest() {
    let sandbox = Sandbox::new();
    let config = sandbox.join("home/.docker/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let original = serde_json::json!({
        "auths": {
            "https://registry.example.com/v1/": {"auth": "dTpw"},
            "other.example.com": {"auth": "dTpx"},
        },
        "credHelpers": {"ecr.example.com": "ecr-login"},
    });
    std::fs::write(&config, original.to_string()).unwrap();
    let removed = sandbox.ok(&["logout", "registry.example.com"]);
    assert!(
        removed
            .stderr
            .contains("credentials for registry.example.com removed"),
        "{removed}"
    );
    let left: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(
        left,
        serde_json::json!({
            "auths": {"other.example.com": {"auth": "dTpx"}},
            "credHelpers": {"ecr.example.com": "ecr-login"},
        })
    );
    let again = sandbox.ok(&["logout", "registry.example.com"]);
    assert!(again.stderr.contains("nothing to remove"), "{again}");
}

/// `login` without `--password-stdin` asks on the terminal (a pseudo-terminal from util-linux
/// `script`), echoes nothing of the password, saves it, and `--json` says where; the saved
/// credentials then work. Without a terminal it says to use `--password-stdin`.
#[test]
fn login_asks_for_the_password_on_a_terminal() {
    let registry = Registry::tls_basic_auth();
    let (user, password) = registry.credentials().unwrap();
    let sandbox = Sandbox::new();
    let ca = path_str(registry.ca_file().unwrap()).to_owned();
    let command_line = format!(
        "'{}' login {} -u {user} --ca-file '{ca}' --json",
        env!("CARGO_BIN_EXE_skillport"),
        registry.host(),
    );
    let mut script = common::tool("script", "bsdutils");
    script
        .args(["-q", "-e", "-c", &command_line, "/dev/null"])
        .env("HOME", sandbox.join("home"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = script.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // After the prompt is up: typed ahead, a terminal in canonical mode still delivers it.
    std::thread::sleep(std::time::Duration::from_millis(500));
    stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!("Password for {user} at {}", registry.host())),
        "{text}"
    );
    assert!(!text.contains(password), "the password was echoed:\n{text}");
    assert!(
        text.contains("\"config\":"),
        "--json names the file:\n{text}"
    );
    let saved = sandbox.join("home/.docker/config.json");
    assert!(saved.is_file(), "{text}");

    let no_terminal = sandbox
        .bare(&["login", &registry.host(), "-u", user])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(no_terminal.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&no_terminal.stderr).contains("pass --password-stdin"),
        "{no_terminal:?}"
    );
}

/// `copy` between two TLS registries with different users (one authfile each), and within one
/// registry to another repository: the digest stays, every blob arrives (a pull verifies them),
/// and nothing goes through the local store.
#[test]
fn copy_moves_an_image_between_registries_with_different_credentials() {
    use skillport_testkit::RegistryOptions;
    let first = Registry::start(RegistryOptions {
        tls: true,
        basic_auth: Some(("alice".into(), "alice-copy-secret-1".into())),
        ..RegistryOptions::default()
    });
    let second = Registry::start(RegistryOptions {
        tls: true,
        basic_auth: Some(("bob".into(), "bob-copy-secret-2".into())),
        ..RegistryOptions::default()
    });
    let sandbox = Sandbox::new();
    let first_auth = first.docker_config(&sandbox.join("auth-first"));
    let second_auth = second.docker_config(&sandbox.join("auth-second"));
    let skill = write_minimal_skill(sandbox.path(), "copied");
    let digest = sandbox.build(&skill, "copied:1");
    let flags = [
        "--ca-file",
        path_str(first.ca_file().unwrap()),
        "--ca-file",
        path_str(second.ca_file().unwrap()),
        "--authfile",
        path_str(&first_auth),
        "--authfile",
        path_str(&second_auth),
    ];
    let with = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(flags);
        sandbox.run(&all)
    };
    let source = format!("{}/skills/copied:1", first.host());
    with(&["push", "copied:1", &source]).success();
    let store_before = common::tree(&sandbox.store());

    let target = format!("{}/mirror/copied:1", second.host());
    let copied = with(&["copy", &source, &target, "--json"]).success();
    assert_eq!(copied.json()["digest"], digest.as_str(), "{copied}");
    let resolved = with(&["resolve", &target]).success();
    assert_eq!(resolved.stdout.trim(), digest);
    let within = format!("{}/other/copied:2", second.host());
    with(&["copy", &target, &within]).success();
    assert_eq!(with(&["resolve", &within]).success().stdout.trim(), digest);
    assert_eq!(
        common::tree(&sandbox.store()),
        store_before,
        "copy went through the store"
    );
    // `manifest` prints the target's index as served: it hashes to the digest.
    let served = with(&["manifest", &target]).success();
    let saved = sandbox.join("served.json");
    std::fs::write(&saved, served.stdout.as_bytes()).unwrap();
    assert_eq!(
        format!("sha256:{}", common::sha256_files(&[saved])[0]),
        digest
    );
    let config: serde_json::Value = with(&["config", &target]).success().json();
    assert_eq!(config["os"], "linux", "{config}");
    let pulled = with(&["pull", &within]).success();
    assert_eq!(pulled.stdout.trim(), digest, "{pulled}");
    for secret in ["alice-copy-secret-1", "bob-copy-secret-2"] {
        assert!(!copied.stderr.contains(secret) && !copied.stdout.contains(secret));
    }
}

/// A real credential store: Debian's docker-credential-pass over `pass` and a fresh GnuPG key in
/// the sandbox's HOME. The agent the key brings up is stopped when the test ends.
struct PassStore {
    home: std::path::PathBuf,
}

impl PassStore {
    fn new(home: &std::path::Path) -> PassStore {
        let gnupg = home.join(".gnupg");
        std::fs::create_dir_all(&gnupg).unwrap();
        std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).unwrap();
        let store = PassStore {
            home: home.to_owned(),
        };
        let params = "%no-protection\nKey-Type: EdDSA\nKey-Curve: ed25519\nSubkey-Type: ECDH\n\
                      Subkey-Curve: cv25519\nName-Real: skillport test\n\
                      Name-Email: test@skillport.invalid\nExpire-Date: 0\n%commit\n";
        std::fs::write(home.join("key-params"), params).unwrap();
        let key_params = path_str(&home.join("key-params")).to_owned();
        store.run("gpg", "gnupg", &["--batch", "--gen-key", &key_params], "");
        store.run("pass", "pass", &["init", "test@skillport.invalid"], "");
        store
    }

    fn run(&self, tool: &str, package: &str, args: &[&str], stdin: &str) -> String {
        let mut command = common::tool(tool, package);
        command
            .args(args)
            .env("HOME", &self.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{tool} {args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// What docker-credential-pass holds for `host`.
    fn get(&self, host: &str) -> Value {
        serde_json::from_str(&self.run(
            "docker-credential-pass",
            "golang-docker-credential-helpers",
            &["get"],
            host,
        ))
        .unwrap()
    }
}

impl Drop for PassStore {
    fn drop(&mut self) {
        let _ = std::process::Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("HOME", &self.home)
            .status();
    }
}

/// With `credsStore` set, as docker sets it on a desktop, `login` hands the password to the real
/// docker-credential-pass and writes none into config.json; pushing then reads it back through
/// the helper, and `logout` erases it there.
#[test]
fn login_and_logout_use_the_configured_credential_store() {
    let registry = Registry::tls_basic_auth();
    let (user, password) = registry.credentials().unwrap();
    let sandbox = Sandbox::new();
    let home = sandbox.join("home");
    let pass = PassStore::new(&home);
    let config = home.join(".docker/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, r#"{"credsStore": "pass"}"#).unwrap();
    let ca = path_str(registry.ca_file().unwrap()).to_owned();
    let host = registry.host();

    let run = login(&sandbox, &["--ca-file", &ca], &host, user, password);
    assert!(run.status.success(), "{run}");
    assert_no_secret(&run, password);
    assert!(
        run.stderr.contains(&format!(
            "saved in docker-credential-pass (credsStore in {})",
            config.display()
        )),
        "{run}"
    );
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(!written.contains(password), "{written}");
    let held = pass.get(&host);
    assert_eq!(held["Username"], user);
    assert_eq!(held["Secret"], password);

    let skill = write_minimal_skill(sandbox.path(), "pdf-tools");
    sandbox.build(&skill, "pdf-tools:1.0.0");
    let remote = format!("{host}/skills/pdf-tools:1.0.0");
    sandbox.ok(&["push", "--ca-file", &ca, "pdf-tools:1.0.0", &remote]);

    let out = sandbox.ok(&["logout", &host]);
    assert!(
        out.stderr.contains("removed from docker-credential-pass"),
        "{out}"
    );
    assert_eq!(pass.get(&host)["Secret"], "", "erased from the store");
    let refused = sandbox
        .run(&["push", "--ca-file", &ca, "pdf-tools:1.0.0", &remote])
        .failure();
    assert!(refused.error().contains("401"), "{refused}");
}
