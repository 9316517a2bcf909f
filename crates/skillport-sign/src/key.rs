//! cosign's key files: `cosign.key` (an ECDSA P-256 private key, PKCS #8, encrypted with
//! scrypt + NaCl secretbox in the JSON envelope of go-securesystemslib's `encrypted` package,
//! PEM `ENCRYPTED SIGSTORE PRIVATE KEY`; cosign before v2 wrote `ENCRYPTED COSIGN PRIVATE KEY`)
//! and `cosign.pub` (PKIX `PUBLIC KEY`). The envelope is a file format, written here because no
//! crate reads it without a second crypto library (see Cargo.toml); the primitives are
//! RustCrypto's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, AeadCore, KeyInit, OsRng};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate as _;
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde::{Deserialize, Serialize};

use crate::SignError;

const PRIVATE_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
const OLD_PRIVATE_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// scrypt cost cosign writes with (go-securesystemslib's default in v2+: N = 2^16, r = 8, p = 1).
const SCRYPT_LOG_N: u8 = 16;
/// The most a key file may ask of scrypt: N = 2^20 is 1 GiB of memory with r = 8.
const MAX_SCRYPT_LOG_N: u8 = 20;

/// A private signing key (ECDSA P-256, as `cosign generate-key-pair` makes).
pub struct PrivateKey {
    key: SigningKey,
}

/// A public verification key (ECDSA P-256).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

impl PrivateKey {
    /// A new random key.
    #[must_use]
    pub fn generate() -> PrivateKey {
        PrivateKey {
            key: SigningKey::generate(),
        }
    }

    /// Reads a cosign key file. `what` names the file in errors.
    pub fn from_encrypted_pem(
        text: &str,
        password: &[u8],
        what: &str,
    ) -> Result<PrivateKey, SignError> {
        let bad = |reason: &str| SignError::Key {
            what: what.to_owned(),
            reason: reason.to_owned(),
        };
        let block = pem::parse(text).map_err(|_| bad("not a PEM file"))?;
        if block.tag() != PRIVATE_LABEL && block.tag() != OLD_PRIVATE_LABEL {
            return Err(bad(&format!(
                "a PEM `{}` block, not a cosign private key (`{PRIVATE_LABEL}`)",
                block.tag()
            )));
        }
        let envelope: Envelope = serde_json::from_slice(block.contents())
            .map_err(|err| bad(&format!("its encrypted envelope is unreadable: {err}")))?;
        if envelope.kdf.name != "scrypt" || envelope.cipher.name != "nacl/secretbox" {
            return Err(bad(&format!(
                "encrypted with {} + {}; only scrypt + nacl/secretbox (what cosign writes) is read",
                envelope.kdf.name, envelope.cipher.name
            )));
        }
        let params = &envelope.kdf.params;
        let log_n = (params.n.is_power_of_two() && params.n > 1)
            .then(|| u8::try_from(params.n.trailing_zeros()).unwrap_or(u8::MAX))
            .filter(|log_n| *log_n <= MAX_SCRYPT_LOG_N)
            .ok_or_else(|| bad("its scrypt cost N is not a power of two up to 2^20"))?;
        let salt = decode(&envelope.kdf.salt).ok_or_else(|| bad("its salt is not base64"))?;
        let nonce = decode(&envelope.cipher.nonce)
            .filter(|nonce| nonce.len() == 24)
            .ok_or_else(|| bad("its nonce is not 24 bytes of base64"))?;
        let ciphertext =
            decode(&envelope.ciphertext).ok_or_else(|| bad("its ciphertext is not base64"))?;
        let secret = derive(password, &salt, log_n, params.r, params.p)
            .ok_or_else(|| bad("its scrypt parameters are out of range"))?;
        let plain = XSalsa20Poly1305::new(&secret.into())
            .decrypt(nonce.as_slice().into(), ciphertext.as_slice())
            .map_err(|_| SignError::Password {
                what: what.to_owned(),
            })?;
        let key = SigningKey::from_pkcs8_der(&plain).map_err(|_| {
            bad("it does not hold an ECDSA P-256 key (the only kind cosign generates and Skillport signs with)")
        })?;
        Ok(PrivateKey { key })
    }

    /// Reads an unencrypted PKCS #8 PEM (`PRIVATE KEY`) P-256 key, as openssl and most tools
    /// write. `what` names it in errors.
    pub fn from_pkcs8_pem(text: &str, what: &str) -> Result<PrivateKey, SignError> {
        SigningKey::from_pkcs8_pem(text)
            .map(|key| PrivateKey { key })
            .map_err(|_| SignError::Key {
                what: what.to_owned(),
                reason: "not an unencrypted PKCS #8 ECDSA P-256 key (`PRIVATE KEY`)".into(),
            })
    }

    /// The key as a cosign key file, encrypted with `password`.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> String {
        let der = self
            .key
            .to_pkcs8_der()
            .expect("a P-256 key encodes as PKCS #8");
        let salt: [u8; 32] = random_bytes();
        let secret = derive(password, &salt, SCRYPT_LOG_N, 8, 1)
            .expect("the default scrypt parameters are valid");
        let nonce = XSalsa20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = XSalsa20Poly1305::new(&secret.into())
            .encrypt(&nonce, der.as_bytes())
            .expect("secretbox encrypts any length");
        let envelope = Envelope {
            kdf: Kdf {
                name: "scrypt".into(),
                params: KdfParams {
                    n: 1 << SCRYPT_LOG_N,
                    r: 8,
                    p: 1,
                },
                salt: BASE64.encode(salt),
            },
            cipher: Cipher {
                name: "nacl/secretbox".into(),
                nonce: BASE64.encode(nonce),
            },
            ciphertext: BASE64.encode(ciphertext),
        };
        let json = serde_json::to_vec(&envelope).expect("the envelope serializes");
        pem::encode(&pem::Pem::new(PRIVATE_LABEL, json))
    }

    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: *self.key.verifying_key(),
        }
    }

    /// An ECDSA signature (ASN.1 DER) over SHA-256 of `message`, as cosign signs.
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: DerSignature = self.key.sign(message);
        signature.as_bytes().to_vec()
    }
}

impl std::fmt::Debug for PrivateKey {
    /// Never the key itself.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("PrivateKey(<redacted>)")
    }
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (what `cosign.pub` holds). `what` names it in errors.
    pub fn from_pem(text: &str, what: &str) -> Result<PublicKey, SignError> {
        let block = pem::parse(text).map_err(|_| SignError::Key {
            what: what.to_owned(),
            reason: "not a PEM file".into(),
        })?;
        if block.tag() != "PUBLIC KEY" {
            return Err(SignError::Key {
                what: what.to_owned(),
                reason: format!(
                    "a PEM `{}` block, not a public key (`PUBLIC KEY`, as in cosign.pub)",
                    block.tag()
                ),
            });
        }
        PublicKey::from_der(block.contents(), what)
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8], what: &str) -> Result<PublicKey, SignError> {
        VerifyingKey::from_public_key_der(der)
            .map(|key| PublicKey { key })
            .map_err(|_| SignError::Key {
                what: what.to_owned(),
                reason: "not an ECDSA P-256 public key (the only kind Skillport verifies with)"
                    .into(),
            })
    }

    #[must_use]
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 key encodes as PKIX")
    }

    /// The key's DER SubjectPublicKeyInfo.
    #[must_use]
    pub fn to_der(&self) -> Vec<u8> {
        self.key
            .to_public_key_der()
            .expect("a P-256 key encodes as PKIX")
            .into_vec()
    }

    /// Whether `signature` (ASN.1 DER, or the 64-byte fixed form) is this key's over `message`.
    #[must_use]
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        if let Ok(signature) = DerSignature::try_from(signature) {
            return self.key.verify(message, &signature).is_ok();
        }
        p256::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|signature| self.key.verify(message, &signature).is_ok())
    }
}

fn derive(password: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32) -> Option<[u8; 32]> {
    let params = scrypt::Params::new(log_n, r, p).ok()?;
    let mut secret = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut secret).ok()?;
    Some(secret)
}

fn decode(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text).ok()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    crypto_secretbox::aead::rand_core::RngCore::fill_bytes(&mut OsRng, &mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_reads_back_with_its_password_only() {
        let key = PrivateKey::generate();
        let file = key.to_encrypted_pem(b"correct horse");
        assert!(file.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        let read = PrivateKey::from_encrypted_pem(&file, b"correct horse", "cosign.key").unwrap();
        assert_eq!(read.public_key(), key.public_key());
        let wrong = PrivateKey::from_encrypted_pem(&file, b"wrong", "cosign.key").unwrap_err();
        assert!(matches!(wrong, SignError::Password { .. }), "{wrong}");
    }

    #[test]
    fn signatures_verify_with_the_public_key_only() {
        let key = PrivateKey::generate();
        let public = PublicKey::from_pem(&key.public_key().to_pem(), "cosign.pub").unwrap();
        let signature = key.sign(b"payload");
        assert!(public.verifies(b"payload", &signature));
        assert!(!public.verifies(b"payload!", &signature));
        assert!(
            !PrivateKey::generate()
                .public_key()
                .verifies(b"payload", &signature)
        );
    }

    #[test]
    fn a_hostile_scrypt_cost_is_refused_before_any_work() {
        let key = PrivateKey::generate();
        let file = key.to_encrypted_pem(b"pw");
        let block = pem::parse(&file).unwrap();
        let mut envelope: serde_json::Value = serde_json::from_slice(block.contents()).unwrap();
        envelope["kdf"]["params"]["N"] = serde_json::json!(1u64 << 40);
        let hostile = pem::encode(&pem::Pem::new(
            PRIVATE_LABEL,
            serde_json::to_vec(&envelope).unwrap(),
        ));
        let err = PrivateKey::from_encrypted_pem(&hostile, b"pw", "cosign.key").unwrap_err();
        assert!(err.to_string().contains("scrypt cost"), "{err}");
    }
}
