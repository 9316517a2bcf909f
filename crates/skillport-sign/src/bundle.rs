//! The two ways cosign attaches a signature to an image, read into one [`Candidate`]:
//!
//! - **a sigstore bundle** (cosign v3's default): an OCI artifact whose one layer
//!   (`application/vnd.dev.sigstore.bundle.v0.3+json`) is a bundle holding a DSSE envelope over
//!   an in-toto statement whose subject is the image digest, attached to the image through the
//!   OCI 1.1 referrers API (or the referrers tag `sha256-<hex>`);
//! - **a legacy `.sig` tag** (`sha256-<hex>.sig`): an image whose layers are simple-signing
//!   payloads, each with its signature (and certificate, chain) in layer annotations.
//!
//! [`sign`] writes the first, as cosign v3 does, so `cosign verify` reads it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use skillport_oci::Digest;

use crate::key::PrivateKey;

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Older bundle versions, still read.
const OLD_BUNDLE_MEDIA_TYPES: [&str; 3] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
];
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// A legacy layer's transparency-log promise.
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The predicate type cosign v3 signs images with.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const IN_TOTO_STATEMENT: &str = "https://in-toto.io/Statement/v1";
const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// A bundle or payload bigger than this is not a signature.
pub const MAX_SIGNATURE_BYTES: u64 = 1 << 20;
/// At most this many signatures of one envelope, certificates of one chain and log entries of
/// one signature are read: a hostile bundle must not multiply the checks (or the copies of its
/// payload) without bound. cosign writes one of each.
const MAX_PER_BUNDLE: usize = 4;
/// At most this many signatures of one image are checked.
pub const MAX_CANDIDATES: usize = 32;

/// A signature read from the registry, whichever form it came in, before any check.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Where it came from, for messages: `bundle sha256:…` or `sha256-….sig layer 1`.
    pub origin: String,
    /// The bytes the signature covers (the DSSE pre-authentication encoding, or the payload).
    pub signed: Vec<u8>,
    pub signature: Vec<u8>,
    /// The image digests the signed payload names.
    pub subjects: Vec<Digest>,
    /// The signing certificate (DER) and any chain above it, for keyless signatures.
    pub certificate: Option<Vec<u8>>,
    pub chain: Vec<Vec<u8>>,
    /// When the signer says it signed (the artifact's `org.opencontainers.image.created`);
    /// a claim, not a proof.
    pub created: Option<String>,
    /// Transparency-log entries that may prove when it was signed ([`crate::tlog`]).
    pub tlog: Vec<crate::tlog::TlogEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: Material,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dsse_envelope: Option<Envelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_signature: Option<serde_json::Value>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<Hint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<RawCert>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x509_certificate_chain: Option<Chain>,
    #[serde(default, skip_serializing)]
    tlog_entries: Vec<crate::tlog::BundleEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Hint {
    hint: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Chain {
    certificates: Vec<RawCert>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
struct EnvelopeSignature {
    sig: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    keyid: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<StatementSubject>,
    predicate_type: String,
}

#[derive(Deserialize)]
struct StatementSubject {
    digest: std::collections::BTreeMap<String, String>,
}

/// Reads a bundle blob into one candidate per envelope signature. `origin` names it.
pub fn read_bundle(
    bytes: &[u8],
    origin: &str,
    created: Option<&str>,
) -> Result<Vec<Candidate>, String> {
    let bundle: Bundle = serde_json::from_slice(bytes)
        .map_err(|err| format!("{origin}: not a sigstore bundle: {err}"))?;
    if bundle.media_type != BUNDLE_MEDIA_TYPE
        && !OLD_BUNDLE_MEDIA_TYPES.contains(&bundle.media_type.as_str())
    {
        return Err(format!(
            "{origin}: unknown bundle media type {:?}",
            bundle.media_type
        ));
    }
    let Some(envelope) = bundle.dsse_envelope else {
        return Err(format!(
            "{origin}: a message-signature bundle signs a blob, not an image (cosign signs images with a DSSE envelope)"
        ));
    };
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "{origin}: DSSE payload type {:?} is not an in-toto statement",
            envelope.payload_type
        ));
    }
    let payload = BASE64
        .decode(&envelope.payload)
        .map_err(|_| format!("{origin}: the DSSE payload is not base64"))?;
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|err| format!("{origin}: the signed statement is unreadable: {err}"))?;
    if statement.kind != IN_TOTO_STATEMENT && statement.kind != "https://in-toto.io/Statement/v0.1"
    {
        return Err(format!(
            "{origin}: not an in-toto statement ({:?})",
            statement.kind
        ));
    }
    if statement.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(format!(
            "{origin}: an attestation ({}), not a signature ({COSIGN_SIGN_PREDICATE})",
            statement.predicate_type
        ));
    }
    let subjects = statement
        .subject
        .iter()
        .filter_map(|subject| subject.digest.get("sha256"))
        .filter_map(|hex| format!("sha256:{hex}").parse().ok())
        .collect::<Vec<Digest>>();
    let material = bundle.verification_material;
    let mut certificates = material
        .certificate
        .into_iter()
        .chain(
            material
                .x509_certificate_chain
                .into_iter()
                .flat_map(|chain| chain.certificates),
        )
        .take(MAX_PER_BUNDLE + 1)
        .map(|cert| {
            BASE64
                .decode(cert.raw_bytes)
                .map_err(|_| format!("{origin}: a certificate is not base64"))
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let certificate = certificates.next();
    let chain: Vec<Vec<u8>> = certificates.collect();
    let tlog: Vec<crate::tlog::TlogEntry> = material
        .tlog_entries
        .iter()
        .take(MAX_PER_BUNDLE)
        .filter_map(crate::tlog::BundleEntry::entry)
        .collect();
    let signed = pae(&envelope.payload_type, &payload);
    envelope
        .signatures
        .iter()
        .take(MAX_PER_BUNDLE)
        .map(|signature| {
            Ok(Candidate {
                origin: origin.to_owned(),
                signed: signed.clone(),
                signature: BASE64
                    .decode(&signature.sig)
                    .map_err(|_| format!("{origin}: a signature is not base64"))?,
                subjects: subjects.clone(),
                certificate: certificate.clone(),
                chain: chain.clone(),
                created: created.map(str::to_owned),
                tlog: tlog.clone(),
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: CriticalImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct CriticalImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Reads one layer of a legacy `.sig` image: its payload and the annotations beside it.
pub fn read_legacy_layer(
    payload: &[u8],
    annotations: &std::collections::BTreeMap<String, String>,
    origin: &str,
) -> Result<Candidate, String> {
    let signature = annotations
        .get(SIGNATURE_ANNOTATION)
        .ok_or_else(|| format!("{origin}: no {SIGNATURE_ANNOTATION} annotation"))?;
    let signature = BASE64
        .decode(signature.trim())
        .map_err(|_| format!("{origin}: the signature annotation is not base64"))?;
    let parsed: SimpleSigning = serde_json::from_slice(payload)
        .map_err(|err| format!("{origin}: not a simple-signing payload: {err}"))?;
    if parsed.critical.kind != SIMPLE_SIGNING_TYPE {
        return Err(format!(
            "{origin}: payload type {:?} is not {SIMPLE_SIGNING_TYPE:?}",
            parsed.critical.kind
        ));
    }
    let subject: Digest = parsed
        .critical
        .image
        .digest
        .parse()
        .map_err(|_| format!("{origin}: the payload's image digest is not a digest"))?;
    let mut pems = Vec::new();
    for name in [CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION] {
        if let Some(text) = annotations.get(name).filter(|text| !text.trim().is_empty()) {
            let blocks =
                pem::parse_many(text).map_err(|_| format!("{origin}: {name} is not PEM"))?;
            pems.extend(blocks.into_iter().map(pem::Pem::into_contents));
        }
    }
    pems.truncate(MAX_PER_BUNDLE + 1);
    let mut pems = pems.into_iter();
    Ok(Candidate {
        origin: origin.to_owned(),
        signed: payload.to_vec(),
        signature,
        subjects: vec![subject],
        certificate: pems.next(),
        chain: pems.collect(),
        created: None,
        tlog: annotations
            .get(REKOR_BUNDLE_ANNOTATION)
            .and_then(|text| crate::tlog::legacy_entry(text))
            .into_iter()
            .collect(),
    })
}

/// Reads every signature attached to an image: bundles `(origin, created, bytes)` and legacy
/// layers `(origin, payload, annotations)`. Those that cannot be read give their reason.
pub fn read_all<'a>(
    bundles: impl IntoIterator<Item = (String, Option<String>, &'a [u8])>,
    legacy: impl IntoIterator<
        Item = (
            String,
            &'a [u8],
            &'a std::collections::BTreeMap<String, String>,
        ),
    >,
) -> (Vec<Candidate>, Vec<String>) {
    let mut candidates = Vec::new();
    let mut unreadable = Vec::new();
    for (origin, created, bytes) in bundles {
        match read_bundle(bytes, &origin, created.as_deref()) {
            Ok(read) => candidates.extend(read),
            Err(reason) => unreadable.push(reason),
        }
    }
    for (origin, payload, annotations) in legacy {
        match read_legacy_layer(payload, annotations, &origin) {
            Ok(read) => candidates.push(read),
            Err(reason) => unreadable.push(reason),
        }
    }
    candidates.truncate(MAX_CANDIDATES);
    unreadable.truncate(MAX_CANDIDATES);
    (candidates, unreadable)
}

/// DSSE's pre-authentication encoding: what a DSSE signature covers.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// `base64(sha256(SPKI DER))`: the key hint cosign writes into a bundle.
#[must_use]
pub fn key_hint(public_key_der: &[u8]) -> String {
    use sha2::Digest as _;
    BASE64.encode(sha2::Sha256::digest(public_key_der))
}

/// A bundle signing `digest` with `key`, as `cosign sign --key` (v3) makes it: a DSSE envelope
/// over an in-toto statement with the cosign signature predicate.
#[must_use]
pub fn sign(key: &PrivateKey, digest: &Digest) -> Vec<u8> {
    let statement = serde_json::json!({
        "_type": IN_TOTO_STATEMENT,
        "subject": [{ "digest": { digest.algorithm().name(): digest.hex() }, "annotations": {} }],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    });
    let payload = serde_json::to_vec(&statement).expect("a statement serializes");
    let signature = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload));
    let bundle = Bundle {
        media_type: BUNDLE_MEDIA_TYPE.to_owned(),
        verification_material: Material {
            public_key: Some(Hint {
                hint: key_hint(&key.public_key().to_der()),
            }),
            ..Material::default()
        },
        dsse_envelope: Some(Envelope {
            payload: BASE64.encode(&payload),
            payload_type: IN_TOTO_PAYLOAD_TYPE.to_owned(),
            signatures: vec![EnvelopeSignature {
                sig: BASE64.encode(signature),
                keyid: String::new(),
            }],
        }),
        message_signature: None,
    };
    serde_json::to_vec(&bundle).expect("a bundle serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::sha256(b"an image")
    }

    #[test]
    fn a_signed_bundle_reads_back_with_its_subject_and_verifies() {
        let key = PrivateKey::generate();
        let bytes = sign(&key, &digest());
        let candidates = read_bundle(&bytes, "bundle", None).unwrap();
        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0].subjects, vec![digest()]);
        assert!(
            key.public_key()
                .verifies(&candidates[0].signed, &candidates[0].signature)
        );
        assert!(candidates[0].certificate.is_none());
    }

    #[test]
    fn a_bundle_with_many_signatures_gives_a_bounded_number_of_candidates() {
        let key = PrivateKey::generate();
        let mut bundle: serde_json::Value = serde_json::from_slice(&sign(&key, &digest())).unwrap();
        let one = bundle["dsseEnvelope"]["signatures"][0].clone();
        bundle["dsseEnvelope"]["signatures"] = serde_json::Value::Array(vec![one; 10_000]);
        let text = bundle.to_string();
        let read = read_bundle(text.as_bytes(), "b", None).unwrap();
        assert_eq!(read.len(), MAX_PER_BUNDLE);
        let many = (0..100).map(|i| (format!("b{i}"), None, text.as_bytes()));
        let (candidates, _) = read_all(many, std::iter::empty());
        assert_eq!(candidates.len(), MAX_CANDIDATES);
    }

    #[test]
    fn the_encoding_is_dsse_v1() {
        assert_eq!(pae("t", b"ab"), b"DSSEv1 1 t 2 ab".to_vec());
    }

    #[test]
    fn attestations_and_blob_signatures_are_not_image_signatures() {
        let key = PrivateKey::generate();
        let mut bundle: serde_json::Value = serde_json::from_slice(&sign(&key, &digest())).unwrap();
        let payload = serde_json::json!({"_type": IN_TOTO_STATEMENT, "subject": [], "predicateType": "https://slsa.dev/provenance/v1"});
        bundle["dsseEnvelope"]["payload"] = BASE64.encode(payload.to_string()).into();
        let err = read_bundle(bundle.to_string().as_bytes(), "b", None).unwrap_err();
        assert!(err.contains("an attestation"), "{err}");
        bundle.as_object_mut().unwrap().remove("dsseEnvelope");
        bundle["messageSignature"] = serde_json::json!({});
        let err = read_bundle(bundle.to_string().as_bytes(), "b", None).unwrap_err();
        assert!(err.contains("signs a blob"), "{err}");
    }

    #[test]
    fn a_legacy_layer_reads_its_payload_signature_and_certificate() {
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r/x"}},"image":{{"docker-manifest-digest":"{}"}},"type":"cosign container image signature"}},"optional":null}}"#,
            digest()
        );
        let mut annotations = std::collections::BTreeMap::new();
        annotations.insert(SIGNATURE_ANNOTATION.to_owned(), BASE64.encode(b"sig"));
        let candidate = read_legacy_layer(payload.as_bytes(), &annotations, "layer").unwrap();
        assert_eq!(candidate.subjects, vec![digest()]);
        assert_eq!(candidate.signature, b"sig");
        annotations.clear();
        assert!(read_legacy_layer(payload.as_bytes(), &annotations, "layer").is_err());
    }
}
