// Git credentials from a mounted Kubernetes Secret.
//
// A Secret mounts as a folder with one file per key (through `..data` symlinks, which reading
// follows). `kubernetes.io/basic-auth` Secrets have `username` and `password`; a token-only
// Secret has `token`. Either needs `host`: the git server(s) the credential is for
// (`git.example.com`, `git.example.com:8443` or `https://git.example.com`, comma-separated for
// several), so that a SkillSet naming another host never gets it sent there. A single file (a
// key mounted with `subPath`) cannot say a host and is refused. Values lose trailing newlines
// (`kubectl create secret --from-file` keeps the editor's one); nothing read here ever reaches
// a message.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use skillport_registry::auth::Secret;

use super::{GitCredentials, GitError};

/// The username sent with a token-only Secret. GitHub wants exactly this for app installation
/// tokens and accepts any username with a personal access token; GitLab, Gitea and Bitbucket
/// Server also ignore the username for tokens. A Secret with both `username` and `token` sends
/// its own username.
pub const TOKEN_USERNAME: &str = "x-access-token";

/// Larger files are surely not a credential (and not read into memory).
const MAX_VALUE_BYTES: u64 = 64 * 1024;

impl GitCredentials {
    /// Reads a mounted Secret: a folder with `username` and `password`, or `token` (with an
    /// optional `username`), or a single file holding a token.
    pub fn read(dir_or_file: &Path) -> Result<GitCredentials, GitError> {
        let fail = |reason: String| GitError::Credentials {
            path: dir_or_file.to_path_buf(),
            reason,
        };
        let metadata = fs::metadata(dir_or_file).map_err(|err| fail(err.to_string()))?;
        if !metadata.is_dir() {
            return Err(fail(
                "a single file cannot say which git host it is for: mount the whole Secret, \
                 with a `host` key beside `token`"
                    .into(),
            ));
        }
        let key = |name: &str| {
            read_value(&dir_or_file.join(name)).map_err(|reason| fail(format!("{name}: {reason}")))
        };
        GitCredentials::from_keys(
            key("username")?,
            key("password")?,
            key("token")?,
            key("host")?,
        )
        .map_err(fail)
    }

    /// Reads a Secret's data as the API returns it (the operator resolving git refs): the same
    /// keys and rules as [`GitCredentials::read`]. The error names the key, never its value.
    pub fn from_secret_data(
        data: &std::collections::BTreeMap<String, Vec<u8>>,
    ) -> Result<GitCredentials, String> {
        let key = |name: &str| match data.get(name) {
            None => Ok(None),
            Some(bytes) => check_value(bytes.clone())
                .map(Some)
                .map_err(|reason| format!("{name}: {reason}")),
        };
        GitCredentials::from_keys(
            key("username")?,
            key("password")?,
            key("token")?,
            key("host")?,
        )
    }

    /// Whether these credentials are for `url`: its host and port are one of [`Self::hosts`].
    /// (Over plain `http://` they are then refused, never sent.)
    pub fn is_for(&self, url: &str) -> bool {
        let Ok(url) = gix::url::parse(gix::bstr::BStr::new(url.trim())) else {
            return false;
        };
        let (Some(host), Some(port)) = (url.host(), url.port_or_default()) else {
            return false;
        };
        let wanted = format!("{}:{port}", host.to_ascii_lowercase());
        self.hosts.contains(&wanted)
    }

    fn from_keys(
        username: Option<Secret>,
        password: Option<Secret>,
        token: Option<Secret>,
        host: Option<Secret>,
    ) -> Result<GitCredentials, String> {
        let username = username.map(|name| name.expose().to_owned());
        let (username, password) = match (username, password, token) {
            (_, Some(_), Some(_)) => Err("it has both `password` and `token`; keep one"),
            (Some(username), _, _) if username.contains(':') => {
                Err("`username` holds a colon, which basic auth cannot carry")
            }
            (Some(username), Some(password), None) => Ok((username, password)),
            (None, Some(_), None) => Err("it has `password` but no `username`"),
            (username, None, Some(token)) => {
                Ok((username.unwrap_or_else(|| TOKEN_USERNAME.into()), token))
            }
            (Some(_), None, None) => Err("it has `username` but no `password`"),
            (None, None, None) => Err("it has neither `username` and `password` nor `token`"),
        }?;
        let Some(host) = host else {
            return Err(
                "it has no `host` key: add one naming the git server the credential \
                        is for (e.g. github.com, or git.example.com:8443); it is sent to that \
                        host only"
                    .into(),
            );
        };
        let hosts = parse_hosts(host.expose())?;
        Ok(GitCredentials {
            username,
            password,
            hosts,
        })
    }

    /// Credentials for `username`/`password`, bound to `hosts` (`host[:port]`, comma-separated,
    /// as the Secret's `host` key takes them).
    pub fn new(username: &str, password: Secret, hosts: &str) -> Result<GitCredentials, String> {
        GitCredentials::from_keys(
            Some(Secret::new(username)),
            Some(password),
            None,
            Some(Secret::new(hosts)),
        )
    }
}

/// The `host` key: comma-separated `host`, `host:port` or `https://host[:port]`, as
/// `host:port` in lowercase (port 443 when not given).
fn parse_hosts(text: &str) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let bare = entry
            .strip_prefix("https://")
            .unwrap_or(entry)
            .trim_end_matches('/');
        let invalid = || {
            format!(
                "`host`: {entry:?} is not a host name (want git.example.com, \
                 git.example.com:8443 or https://git.example.com)"
            )
        };
        let (name, port) = match bare.rsplit_once(':') {
            Some((name, port)) => (name, port.parse::<u16>().map_err(|_| invalid())?),
            None => (bare, 443),
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return Err(invalid());
        }
        hosts.push(format!("{}:{port}", name.to_ascii_lowercase()));
    }
    if hosts.is_empty() {
        return Err("`host` names no host".into());
    }
    Ok(hosts)
}

/// The trimmed value of one key, `None` when the file does not exist. The error never quotes
/// the content.
fn read_value(path: &Path) -> Result<Option<Secret>, &'static str> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            return Err("permission denied");
        }
        Err(_) => return Err("cannot be read"),
    };
    let mut bytes = Vec::new();
    file.take(MAX_VALUE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|_| "cannot be read (is it a folder?)")?;
    check_value(bytes).map(Some)
}

/// One key's bytes as a credential value: at most 64 KiB of UTF-8, one line, trailing newlines
/// dropped, not empty.
fn check_value(bytes: Vec<u8>) -> Result<Secret, &'static str> {
    if bytes.len() as u64 > MAX_VALUE_BYTES {
        return Err("is larger than 64 KiB: not a credential");
    }
    let text = String::from_utf8(bytes).map_err(|err| {
        // Zero what was read before it is dropped; the error owns the bytes.
        let mut bytes = err.into_bytes();
        bytes.fill(0);
        "is not UTF-8 text"
    })?;
    let value = Secret::new(text);
    let trimmed = value.expose().trim_end_matches(['\n', '\r']).len();
    let value = if trimmed == value.expose().len() {
        value
    } else {
        Secret::new(&value.expose()[..trimmed])
    };
    if value.is_empty() {
        return Err("is empty");
    }
    if value.expose().contains(['\n', '\r', '\0']) {
        return Err("holds more than one line");
    }
    Ok(value)
}
