// Signatures: `sign`, `verify-signature`, `generate-key-pair`, and `push --sign`. The formats
// and checks are skillport-sign's; the registry work is the client's.

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use skillport_oci::spec::{Annotations, Descriptor, annotation};
use skillport_oci::{Digest, Reference};
use skillport_registry::{BUNDLE_ARTIFACT_TYPE, Client};
use skillport_sign::{Matcher, PrivateKey, PublicKey, Requirement, TrustedRoot};
use time::OffsetDateTime;

use crate::cli::{GenerateKeyPairArgs, SignArgs, VerifySignatureArgs};
use crate::remote::{RegistrySettings, asked, block_on, print_json, remote_reference};

/// The variable cosign reads a key's password from.
const PASSWORD_VARIABLE: &str = "COSIGN_PASSWORD";

pub fn generate_key_pair(args: &GenerateKeyPairArgs) -> Result<ExitCode> {
    let private = format!("{}.key", args.output_key_prefix);
    let public = format!("{}.pub", args.output_key_prefix);
    for file in [&private, &public] {
        if Path::new(file).exists() {
            bail!("{file} exists; move it away or pass --output-key-prefix to write other files");
        }
    }
    let password = password(&private, true)?;
    let key = PrivateKey::generate();
    write_new(
        &private,
        key.to_encrypted_pem(password.as_bytes()).as_bytes(),
        0o600,
    )?;
    write_new(&public, key.public_key().to_pem().as_bytes(), 0o644)?;
    eprintln!("Private key written to {private}");
    eprintln!("Public key written to {public}");
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` (never overwriting) with `mode`.
fn write_new(path: &str, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {path}"))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {path}"))
}

/// The key's password: `COSIGN_PASSWORD`, else asked on the terminal (twice for a new key).
fn password(key_file: &str, new: bool) -> Result<String> {
    if let Some(value) = std::env::var_os(PASSWORD_VARIABLE) {
        return value
            .into_string()
            .map_err(|_| anyhow!("{PASSWORD_VARIABLE} is not UTF-8"));
    }
    if !std::io::stdin().is_terminal() {
        bail!("{key_file} needs a password: set {PASSWORD_VARIABLE} (no terminal to ask on)");
    }
    let first = rpassword::prompt_password(format!("Enter password for {key_file}: "))
        .context("reading the password")?;
    if new {
        let again = rpassword::prompt_password(format!("Enter password for {key_file} again: "))
            .context("reading the password")?;
        if again != first {
            bail!("the passwords do not match; nothing was written");
        }
    }
    Ok(first)
}

fn read_private_key(path: &Path) -> Result<PrivateKey> {
    let what = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {what}"))?;
    let password = password(&what, false)?;
    Ok(PrivateKey::from_encrypted_pem(
        &text,
        password.as_bytes(),
        &what,
    )?)
}

pub fn sign(settings: &RegistrySettings, args: &SignArgs) -> Result<ExitCode> {
    let key = read_private_key(&args.key)?;
    let reference = remote_reference(&args.reference)?;
    let client = settings.client(&[&reference])?;
    let image = block_on(client.resolve(&reference))
        .with_context(|| format!("resolving {}", asked(&reference)))?;
    let signed = sign_resolved(&client, &reference, &image, &key)?;
    report_signed(&reference, &image.digest, &signed, args.json)
}

/// Signs the image `image` (already resolved) in the repository of `reference`.
pub fn sign_resolved(
    client: &Client,
    reference: &Reference,
    image: &Descriptor,
    key: &PrivateKey,
) -> Result<skillport_registry::Attachment> {
    let bundle = skillport_sign::bundle::sign(key, &image.digest);
    let mut annotations = Annotations::new();
    annotations.insert("dev.sigstore.bundle.content".into(), "dsse-envelope".into());
    annotations.insert(
        "dev.sigstore.bundle.predicateType".into(),
        skillport_sign::bundle::COSIGN_SIGN_PREDICATE.into(),
    );
    annotations.insert(annotation::CREATED.into(), now_rfc3339());
    block_on(client.attach(reference, image, BUNDLE_ARTIFACT_TYPE, &bundle, annotations))
        .with_context(|| {
            format!(
                "attaching the signature to {}@{}",
                reference.repository(),
                image.digest
            )
        })
}

fn report_signed(
    reference: &Reference,
    digest: &Digest,
    signed: &skillport_registry::Attachment,
    json: bool,
) -> Result<ExitCode> {
    let how = if signed.referrers_api {
        "through the referrers API".to_owned()
    } else {
        format!(
            "under the referrers tag {}",
            skillport_registry::fallback_tag(digest)
        )
    };
    eprintln!(
        "signed {} ({digest}); signature {} {how}",
        asked(reference),
        signed.digest
    );
    if json {
        print_json(&json!({
            "reference": reference.to_string(),
            "digest": digest,
            "signature": signed.digest,
            "referrersApi": signed.referrers_api,
        }))?;
    } else {
        out!("{}", signed.digest);
    }
    Ok(ExitCode::SUCCESS)
}

/// `push --sign`: signs the digest just pushed to `target`.
pub fn sign_pushed(
    settings: &RegistrySettings,
    target: &Reference,
    digest: &Digest,
    key_file: &Path,
) -> Result<()> {
    let key = read_private_key(key_file)?;
    let client = settings.client(&[target])?;
    let pinned: Reference = format!("{}@{digest}", target.name()).parse()?;
    let image = block_on(client.resolve(&pinned)).with_context(|| format!("resolving {pinned}"))?;
    let signed = sign_resolved(&client, target, &image, &key)?;
    eprintln!("signed {target} ({digest}); signature {}", signed.digest);
    Ok(())
}

fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond");
    now.format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats")
}

/// The requirement the flags say, as cosign reads them.
fn requirement(args: &VerifySignatureArgs) -> Result<Requirement> {
    if let Some(path) = &args.key {
        let what = path.display().to_string();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {what}"))?;
        return Ok(Requirement::Key {
            key: PublicKey::from_pem(&text, &what)?,
            name: what,
        });
    }
    let subject = match (
        &args.certificate_identity,
        &args.certificate_identity_regexp,
    ) {
        (Some(exact), _) => Matcher::Exact(exact.clone()),
        (None, Some(pattern)) => Matcher::regex(pattern, "--certificate-identity-regexp")?,
        (None, None) => bail!(
            "say whose signature counts: --key FILE, or --certificate-identity (or -regexp) with \
             --certificate-oidc-issuer (or -regexp) and --trusted-root"
        ),
    };
    let issuer = match (
        &args.certificate_oidc_issuer,
        &args.certificate_oidc_issuer_regexp,
    ) {
        (Some(exact), _) => Matcher::Exact(exact.clone()),
        (None, Some(pattern)) => Matcher::regex(pattern, "--certificate-oidc-issuer-regexp")?,
        (None, None) => bail!(
            "a keyless identity needs its OIDC issuer too: add --certificate-oidc-issuer (or -regexp)"
        ),
    };
    let Some(root_file) = &args.trusted_root else {
        bail!(
            "keyless verification is offline: pass --trusted-root FILE (a sigstore \
             trusted_root.json; `cosign trusted-root create` makes one)"
        );
    };
    let what = root_file.display().to_string();
    let bytes = std::fs::read(root_file).with_context(|| format!("reading {what}"))?;
    Ok(Requirement::Keyless {
        subject,
        issuer,
        root: Arc::new(TrustedRoot::from_json(&bytes, &what)?),
    })
}

pub fn verify_signature(
    settings: &RegistrySettings,
    args: &VerifySignatureArgs,
) -> Result<ExitCode> {
    let requirement = requirement(args)?;
    let reference = remote_reference(&args.reference)?;
    let client = settings.client(&[&reference])?;
    let digest = match reference.digest() {
        Some(digest) => digest.clone(),
        None => {
            block_on(client.resolve(&reference))
                .with_context(|| format!("resolving {}", asked(&reference)))?
                .digest
        }
    };
    let attached = block_on(client.signatures(&reference, &digest))
        .with_context(|| format!("reading the signatures of {}@{digest}", reference.name()))?;
    let (candidates, unreadable) =
        skillport_sign::bundle::read_all(attached.bundle_parts(), attached.legacy_parts());
    let outcome = skillport_sign::evaluate(
        &candidates,
        unreadable,
        &digest,
        &requirement,
        OffsetDateTime::now_utc(),
    );
    let pinned = format!("{}@{digest}", reference.name());
    if outcome.verified.is_empty() {
        if outcome.refused.is_empty() {
            let looked = if attached.referrers_api {
                "the referrers API"
            } else {
                "the referrers tag"
            };
            bail!(
                "{pinned} has no signature (looked in {looked} and the tag {}.sig)\nhint: sign it with `skillport sign {pinned} --key cosign.key`",
                skillport_registry::fallback_tag(&digest)
            );
        }
        bail!(
            "no signature on {pinned} is {requirement}:\n  {}",
            outcome.refused.join("\n  ")
        );
    }
    if args.json {
        print_json(&json!({
            "reference": reference.to_string(),
            "digest": digest,
            "signatures": outcome.verified,
        }))?;
    } else {
        for verified in &outcome.verified {
            let when = match (&verified.logged_at, &verified.created) {
                (Some(logged), _) => format!(", logged at {logged}"),
                (None, Some(created)) => format!(", at {created} (as the signer states)"),
                (None, None) => String::new(),
            };
            out!(
                "Verified {pinned}: signed by {} ({}{when})",
                verified.signer,
                verified.origin
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
