//! When a keyless signature was made, as a transparency log (Rekor v1) promises it: a signed
//! entry timestamp (SET) over the entry's body, integrated time, log index and log ID, made with
//! a log key of the trusted root. A short-lived Fulcio certificate is checked at that time
//! rather than now, as cosign does — offline, from the promise alone (no inclusion proof).
//!
//! The entry must also be this signature's: its body must carry the signature, and the signing
//! certificate when there is one; else any valid entry of the log could vouch for any time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::key::PublicKey;

/// One log entry as a signature carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogEntry {
    pub log_id: Vec<u8>,
    pub log_index: i64,
    pub integrated_time: i64,
    /// The entry's canonicalized body (JSON).
    pub body: Vec<u8>,
    /// The log's signed entry timestamp.
    pub set: Vec<u8>,
}

/// A bundle's `verificationMaterial.tlogEntries[]` (v0.3), the fields read here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BundleEntry {
    log_index: String,
    log_id: LogId,
    integrated_time: String,
    #[serde(default)]
    inclusion_promise: Option<Promise>,
    canonicalized_body: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogId {
    key_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Promise {
    signed_entry_timestamp: String,
}

impl BundleEntry {
    /// The entry, when it carries a promise (an entry without one proves no time offline).
    pub(crate) fn entry(&self) -> Option<TlogEntry> {
        Some(TlogEntry {
            log_id: BASE64.decode(&self.log_id.key_id).ok()?,
            log_index: self.log_index.parse().ok()?,
            integrated_time: self.integrated_time.parse().ok()?,
            body: BASE64.decode(&self.canonicalized_body).ok()?,
            set: BASE64
                .decode(&self.inclusion_promise.as_ref()?.signed_entry_timestamp)
                .ok()?,
        })
    }
}

/// A legacy `.sig` layer's `dev.sigstore.cosign/bundle` annotation.
#[derive(Deserialize)]
struct LegacyBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: LegacyPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyPayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// The entry a legacy annotation holds, if it reads.
pub(crate) fn legacy_entry(annotation: &str) -> Option<TlogEntry> {
    let bundle: LegacyBundle = serde_json::from_str(annotation).ok()?;
    Some(TlogEntry {
        log_id: hex::decode(&bundle.payload.log_id).ok()?,
        log_index: bundle.payload.log_index,
        integrated_time: bundle.payload.integrated_time,
        body: BASE64.decode(&bundle.payload.body).ok()?,
        set: BASE64.decode(&bundle.set).ok()?,
    })
}

/// The time `entries` prove for `signature` (with `certificate`, DER) by the logs `keys`
/// (log ID → key): the earliest entry whose promise verifies and whose body is this
/// signature's.
pub(crate) fn signed_at(
    entries: &[TlogEntry],
    keys: &[(Vec<u8>, PublicKey)],
    signature: &[u8],
    certificate: Option<&[u8]>,
) -> Option<OffsetDateTime> {
    entries
        .iter()
        .filter(|entry| {
            keys.iter()
                .any(|(id, key)| *id == entry.log_id && key.verifies(&promised(entry), &entry.set))
        })
        .filter(|entry| binds(&entry.body, signature, certificate))
        .filter_map(|entry| OffsetDateTime::from_unix_timestamp(entry.integrated_time).ok())
        .min()
}

/// What the log signs: the canonical JSON (RFC 8785: sorted keys, no spaces) of the entry's
/// body, integrated time, log ID and index. Written out: the values are a base64 string, a hex
/// string and two integers, which need no escaping.
fn promised(entry: &TlogEntry) -> Vec<u8> {
    format!(
        r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
        BASE64.encode(&entry.body),
        entry.integrated_time,
        hex::encode(&entry.log_id),
        entry.log_index
    )
    .into_bytes()
}

/// Whether the entry body (hashedrekord, dsse, intoto: the signature and the certificate sit
/// at different places, base64 once or twice) carries `signature` and `certificate`.
fn binds(body: &[u8], signature: &[u8], certificate: Option<&[u8]>) -> bool {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let mut strings = Vec::new();
    collect_strings(&body, &mut strings);
    let decoded: Vec<Vec<u8>> = strings
        .iter()
        .filter_map(|text| BASE64.decode(text).ok())
        .collect();
    let twice: Vec<Vec<u8>> = decoded
        .iter()
        .filter_map(|bytes| BASE64.decode(bytes).ok())
        .collect();
    let has_signature = decoded.iter().chain(&twice).any(|bytes| bytes == signature);
    let has_certificate = certificate.is_none_or(|der| {
        decoded.iter().chain(&twice).any(|bytes| {
            pem::parse_many(bytes)
                .is_ok_and(|blocks| blocks.iter().any(|block| block.contents() == der))
        })
    });
    has_signature && has_certificate
}

fn collect_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(text) => out.push(text),
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect_strings(item, out)),
        serde_json::Value::Object(map) => map.values().for_each(|item| collect_strings(item, out)),
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::key::PrivateKey;

    /// A hashedrekord-style entry for `signature` and `certificate`, promised by `log` at `at`.
    pub(crate) fn entry(
        log: &PrivateKey,
        signature: &[u8],
        certificate_pem: &str,
        at: i64,
    ) -> TlogEntry {
        let body = serde_json::json!({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {"signature": {"content": BASE64.encode(signature),
                                   "publicKey": {"content": BASE64.encode(certificate_pem)}},
                     "data": {"hash": {"algorithm": "sha256", "value": "00"}}},
        });
        let mut entry = TlogEntry {
            log_id: log_id(log),
            log_index: 7,
            integrated_time: at,
            body: serde_json::to_vec(&body).unwrap(),
            set: Vec::new(),
        };
        entry.set = log.sign(&promised(&entry));
        entry
    }

    /// A log's ID: sha256 of its key's DER.
    pub(crate) fn log_id(log: &PrivateKey) -> Vec<u8> {
        use sha2::Digest as _;
        sha2::Sha256::digest(log.public_key().to_der()).to_vec()
    }

    #[test]
    fn a_promise_is_canonical_json() {
        let entry = TlogEntry {
            log_id: vec![0xab, 0x01],
            log_index: 3,
            integrated_time: 1_700_000_000,
            body: b"{}".to_vec(),
            set: Vec::new(),
        };
        assert_eq!(
            String::from_utf8(promised(&entry)).unwrap(),
            r#"{"body":"e30=","integratedTime":1700000000,"logID":"ab01","logIndex":3}"#
        );
    }

    #[test]
    fn only_a_promise_by_a_trusted_log_over_this_signature_gives_a_time() {
        let log = PrivateKey::generate();
        let keys = vec![(log_id(&log), log.public_key())];
        let cert = "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n";
        let good = entry(&log, b"sig", cert, 1_700_000_000);
        let at = signed_at(std::slice::from_ref(&good), &keys, b"sig", Some(&[1, 2, 3]));
        assert_eq!(at.map(OffsetDateTime::unix_timestamp), Some(1_700_000_000));
        // Another signature's entry, another certificate, a changed time, an unknown log.
        assert_eq!(
            signed_at(
                std::slice::from_ref(&good),
                &keys,
                b"other",
                Some(&[1, 2, 3])
            ),
            None
        );
        assert_eq!(
            signed_at(std::slice::from_ref(&good), &keys, b"sig", Some(&[9])),
            None
        );
        let mut moved = good.clone();
        moved.integrated_time += 1;
        assert_eq!(signed_at(&[moved], &keys, b"sig", Some(&[1, 2, 3])), None);
        let stranger = PrivateKey::generate();
        let mut forged = entry(&stranger, b"sig", cert, 1_700_000_000);
        forged.log_id = log_id(&log);
        assert_eq!(signed_at(&[forged], &keys, b"sig", Some(&[1, 2, 3])), None);
    }
}
