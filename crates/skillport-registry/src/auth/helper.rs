// Docker credential helpers: `docker-credential-<name> get`, the server URL on stdin, JSON
// `{"ServerURL","Username","Secret"}` on stdout — the protocol of docker-credential-helpers'
// `client.Get`; `store` takes that JSON on stdin and `erase` the server URL (`client.Store`,
// `client.Erase`), as `docker login` / `docker logout` use them. Nothing secret goes in argv or
// the environment; secrets travel through pipes only.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Credential, Secret};

/// What helpers print (with exit status 1) when they hold nothing for the server: docker treats
/// it as "no credentials", not as a failure.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// The username a helper answers with when `Secret` is an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// At most this much of each output is kept; the rest is drained and dropped.
const MAX_OUTPUT: u64 = 1024 * 1024;

/// At most this much of a helper's message goes into an error.
const MAX_MESSAGE_CHARS: usize = 200;

pub(crate) enum HelperError {
    /// No executable `docker-credential-<name>` on the search path.
    Missing,
    /// It ran and failed; the text is safe to show (see `safe_message`).
    Failed(String),
}

/// Find `docker-credential-<helper>` on `search_path` (a `PATH`-style list). Relative entries
/// are skipped, as Go's `exec.LookPath` (which docker uses) refuses them.
pub(crate) fn find_program(helper: &str, search_path: &OsStr) -> Option<PathBuf> {
    let name = format!("docker-credential-{helper}");
    std::env::split_paths(search_path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(&name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Ask `program` for the credential of `server_url`.
///
/// `Ok(None)` when the helper holds nothing for it. `is_known_secret` tells whether a line of the
/// helper's error output contains a secret we already hold; such a line is never shown.
pub(crate) fn get(
    program: &Path,
    server_url: &str,
    search_path: Option<&OsStr>,
    timeout: Duration,
    is_known_secret: &dyn Fn(&str) -> bool,
) -> Result<Option<Credential>, HelperError> {
    let mut output = run(program, "get", server_url.as_bytes(), search_path, timeout)?;
    if output.status.success() {
        let credential = parse_answer(&output.stdout);
        output.stdout.fill(0);
        return credential.map_err(HelperError::Failed);
    }
    if output.is_not_found() {
        output.stdout.fill(0);
        return Ok(None);
    }
    Err(HelperError::Failed(output.failure(is_known_secret)))
}

/// Hand `program` the credential for `server_url` to keep (`docker login` with a helper).
pub(crate) fn store(
    program: &Path,
    server_url: &str,
    username: &str,
    secret: &Secret,
    search_path: Option<&OsStr>,
    timeout: Duration,
) -> Result<(), HelperError> {
    let mut input = serde_json::to_vec(&serde_json::json!({
        "ServerURL": server_url,
        "Username": username,
        "Secret": secret.expose(),
    }))
    .map_err(|error| HelperError::Failed(error.to_string()))?;
    let output = run(program, "store", &input, search_path, timeout);
    input.fill(0);
    let mut output = output?;
    output.stdout.fill(0);
    if output.status.success() {
        return Ok(());
    }
    Err(HelperError::Failed(
        output.failure(&|line| line.contains(secret.expose())),
    ))
}

/// Ask `program` to forget the credential for `server_url` (`docker logout` with a helper).
/// `Ok(false)` when it held none.
pub(crate) fn erase(
    program: &Path,
    server_url: &str,
    search_path: Option<&OsStr>,
    timeout: Duration,
) -> Result<bool, HelperError> {
    let mut output = run(
        program,
        "erase",
        server_url.as_bytes(),
        search_path,
        timeout,
    )?;
    if output.status.success() {
        return Ok(true);
    }
    if output.is_not_found() {
        return Ok(false);
    }
    Err(HelperError::Failed(output.failure(&|_| false)))
}

struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Output {
    /// docker-credential-helpers print errors on stdout; some helpers use stderr.
    fn is_not_found(&self) -> bool {
        [&self.stdout, &self.stderr]
            .iter()
            .any(|bytes| String::from_utf8_lossy(bytes).contains(NOT_FOUND))
    }

    /// The exit status and the first line of its output, unless that line may hold a secret.
    fn failure(&mut self, is_known_secret: &dyn Fn(&str) -> bool) -> String {
        let stdout = String::from_utf8_lossy(&self.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&self.stderr).into_owned();
        self.stdout.fill(0);
        let status = describe_status(self.status);
        let line = first_line(&stdout).or_else(|| first_line(&stderr));
        match line {
            Some(line) if !may_hold_secret(line) && !is_known_secret(line) => {
                format!("{status}: {}", truncate(line))
            }
            Some(_) => format!("{status} (its message is not shown: it may hold a secret)"),
            None => status,
        }
    }
}

fn run(
    program: &Path,
    action: &str,
    input: &[u8],
    search_path: Option<&OsStr>,
    timeout: Duration,
) -> Result<Output, HelperError> {
    let mut command = Command::new(program);
    command
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = search_path {
        command.env("PATH", path);
    }
    let mut child = spawn(&mut command).map_err(|error| {
        // Removed between the PATH search and the spawn.
        if error.kind() == io::ErrorKind::NotFound {
            HelperError::Missing
        } else {
            HelperError::Failed(format!("cannot start it: {error}"))
        }
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading stdin; that is its answer, not a write error.
        let _ = stdin.write_all(input);
    }
    // Both pipes are read on threads so a chatty helper never blocks on a full pipe.
    let (sender, receiver) = mpsc::channel();
    for (index, pipe) in [
        child
            .stdout
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = (&mut pipe).take(MAX_OUTPUT).read_to_end(&mut bytes);
                let _ = io::copy(&mut pipe, &mut io::sink());
            }
            let _ = sender.send((index, bytes));
        });
    }
    drop(sender);

    let deadline = Instant::now() + timeout;
    let mut outputs: [Option<Vec<u8>>; 2] = [None, None];
    let mut status = None;
    loop {
        if status.is_none() {
            status = child
                .try_wait()
                .map_err(|error| HelperError::Failed(format!("cannot wait for it: {error}")))?;
        }
        if let (Some(status), [Some(_), Some(_)]) = (status, &outputs) {
            let [stdout, stderr] = outputs.map(Option::unwrap_or_default);
            return Ok(Output {
                status,
                stdout,
                stderr,
            });
        }
        let now = Instant::now();
        if now >= deadline {
            // A grandchild may still hold the pipes; the reader threads end when it does.
            let _ = child.kill();
            let _ = child.wait();
            return Err(HelperError::Failed(format!(
                "it did not answer within {} ms",
                timeout.as_millis()
            )));
        }
        match receiver.recv_timeout((deadline - now).min(Duration::from_millis(10))) {
            Ok((index, bytes)) => outputs[index] = Some(bytes),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Spawn, retrying on ETXTBSY: a program written by this process a moment ago (tests do this)
/// can be briefly "busy" while another thread's fork still holds its write descriptor.
fn spawn(command: &mut Command) -> io::Result<std::process::Child> {
    let mut attempt = 0;
    loop {
        match command.spawn() {
            Err(error) if error.kind() == io::ErrorKind::ExecutableFileBusy && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20 * attempt));
            }
            result => return result,
        }
    }
}

fn parse_answer(stdout: &[u8]) -> Result<Option<Credential>, String> {
    // Parsed as a Value so no error message can quote the answer.
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(stdout) else {
        return Err(
            "it printed something other than a JSON credential (expected ServerURL, Username, \
             Secret)"
                .to_owned(),
        );
    };
    let username = answer.get("Username").and_then(Value::as_str);
    let secret = answer.get("Secret").and_then(Value::as_str);
    match (username, secret) {
        (_, None) => Err("its answer has no string \"Secret\"".to_owned()),
        (None, _) => Err("its answer has no string \"Username\"".to_owned()),
        (Some(_), Some("")) => Ok(None),
        (Some(TOKEN_USERNAME), Some(secret)) => {
            Ok(Some(Credential::IdentityToken(Secret::new(secret))))
        }
        (Some(username), Some(secret)) => Ok(Some(Credential::Basic {
            username: username.to_owned(),
            password: Secret::new(secret),
        })),
    }
}

fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    "it failed".to_owned()
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|line| !line.is_empty())
}

fn truncate(line: &str) -> String {
    match line.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_owned(),
    }
}

/// Whether a helper's error line might carry a credential, by its shape: JSON (a credential
/// answer printed with a failing status), or a long token-like word (mixed-case letters and
/// digits, as base64 and random tokens are; or a long hex string). A heuristic by nature:
/// lines it withholds are replaced by a note, never shown in part.
pub(crate) fn may_hold_secret(line: &str) -> bool {
    line.contains(['{', '}'])
        || line
            .split(|c: char| c.is_whitespace() || "\"'`,:;()[]<>.@".contains(c))
            .any(looks_like_token)
}

fn looks_like_token(word: &str) -> bool {
    let token_chars = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+/=_-".contains(c));
    let has_digit = word.chars().any(|c| c.is_ascii_digit());
    let mixed_case = word.chars().any(|c| c.is_ascii_lowercase())
        && word.chars().any(|c| c.is_ascii_uppercase());
    let hex = word.chars().all(|c| c.is_ascii_hexdigit());
    token_chars && has_digit && ((word.len() >= 20 && mixed_case) || (word.len() >= 32 && hex))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shaped_words_are_withheld() {
        assert!(may_hold_secret(
            "bad token AKIAx3Jq9ZpLmN0rT5vW8yB2 for user"
        ));
        assert!(may_hold_secret(
            "key 0123456789abcdef0123456789abcdef was revoked"
        ));
        assert!(may_hold_secret("{\"Secret\":\"x\"}"));
        assert!(!may_hold_secret(
            "error getting credentials: no such profile dev in /home/u/.aws/config"
        ));
        assert!(!may_hold_secret(
            "exec: docker-credential-ecr-login-v2: not found at https://api.ecr.us-east-1.amazonaws.com"
        ));
    }
}
