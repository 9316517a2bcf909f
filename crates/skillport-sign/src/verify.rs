//! The checks a [`Candidate`] must pass to count as a signature on an image: it names the
//! image's digest, and its signature verifies with the required key, or with a certificate
//! that chains to the trusted root and names the required identity and OIDC issuer. Failing
//! checks give the reason; a signature never half-passes.

use std::sync::Arc;

use serde::Serialize;
use skillport_oci::Digest;
use time::OffsetDateTime;
use x509_cert::der::Decode as _;
use x509_cert::der::asn1::{Ia5String, Utf8StringRef};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::bundle::{Candidate, key_hint};
use crate::key::PublicKey;
use crate::root::TrustedRoot;

/// Fulcio's OIDC issuer extension (a DER UTF8String), and its older raw-string form.
const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's `otherName` SAN for a username identity.
const USERNAME_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.7");

/// A string a certificate field must equal, or (cosign's `-regexp` flags) match anywhere.
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Regex(regex::Regex),
}

impl Matcher {
    /// `regexp` as Go's `regexp.MatchString` reads it (unanchored). `what` names the flag.
    pub fn regex(pattern: &str, what: &str) -> Result<Matcher, crate::SignError> {
        regex::Regex::new(pattern)
            .map(Matcher::Regex)
            .map_err(|err| crate::SignError::Requirement {
                reason: format!("{what} {pattern:?} is not a regular expression: {err}"),
            })
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(expected) => expected == value,
            Matcher::Regex(regex) => regex.is_match(value),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(value) => write!(formatter, "{value:?}"),
            Matcher::Regex(regex) => write!(formatter, "/{}/", regex.as_str()),
        }
    }
}

/// What a signature must carry.
#[derive(Debug, Clone)]
pub enum Requirement {
    /// Made with this key; `name` says which in messages (a file, a Secret key).
    Key { key: PublicKey, name: String },
    /// Made with a certificate from `root` naming this subject and OIDC issuer.
    Keyless {
        subject: Matcher,
        issuer: Matcher,
        root: Arc<TrustedRoot>,
    },
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requirement::Key { name, .. } => write!(formatter, "signed with the key {name}"),
            Requirement::Keyless {
                subject, issuer, ..
            } => write!(
                formatter,
                "signed by identity {subject} from OIDC issuer {issuer}"
            ),
        }
    }
}

/// Who signed, as checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Signer {
    /// A key; `hint` is base64(sha256(its DER)), as cosign writes in bundles.
    Key { name: String, hint: String },
    #[serde(rename_all = "camelCase")]
    Certificate { subject: String, issuer: String },
}

impl std::fmt::Display for Signer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key { name, .. } => write!(formatter, "key {name}"),
            Signer::Certificate { subject, issuer } => write!(formatter, "{subject} ({issuer})"),
        }
    }
}

/// A signature that passed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    pub digest: String,
    pub signer: Signer,
    /// Where the signature was: a bundle through referrers, or a `.sig` tag layer.
    pub origin: String,
    /// When the signer says it signed; not checked.
    pub created: Option<String>,
    /// When a transparency log of the trusted root promises it was signed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged_at: Option<String>,
}

/// Every candidate checked against one requirement.
#[derive(Debug, Default)]
pub struct Outcome {
    pub verified: Vec<Verified>,
    /// Why each other signature did not count.
    pub refused: Vec<String>,
}

/// Checks every candidate (and carries the reasons of those that could not be read).
#[must_use]
pub fn evaluate(
    candidates: &[Candidate],
    unreadable: Vec<String>,
    digest: &Digest,
    requirement: &Requirement,
    now: OffsetDateTime,
) -> Outcome {
    let mut outcome = Outcome {
        verified: Vec::new(),
        refused: unreadable,
    };
    for candidate in candidates {
        match check(candidate, digest, requirement, now) {
            Ok(verified) => outcome.verified.push(verified),
            Err(reason) => outcome.refused.push(reason),
        }
    }
    outcome
}

/// Checks one candidate against one requirement, for the image `digest`, at time `now`.
pub fn check(
    candidate: &Candidate,
    digest: &Digest,
    requirement: &Requirement,
    now: OffsetDateTime,
) -> Result<Verified, String> {
    let origin = &candidate.origin;
    if !candidate.subjects.contains(digest) {
        let named = candidate
            .subjects
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!("{origin}: signs {named}, not {digest}"));
    }
    let (signer, logged_at) = match requirement {
        Requirement::Key { key, name } => {
            if !key.verifies(&candidate.signed, &candidate.signature) {
                return Err(format!("{origin}: not signed with the key {name}"));
            }
            let signer = Signer::Key {
                name: name.clone(),
                hint: key_hint(&key.to_der()),
            };
            (signer, None)
        }
        Requirement::Keyless {
            subject,
            issuer,
            root,
        } => keyless(candidate, subject, issuer, root, now)?,
    };
    Ok(Verified {
        digest: digest.to_string(),
        signer,
        origin: origin.clone(),
        created: candidate.created.clone(),
        logged_at: logged_at.and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
    })
}

fn keyless(
    candidate: &Candidate,
    subject: &Matcher,
    issuer: &Matcher,
    root: &TrustedRoot,
    now: OffsetDateTime,
) -> Result<(Signer, Option<OffsetDateTime>), String> {
    let origin = &candidate.origin;
    let Some(leaf) = &candidate.certificate else {
        return Err(format!(
            "{origin}: made with a key, not a certificate (verify it with --key)"
        ));
    };
    let fields = CertificateFields::read(leaf).map_err(|reason| format!("{origin}: {reason}"))?;
    // The signature first: a certificate copied from another signature proves nothing.
    if !fields
        .key
        .as_ref()
        .is_some_and(|key| key.verifies(&candidate.signed, &candidate.signature))
    {
        return Err(format!(
            "{origin}: the signature does not verify with its certificate's key"
        ));
    }
    // A short-lived certificate is checked when the log says the signature was made; without
    // a log's promise, now.
    let logged = root.logged_at(&candidate.tlog, &candidate.signature, Some(leaf));
    root.verify_chain(leaf, &candidate.chain, logged.unwrap_or(now))
        .map_err(|reason| format!("{origin}: {reason}"))?;
    let found_issuer = fields.issuer.ok_or_else(|| {
        format!("{origin}: the certificate names no OIDC issuer (not a Fulcio-style certificate)")
    })?;
    if !issuer.matches(&found_issuer) {
        return Err(format!(
            "{origin}: issued for OIDC issuer {found_issuer:?}, not {issuer}"
        ));
    }
    let Some(found_subject) = fields.identities.iter().find(|id| subject.matches(id)) else {
        return Err(format!(
            "{origin}: the certificate names {}, not {subject}",
            if fields.identities.is_empty() {
                "no identity".to_owned()
            } else {
                fields.identities.join(", ")
            }
        ));
    };
    let signer = Signer::Certificate {
        subject: found_subject.clone(),
        issuer: found_issuer,
    };
    Ok((signer, logged))
}

/// The fields of a signing certificate the checks read.
struct CertificateFields {
    /// Subject alternative names: emails, URIs, Fulcio usernames.
    identities: Vec<String>,
    issuer: Option<String>,
    key: Option<PublicKey>,
}

impl CertificateFields {
    fn read(der: &[u8]) -> Result<CertificateFields, String> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|err| format!("the signing certificate is unreadable ({err})"))?;
        let tbs = cert.tbs_certificate();
        let spki = x509_cert::der::Encode::to_der(tbs.subject_public_key_info())
            .map_err(|err| format!("the certificate's key is unreadable ({err})"))?;
        let mut fields = CertificateFields {
            identities: Vec::new(),
            issuer: None,
            key: PublicKey::from_der(&spki, "the signing certificate").ok(),
        };
        for extension in tbs.extensions().into_iter().flatten() {
            let value = extension.extn_value.as_bytes();
            if extension.extn_id == ISSUER_V2 {
                fields.issuer = Utf8StringRef::from_der(value)
                    .ok()
                    .map(|text| text.as_str().to_owned());
            } else if extension.extn_id == ISSUER_V1 && fields.issuer.is_none() {
                fields.issuer = std::str::from_utf8(value).ok().map(str::to_owned);
            } else if extension.extn_id == SubjectAltName::OID_VALUE {
                let names = SubjectAltName::from_der(value)
                    .map_err(|err| format!("the certificate's names are unreadable ({err})"))?;
                fields
                    .identities
                    .extend(names.0.iter().filter_map(identity));
            }
        }
        Ok(fields)
    }
}

fn identity(name: &GeneralName) -> Option<String> {
    let text = |value: &Ia5String| value.as_str().to_owned();
    match name {
        GeneralName::Rfc822Name(email) => Some(text(email)),
        GeneralName::UniformResourceIdentifier(uri) => Some(text(uri)),
        GeneralName::OtherName(other) if other.type_id == USERNAME_SAN => other
            .value
            .decode_as::<Utf8StringRef<'_>>()
            .ok()
            .map(|text| text.as_str().to_owned()),
        _ => None,
    }
}

trait OidValue {
    const OID_VALUE: ObjectIdentifier;
}

impl OidValue for SubjectAltName {
    const OID_VALUE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::PrivateKey;
    use skillport_testkit::SigningCa;
    use time::Duration;

    const ISSUER: &str = "https://accounts.example.com";
    const WHO: &str = "release@example.com";

    struct Keyless {
        ca: SigningCa,
        candidate: Candidate,
        digest: Digest,
    }

    /// A candidate signed with a certificate for `who` valid from `from` to `to` (from now).
    fn keyless(who: &str, from: Duration, to: Duration) -> Keyless {
        let ca = SigningCa::new("test root");
        let now = OffsetDateTime::now_utc();
        let cert = ca.issue(who, ISSUER, now + from, now + to);
        let key = PrivateKey::from_pkcs8_pem(&cert.key_pem, "leaf").unwrap();
        let digest = Digest::sha256(b"image");
        let der = pem::parse(&cert.cert_pem).unwrap().into_contents();
        let candidate = Candidate {
            origin: "bundle x".into(),
            signed: b"payload".to_vec(),
            signature: key.sign(b"payload"),
            subjects: vec![digest.clone()],
            certificate: Some(der),
            chain: Vec::new(),
            created: None,
            tlog: Vec::new(),
        };
        Keyless {
            ca,
            candidate,
            digest,
        }
    }

    fn requirement(ca: &SigningCa, subject: Matcher, issuer: Matcher) -> Requirement {
        Requirement::Keyless {
            subject,
            issuer,
            root: Arc::new(
                TrustedRoot::from_json(ca.trusted_root_json().as_bytes(), "root").unwrap(),
            ),
        }
    }

    fn exact(text: &str) -> Matcher {
        Matcher::Exact(text.to_owned())
    }

    fn run(k: &Keyless, requirement: &Requirement) -> Result<Verified, String> {
        check(
            &k.candidate,
            &k.digest,
            requirement,
            OffsetDateTime::now_utc(),
        )
    }

    #[test]
    fn a_certificate_for_the_identity_and_issuer_passes() {
        let k = keyless(WHO, -Duration::minutes(5), Duration::minutes(5));
        let verified = run(&k, &requirement(&k.ca, exact(WHO), exact(ISSUER))).unwrap();
        assert_eq!(
            verified.signer,
            Signer::Certificate {
                subject: WHO.into(),
                issuer: ISSUER.into()
            }
        );
        let by_regex = requirement(
            &k.ca,
            Matcher::regex("@example\\.com$", "re").unwrap(),
            Matcher::regex("^https://accounts\\.", "re").unwrap(),
        );
        assert!(run(&k, &by_regex).is_ok());
    }

    #[test]
    fn another_identity_or_issuer_is_refused_by_name() {
        let k = keyless(WHO, -Duration::minutes(5), Duration::minutes(5));
        let err = run(
            &k,
            &requirement(&k.ca, exact("mallory@example.com"), exact(ISSUER)),
        )
        .unwrap_err();
        assert!(
            err.contains("names release@example.com, not \"mallory@example.com\""),
            "{err}"
        );
        let err = run(
            &k,
            &requirement(&k.ca, exact(WHO), exact("https://evil.example")),
        )
        .unwrap_err();
        assert!(
            err.contains("OIDC issuer \"https://accounts.example.com\""),
            "{err}"
        );
    }

    #[test]
    fn a_certificate_outside_its_validity_or_from_another_ca_is_refused() {
        let expired = keyless(WHO, -Duration::days(2), -Duration::days(1));
        let err = run(
            &expired,
            &requirement(&expired.ca, exact(WHO), exact(ISSUER)),
        )
        .unwrap_err();
        assert!(err.contains("has expired"), "{err}");
        let early = keyless(WHO, Duration::days(1), Duration::days(2));
        let err = run(&early, &requirement(&early.ca, exact(WHO), exact(ISSUER))).unwrap_err();
        assert!(err.contains("not valid yet"), "{err}");
        let k = keyless(WHO, -Duration::minutes(5), Duration::minutes(5));
        let other = SigningCa::new("another root");
        let err = run(&k, &requirement(&other, exact(WHO), exact(ISSUER))).unwrap_err();
        assert!(err.contains("does not chain to the trusted root"), "{err}");
    }

    #[test]
    fn an_expired_certificate_passes_when_a_trusted_log_promises_it_signed_in_time() {
        use base64::Engine as _;
        let mut k = keyless(WHO, -Duration::days(2), -Duration::days(1));
        let log = PrivateKey::generate();
        let cert_pem = pem::encode(&pem::Pem::new(
            "CERTIFICATE",
            k.candidate.certificate.clone().unwrap(),
        ));
        let in_time = (OffsetDateTime::now_utc() - Duration::hours(36)).unix_timestamp();
        k.candidate.tlog = vec![crate::tlog::tests::entry(
            &log,
            &k.candidate.signature,
            &cert_pem,
            in_time,
        )];
        let mut root: serde_json::Value = serde_json::from_str(&k.ca.trusted_root_json()).unwrap();
        let base64 = base64::engine::general_purpose::STANDARD;
        root["tlogs"] = serde_json::json!([{
            "baseUrl": "https://rekor.test.invalid", "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": base64.encode(log.public_key().to_der()),
                          "keyDetails": "PKIX_ECDSA_P256_SHA_256"},
            "logId": {"keyId": base64.encode(crate::tlog::tests::log_id(&log))},
        }]);
        let with_log = Requirement::Keyless {
            subject: exact(WHO),
            issuer: exact(ISSUER),
            root: Arc::new(TrustedRoot::from_json(root.to_string().as_bytes(), "root").unwrap()),
        };
        let logged = run(&k, &with_log).unwrap().logged_at.unwrap();
        assert!(logged.ends_with('Z'), "{logged}");
        // The same without the log in the trusted root: checked now, and expired.
        let without = requirement(&k.ca, exact(WHO), exact(ISSUER));
        assert!(run(&k, &without).unwrap_err().contains("has expired"));
        // A promise of a time outside the certificate's validity does not help either.
        k.candidate.tlog = vec![crate::tlog::tests::entry(
            &log,
            &k.candidate.signature,
            &cert_pem,
            (OffsetDateTime::now_utc() - Duration::hours(12)).unix_timestamp(),
        )];
        assert!(run(&k, &with_log).unwrap_err().contains("has expired"));
    }

    #[test]
    fn a_tampered_payload_or_another_digest_is_refused() {
        let mut k = keyless(WHO, -Duration::minutes(5), Duration::minutes(5));
        let required = requirement(&k.ca, exact(WHO), exact(ISSUER));
        let original = k.candidate.clone();
        k.candidate.signed = b"payloaD".to_vec();
        let err = run(&k, &required).unwrap_err();
        assert!(
            err.contains("does not verify with its certificate's key"),
            "{err}"
        );
        k.candidate = original;
        k.digest = Digest::sha256(b"another image");
        let err = run(&k, &required).unwrap_err();
        assert!(
            err.contains("signs sha256:") && err.contains(", not sha256:"),
            "{err}"
        );
    }

    #[test]
    fn a_key_signature_is_not_a_keyless_one_and_the_other_way_round() {
        let key = PrivateKey::generate();
        let digest = Digest::sha256(b"image");
        let bytes = crate::bundle::sign(&key, &digest);
        let candidate = crate::bundle::read_bundle(&bytes, "bundle y", None)
            .unwrap()
            .remove(0);
        let ca = SigningCa::new("root");
        let err = check(
            &candidate,
            &digest,
            &requirement(&ca, exact(WHO), exact(ISSUER)),
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
        assert!(err.contains("made with a key, not a certificate"), "{err}");
        let other = Requirement::Key {
            key: PrivateKey::generate().public_key(),
            name: "other.pub".into(),
        };
        let err = check(&candidate, &digest, &other, OffsetDateTime::now_utc()).unwrap_err();
        assert!(err.contains("not signed with the key other.pub"), "{err}");
    }
}
