// The HTTP side of the distribution API: which URL a registry answers on, authentication
// challenges and tokens, timeouts and retries.
//
// Written on reqwest rather than on oci-client: oci-client has no retries or Retry-After, no
// resumed downloads, no sha512, no manifest size cap, no per-transfer progress, and reads no
// Docker credentials; wrapping each of its calls for all of that would be more code than the
// protocol itself, which is a handful of plain HTTP requests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::auth::{Credential, Credentials, Found};
use crate::error::RegistryError;

/// How the client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Extra CA certificates (PEM), trusted on top of the system's.
    pub ca_files: Vec<PathBuf>,
    /// Registries (`host[:port]`) for which TLS is not verified and plain HTTP is allowed.
    /// `localhost` and 127.0.0.0/8 may always fall back to plain HTTP, as docker does.
    pub insecure_registries: Vec<String>,
    /// Connecting, and each read while a response streams in.
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Attempts for a request that fails in a way that may pass (connection errors,
    /// timeouts, 429, 5xx). 1 means no retry.
    pub attempts: u32,
    /// The first backoff; it doubles each attempt, capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Largest manifest or index accepted.
    pub max_manifest_bytes: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ca_files: Vec::new(),
            insecure_registries: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_manifest_bytes: 4 << 20,
        }
    }
}

/// The registry host the API lives at: Docker Hub's name is not its API host.
pub(crate) fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

fn is_loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(host, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            host
        } else {
            registry
        }
    });
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// An authorization header value for a registry and scope. `Debug` hides it.
#[derive(Clone)]
struct AuthValue(String);

impl std::fmt::Debug for AuthValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="…"` (values may hold commas inside quotes).
pub(crate) fn parse_challenge(header: &str) -> Challenge {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    }
}

/// The part of a request that says where it goes and what access it needs.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    /// `host[:port]` as written in references (`docker.io` for Hub).
    pub registry: &'a str,
    /// The repository, for credentials and token scopes.
    pub repository: &'a str,
    /// `pull` or `pull,push`.
    pub actions: &'a str,
    /// What the request is about, for messages (`manifest my/repo:1.0`).
    pub what: &'a str,
}

/// A distribution API client shared by every operation; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    verified: reqwest::Client,
    unverified: reqwest::Client,
    credentials: Credentials,
    options: ClientOptions,
    /// The base URL that worked for each registry.
    bases: Mutex<HashMap<String, (String, bool)>>,
    /// Authorization header values by (registry, scope).
    auth: Mutex<HashMap<(String, String), AuthValue>>,
}

impl Client {
    /// A client that finds credentials in `credentials`.
    pub fn new(credentials: Credentials, options: ClientOptions) -> Result<Client, RegistryError> {
        // rustls picks a process-wide crypto provider; ring is ours (kube uses it too). A
        // second install is harmless and returns an error we can ignore.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = Vec::new();
        for path in &options.ca_files {
            let pem = std::fs::read(path).map_err(|source| RegistryError::Io {
                action: "reading",
                path: path.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| {
                RegistryError::CaFile {
                    path: path.clone(),
                    reason: err.to_string(),
                }
            })?;
            if certs.is_empty() {
                return Err(RegistryError::CaFile {
                    path: path.clone(),
                    reason: "no PEM certificate in it".into(),
                });
            }
            roots.extend(certs);
        }
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("skillport/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(options.connect_timeout)
                .read_timeout(options.read_timeout)
                .pool_max_idle_per_host(16)
                .tls_certs_merge(roots.clone())
        };
        let build_err = |err: reqwest::Error| RegistryError::Tls {
            registry: "(all)".into(),
            reason: err.to_string(),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                verified: builder().build().map_err(build_err)?,
                unverified: builder()
                    .tls_danger_accept_invalid_certs(true)
                    .build()
                    .map_err(build_err)?,
                credentials,
                options,
                bases: Mutex::new(HashMap::new()),
                auth: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub(crate) fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    fn insecure(&self, registry: &str) -> bool {
        self.inner
            .options
            .insecure_registries
            .iter()
            .any(|r| r == registry)
    }

    /// The URL bases to try for a registry, in order, each with "skip TLS verification".
    fn candidates(&self, registry: &str) -> Vec<(String, bool)> {
        if let Some(known) = self.inner.bases.lock().expect("not poisoned").get(registry) {
            return vec![known.clone()];
        }
        let host = api_host(registry);
        let insecure = self.insecure(registry);
        let mut out = vec![(format!("https://{host}"), insecure)];
        if insecure || is_loopback(registry) {
            out.push((format!("http://{host}"), false));
        }
        out
    }

    /// Sends the request `build` makes (from a base URL like `https://host`) with the right
    /// credentials, following authentication challenges and retrying what may pass.
    pub(crate) async fn send(
        &self,
        target: &Target<'_>,
        build: &(dyn Fn(&reqwest::Client, &str) -> RequestBuilder + Sync),
    ) -> Result<Response, RegistryError> {
        let options = &self.inner.options;
        let mut attempt = 0;
        let mut authenticated_after_challenge = false;
        // Registry-wide requests (`/v2/`) carry no repository and ask for no scope.
        let mut scope = if target.repository.is_empty() {
            String::new()
        } else {
            format!("repository:{}:{}", target.repository, target.actions)
        };
        loop {
            attempt += 1;
            let result = self.send_once(target, &scope, build).await;
            let wait = match result {
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED => {
                    if authenticated_after_challenge {
                        return Err(self.unauthorized(target).await);
                    }
                    let challenge = response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .map(parse_challenge);
                    let Some(challenge) = challenge else {
                        return Err(self.unauthorized(target).await);
                    };
                    if let Some(challenge_scope) = challenge.params.get("scope") {
                        scope = merge_scopes(&scope, challenge_scope);
                    }
                    self.authenticate(target, &scope, &challenge).await?;
                    authenticated_after_challenge = true;
                    attempt -= 1; // answering a challenge is not a retry
                    continue;
                }
                Ok(response)
                    if response.status() == StatusCode::TOO_MANY_REQUESTS
                        || response.status().is_server_error() =>
                {
                    if attempt >= options.attempts {
                        return Err(status_error(target, response).await);
                    }
                    retry_after(response.headers())
                }
                Ok(response) => return Ok(response),
                Err(err) if err.is_transient() && attempt < options.attempts => None,
                Err(err) => return Err(err),
            };
            let backoff = options
                .backoff
                .saturating_mul(2u32.saturating_pow(attempt - 1))
                .min(options.max_backoff);
            let wait = wait.map_or(backoff, |w| w.min(Duration::from_secs(60)));
            tracing::debug!(
                registry = target.registry,
                what = target.what,
                attempt,
                "retrying in {wait:?}"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(
        &self,
        target: &Target<'_>,
        scope: &str,
        build: &(dyn Fn(&reqwest::Client, &str) -> RequestBuilder + Sync),
    ) -> Result<Response, RegistryError> {
        let auth = self
            .inner
            .auth
            .lock()
            .expect("not poisoned")
            .get(&(target.registry.to_owned(), scope.to_owned()))
            .cloned();
        let candidates = self.candidates(target.registry);
        let last = candidates.len() - 1;
        for (i, (base, skip_verify)) in candidates.into_iter().enumerate() {
            let http = if skip_verify {
                &self.inner.unverified
            } else {
                &self.inner.verified
            };
            let mut request = build(http, &base);
            if let Some(auth) = &auth {
                request = request.header(AUTHORIZATION, &auth.0);
            }
            match request.send().await {
                Ok(response) => {
                    self.inner
                        .bases
                        .lock()
                        .expect("not poisoned")
                        .insert(target.registry.to_owned(), (base, skip_verify));
                    return Ok(response);
                }
                // A server that speaks TLS but whose certificate fails must not be retried in
                // plain HTTP: that would hide the certificate problem behind a "400".
                Err(err) if i < last && err.is_connect() && !is_certificate_error(&err) => {
                    tracing::debug!(
                        registry = target.registry,
                        "{base} failed, trying plain HTTP"
                    );
                }
                Err(err) => {
                    return Err(transport_error(target.registry, &err, &self.inner.options));
                }
            }
        }
        unreachable!("candidates is never empty")
    }

    /// Finds credentials; a credential helper may run for a while, so off the async threads.
    async fn lookup(&self, target: &Target<'_>) -> Result<Option<Found>, RegistryError> {
        let inner = self.inner.clone();
        let registry = target.registry.to_owned();
        let repository = target.repository.to_owned();
        let found =
            tokio::task::spawn_blocking(move || inner.credentials.lookup(&registry, &repository))
                .await
                .expect("credential lookup does not panic")?;
        Ok(found)
    }

    /// Answers a challenge: stores the Authorization value for (registry, scope).
    async fn authenticate(
        &self,
        target: &Target<'_>,
        scope: &str,
        challenge: &Challenge,
    ) -> Result<(), RegistryError> {
        let found = self.lookup(target).await?;
        let value = match challenge.scheme.as_str() {
            "basic" => match &found {
                Some(Found {
                    credential: Credential::Basic { username, password },
                    ..
                }) => basic(username, password.expose()),
                _ => return Err(no_credentials(target, found.as_ref())),
            },
            "bearer" => format!(
                "Bearer {}",
                self.token(target, scope, challenge, found.as_ref()).await?
            ),
            other => {
                return Err(RegistryError::Protocol {
                    registry: target.registry.to_owned(),
                    what: target.what.to_owned(),
                    reason: format!("unsupported authentication scheme {other:?}"),
                });
            }
        };
        self.inner.auth.lock().expect("not poisoned").insert(
            (target.registry.to_owned(), scope.to_owned()),
            AuthValue(value),
        );
        Ok(())
    }

    /// Gets a bearer token from the challenge's realm.
    async fn token(
        &self,
        target: &Target<'_>,
        scope: &str,
        challenge: &Challenge,
        found: Option<&Found>,
    ) -> Result<String, RegistryError> {
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| RegistryError::Protocol {
                registry: target.registry.to_owned(),
                what: target.what.to_owned(),
                reason: "bearer challenge without a realm".into(),
            })?;
        let service = challenge.params.get("service").cloned().unwrap_or_default();
        let http = if self.insecure(target.registry) {
            &self.inner.unverified
        } else {
            &self.inner.verified
        };
        // The token spec: a GET takes one `scope` field per resource scope; only the POST
        // form takes them space-separated in one field.
        let mut query = vec![("service", service.as_str())];
        query.extend(
            scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| ("scope", s)),
        );
        let request = match found.map(|f| &f.credential) {
            Some(Credential::IdentityToken(token)) => http.post(realm).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token.expose()),
                ("service", &service),
                ("scope", scope),
                ("client_id", "skillport"),
            ]),
            Some(Credential::Basic { username, password }) => http
                .get(realm)
                .query(&query)
                .header(AUTHORIZATION, basic(username, password.expose())),
            None => http.get(realm).query(&query),
        };
        let response = request
            .send()
            .await
            .map_err(|err| transport_error(target.registry, &err, &self.inner.options))?;
        if response.status() == StatusCode::UNAUTHORIZED
            || response.status() == StatusCode::FORBIDDEN
        {
            return Err(RegistryError::Unauthorized {
                registry: target.registry.to_owned(),
                repository: target.repository.to_owned(),
                detail: match found {
                    Some(found) => format!(
                        "the token service refused the credentials from {}",
                        found.source
                    ),
                    None => {
                        "no credentials for this registry, and anonymous access is refused".into()
                    }
                },
            });
        }
        if !response.status().is_success() {
            return Err(status_error(target, response).await);
        }
        let body: serde_json::Value =
            response
                .json()
                .await
                .map_err(|err| RegistryError::Protocol {
                    registry: target.registry.to_owned(),
                    what: "token response".into(),
                    reason: err.to_string(),
                })?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(serde_json::Value::as_str)
            .filter(|token| !token.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| RegistryError::Protocol {
                registry: target.registry.to_owned(),
                what: "token response".into(),
                reason: "no token in it".into(),
            })
    }

    async fn unauthorized(&self, target: &Target<'_>) -> RegistryError {
        let found = self.lookup(target).await.ok().flatten();
        RegistryError::Unauthorized {
            registry: target.registry.to_owned(),
            repository: target.repository.to_owned(),
            detail: match found {
                Some(found) => format!("credentials from {} were refused", found.source),
                None => "no credentials for this registry".into(),
            },
        }
    }
}

fn no_credentials(target: &Target<'_>, found: Option<&Found>) -> RegistryError {
    RegistryError::Unauthorized {
        registry: target.registry.to_owned(),
        repository: target.repository.to_owned(),
        detail: match found {
            None => "no credentials for this registry".into(),
            Some(found) => format!(
                "the registry wants a password; {} has a token",
                found.source
            ),
        },
    }
}

fn basic(username: &str, password: &str) -> String {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

/// Our scope plus the one the registry asked for, when they differ.
fn merge_scopes(ours: &str, theirs: &str) -> String {
    if ours.is_empty() || ours == theirs || theirs.split(' ').any(|s| s == ours) {
        theirs.to_owned()
    } else {
        format!("{ours} {theirs}")
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from registries and treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn error_chain_text(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn is_certificate_error(err: &reqwest::Error) -> bool {
    let text = error_chain_text(err).to_ascii_lowercase();
    text.contains("certificate")
        || text.contains("unknownissuer")
        || text.contains("notvalidforname")
}

pub(crate) fn transport_error(
    registry: &str,
    err: &reqwest::Error,
    options: &ClientOptions,
) -> RegistryError {
    use std::error::Error as _;
    let mut reason = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    if err.is_timeout() {
        return RegistryError::Timeout {
            registry: registry.to_owned(),
            seconds: options.read_timeout.as_secs(),
        };
    }
    let lower = reason.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        return RegistryError::Tls {
            registry: registry.to_owned(),
            reason,
        };
    }
    RegistryError::Connect {
        registry: registry.to_owned(),
        reason,
    }
}

/// Turns an unexpected response into an error with the registry's own message.
pub(crate) async fn status_error(target: &Target<'_>, response: Response) -> RegistryError {
    let status = response.status();
    let message = error_message(response).await;
    let registry = target.registry.to_owned();
    match status {
        StatusCode::NOT_FOUND => RegistryError::NotFound {
            registry,
            what: target.what.to_owned(),
            message,
        },
        StatusCode::FORBIDDEN => RegistryError::Denied {
            registry,
            repository: target.repository.to_owned(),
            message,
        },
        _ => RegistryError::Status {
            registry,
            what: target.what.to_owned(),
            status: status.as_u16(),
            message,
        },
    }
}

/// The registry's error text: the first `errors[].message` of its JSON body, or the status.
async fn error_message(response: Response) -> String {
    let status = response.status();
    let fallback = status
        .canonical_reason()
        .unwrap_or("unexpected status")
        .to_ascii_lowercase();
    let Ok(bytes) = crate::transfer::read_capped(response, 64 * 1024).await else {
        return fallback;
    };
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    parsed
        .as_ref()
        .and_then(|v| v.get("errors")?.get(0))
        .and_then(|e| {
            let code = e
                .get("code")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let message = e
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let text = format!("{code} {message}").trim().to_ascii_lowercase();
            (!text.is_empty()).then_some(text)
        })
        .unwrap_or(fallback)
}

/// Builds a request for `method` on `base` + `path`.
pub(crate) fn request(
    http: &reqwest::Client,
    method: Method,
    base: &str,
    path: &str,
) -> RequestBuilder {
    http.request(method, format!("{base}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges_with_commas_in_quotes() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example.com/token");
        assert_eq!(c.params["service"], "registry.example.com");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
    }

    #[test]
    fn loopback_and_hub_hosts() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("registry.example.com:5000"));
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn scopes_merge_without_repeating() {
        assert_eq!(
            merge_scopes("repository:a:pull", "repository:a:pull"),
            "repository:a:pull"
        );
        assert_eq!(
            merge_scopes("repository:a:pull,push", "repository:b:pull"),
            "repository:a:pull,push repository:b:pull"
        );
    }
}
