// One credentials file, parsed: Docker config.json, podman/containers auth.json, a Kubernetes
// `.dockerconfigjson`, or a legacy `.dockercfg`.
//
// The JSON is parsed into `serde_json::Value` and walked by hand: typed deserialisation errors
// quote the offending value (`invalid type: string "…"`), and the offending value may be a
// password. Syntax errors from `Value` carry only a line and a column.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::name::{host_of, normalize_legacy_key, normalize_registry};
use super::{AuthError, Credential, Secret};

/// Standard base64 (what docker writes), padded or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Which layout a file had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFileFormat {
    /// `{"auths": {…}, "credHelpers": {…}, "credsStore": "…"}`: Docker `config.json`, podman
    /// `auth.json`, Kubernetes `.dockerconfigjson`.
    DockerConfig,
    /// The registry map without `"auths"`: `~/.dockercfg`, Kubernetes `.dockercfg` secrets.
    LegacyDockercfg,
}

/// An `auths` entry that holds a credential.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The key as the file writes it, for messages (`auths["https://index.docker.io/v1/"]`).
    pub(crate) shown: String,
    pub(crate) credential: Credential,
}

/// A `credHelpers` entry.
#[derive(Clone, Debug)]
pub(crate) struct HelperEntry {
    /// The key as the file writes it.
    pub(crate) raw_key: String,
    /// The helper name: the program is `docker-credential-<helper>`.
    pub(crate) helper: String,
}

/// One parsed credentials file.
///
/// Keys are normalised with [`normalize_registry`](super::normalize_registry) (legacy files:
/// host only). Entries without a usable credential are dropped with a warning, never an error:
/// one bad pull secret entry must not stop the pulls that do not need it.
#[derive(Clone)]
pub struct AuthFile {
    label: String,
    format: AuthFileFormat,
    entries: BTreeMap<String, Entry>,
    cred_helpers: BTreeMap<String, HelperEntry>,
    creds_store: Option<String>,
    warnings: Vec<String>,
}

enum Decoded {
    Credential(Credential),
    Empty,
    Invalid(&'static str),
}

impl AuthFile {
    /// Parse a credentials file. `label` names it in warnings, errors and credential sources:
    /// a path, or e.g. `pull secret "artifactory"`.
    ///
    /// Errors only when the file as a whole is unusable (not JSON, not an object, `auths` not
    /// an object, a Kubernetes manifest instead of the file it holds); a bad entry is a warning.
    pub fn parse(bytes: &[u8], label: impl Into<String>) -> Result<AuthFile, AuthError> {
        let mut file = AuthFile {
            label: label.into(),
            format: AuthFileFormat::DockerConfig,
            entries: BTreeMap::new(),
            cred_helpers: BTreeMap::new(),
            creds_store: None,
            warnings: Vec::new(),
        };
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            // docker itself treats an empty config.json as `{}`.
            file.warnings.push(format!("{} is empty", file.label));
            return Ok(file);
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|error| AuthError::Parse {
            label: file.label.clone(),
            reason: json_reason(&error),
        })?;
        let Value::Object(root) = value else {
            return Err(file.error("expected a JSON object at the top level"));
        };
        if root.contains_key("apiVersion") && root.contains_key("kind") {
            return Err(file.error(
                "this is a Kubernetes manifest, not the .dockerconfigjson file a Secret holds",
            ));
        }
        if is_legacy(&root) {
            file.format = AuthFileFormat::LegacyDockercfg;
            file.read_auths(&root);
        } else {
            file.read_helpers(&root);
            match root.get("auths") {
                None | Some(Value::Null) => {}
                Some(Value::Object(auths)) => {
                    if auths.is_empty() && !file.has_helpers() {
                        file.warnings.push(format!(
                            "{} has no credentials (\"auths\" is empty)",
                            file.label
                        ));
                    }
                    file.read_auths(auths);
                }
                Some(_) => return Err(file.error("\"auths\" is not an object")),
            }
        }
        file.warn_entries_behind_helpers();
        Ok(file)
    }

    /// Read and parse a file; its path is its label.
    pub fn read(path: &Path) -> Result<AuthFile, AuthError> {
        let bytes = std::fs::read(path).map_err(|source| AuthError::Read {
            path: path.to_owned(),
            source,
        })?;
        AuthFile::parse(&bytes, path.display().to_string())
    }

    /// What the file is called in messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn format(&self) -> AuthFileFormat {
        self.format
    }

    /// Problems that did not stop the parse: entries without a credential, undecodable `auth`
    /// values (named by key, never by value), duplicates, ignored helper settings.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The normalised keys of the entries that hold a credential, sorted.
    pub fn registries(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// `credHelpers`, as (normalised registry, helper name) pairs, sorted.
    pub fn cred_helpers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.cred_helpers
            .iter()
            .map(|(host, entry)| (host.as_str(), entry.helper.as_str()))
    }

    /// `credsStore`, when set to a non-empty helper name.
    pub fn creds_store(&self) -> Option<&str> {
        self.creds_store.as_deref()
    }

    pub(crate) fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries
            .iter()
            .map(|(key, entry)| (key.as_str(), entry))
    }

    pub(crate) fn helper_for(&self, host: &str) -> Option<&HelperEntry> {
        self.cred_helpers.get(host)
    }

    fn has_helpers(&self) -> bool {
        self.creds_store.is_some() || !self.cred_helpers.is_empty()
    }

    fn error(&self, reason: &str) -> AuthError {
        AuthError::Parse {
            label: self.label.clone(),
            reason: reason.to_owned(),
        }
    }

    fn read_helpers(&mut self, root: &Map<String, Value>) {
        match root.get("credHelpers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(helpers)) => {
                for (raw_key, value) in helpers {
                    self.read_helper(raw_key, value);
                }
            }
            Some(_) => self.warnings.push(format!(
                "\"credHelpers\" in {} is not an object; ignored",
                self.label
            )),
        }
        match root.get("credsStore") {
            None | Some(Value::Null) => {}
            // docker: an empty credsStore means "no store".
            Some(Value::String(name)) if name.is_empty() => {}
            Some(Value::String(name)) if is_helper_name(name) => {
                self.creds_store = Some(name.clone());
            }
            Some(_) => self.warnings.push(format!(
                "\"credsStore\" in {} does not name a helper program; ignored",
                self.label
            )),
        }
    }

    fn read_helper(&mut self, raw_key: &str, value: &Value) {
        let label = &self.label;
        let Some(helper) = value.as_str().filter(|name| is_helper_name(name)) else {
            self.warnings.push(format!(
                "credHelpers[{raw_key:?}] in {label} does not name a helper program; ignored"
            ));
            return;
        };
        let key = normalize_registry(raw_key);
        if key.is_empty() {
            self.warnings
                .push(format!("credHelpers in {label} has an empty key; ignored"));
        } else if key.contains('/') {
            // Neither docker (exact host match) nor containers/image (helpers are looked up by
            // registry only) ever consults a helper for a repository path.
            self.warnings.push(format!(
                "credHelpers[{raw_key:?}] in {label} names a repository path; helpers apply to \
                 whole registries, so it is ignored"
            ));
        } else if let Some(first) = self.cred_helpers.get(&key) {
            self.warnings.push(format!(
                "duplicate entry for {key} in {label}: credHelpers[{raw_key:?}] ignored, \
                 credHelpers[{:?}] is used",
                first.raw_key
            ));
        } else {
            self.cred_helpers.insert(
                key,
                HelperEntry {
                    raw_key: raw_key.to_owned(),
                    helper: helper.to_owned(),
                },
            );
        }
    }

    /// Read the registry → entry map (`auths`, or the whole legacy file). serde_json's map
    /// iterates in key order, so which of two aliases wins is deterministic.
    fn read_auths(&mut self, auths: &Map<String, Value>) {
        let legacy = self.format == AuthFileFormat::LegacyDockercfg;
        for (raw_key, value) in auths {
            let shown = if legacy {
                format!("entry {raw_key:?}")
            } else {
                format!("auths[{raw_key:?}]")
            };
            let key = if legacy {
                normalize_legacy_key(raw_key)
            } else {
                normalize_registry(raw_key)
            };
            let label = &self.label;
            if key.is_empty() {
                self.warnings
                    .push(format!("{shown} in {label} has an empty key; ignored"));
                continue;
            }
            match decode_entry(value) {
                Decoded::Credential(credential) => {
                    if let Some(first) = self.entries.get(&key) {
                        self.warnings.push(format!(
                            "duplicate entry for {key} in {label}: {shown} ignored, {} is used",
                            first.shown
                        ));
                    } else {
                        self.entries.insert(key, Entry { shown, credential });
                    }
                }
                Decoded::Empty => {
                    // With a credential store, docker writes `{}` placeholders in `auths`: they
                    // are expected, not a mistake.
                    let helper_managed =
                        self.creds_store.is_some() || self.cred_helpers.contains_key(host_of(&key));
                    if !helper_managed {
                        self.warnings
                            .push(format!("{shown} in {label} has no credential; ignored"));
                    }
                }
                Decoded::Invalid(reason) => {
                    self.warnings
                        .push(format!("{shown} in {label} {reason}; ignored"));
                }
            }
        }
    }

    /// docker and containers/image both ask `credHelpers[registry]` before looking at `auths`,
    /// so an inline credential for the same registry is dead weight: say so.
    fn warn_entries_behind_helpers(&mut self) {
        for entry in self.entries.iter().filter_map(|(key, entry)| {
            self.cred_helpers
                .get(host_of(key))
                .map(|helper| (entry, helper))
        }) {
            let (entry, helper) = entry;
            self.warnings.push(format!(
                "{} in {} is not used: credHelpers[{:?}] hands that registry to \
                 docker-credential-{}",
                entry.shown, self.label, helper.raw_key, helper.helper
            ));
        }
    }
}

impl fmt::Debug for AuthFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The entries' credentials redact themselves, but there is no reason to show them.
        f.debug_struct("AuthFile")
            .field("label", &self.label)
            .field("format", &self.format)
            .field("registries", &self.entries.keys().collect::<Vec<_>>())
            .field("cred_helpers", &self.cred_helpers().collect::<Vec<_>>())
            .field("creds_store", &self.creds_store)
            .field("warnings", &self.warnings.len())
            .finish()
    }
}

impl fmt::Display for AuthFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.label)?;
        let keys: Vec<&str> = self.registries().collect();
        if keys.is_empty() {
            f.write_str("no credentials")?;
        } else {
            write!(f, "credentials for {}", keys.join(", "))?;
        }
        for (host, helper) in self.cred_helpers() {
            write!(f, "; docker-credential-{helper} for {host}")?;
        }
        if let Some(store) = &self.creds_store {
            write!(f, "; credsStore docker-credential-{store}")?;
        }
        Ok(())
    }
}

/// A legacy `.dockercfg` is the registry map itself: no `auths`, no helper settings, and every
/// value an object with credential fields. Anything else (including `{}` and a config.json
/// holding only `proxies` or `currentContext`) is read as a Docker config.
pub(crate) fn is_legacy(root: &Map<String, Value>) -> bool {
    const CONFIG_FIELDS: [&str; 3] = ["auths", "credHelpers", "credsStore"];
    const ENTRY_FIELDS: [&str; 5] = ["auth", "username", "password", "identitytoken", "email"];
    !root.is_empty()
        && !CONFIG_FIELDS.iter().any(|field| root.contains_key(*field))
        && root.values().all(|value| {
            value
                .as_object()
                .is_some_and(|entry| ENTRY_FIELDS.iter().any(|field| entry.contains_key(*field)))
        })
}

/// Decode one entry. Docker's rules: `identitytoken` wins (the registry client refreshes with
/// it); else `auth` (base64 of `user:password`) wins over separate `username`/`password`
/// fields, as the Kubernetes credential provider and docker both decode it last.
fn decode_entry(value: &Value) -> Decoded {
    let Value::Object(entry) = value else {
        return Decoded::Invalid("is not an object");
    };
    let field = |name: &str| -> Result<Option<&str>, ()> {
        match entry.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.is_empty() => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(()),
        }
    };
    let Ok(identity_token) = field("identitytoken") else {
        return Decoded::Invalid("has an \"identitytoken\" that is not a string");
    };
    if let Some(token) = identity_token {
        return Decoded::Credential(Credential::IdentityToken(Secret::new(token)));
    }
    let Ok(auth) = field("auth") else {
        return Decoded::Invalid("has an \"auth\" that is not a string");
    };
    if let Some(auth) = auth {
        return decode_auth(auth);
    }
    let (Ok(username), Ok(password)) = (field("username"), field("password")) else {
        return Decoded::Invalid("has a \"username\" or \"password\" that is not a string");
    };
    match (username, password) {
        (Some(username), Some(password)) => Decoded::Credential(Credential::Basic {
            username: username.to_owned(),
            password: Secret::new(password),
        }),
        (Some(_), None) => Decoded::Invalid("has a username but no password"),
        (None, Some(_)) => Decoded::Invalid("has a password but no username"),
        (None, None) if field("registrytoken").ok().flatten().is_some() => {
            Decoded::Invalid("holds only a \"registrytoken\", which is not supported")
        }
        (None, None) => Decoded::Empty,
    }
}

fn decode_auth(auth: &str) -> Decoded {
    // Line-wrapped base64 (`base64` wraps at 76 columns) turns up in hand-made secrets.
    let compact: String = auth.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let Ok(bytes) = BASE64.decode(compact.as_bytes()) else {
        return Decoded::Invalid("has an \"auth\" that is not valid base64");
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Decoded::Invalid("has an \"auth\" that does not decode to text");
    };
    // Held as a secret at once, so the decoded text is zeroed when dropped.
    let text = Secret::new(text);
    let Some((username, password)) = text.expose().split_once(':') else {
        return Decoded::Invalid("has an \"auth\" that does not decode to username:password");
    };
    match (username.is_empty(), password.is_empty()) {
        (true, true) => Decoded::Empty,
        (_, true) => Decoded::Invalid("has an \"auth\" with a username but no password"),
        _ => Decoded::Credential(Credential::Basic {
            username: username.to_owned(),
            password: Secret::new(password),
        }),
    }
}

/// A helper name: the suffix of `docker-credential-<name>`, a plain file name (no path).
pub(crate) fn is_helper_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(crate) fn json_reason(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Eof => "the JSON ends too early",
        Category::Syntax => "not valid JSON",
        Category::Data => "unexpected JSON data",
        Category::Io => "cannot be read",
    };
    // Position only: never the message, which may quote the text around the error.
    format!("{what} (line {}, column {})", error.line(), error.column())
}
