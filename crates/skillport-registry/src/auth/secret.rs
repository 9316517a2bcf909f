// Secrets and credentials: values that print as `<redacted>` whatever formatter is used.

use std::fmt;

/// A secret string (password, identity token).
///
/// `{:?}` and `{}` print `<redacted>`; the only way to the value is [`Secret::expose`], so a
/// secret cannot reach a log line or an error message by accident. The bytes are overwritten
/// with zeros when the secret is dropped (best effort: earlier copies made by reallocation or by
/// the caller are out of reach).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that must send it (a request header, a helper's
    /// stdin, a config file).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        // Keeps the zeroing from being optimised away as a dead store before deallocation.
        std::hint::black_box(&bytes);
    }
}

/// A registry credential, as a Docker config entry or a credential helper gives it.
///
/// `{:?}` shows the username (docker prints it too) and `<redacted>` for the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// HTTP basic credentials: sent as basic auth, or exchanged for a bearer token.
    Basic { username: String, password: Secret },
    /// An OAuth2 refresh token (Docker's `identitytoken`, or a helper's `<token>` username): the
    /// registry client exchanges it at the token endpoint with `grant_type=refresh_token`.
    IdentityToken(Secret),
}

impl Credential {
    /// The secret part, for redaction checks.
    pub fn secret(&self) -> &Secret {
        match self {
            Credential::Basic { password, .. } => password,
            Credential::IdentityToken(token) => token,
        }
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "username {username:?} and a password"),
            Credential::IdentityToken(_) => f.write_str("an identity token"),
        }
    }
}
