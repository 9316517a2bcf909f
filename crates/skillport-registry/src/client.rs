// The HTTP side of the distribution API: which URL a registry answers on, which origin gets
// which credentials (see `origin.rs` and `auth/session.rs`), redirects, timeouts and retries.
//
// Written on reqwest rather than on oci-client: oci-client has no retries or Retry-After, no
// resumed downloads, no sha512, no manifest size cap, no per-transfer progress, and reads no
// Docker credentials; wrapping each of its calls for all of that would be more code than the
// protocol itself, which is a handful of plain HTTP requests.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Request, RequestBuilder, Response, StatusCode, Url};

use crate::auth::session::{BoxFuture, Session, Sessions, TokenClient, parse_challenge};
use crate::auth::{Credentials, Found};
use crate::error::RegistryError;
use crate::origin::{Origin, is_loopback};
use crate::request::{Access, ClientOptions};
use crate::response::{is_certificate_error, location, retry_after, status_error, transport_error};

/// Redirects followed for one request, as browsers and reqwest do by default.
const MAX_REDIRECTS: usize = 10;

/// The registry host the API lives at: Docker Hub's name is not its API host.
pub(crate) fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// Builds a request from a base URL such as `https://host` (requests to absolute URLs, like
/// upload locations, ignore it).
pub(crate) type Build<'b> = dyn Fn(&reqwest::Client, &str) -> RequestBuilder + Sync + 'b;

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
    /// Registries found without the referrers API: their referrers tag is read directly.
    no_referrers_api: Mutex<std::collections::HashSet<String>>,
    sessions: Sessions,
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
                // Redirects are followed by `follow_redirects`, which decides per hop whether
                // credentials go along.
                .redirect(reqwest::redirect::Policy::none())
                .tls_certs_merge(roots.clone())
        };
        let build_err = |err: reqwest::Error| RegistryError::Setup {
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
                no_referrers_api: Mutex::new(std::collections::HashSet::new()),
                sessions: Sessions::default(),
            }),
        })
    }

    /// Whether `registry` answered before that it has no referrers API.
    pub(crate) fn lacks_referrers_api(&self, registry: &str) -> bool {
        self.inner
            .no_referrers_api
            .lock()
            .expect("not poisoned")
            .contains(registry)
    }

    /// Remembers that `registry` has no referrers API (for this client's life).
    pub(crate) fn note_no_referrers_api(&self, registry: &str) {
        self.inner
            .no_referrers_api
            .lock()
            .expect("not poisoned")
            .insert(registry.to_owned());
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

    /// The HTTP client for requests about `registry` (TLS unverified only when it is listed
    /// as insecure).
    pub(crate) fn http_for(&self, registry: &str) -> &reqwest::Client {
        self.http(self.insecure(registry))
    }

    fn http(&self, skip_verify: bool) -> &reqwest::Client {
        if skip_verify {
            &self.inner.unverified
        } else {
            &self.inner.verified
        }
    }

    /// The URL bases to try for a registry, in order, each with "skip TLS verification".
    fn candidates(&self, registry: &str) -> Vec<(String, bool)> {
        if let Some(known) = self
            .inner
            .bases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(registry)
        {
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

    /// Sends an idempotent request (GET, HEAD, a manifest PUT, an upload start): with the
    /// credentials of `access`'s session, answering one challenge, and retrying failures that
    /// may pass (connection errors, timeouts, 429, 5xx) with backoff.
    pub(crate) async fn send(
        &self,
        access: &Access<'_>,
        build: &Build<'_>,
    ) -> Result<Response, RegistryError> {
        self.retrying(access, || self.send_authorized(access, build))
            .await
    }

    /// Sends a request that must not be repeated blindly (an upload chunk, an upload's
    /// closing PUT): one attempt; 429 and 5xx come back as errors, and the caller decides
    /// from the upload's status what to send next.
    pub(crate) async fn send_once(
        &self,
        access: &Access<'_>,
        build: &Build<'_>,
    ) -> Result<Response, RegistryError> {
        let response = self.send_authorized(access, build).await?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS || response.status().is_server_error()
        {
            return Err(status_error(access, response).await);
        }
        Ok(response)
    }

    /// Runs `attempt` until it gives an answer that is not 429 or 5xx and no transient error,
    /// at most [`ClientOptions::attempts`] times, waiting with exponential backoff (or as long
    /// as `Retry-After` says, up to a minute) in between.
    pub(crate) async fn retrying<F, Fut>(
        &self,
        access: &Access<'_>,
        mut attempt: F,
    ) -> Result<Response, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Response, RegistryError>>,
    {
        let options = &self.inner.options;
        let mut tries = 0;
        loop {
            tries += 1;
            let wait = match attempt().await {
                Ok(response)
                    if response.status() == StatusCode::TOO_MANY_REQUESTS
                        || response.status().is_server_error() =>
                {
                    if tries >= options.attempts {
                        return Err(status_error(access, response).await);
                    }
                    retry_after(response.headers())
                }
                Ok(response) => return Ok(response),
                Err(err) if err.is_transient() && tries < options.attempts => None,
                Err(err) => return Err(err),
            };
            let wait = wait.map_or_else(
                || self.backoff(tries),
                |wait| wait.min(Duration::from_secs(60)),
            );
            tracing::debug!(
                registry = access.registry,
                what = access.what,
                attempt = tries,
                "retrying in {wait:?}"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// The wait after failed attempt number `tries` (1-based): doubling, capped.
    pub(crate) fn backoff(&self, tries: u32) -> Duration {
        let options = &self.inner.options;
        options
            .backoff
            .saturating_mul(2u32.saturating_pow(tries.saturating_sub(1)))
            .min(options.max_backoff)
    }

    /// One attempt: sends the request, and when the registry's own origin answers 401 with a
    /// challenge, answers it through the session and sends once more.
    async fn send_authorized(
        &self,
        access: &Access<'_>,
        build: &Build<'_>,
    ) -> Result<Response, RegistryError> {
        let session = self.inner.sessions.get(access);
        let mut answered = false;
        loop {
            let (response, registry, generation) = self.dispatch(access, build, &session).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            // Only the registry's own origin may ask for its credentials: a 401 from an
            // upload location or a storage host elsewhere is an answer, not a challenge.
            let from_registry = Origin::of(response.url()).as_ref() == Some(&registry);
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(parse_challenge);
            match challenge {
                Some(challenge) if from_registry && !answered => {
                    let remembered = challenge.clone();
                    session
                        .answer(self, access, registry.clone(), challenge, generation)
                        .await?;
                    answered = true;
                    let source = self.lookup(access).await?.map(|found| found.source);
                    self.inner.sessions.remember(&registry, &remembered, source);
                }
                _ => return Err(self.unauthorized(access).await),
            }
        }
    }

    /// Sends the request to the first base of the registry that answers (HTTPS, then plain
    /// HTTP where allowed), with the session's credentials when the request goes to the
    /// registry's origin, and follows redirects. Returns the response, the registry's origin
    /// and the session generation whose credentials were used.
    async fn dispatch(
        &self,
        access: &Access<'_>,
        build: &Build<'_>,
        session: &Session,
    ) -> Result<(Response, Origin, u64), RegistryError> {
        let candidates = self.candidates(access.registry);
        let last = candidates.len() - 1;
        for (i, (base, skip_verify)) in candidates.into_iter().enumerate() {
            let http = self.http(skip_verify);
            let registry = Origin::of_base(&base).ok_or_else(|| RegistryError::Protocol {
                registry: access.registry.to_owned(),
                what: access.what.to_owned(),
                reason: "not a valid host name".into(),
            })?;
            let request = build(http, &base)
                .build()
                .map_err(|err| RegistryError::Protocol {
                    registry: access.registry.to_owned(),
                    what: access.what.to_owned(),
                    reason: format!("cannot make the request: {err}"),
                })?;
            let (request, generation) = self.authorize(access, session, &registry, request).await?;
            // GET and HEAD have no body and can be sent again to a redirect's access.
            let template = request.try_clone();
            match http.execute(request).await {
                Ok(response) => {
                    self.inner
                        .bases
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(access.registry.to_owned(), (base, skip_verify));
                    let response = self
                        .follow_redirects(access, session, &registry, http, response, template)
                        .await?;
                    return Ok((response, registry, generation));
                }
                // A server that speaks TLS but whose certificate fails must not be retried in
                // plain HTTP: that would hide the certificate problem behind a "400".
                Err(err) if i < last && err.is_connect() && !is_certificate_error(&err) => {
                    tracing::debug!(
                        registry = access.registry,
                        "{base} failed, trying plain HTTP"
                    );
                }
                Err(err) => {
                    return Err(transport_error(access.registry, err, &self.inner.options));
                }
            }
        }
        unreachable!("candidates is never empty")
    }

    /// Refuses a request that would leave HTTPS for plain HTTP, and adds the session's
    /// `Authorization` when — and only when — the request goes to the registry's origin.
    async fn authorize(
        &self,
        access: &Access<'_>,
        session: &Session,
        registry: &Origin,
        mut request: Request,
    ) -> Result<(Request, u64), RegistryError> {
        let origin = Origin::of(request.url());
        if registry.is_https() && request.url().scheme() != "https" {
            return Err(RegistryError::Downgrade {
                registry: access.registry.to_owned(),
                what: access.what.to_owned(),
                to: origin.map_or_else(|| request.url().scheme().to_owned(), |o| o.to_string()),
            });
        }
        request.headers_mut().remove(AUTHORIZATION);
        let (header, generation) = if origin.as_ref() == Some(registry) {
            session
                .authorization(self, access, origin.as_ref(), &self.inner.sessions)
                .await?
        } else {
            (None, 0)
        };
        if let Some(header) = header {
            request.headers_mut().insert(AUTHORIZATION, header);
        }
        Ok((request, generation))
    }

    /// Follows redirects of a GET or HEAD (blob downloads are redirected to object storage):
    /// each hop gets credentials only if it is on the registry's origin, and never leaves
    /// HTTPS for plain HTTP. Other methods' redirects are returned as they are.
    async fn follow_redirects(
        &self,
        access: &Access<'_>,
        session: &Session,
        registry: &Origin,
        http: &reqwest::Client,
        mut response: Response,
        template: Option<Request>,
    ) -> Result<Response, RegistryError> {
        let Some(template) = template.filter(|t| matches!(*t.method(), Method::GET | Method::HEAD))
        else {
            return Ok(response);
        };
        for _ in 0..MAX_REDIRECTS {
            if !response.status().is_redirection() || response.status() == StatusCode::NOT_MODIFIED
            {
                return Ok(response);
            }
            let next: Url = location(&response).ok_or_else(|| RegistryError::Protocol {
                registry: access.registry.to_owned(),
                what: access.what.to_owned(),
                reason: format!("{} without a usable Location", response.status()),
            })?;
            if response.url().scheme() == "https" && next.scheme() != "https" {
                return Err(RegistryError::Downgrade {
                    registry: access.registry.to_owned(),
                    what: access.what.to_owned(),
                    to: Origin::of(&next)
                        .map_or_else(|| next.scheme().to_owned(), |o| o.to_string()),
                });
            }
            let mut request = template.try_clone().expect("GET and HEAD have no body");
            *request.url_mut() = next;
            let (request, _) = self.authorize(access, session, registry, request).await?;
            tracing::debug!(
                registry = access.registry,
                what = access.what,
                "following a redirect to {}",
                Origin::of(request.url()).map_or_else(String::new, |o| o.to_string())
            );
            response = http
                .execute(request)
                .await
                .map_err(|err| transport_error(access.registry, err, &self.inner.options))?;
        }
        Err(RegistryError::Protocol {
            registry: access.registry.to_owned(),
            what: access.what.to_owned(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// Finds credentials for `access`. A credential helper may run for a while, so this runs
    /// off the async worker threads.
    pub(crate) async fn lookup(&self, access: &Access<'_>) -> Result<Option<Found>, RegistryError> {
        let inner = self.inner.clone();
        let registry = access.registry.to_owned();
        let repository = access.repository.to_owned();
        let found =
            tokio::task::spawn_blocking(move || inner.credentials.lookup(&registry, &repository))
                .await
                .expect("credential lookup does not panic")?;
        Ok(found)
    }

    async fn unauthorized(&self, access: &Access<'_>) -> RegistryError {
        let found = self.lookup(access).await.ok().flatten();
        RegistryError::Unauthorized {
            registry: access.registry.to_owned(),
            repository: access.repository.to_owned(),
            detail: match &found {
                Some(found) => format!("credentials from {} were refused", found.source),
                None => "no credentials for this registry".into(),
            },
            had_credentials: found.is_some(),
        }
    }
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

impl TokenClient for Client {
    fn lookup<'a>(
        &'a self,
        access: &'a Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Found>, RegistryError>> {
        Box::pin(Client::lookup(self, access))
    }

    fn http_for(&self, registry: &str) -> &reqwest::Client {
        Client::http_for(self, registry)
    }

    fn options(&self) -> &ClientOptions {
        Client::options(self)
    }

    fn retrying<'a>(
        &'a self,
        access: &'a Access<'a>,
        attempt: &'a (dyn Fn() -> BoxFuture<'a, Result<Response, RegistryError>> + Sync),
    ) -> BoxFuture<'a, Result<Response, RegistryError>> {
        Box::pin(Client::retrying(self, access, attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_from_an_https_registry_to_plain_http_is_refused_and_gets_no_credentials() {
        let client = Client::new(Credentials::empty(), ClientOptions::default()).unwrap();
        let access = Access {
            registry: "registry.example.com",
            repository: "skills/x",
            actions: "pull,push",
            what: "blob upload",
        };
        let session = client.inner.sessions.get(&access);
        let registry = Origin::of_base("https://registry.example.com").unwrap();
        let http = client.http(false);
        let plain = http
            .put("http://registry.example.com/upload/1")
            .build()
            .unwrap();
        let err = client
            .authorize(&access, &session, &registry, plain)
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Downgrade { .. }), "{err:?}");
        // Another origin over HTTPS goes on, without the registry's header.
        let elsewhere = http
            .put("https://storage.example.com/upload/1")
            .header(AUTHORIZATION, "Bearer leaked")
            .build()
            .unwrap();
        let (request, _) = client
            .authorize(&access, &session, &registry, elsewhere)
            .await
            .unwrap();
        assert!(request.headers().get(AUTHORIZATION).is_none());
    }

    #[test]
    fn hub_has_its_own_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
    }
}
