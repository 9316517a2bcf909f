//! The fixture for `tests/git.rs`: a repository built with the `git` CLI, served by
//! `git daemon` and by `git http-backend` behind a small Python server (HTTPS with basic auth,
//! and plain HTTP without), all on 127.0.0.1 and gone when the fixture drops.
//!
//! The repository (`skills.git`), oldest commit first:
//!
//! - `first`: `README.md`, `skills/code-review/` with `SKILL.md` (version 1), `scripts/run.sh`
//!   (mode 755), `docs/notes.md` and the link `latest -> docs/notes.md`. No ref points here.
//! - `second`: `SKILL.md` version 2; tags `v2` (lightweight) and `release-2` (annotated).
//! - `feature` (branch, from `second`): adds `skills/code-review/FEATURE.md`.
//! - `main`: `SKILL.md` version 3, the submodule `skills/code-review/vendored`, the folder
//!   `skills/escaping/` whose `readme-link -> ../../README.md` leaves it, and
//!   `blobs/random.bin` (256 KiB that do not compress).
//! - [`HOSTILE`] branches, each one bad root tree made with `git mktree` (`..`, `.git`, a
//!   duplicate name, a chain of links that leaves the folder only once resolved on disk).
//!
//! The servers run under one Python process that reads its settings (credentials included) from
//! stdin, never argv, and exits, stopping `git daemon`, when stdin closes — when the fixture
//! drops, or when the test process dies without dropping it.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use skillport_fetch::git::{GitCredentials, GitOptions};
use skillport_registry::auth::Secret;
use skillport_testkit::TestCa;
use tempfile::TempDir;

pub const USER: &str = "skill-reader";
pub const PASSWORD: &str = "pa55-8f14e45fceea167a";
pub const TOKEN: &str = "tok-c9f0f895fb98ab91";
pub const SCRIPT: &str = "#!/bin/sh\necho reviewing\n";
pub const NOTES: &str = "Check the tests first.\n";
pub const README: &str = "# Skills\n";

pub fn skill_md(version: u32) -> String {
    format!(
        "---\nname: code-review\ndescription: Reviews code (version {version}).\n---\n\
         Review carefully.\n"
    )
}

/// The fixture's commits (and one tag object), as 40-hex SHAs.
pub struct Commits {
    pub first: String,
    pub second: String,
    pub release_tag_object: String,
    pub feature: String,
    pub main: String,
}

pub struct Fixture {
    dir: TempDir,
    ca: TestCa,
    servers: Servers,
    pub commits: Commits,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("skillport-git-test-")
            .tempdir()
            .expect("creating a temporary folder");
        let repos = dir.path().join("repos");
        let commits = build_repository(&dir.path().join("work"), &repos.join("skills.git"));
        fs::create_dir(dir.path().join("out")).unwrap();
        let ca = TestCa::new();
        let servers = Servers::start(&repos, &ca);
        Fixture {
            dir,
            ca,
            servers,
            commits,
        }
    }

    /// An empty folder to fetch into; tests check that failures leave it empty.
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// A path in the fixture's folder outside [`Fixture::out`], for secrets and such.
    pub fn out_of_tree(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn git_url(&self) -> String {
        format!("git://127.0.0.1:{}/skills.git", self.servers.ports.git)
    }

    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}/skills.git", self.servers.ports.https)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/skills.git", self.servers.ports.http)
    }

    pub fn ca_file(&self) -> &Path {
        self.ca.ca_file()
    }

    /// Options trusting the fixture's CA.
    pub fn tls_options(&self) -> GitOptions {
        GitOptions {
            timeout: Duration::from_secs(30),
            ca_files: vec![self.ca_file().to_path_buf()],
            ..GitOptions::default()
        }
    }
}

impl Fixture {
    /// The HTTPS server's user and password, bound to its host and port.
    pub fn credentials(&self) -> GitCredentials {
        GitCredentials::new(
            USER,
            Secret::new(PASSWORD),
            &format!("127.0.0.1:{}", self.servers.ports.https),
        )
        .unwrap()
    }

    /// The `host` key of a Secret for the HTTPS server.
    pub fn https_host(&self) -> String {
        format!("127.0.0.1:{}", self.servers.ports.https)
    }
}

/// `git` with no system or user configuration and a fixed identity. Panics, saying what to
/// install, when git is missing.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = git_command(dir, args)
        .output()
        .unwrap_or_else(|err| panic!("{}", missing_git(&err)));
    assert!(
        output.status.success(),
        "git {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn git_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Skillport Test")
        .env("GIT_AUTHOR_EMAIL", "test@skillport.invalid")
        .env("GIT_COMMITTER_NAME", "Skillport Test")
        .env("GIT_COMMITTER_EMAIL", "test@skillport.invalid")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    command
}

fn missing_git(err: &std::io::Error) -> String {
    format!("running `git` failed ({err}): the git tests need git (Debian package `git`)")
}

/// [`git`] with `input` on stdin.
fn git_with_input(dir: &Path, args: &[&str], input: &str) -> String {
    let mut child = git_command(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{}", missing_git(&err)));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "git {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn write(path: &Path, content: impl AsRef<[u8]>) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn build_repository(work: &Path, bare: &Path) -> Commits {
    fs::create_dir_all(work).unwrap();
    git(work, &["init", "--quiet", "--initial-branch=main"]);
    let skill = work.join("skills/code-review");

    write(&work.join("README.md"), README);
    write(&skill.join("SKILL.md"), skill_md(1));
    write(&skill.join("scripts/run.sh"), SCRIPT);
    fs::set_permissions(
        skill.join("scripts/run.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    write(&skill.join("docs/notes.md"), NOTES);
    std::os::unix::fs::symlink("docs/notes.md", skill.join("latest")).unwrap();
    git(work, &["add", "--all"]);
    git(work, &["commit", "--quiet", "--message=first"]);
    let first = git(work, &["rev-parse", "HEAD"]);

    write(&skill.join("SKILL.md"), skill_md(2));
    git(work, &["commit", "--quiet", "--all", "--message=second"]);
    let second = git(work, &["rev-parse", "HEAD"]);
    git(work, &["tag", "v2"]);
    git(
        work,
        &["tag", "--annotate", "--message=Release 2", "release-2"],
    );
    let release_tag_object = git(work, &["rev-parse", "release-2"]);

    git(work, &["checkout", "--quiet", "-b", "feature"]);
    write(&skill.join("FEATURE.md"), "feature\n");
    git(work, &["add", "--all"]);
    git(work, &["commit", "--quiet", "--message=feature"]);
    let feature = git(work, &["rev-parse", "HEAD"]);
    git(work, &["checkout", "--quiet", "main"]);

    write(&skill.join("SKILL.md"), skill_md(3));
    write(&work.join("skills/escaping/SKILL.md"), skill_md(3));
    std::os::unix::fs::symlink("../../README.md", work.join("skills/escaping/readme-link"))
        .unwrap();
    let mut random = vec![0_u8; 256 * 1024];
    fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut random))
        .unwrap();
    write(&work.join("blobs/random.bin"), random);
    git(work, &["add", "--all"]);
    let gitlink = format!("160000,{first},skills/code-review/vendored");
    git(work, &["update-index", "--add", "--cacheinfo", &gitlink]);
    git(work, &["commit", "--quiet", "--message=main"]);
    let main = git(work, &["rev-parse", "HEAD"]);

    git(
        work.parent().unwrap(),
        &[
            "clone",
            "--quiet",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    add_hostile_branches(bare);
    Commits {
        first,
        second,
        release_tag_object,
        feature,
        main,
    }
}

/// Branches whose root tree no `git add` would make, written with `git mktree`: what a
/// hostile server could send.
pub const HOSTILE: [(&str, &str); 4] = [
    ("hostile-dotdot", "the name is empty, . or .."),
    ("hostile-dotgit", ".git entries are not allowed"),
    ("hostile-duplicate", "it appears twice"),
    (
        "hostile-link-chain",
        "does not resolve to a file inside the skill",
    ),
];

fn add_hostile_branches(bare: &Path) {
    let text = git_with_input(bare, &["hash-object", "-w", "--stdin"], "text\n");
    let dot = git_with_input(bare, &["hash-object", "-w", "--stdin"], ".");
    let up = git_with_input(bare, &["hash-object", "-w", "--stdin"], "d/..");
    let trees = [
        format!("100644 blob {text}\t..\n"),
        format!("100644 blob {text}\t.git\n"),
        format!("100644 blob {text}\tSKILL.md\n100644 blob {text}\tSKILL.md\n"),
        // By text `e -> d/..` stays inside; on disk `d` is the skill folder itself.
        format!("120000 blob {dot}\td\n120000 blob {up}\te\n"),
    ];
    for ((branch, _), entries) in HOSTILE.iter().zip(trees) {
        let tree = git_with_input(bare, &["mktree"], &entries);
        let commit = git(bare, &["commit-tree", &tree, "-m", branch]);
        git(
            bare,
            &["update-ref", &format!("refs/heads/{branch}"), &commit],
        );
    }
}

#[derive(serde::Deserialize)]
struct Ports {
    git: u16,
    https: u16,
    http: u16,
}

struct Servers {
    process: Child,
    stdin: Option<ChildStdin>,
    ports: Ports,
}

impl Servers {
    fn start(repos: &Path, ca: &TestCa) -> Servers {
        let mut process = Command::new("python3")
            .arg("-c")
            .arg(SERVER_PY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "running `python3` failed ({err}): the git HTTP tests need python3 \
                     (Debian package `python3`)"
                )
            });
        let mut stdin = process.stdin.take().unwrap();
        let settings = serde_json::json!({
            "root": repos,
            "users": [[USER, PASSWORD], [skillport_fetch::git::TOKEN_USERNAME, TOKEN]],
            "cert": ca.server_cert_file(),
            "key": ca.server_key_file(),
        });
        writeln!(stdin, "{settings}").unwrap();
        let mut line = String::new();
        BufReader::new(process.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ports: Ports = serde_json::from_str(&line).unwrap_or_else(|err| {
            let _ = process.kill();
            panic!("the git test servers did not start ({err}); output: {line:?}")
        });
        Servers {
            process,
            stdin: Some(stdin),
            ports,
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        // EOF on stdin: the script stops git daemon and exits.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The servers. Settings come as one JSON line on stdin; the ports go out as one JSON line on
/// stdout; the script runs until stdin closes.
const SERVER_PY: &str = r#"
import base64, json, os, socket, ssl, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

settings = json.loads(sys.stdin.readline())
ROOT = settings["root"]
ALLOWED = {"Basic " + base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in settings["users"]}
GIT_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": ROOT,
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.backend()

    def do_POST(self):
        self.backend()

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status, headers, payload):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def backend(self):
        body = self.read_body()
        if self.path.startswith("/moved/"):
            return self.reply(301, [("Location", self.path[len("/moved"):])], b"")
        if self.server.auth and self.headers.get("Authorization") not in ALLOWED:
            return self.reply(401, [("WWW-Authenticate", 'Basic realm="skillport-test"')], b"")
        path, _, query = self.path.partition("?")
        env = dict(GIT_ENV, GIT_PROJECT_ROOT=ROOT, GIT_HTTP_EXPORT_ALL="1",
                   REQUEST_METHOD=self.command, PATH_INFO=path, QUERY_STRING=query,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   CONTENT_LENGTH=str(len(body)), REMOTE_ADDR="127.0.0.1", REMOTE_USER="test")
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        for separator in (b"\r\n\r\n", b"\n\n"):
            head, found, payload = out.partition(separator)
            if found:
                break
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.reply(status, headers, payload)

def serve(auth, tls):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.auth = auth
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(settings["cert"], settings["key"])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]

def git_daemon():
    for _ in range(10):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        daemon = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", "--informative-errors",
             f"--base-path={ROOT}", "--listen=127.0.0.1", f"--port={port}",
             "--enable=upload-pack"],
            env=GIT_ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline and daemon.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return daemon, port
            except OSError:
                time.sleep(0.02)
        daemon.kill()
        daemon.wait()
    sys.exit("git daemon did not start")

daemon, git_port = git_daemon()
try:
    ports = {"git": git_port, "https": serve(True, True), "http": serve(False, False)}
    print(json.dumps(ports), flush=True)
    sys.stdin.read()
finally:
    daemon.terminate()
    daemon.wait()
"#;
