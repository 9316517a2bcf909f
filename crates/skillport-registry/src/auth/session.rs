// One authorization session per (registry, repository, actions): the challenge the registry
// answered with, the token it led to, when that token expires, and the one origin the
// resulting `Authorization` header may be sent to.
//
// Why one object owns all of it: keyed by what a request asks for, a session is found again by
// the next request asking the same (blob HEADs and mounts no longer pay a 401 and a new token
// each); holding the origin, it cannot hand the header to an upload URL or a storage redirect
// on another host; holding the expiry, it renews a token before the registry refuses it.
//
// Expected flow: the client asks `authorization(origin)` before each request (nothing at
// first); a 401 with a challenge from the registry's origin goes to `answer`, which looks the
// credentials up, fetches a token (or makes the Basic header) and records it; the request is
// sent again. Concurrent requests of one session wait for one token fetch instead of each
// fetching their own (the generation number tells a second 401 for a token already renewed).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Response, StatusCode, Url};
use tokio::time::Instant;

use super::{Credential, CredentialSource, Found};
use crate::error::RegistryError;
use crate::origin::Origin;
use crate::request::{Access, ClientOptions};
use crate::response::{read_capped, status_error, transport_error};

/// A boxed future: [`TokenClient`] is used as a trait object.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a session needs of the client that sends its token requests. Sessions sit below the
/// client (it holds one per registry, repository and actions), so they know it only through
/// this, implemented by [`crate::client::Client`].
pub(crate) trait TokenClient: Sync {
    /// The credentials for `access` (a credential helper may run).
    fn lookup<'a>(
        &'a self,
        access: &'a Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Found>, RegistryError>>;
    /// The HTTP client for `registry` (TLS verified or not, as configured).
    fn http_for(&self, registry: &str) -> &reqwest::Client;
    fn options(&self) -> &ClientOptions;
    /// Sends with `attempt`, retried as any request is (429, 5xx, connection errors).
    fn retrying<'a>(
        &'a self,
        access: &'a Access<'a>,
        attempt: &'a (dyn Fn() -> BoxFuture<'a, Result<Response, RegistryError>> + Sync),
    ) -> BoxFuture<'a, Result<Response, RegistryError>>;
}

/// Tokens without `expires_in` live 60 seconds (the token specification's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

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

/// Every session of one client, and the last challenge each registry answered with.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<(String, String, String), Arc<Session>>>,
    /// Per registry origin, its challenge without the scope and the credentials that answered
    /// it: a registry asks every repository the same way, so a new session whose credentials
    /// are those same ones answers it before its first request instead of after a 401 (one
    /// round trip less per repository).
    challenges: Mutex<HashMap<Origin, Expected>>,
}

/// How a registry asked before, and where the credentials that answered came from (none:
/// anonymous). Credentials found for another path of the host (a path-scoped entry) are never
/// sent ahead: that path may have a token service of its own.
#[derive(Clone)]
pub(crate) struct Expected {
    challenge: Challenge,
    source: Option<CredentialSource>,
}

impl Sessions {
    /// Remembers how the registry at `origin` asked for credentials, and where those that
    /// answered came from.
    pub(crate) fn remember(
        &self,
        origin: &Origin,
        challenge: &Challenge,
        source: Option<CredentialSource>,
    ) {
        let mut challenge = challenge.clone();
        challenge.params.remove("scope");
        challenge.params.remove("error");
        self.challenges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(origin.clone(), Expected { challenge, source });
    }

    /// How the registry at `origin` asked last, if it did.
    pub(crate) fn challenge(&self, origin: &Origin) -> Option<Expected> {
        self.challenges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(origin)
            .cloned()
    }

    /// The session for what `access` asks: its registry, repository and actions.
    pub(crate) fn get(&self, access: &Access<'_>) -> Arc<Session> {
        let key = (
            access.registry.to_owned(),
            access.repository.to_owned(),
            access.actions.to_owned(),
        );
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| {
                let mut scopes = Vec::new();
                // Registry-wide requests (`/v2/`) carry no repository and ask for no scope.
                if !access.repository.is_empty() {
                    scopes.push(format!(
                        "repository:{}:{}",
                        access.repository, access.actions
                    ));
                }
                Arc::new(Session {
                    state: tokio::sync::Mutex::new(State {
                        generation: 0,
                        grant: None,
                        scopes,
                        answered_first: false,
                    }),
                })
            })
            .clone()
    }
}

pub(crate) struct Session {
    state: tokio::sync::Mutex<State>,
}

struct State {
    /// Bumped each time the grant changes.
    generation: u64,
    grant: Option<Grant>,
    /// What a token must cover: our own scope, then every other scope a challenge asked for
    /// (a mount also needs pull on the source repository), each once.
    scopes: Vec<String>,
    /// The registry's challenge to another repository was answered before the first request.
    answered_first: bool,
}

struct Grant {
    /// The only origin the header goes to: the registry's, where the challenge came from.
    origin: Origin,
    header: HeaderValue,
    /// Where to renew a bearer token, and when it must be renewed.
    renew: Option<(Challenge, Instant)>,
}

impl Session {
    /// The `Authorization` header for a request to `origin` (none for any other origin than
    /// the one the credentials were issued for), renewing an expiring token first, and the
    /// generation it belongs to.
    ///
    /// A session without a grant first answers the challenge the registry gave another
    /// repository (as `sessions` remember it), when its credentials come from where those that
    /// answered it came from. Once, with one attempt: when that fails (a token refused, a
    /// server error) the request goes without, and the registry's own 401 leads to the usual
    /// answer and error.
    pub(crate) async fn authorization(
        &self,
        client: &dyn TokenClient,
        access: &Access<'_>,
        origin: Option<&Origin>,
        sessions: &Sessions,
    ) -> Result<(Option<HeaderValue>, u64), RegistryError> {
        let mut state = self.state.lock().await;
        if state.grant.is_none()
            && !state.answered_first
            && let Some(origin) = origin
            && let Some(expected) = sessions.challenge(origin)
        {
            state.answered_first = true;
            let source = client.lookup(access).await?.map(|found| found.source);
            if source == expected.source {
                match grant(
                    client,
                    access,
                    &state.scopes,
                    origin.clone(),
                    expected.challenge,
                    true,
                )
                .await
                {
                    Ok(grant) => {
                        state.grant = Some(grant);
                        state.generation += 1;
                    }
                    Err(err) => tracing::debug!(
                        registry = access.registry,
                        "answering the registry's challenge before asking failed ({err}); \
                         asking without credentials"
                    ),
                }
            }
        }
        let generation = state.generation;
        let Some(grant) = &state.grant else {
            return Ok((None, generation));
        };
        if origin != Some(&grant.origin) {
            return Ok((None, generation));
        }
        if let Some((challenge, expires)) = &grant.renew
            && Instant::now() >= *expires
        {
            let (challenge, registry) = (challenge.clone(), grant.origin.clone());
            tracing::debug!(registry = access.registry, "token expiring, renewing it");
            state.grant = Some(
                bearer_grant(client, access, &state.scopes, challenge, registry, false).await?,
            );
            state.generation += 1;
        }
        let state = &*state;
        Ok((
            state.grant.as_ref().map(|grant| grant.header.clone()),
            state.generation,
        ))
    }

    /// Answers a challenge that a request to the registry's own `origin` got while holding the
    /// grant of `generation`. When another request already renewed the grant since, does
    /// nothing: the caller sends again with the newer one.
    pub(crate) async fn answer(
        &self,
        client: &dyn TokenClient,
        access: &Access<'_>,
        origin: Origin,
        challenge: Challenge,
        generation: u64,
    ) -> Result<(), RegistryError> {
        let mut state = self.state.lock().await;
        if state.generation != generation {
            return Ok(());
        }
        if let Some(scope) = challenge.params.get("scope") {
            for scope in scope.split(' ').filter(|s| !s.is_empty()) {
                if !state.scopes.iter().any(|known| known == scope) {
                    state.scopes.push(scope.to_owned());
                }
            }
        }
        state.grant = Some(grant(client, access, &state.scopes, origin, challenge, false).await?);
        state.generation += 1;
        Ok(())
    }
}

/// The grant that answers `challenge` for `scopes`: a Basic header, or a bearer token (its
/// request tried once when `once`, else retried as any request is).
async fn grant(
    client: &dyn TokenClient,
    access: &Access<'_>,
    scopes: &[String],
    origin: Origin,
    challenge: Challenge,
    once: bool,
) -> Result<Grant, RegistryError> {
    match challenge.scheme.as_str() {
        "basic" => {
            let found = client.lookup(access).await?;
            match &found {
                Some(Found {
                    credential: Credential::Basic { username, password },
                    ..
                }) => Ok(Grant {
                    origin,
                    header: basic(username, password.expose()),
                    renew: None,
                }),
                _ => Err(no_password(access, found.as_ref())),
            }
        }
        "bearer" => bearer_grant(client, access, scopes, challenge, origin, once).await,
        other => Err(RegistryError::Protocol {
            registry: access.registry.to_owned(),
            what: access.what.to_owned(),
            reason: format!("unsupported authentication scheme {other:?}"),
        }),
    }
}

/// Fetches a token for `scopes` from the challenge's realm and makes the grant for `origin`.
async fn bearer_grant(
    client: &dyn TokenClient,
    access: &Access<'_>,
    scopes: &[String],
    challenge: Challenge,
    origin: Origin,
    once: bool,
) -> Result<Grant, RegistryError> {
    let protocol = |reason: &str| RegistryError::Protocol {
        registry: access.registry.to_owned(),
        what: "token request".into(),
        reason: reason.to_owned(),
    };
    let realm = challenge
        .params
        .get("realm")
        .ok_or_else(|| protocol("bearer challenge without a realm"))?;
    let realm = Url::parse(realm).map_err(|_| protocol("the bearer realm is not a URL"))?;
    if origin.is_https() && realm.scheme() != "https" {
        return Err(RegistryError::Downgrade {
            registry: access.registry.to_owned(),
            what: "token request".into(),
            to: Origin::of(&realm).map_or_else(|| realm.scheme().to_owned(), |o| o.to_string()),
        });
    }
    let found = client.lookup(access).await?;
    let (token, lifetime) = request_token(
        client,
        access,
        &realm,
        &challenge,
        scopes,
        found.as_ref(),
        once,
    )
    .await?;
    let lifetime = lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME);
    // Renew a little early: a token that expires on the way is refused by the registry.
    let margin = (lifetime / 4).min(Duration::from_secs(30));
    Ok(Grant {
        origin,
        header: bearer(access, &token)?,
        renew: Some((challenge, Instant::now() + lifetime - margin)),
    })
}

/// One token request (retried on 429 and 5xx like any other request); returns the token and
/// its lifetime when the answer gives one.
async fn request_token(
    client: &dyn TokenClient,
    access: &Access<'_>,
    realm: &Url,
    challenge: &Challenge,
    scopes: &[String],
    found: Option<&Found>,
    once: bool,
) -> Result<(String, Option<Duration>), RegistryError> {
    let service = challenge.params.get("service").cloned().unwrap_or_default();
    let http = client.http_for(access.registry);
    let token_access = Access {
        what: "token request",
        ..access.clone()
    };
    // The token spec: a GET takes one `scope` field per resource scope; only the POST form
    // (refresh tokens) takes them space-separated in one field.
    let joined = scopes
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    let mut query = vec![("service", service.as_str())];
    query.extend(scopes.iter().map(|s| ("scope", s.as_str())));
    let build = || match found.map(|f| &f.credential) {
        Some(Credential::IdentityToken(token)) => http.post(realm.clone()).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token.expose()),
            ("service", &service),
            ("scope", &joined),
            ("client_id", "skillport"),
        ]),
        Some(Credential::Basic { username, password }) => http
            .get(realm.clone())
            .query(&query)
            .header(AUTHORIZATION, basic(username, password.expose())),
        None => http.get(realm.clone()).query(&query),
    };
    let attempt = || -> BoxFuture<'_, Result<Response, RegistryError>> {
        let request = build();
        Box::pin(async move {
            request
                .send()
                .await
                .map_err(|err| transport_error(access.registry, err, client.options()))
        })
    };
    let response = if once {
        attempt().await?
    } else {
        client.retrying(&token_access, &attempt).await?
    };
    if response.status() == StatusCode::UNAUTHORIZED || response.status() == StatusCode::FORBIDDEN {
        return Err(RegistryError::Unauthorized {
            registry: access.registry.to_owned(),
            repository: access.repository.to_owned(),
            detail: match found {
                Some(found) => format!(
                    "the token service refused the credentials from {}",
                    found.source
                ),
                None => "no credentials for this registry, and anonymous access is refused".into(),
            },
            had_credentials: found.is_some(),
        });
    }
    if !response.status().is_success() {
        return Err(status_error(&token_access, response).await);
    }
    let bad = |reason: String| RegistryError::Protocol {
        registry: access.registry.to_owned(),
        what: "token response".into(),
        reason,
    };
    let body = read_capped(response, 1 << 20)
        .await
        .map_err(|_| bad("unreadable or larger than 1 MiB".into()))?;
    let body: serde_json::Value =
        serde_json::from_slice(&body).map_err(|err| bad(format!("not JSON: {err}")))?;
    let token = body
        .get("token")
        .or_else(|| body.get("access_token"))
        .and_then(serde_json::Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| bad("no token in it".into()))?;
    let lifetime = body
        .get("expires_in")
        .and_then(serde_json::Value::as_u64)
        .filter(|seconds| *seconds > 0)
        .map(Duration::from_secs);
    Ok((token.to_owned(), lifetime))
}

fn no_password(access: &Access<'_>, found: Option<&Found>) -> RegistryError {
    RegistryError::Unauthorized {
        registry: access.registry.to_owned(),
        repository: access.repository.to_owned(),
        detail: match found {
            None => "no credentials for this registry".into(),
            Some(found) => format!(
                "the registry wants a password; {} has a token",
                found.source
            ),
        },
        had_credentials: found.is_some(),
    }
}

/// A header value that never prints: `HeaderValue`'s `Debug` shows the bytes unless marked.
/// A header value whose `Debug` never shows it; `None` when the text cannot be a header.
fn sensitive(value: String) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

fn basic(username: &str, password: &str) -> HeaderValue {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    sensitive(format!("Basic {encoded}")).expect("base64 is valid in a header")
}

fn bearer(access: &Access<'_>, token: &str) -> Result<HeaderValue, RegistryError> {
    sensitive(format!("Bearer {token}")).ok_or_else(|| RegistryError::Protocol {
        registry: access.registry.to_owned(),
        what: "token response".into(),
        reason: "the token holds characters a header cannot carry".into(),
    })
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
}
