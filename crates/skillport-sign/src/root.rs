//! A sigstore trusted root (`trusted_root.json`, media type
//! `application/vnd.dev.sigstore.trustedroot+json;version=0.1`): the certificate authorities
//! keyless signing certificates must chain to, each valid for a time range. Read offline from a
//! file (flux-operator and `cosign verify --trusted-root` do the same).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::SignError;
use crate::key::PublicKey;

/// Extended key usage "code signing" (1.3.6.1.5.5.7.3.3), which Fulcio certificates carry.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// The certificate authorities of a trusted root.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    authorities: Vec<Authority>,
    /// Transparency logs' keys by log ID (sha256 of the key's DER), for signed entry
    /// timestamps ([`crate::tlog`]). Logs with keys other than ECDSA P-256 are left out.
    logs: Vec<(Vec<u8>, PublicKey)>,
}

#[derive(Debug, Clone)]
struct Authority {
    /// The chain as the file lists it: intermediates first, the root last.
    chain: Vec<Vec<u8>>,
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(default)]
    certificate_authorities: Vec<FileAuthority>,
    #[serde(default)]
    tlogs: Vec<FileLog>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileLog {
    public_key: FileKey,
    log_id: FileLogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileKey {
    #[serde(default)]
    raw_bytes: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileLogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileAuthority {
    cert_chain: FileChain,
    #[serde(default)]
    valid_for: Option<FileRange>,
}

#[derive(Deserialize)]
struct FileChain {
    certificates: Vec<FileCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileCert {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct FileRange {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

impl TrustedRoot {
    /// Reads a `trusted_root.json`. `what` names the file in errors.
    pub fn from_json(bytes: &[u8], what: &str) -> Result<TrustedRoot, SignError> {
        let bad = |reason: String| SignError::TrustedRoot {
            what: what.to_owned(),
            reason,
        };
        let file: File = serde_json::from_slice(bytes)
            .map_err(|err| bad(format!("not a sigstore trusted root: {err}")))?;
        let mut authorities = Vec::new();
        for (index, authority) in file.certificate_authorities.into_iter().enumerate() {
            let chain = authority
                .cert_chain
                .certificates
                .iter()
                .map(|cert| BASE64.decode(&cert.raw_bytes))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    bad(format!(
                        "certificateAuthorities[{index}]: a certificate is not base64"
                    ))
                })?;
            if chain.is_empty() {
                return Err(bad(format!(
                    "certificateAuthorities[{index}] has no certificate"
                )));
            }
            let time = |text: Option<&String>| -> Result<Option<OffsetDateTime>, SignError> {
                text.map(|text| {
                    OffsetDateTime::parse(text, &Rfc3339)
                        .map_err(|_| bad(format!("certificateAuthorities[{index}].validFor: {text:?} is not an RFC 3339 time")))
                })
                .transpose()
            };
            let range = authority.valid_for.as_ref();
            authorities.push(Authority {
                start: time(range.and_then(|range| range.start.as_ref()))?,
                end: time(range.and_then(|range| range.end.as_ref()))?,
                chain,
            });
        }
        let logs = file
            .tlogs
            .iter()
            .filter_map(|log| {
                let der = BASE64.decode(log.public_key.raw_bytes.as_deref()?).ok()?;
                let key = PublicKey::from_der(&der, "a transparency log key").ok()?;
                Some((BASE64.decode(&log.log_id.key_id).ok()?, key))
            })
            .collect();
        if authorities.is_empty() {
            return Err(bad(
                "it lists no certificateAuthorities, so no keyless certificate can chain to it"
                    .into(),
            ));
        }
        Ok(TrustedRoot { authorities, logs })
    }

    /// When a transparency log of this root promises `signature` (made with `certificate`)
    /// was logged, if one of `entries` proves it.
    #[must_use]
    pub fn logged_at(
        &self,
        entries: &[crate::tlog::TlogEntry],
        signature: &[u8],
        certificate: Option<&[u8]>,
    ) -> Option<OffsetDateTime> {
        crate::tlog::signed_at(entries, &self.logs, signature, certificate)
    }

    /// Checks that `leaf` (DER), with the `extra` intermediates a signature carried, chains to
    /// one of the authorities valid at `at`, is valid itself at `at`, and may sign code.
    pub fn verify_chain(
        &self,
        leaf: &[u8],
        extra: &[Vec<u8>],
        at: OffsetDateTime,
    ) -> Result<(), String> {
        let leaf_der = CertificateDer::from(leaf);
        let end_entity = webpki::EndEntityCert::try_from(&leaf_der)
            .map_err(|err| format!("the signing certificate is unreadable ({err})"))?;
        let seconds = u64::try_from(at.unix_timestamp()).unwrap_or(0);
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
        let mut last =
            "no certificate authority of the trusted root is valid at that time".to_owned();
        for authority in self
            .authorities
            .iter()
            .filter(|authority| authority.covers(at))
        {
            let (root, intermediates) = authority.chain.split_last().expect("checked non-empty");
            let root_der = CertificateDer::from(root.as_slice());
            let Ok(anchor) = webpki::anchor_from_trusted_cert(&root_der) else {
                continue;
            };
            let intermediates: Vec<CertificateDer<'_>> = intermediates
                .iter()
                .chain(extra)
                .map(|der| CertificateDer::from(der.as_slice()))
                .collect();
            match end_entity.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &[anchor],
                &intermediates,
                now,
                webpki::KeyUsage::required(CODE_SIGNING),
                None,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(err) => last = describe(&err),
            }
        }
        Err(last)
    }
}

impl Authority {
    fn covers(&self, at: OffsetDateTime) -> bool {
        self.start.is_none_or(|start| start <= at) && self.end.is_none_or(|end| at < end)
    }
}

fn describe(err: &webpki::Error) -> String {
    match err {
        webpki::Error::CertExpired { .. } => "the signing certificate has expired".into(),
        webpki::Error::CertNotValidYet { .. } => "the signing certificate is not valid yet".into(),
        webpki::Error::UnknownIssuer => {
            "the signing certificate does not chain to the trusted root".into()
        }
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the signing certificate may not sign code (no code-signing key usage)".into()
        }
        other => format!("the signing certificate is not trusted ({other})"),
    }
}
