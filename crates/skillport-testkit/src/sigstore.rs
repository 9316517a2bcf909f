//! A Fulcio-style certificate authority for keyless-signature tests, offline: a root CA, leaf
//! certificates shaped like Fulcio's (no subject, the signer's identity as an email or URI
//! subject alternative name, the OIDC issuer in extension 1.3.6.1.4.1.57264.1.8, extended key
//! usage code signing, a validity the test chooses), and the sigstore `trusted_root.json` that
//! trusts the CA — what `cosign verify --trusted-root` and `skillport verify-signature` read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Fulcio's OIDC issuer extension (v2: the value is a DER UTF8String).
const ISSUER_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];

/// A root CA that issues Fulcio-style signing certificates.
pub struct SigningCa {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
}

/// A signing certificate and its key (PEM; the key PKCS #8, ECDSA P-256).
pub struct SigningCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl SigningCa {
    pub fn new(name: &str) -> SigningCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "skillport-test");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("generating the CA key");
        let cert = params.self_signed(&key).expect("self-signing the CA");
        SigningCa {
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `identity` (an email, or a URI when it has `://`) from OIDC issuer
    /// `oidc_issuer`, valid from `not_before` to `not_after`.
    pub fn issue(
        &self,
        identity: &str,
        oidc_issuer: &str,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> SigningCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        let name = identity.try_into().expect("an IA5 identity");
        params.subject_alt_names = vec![if identity.contains("://") {
            SanType::URI(name)
        } else {
            SanType::Rfc822Name(name)
        }];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            ISSUER_OID,
            der_utf8_string(oidc_issuer),
        )];
        let key = KeyPair::generate().expect("generating a signing key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signing the certificate");
        SigningCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        pem_of(&self.der)
    }

    /// A sigstore trusted root (`trusted_root.json`) whose one certificate authority is this CA.
    pub fn trusted_root_json(&self) -> String {
        serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [],
            "certificateAuthorities": [{
                "subject": {"organization": "skillport-test", "commonName": "test"},
                "uri": "https://fulcio.test.invalid",
                "certChain": {"certificates": [{"rawBytes": BASE64.encode(&self.der)}]},
                "validFor": {"start": "2000-01-01T00:00:00Z"}
            }],
            "ctlogs": [],
            "timestampAuthorities": []
        })
        .to_string()
    }
}

fn der_utf8_string(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    assert!(bytes.len() < 128, "a short issuer URL");
    let mut der = vec![0x0c, u8::try_from(bytes.len()).expect("checked")];
    der.extend_from_slice(bytes);
    der
}

fn pem_of(der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}
