// `skillport login`: store a password the way `docker login` does — with the credential helper
// the Docker config.json names for the registry (`credHelpers`, else `credsStore`), or in the
// file itself when it names none.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize as _;
use serde_json::{Map, Value};

use super::file::{is_helper_name, is_legacy, json_reason};
use super::helper;
use super::name::{DOCKER_HUB, DOCKER_HUB_KEY, helper_server_url, host_of, normalize_registry};
use super::{AuthError, DEFAULT_HELPER_TIMEOUT, HelperSetting, Secret};

/// Where `login` kept a credential, or where `logout` removed one from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialStore {
    /// `auths` in the config file itself.
    File(PathBuf),
    /// `docker-credential-<helper>`, which `setting` (`credsStore`, `credHelpers["host"]`) in
    /// `file` names for the registry.
    Helper {
        helper: String,
        setting: String,
        file: PathBuf,
    },
}

impl fmt::Display for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialStore::File(path) => write!(f, "{}", path.display()),
            CredentialStore::Helper {
                helper,
                setting,
                file,
            } => write!(
                f,
                "docker-credential-{helper} ({setting} in {})",
                file.display()
            ),
        }
    }
}

/// Store `username`/`password` for `registry` as `docker login` would with the Docker config
/// file at `config_path`; returns where it went.
///
/// - When the file names a helper for the registry's host (`credHelpers[host]`, else
///   `credsStore`), the credential goes to `docker-credential-<helper> store` on stdin, and any
///   entry `auths` held for the registry is removed (it would shadow the helper, and a password
///   should not stay behind in the file). A path-scoped name is refused then: helpers keep one
///   credential per host.
/// - Otherwise it goes into the file:
///   the file is created if missing (its folder too, mode 0700); every other field, and every
///   other registry's entry, is kept as it was (key order may change: the file is re-serialised
///   with tabs, as docker writes it).
/// - Any entry that names the same registry (`https://reg/`, `reg`, …) is replaced by one entry
///   `auths[registry] = {"auth": base64("user:password")}`; Docker Hub is written under
///   `https://index.docker.io/v1/`, as docker writes it. A path-scoped name
///   (`reg.example.com/team-a`) is kept as given, as `podman login` writes it.
/// - The write is atomic (temporary file in the same folder, fsync, rename), mode 0600; a
///   symlinked config is followed and its target replaced, as docker does.
///
/// The password is never written anywhere but the helper's stdin or the file, and never appears
/// in an error.
pub fn login(
    config_path: &Path,
    registry: &str,
    username: &str,
    password: &Secret,
) -> Result<CredentialStore, AuthError> {
    login_with_helper_path(config_path, registry, username, password, None)
}

/// [`login`], finding helpers on `helper_path` (a `PATH`-style list) instead of `PATH`.
pub fn login_with_helper_path(
    config_path: &Path,
    registry: &str,
    username: &str,
    password: &Secret,
    helper_path: Option<&OsStr>,
) -> Result<CredentialStore, AuthError> {
    let key = normalize_registry(registry);
    let refuse = |reason: &str| AuthError::Login {
        registry: registry.trim().to_owned(),
        reason: reason.to_owned(),
    };
    if key.is_empty() {
        return Err(refuse("the registry name is empty"));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse(
            "the registry name contains spaces or control characters",
        ));
    }
    if username.is_empty() {
        return Err(refuse("the username is empty"));
    }
    if username.contains(':') {
        return Err(refuse(
            "the username contains ':', which basic auth cannot carry",
        ));
    }
    if username.chars().any(char::is_control) {
        return Err(refuse("the username contains control characters"));
    }
    if password.is_empty() {
        return Err(refuse("the password is empty"));
    }

    let path = follow_symlink(config_path)?;
    let mut root = read_config(&path)?;
    if let Some((helper, setting)) = configured_helper(&root, &key) {
        let host = host_of(&key);
        if host != key {
            return Err(refuse(&format!(
                "{setting} in {} hands {host} to docker-credential-{helper}, which keeps one \
                 credential per registry host; log in to {host}",
                path.display()
            )));
        }
        let file = path.display().to_string();
        let at_fault = HelperSetting::new(&helper, host, &setting, &file);
        let program = at_fault.program(helper_path)?;
        helper::store(
            &program,
            &helper_server_url(host),
            username,
            password,
            helper_path,
            DEFAULT_HELPER_TIMEOUT,
        )
        .map_err(|error| at_fault.error(error))?;
        if remove_entries(&mut root, &key) {
            write_atomically(&path, &Value::Object(root))?;
        }
        return Ok(CredentialStore::Helper {
            helper,
            setting,
            file: path,
        });
    }

    let auths = root
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if auths.is_null() {
        *auths = Value::Object(Map::new());
    }
    let Value::Object(auths) = auths else {
        return Err(AuthError::Parse {
            label: path.display().to_string(),
            reason: "\"auths\" is not an object".to_owned(),
        });
    };
    auths.retain(|existing, _| normalize_registry(existing) != key);
    let written_key = if key == DOCKER_HUB {
        DOCKER_HUB_KEY.to_owned()
    } else {
        key
    };
    let pair = Secret::new(format!("{username}:{}", password.expose()));
    let mut entry = Map::new();
    entry.insert(
        "auth".to_owned(),
        Value::String(STANDARD.encode(pair.expose())),
    );
    auths.insert(written_key, Value::Object(entry));
    write_atomically(&path, &Value::Object(root))?;
    Ok(CredentialStore::File(path))
}

/// Removes `registry`'s credential as `docker logout` would: from the helper the Docker config at
/// `config_path` names for it (`docker-credential-<helper> erase`), and its entries from the
/// file (however their key is written: `https://host/v1/`, `host`), keeping every other setting.
/// Returns where there was one; a file without it is left untouched.
pub fn logout(config_path: &Path, registry: &str) -> Result<Vec<CredentialStore>, AuthError> {
    logout_with_helper_path(config_path, registry, None)
}

/// [`logout`], finding helpers on `helper_path` (a `PATH`-style list) instead of `PATH`.
pub fn logout_with_helper_path(
    config_path: &Path,
    registry: &str,
    helper_path: Option<&OsStr>,
) -> Result<Vec<CredentialStore>, AuthError> {
    let key = normalize_registry(registry);
    let path = follow_symlink(config_path)?;
    let mut root = read_config(&path)?;
    let mut removed = Vec::new();
    if let Some((helper, setting)) = configured_helper(&root, &key) {
        let host = host_of(&key);
        let file = path.display().to_string();
        let at_fault = HelperSetting::new(&helper, host, &setting, &file);
        let program = at_fault.program(helper_path)?;
        let erased = helper::erase(
            &program,
            &helper_server_url(host),
            helper_path,
            DEFAULT_HELPER_TIMEOUT,
        )
        .map_err(|error| at_fault.error(error))?;
        if erased {
            removed.push(CredentialStore::Helper {
                helper,
                setting,
                file: path.clone(),
            });
        }
    }
    if remove_entries(&mut root, &key) {
        write_atomically(&path, &Value::Object(root))?;
        removed.push(CredentialStore::File(path));
    }
    Ok(removed)
}

/// Removes every `auths` entry naming the registry `key`; whether there was one.
fn remove_entries(root: &mut Map<String, Value>, key: &str) -> bool {
    let Some(Value::Object(auths)) = root.get_mut("auths") else {
        return false;
    };
    let before = auths.len();
    auths.retain(|existing, _| normalize_registry(existing) != key);
    auths.len() != before
}

/// The path `login` writes: a symlink's target, so dotfile managers keep their link.
fn follow_symlink(path: &Path) -> Result<PathBuf, AuthError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(|source| AuthError::Write {
                path: path.to_owned(),
                source,
            })
        }
        _ => Ok(path.to_owned()),
    }
}

fn read_config(path: &Path) -> Result<Map<String, Value>, AuthError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(source) => {
            return Err(AuthError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let parse_error = |reason: String| AuthError::Parse {
        label: path.display().to_string(),
        reason,
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    // Never overwrite a file we cannot read back: it may hold settings we would lose.
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(root)) if is_legacy(&root) => Err(parse_error(
            "this is a legacy .dockercfg file, not a config.json".to_owned(),
        )),
        Ok(Value::Object(root)) => Ok(root),
        Ok(_) => Err(parse_error(
            "expected a JSON object at the top level".to_owned(),
        )),
        Err(error) => Err(parse_error(json_reason(&error))),
    }
}

/// The helper the config names for the registry `key`, as docker picks it: `credHelpers[host]`,
/// else `credsStore`; with the setting's name.
fn configured_helper(root: &Map<String, Value>, key: &str) -> Option<(String, String)> {
    let host = host_of(key);
    if let Some(Value::Object(helpers)) = root.get("credHelpers") {
        for (raw_key, helper) in helpers {
            if let Some(helper) = helper.as_str()
                && is_helper_name(helper)
                && normalize_registry(raw_key) == host
            {
                return Some((helper.to_owned(), format!("credHelpers[{raw_key:?}]")));
            }
        }
    }
    match root.get("credsStore") {
        Some(Value::String(store)) if is_helper_name(store) => {
            Some((store.clone(), "credsStore".to_owned()))
        }
        _ => None,
    }
}

fn write_atomically(path: &Path, root: &Value) -> Result<(), AuthError> {
    let write_error = |source: io::Error| AuthError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    create_private_dir(dir).map_err(|source| AuthError::Write {
        path: dir.to_owned(),
        source,
    })?;

    let mut bytes = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(
        &mut bytes,
        serde_json::ser::PrettyFormatter::with_indent(b"\t"),
    );
    root.serialize(&mut serializer)
        .map_err(|error| write_error(io::Error::other(error)))?;

    let result = (|| {
        let mut temp = tempfile::Builder::new()
            .prefix(".config.json.")
            .suffix(".tmp")
            .tempfile_in(dir)?;
        set_private(temp.as_file())?;
        temp.write_all(&bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|error| error.error)?;
        // The rename is durable once the folder is synced; failing to sync it is not an error
        // worth losing a login over.
        if let Ok(folder) = fs::File::open(dir) {
            let _ = folder.sync_all();
        }
        Ok(())
    })();
    bytes.fill(0);
    result.map_err(write_error)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn set_private(file: &fs::File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_file: &fs::File) -> io::Result<()> {
    Ok(())
}
