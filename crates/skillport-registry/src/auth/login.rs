// `skillport login`: store a password in a Docker config.json the way `docker login` does when
// no credential store is configured.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize as _;
use serde_json::{Map, Value};

use super::file::{is_legacy, json_reason};
use super::name::{DOCKER_HUB, DOCKER_HUB_KEY, host_of, normalize_registry};
use super::{AuthError, Secret};

/// Store `username`/`password` for `registry` in the Docker config file at `config_path`.
///
/// - The file is created if missing (its folder too, mode 0700); every other field, and every
///   other registry's entry, is kept as it was (key order may change: the file is re-serialised
///   with tabs, as docker writes it).
/// - Any entry that names the same registry (`https://reg/`, `reg`, …) is replaced by one entry
///   `auths[registry] = {"auth": base64("user:password")}`; Docker Hub is written under
///   `https://index.docker.io/v1/`, as docker writes it. A path-scoped name
///   (`reg.example.com/team-a`) is kept as given, as `podman login` writes it.
/// - The write is atomic (temporary file in the same folder, fsync, rename), mode 0600; a
///   symlinked config is followed and its target replaced, as docker does.
/// - When `credHelpers` sends this registry to a helper, nothing is written: docker and podman
///   would ask the helper first and never read the stored password.
///
/// The password is never written anywhere but the file, and never appears in an error.
pub fn login(
    config_path: &Path,
    registry: &str,
    username: &str,
    password: &Secret,
) -> Result<(), AuthError> {
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
    refuse_if_helper_configured(&root, &key, &path, registry)?;

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
    write_atomically(&path, &Value::Object(root))
}

/// Removes `registry`'s entry from the Docker config at `config_path` (however its key is
/// written: `https://host/v1/`, `host`), keeping every other setting. Returns whether there was
/// one; a file without it is left untouched.
pub fn logout(config_path: &Path, registry: &str) -> Result<bool, AuthError> {
    let key = normalize_registry(registry);
    let path = follow_symlink(config_path)?;
    let mut root = read_config(&path)?;
    let Some(Value::Object(auths)) = root.get_mut("auths") else {
        return Ok(false);
    };
    let before = auths.len();
    auths.retain(|existing, _| normalize_registry(existing) != key);
    if auths.len() == before {
        return Ok(false);
    }
    write_atomically(&path, &Value::Object(root))?;
    Ok(true)
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

fn refuse_if_helper_configured(
    root: &Map<String, Value>,
    key: &str,
    path: &Path,
    registry: &str,
) -> Result<(), AuthError> {
    let Some(Value::Object(helpers)) = root.get("credHelpers") else {
        return Ok(());
    };
    let host = host_of(key);
    for (raw_key, helper) in helpers {
        if let Some(helper) = helper.as_str()
            && normalize_registry(raw_key) == host
        {
            return Err(AuthError::Login {
                registry: registry.trim().to_owned(),
                reason: format!(
                    "credHelpers[{raw_key:?}] in {} hands it to docker-credential-{helper}, \
                     which is asked before any stored password",
                    path.display()
                ),
            });
        }
    }
    Ok(())
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
