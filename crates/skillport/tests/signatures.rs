// Signatures with the real cosign (v3.1.3, built by scripts/k8s-tools.sh) on both kinds of
// registry, each with TLS and basic auth: the distribution registry 2.8 (no referrers API: the
// referrers tag) and go-containerregistry's registry with the referrers API. cosign signs and
// skillport verifies (v3 bundles and legacy .sig tags, with a key and keyless against a
// trusted root the test makes); skillport signs and `cosign verify` accepts; and each refusal
// says why.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Run, Sandbox, path_str, run, write_minimal_skill};
use skillport_testkit::{Registry, SigningCa, k8s_tool};
use time::Duration;

const PASSWORD: &str = "test-key-password";

/// One registry and everything the tools need to reach it.
struct Setup {
    sandbox: Sandbox,
    registry: Registry,
    docker_config: PathBuf,
    ca: String,
}

impl Setup {
    fn new(registry: Registry) -> Setup {
        let sandbox = Sandbox::new();
        let docker_config = sandbox.join("docker");
        registry.docker_config(&docker_config);
        let ca = path_str(registry.ca_file().expect("TLS")).to_owned();
        Setup {
            sandbox,
            registry,
            docker_config,
            ca,
        }
    }

    /// `skillport` with the registry's CA and credentials, and the key password.
    fn skillport(&self, args: &[&str]) -> Run {
        let authfile = self.docker_config.join("config.json");
        let mut all = vec!["--ca-file", &self.ca, "--authfile", path_str(&authfile)];
        all.extend(args);
        let mut command = self.sandbox.skillport(&all);
        command.env("COSIGN_PASSWORD", PASSWORD);
        run(command)
    }

    /// `skillport generate-key-pair` (a storeless command: no registry flags).
    fn generate_key_pair(&self, prefix: &str) {
        let mut command =
            self.sandbox
                .skillport(&["generate-key-pair", "--output-key-prefix", prefix]);
        command.env("COSIGN_PASSWORD", PASSWORD);
        run(command).success();
    }

    /// The real cosign, trusting the registry's CA, with its credentials.
    fn cosign(&self, args: &[&str]) -> Run {
        let mut command = Command::new(k8s_tool("cosign"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.sandbox.join("home"))
            .env("DOCKER_CONFIG", &self.docker_config)
            .env("SSL_CERT_FILE", &self.ca)
            .env("COSIGN_PASSWORD", PASSWORD)
            .current_dir(self.sandbox.path())
            .args(args);
        run(command)
    }

    /// `cosign sign` offline (no transparency log, no signing config), v3 bundle or legacy.
    fn cosign_sign(&self, key: &str, image: &str, legacy: bool, extra: &[&str]) {
        let mut args = vec![
            "sign",
            "--yes",
            "--key",
            key,
            "--use-signing-config=false",
            "--tlog-upload=false",
        ];
        if legacy {
            args.push("--new-bundle-format=false");
        }
        args.extend(extra);
        args.push(image);
        self.cosign(&args).success();
    }

    /// Builds a skill and pushes it; returns the pushed reference and its digest.
    fn push_skill(&self, name: &str) -> (String, String) {
        let dir = write_minimal_skill(self.sandbox.path(), name);
        self.sandbox.build(&dir, &format!("{name}:1.0.0"));
        let remote = format!("{}/skills/{name}:1.0.0", self.registry.host());
        let digest = self
            .skillport(&["push", &format!("{name}:1.0.0"), &remote])
            .success()
            .stdout
            .trim()
            .to_owned();
        (remote, digest)
    }

    fn verify(&self, image: &str, flags: &[&str]) -> Run {
        let mut args = vec!["verify-signature", image, "--json"];
        args.extend(flags);
        self.skillport(&args)
    }

    /// A Fulcio-style CA, its `trusted_root.json` and its certificate (`ca.pem`, the chain
    /// cosign attaches) written into the sandbox.
    fn signing_ca(&self) -> SigningCa {
        let ca = SigningCa::new("skillport test fulcio");
        std::fs::write(
            self.sandbox.join("trusted_root.json"),
            ca.trusted_root_json(),
        )
        .unwrap();
        std::fs::write(self.sandbox.join("ca.pem"), ca.pem()).unwrap();
        ca
    }

    fn file(&self, name: &str) -> String {
        path_str(&self.sandbox.join(name)).to_owned()
    }
}

/// The origins of the signatures that passed (`bundle sha256:…`, `sha256-….sig layer 1`).
fn origins(run: &Run) -> Vec<String> {
    run.json()["signatures"]
        .as_array()
        .unwrap_or_else(|| panic!("no signatures in the output\n{run}"))
        .iter()
        .map(|s| s["origin"].as_str().unwrap().to_owned())
        .collect()
}

fn key_interop(setup: &Setup) {
    let (image, digest) = setup.push_skill("signed-skill");
    let (unsigned, _) = setup.push_skill("unsigned-skill");

    // cosign's key pair and v3 bundle → skillport verifies with cosign.pub.
    setup.cosign(&["generate-key-pair"]).success();
    setup.cosign_sign("cosign.key", &format!("{image}@{digest}"), false, &[]);
    let verified = setup.verify(&image, &["--key", "cosign.pub"]).success();
    assert_eq!(verified.json()["digest"], digest.as_str());
    assert_eq!(verified.json()["signatures"][0]["signer"]["kind"], "key");
    assert!(
        origins(&verified)[0].starts_with("bundle sha256:"),
        "{verified}"
    );

    // A legacy .sig tag from cosign is read too.
    setup.cosign_sign("cosign.key", &format!("{image}@{digest}"), true, &[]);
    let both = origins(&setup.verify(&image, &["--key", "cosign.pub"]).success());
    assert!(
        both.iter().any(|o| o.ends_with(".sig layer 1"))
            && both.iter().any(|o| o.starts_with("bundle")),
        "{both:?}"
    );

    // skillport's key pair and signature → cosign verify accepts both.
    setup.generate_key_pair("ours");
    setup
        .skillport(&["sign", &image, "--key", "ours.key"])
        .success();
    let cosign = setup
        .cosign(&[
            "verify",
            "--key",
            "ours.pub",
            "--insecure-ignore-tlog=true",
            &image,
        ])
        .success();
    assert!(cosign.stdout.contains(&digest), "{cosign}");
    // cosign reads skillport's encrypted key file and signs with it.
    setup.cosign_sign("ours.key", &unsigned, false, &[]);
    setup.verify(&unsigned, &["--key", "ours.pub"]).success();

    // Refusals, each naming why.
    let other = setup.verify(&image, &["--key", "cosign.pub"]).success();
    assert_eq!(
        origins(&other).len(),
        2,
        "ours is not counted for cosign.pub\n{other}"
    );
    let (bare, bare_digest) = setup.push_skill("never-signed");
    let none = setup.verify(&bare, &["--key", "cosign.pub"]).failure();
    assert!(
        none.stderr
            .contains(&format!("@{bare_digest} has no signature")),
        "{none}"
    );
    assert!(
        none.stderr.contains("hint: sign it with `skillport sign"),
        "{none}"
    );
    setup.generate_key_pair("stranger");
    let stranger = setup.verify(&image, &["--key", "stranger.pub"]).failure();
    assert!(
        stranger
            .stderr
            .contains("is signed with the key stranger.pub:"),
        "{stranger}"
    );
    assert!(
        stranger
            .stderr
            .contains("not signed with the key stranger.pub"),
        "{stranger}"
    );
}

#[test]
fn cosign_and_skillport_read_each_others_signatures_without_the_referrers_api() {
    let setup = Setup::new(Registry::tls_basic_auth());
    key_interop(&setup);

    // With no referrers API the bundles sit under the referrers tag. A registry that serves
    // image A's signatures as image B's (the tag copied) gets no signature accepted for B.
    let (a, a_digest) = setup.push_skill("image-a");
    let (b, b_digest) = setup.push_skill("image-b");
    setup
        .skillport(&["sign", &a, "--key", "ours.key"])
        .success();
    let tag = |digest: &str| digest.replace(':', "-");
    let repo_a = a.rsplit_once(':').unwrap().0;
    let repo_b = b.rsplit_once(':').unwrap().0;
    // Copy A's signature artifact and referrers index into B's repository, under B's tag.
    let crane = |args: &[&str]| {
        let mut command = Command::new(k8s_tool("crane"));
        command
            .env("DOCKER_CONFIG", &setup.docker_config)
            .env("SSL_CERT_FILE", &setup.ca)
            .args(args);
        run(command).success()
    };
    let index = crane(&["manifest", &format!("{repo_a}:{}", tag(&a_digest))]).stdout;
    let signature: serde_json::Value = serde_json::from_str(&index).unwrap();
    let artifact = signature["manifests"][0]["digest"].as_str().unwrap();
    crane(&[
        "copy",
        &format!("{repo_a}@{artifact}"),
        &format!("{repo_b}@{artifact}"),
    ]);
    crane(&[
        "copy",
        &format!("{repo_a}:{}", tag(&a_digest)),
        &format!("{repo_b}:{}", tag(&b_digest)),
    ]);
    let swapped = setup.verify(&b, &["--key", "ours.pub"]).failure();
    assert!(
        swapped
            .stderr
            .contains(&format!("signs {a_digest}, not {b_digest}")),
        "{swapped}"
    );
}

#[test]
fn cosign_and_skillport_read_each_others_signatures_through_the_referrers_api() {
    let setup = Setup::new(Registry::tls_basic_auth_referrers());
    key_interop(&setup);
    // `push --sign` signs what it pushed, through the API: no referrers tag is written.
    let dir = write_minimal_skill(setup.sandbox.path(), "pushed-signed");
    setup.sandbox.build(&dir, "pushed-signed:1");
    let remote = format!("{}/skills/pushed-signed:1", setup.registry.host());
    let pushed = setup
        .skillport(&[
            "push",
            "pushed-signed:1",
            &remote,
            "--sign",
            "--key",
            "ours.key",
        ])
        .success();
    assert!(pushed.stderr.contains("signed "), "{pushed}");
    setup.verify(&remote, &["--key", "ours.pub"]).success();
    let tags = setup
        .skillport(&["tags", &remote.replace(":1", "")])
        .success();
    assert_eq!(tags.stdout.trim(), "1", "only the image's own tag\n{tags}");
}

const OIDC_ISSUER: &str = "https://accounts.example.com";

/// Signs `image` with cosign as `who`, with a certificate from `ca` valid from `from` to `to`
/// (relative to now): cosign imports the certificate's key into its own key format and
/// attaches the certificate and `ca.pem` as the chain.
fn sign_keyless(
    setup: &Setup,
    ca: &SigningCa,
    who: &str,
    valid: (Duration, Duration),
    image: &str,
    legacy: bool,
) {
    let now = time::OffsetDateTime::now_utc();
    let cert = ca.issue(who, OIDC_ISSUER, now + valid.0, now + valid.1);
    let name = who.replace(['@', '.'], "-");
    std::fs::write(setup.sandbox.join(&format!("{name}.crt")), &cert.cert_pem).unwrap();
    std::fs::write(
        setup.sandbox.join(&format!("{name}-plain.pem")),
        &cert.key_pem,
    )
    .unwrap();
    setup
        .cosign(&[
            "import-key-pair",
            "--key",
            &format!("{name}-plain.pem"),
            "--output-key-prefix",
            &name,
        ])
        .success();
    let certificate = setup.file(&format!("{name}.crt"));
    let chain = setup.file("ca.pem");
    setup.cosign_sign(
        &format!("{name}.key"),
        image,
        legacy,
        &["--certificate", &certificate, "--certificate-chain", &chain],
    );
}

/// `verify-signature IMAGE --json` for `identity` and `issuer` against the root file `root`.
fn verify_keyless(setup: &Setup, image: &str, identity: &str, issuer: &str, root: &str) -> Run {
    let identity_flag = if identity.starts_with('@') {
        "--certificate-identity-regexp"
    } else {
        "--certificate-identity"
    };
    let issuer_flag = if issuer.starts_with('^') {
        "--certificate-oidc-issuer-regexp"
    } else {
        "--certificate-oidc-issuer"
    };
    setup.verify(
        image,
        &[
            identity_flag,
            identity,
            issuer_flag,
            issuer,
            "--trusted-root",
            &setup.file(root),
        ],
    )
}

#[test]
fn keyless_signatures_are_checked_against_the_trusted_root_identity_and_issuer() {
    let setup = Setup::new(Registry::tls_basic_auth());
    let ca = setup.signing_ca();
    let (image, digest) = setup.push_skill("keyless");
    let an_hour = (-Duration::minutes(5), Duration::hours(1));
    sign_keyless(
        &setup,
        &ca,
        "release@example.com",
        an_hour,
        &format!("{image}@{digest}"),
        false,
    );

    let ok = verify_keyless(
        &setup,
        &image,
        "release@example.com",
        OIDC_ISSUER,
        "trusted_root.json",
    )
    .success();
    assert_eq!(
        ok.json()["signatures"][0]["signer"]["subject"],
        "release@example.com"
    );
    assert_eq!(ok.json()["signatures"][0]["signer"]["issuer"], OIDC_ISSUER);
    verify_keyless(
        &setup,
        &image,
        "@example\\.com$",
        "^https://accounts",
        "trusted_root.json",
    )
    .success();

    let wrong = verify_keyless(
        &setup,
        &image,
        "mallory@example.com",
        OIDC_ISSUER,
        "trusted_root.json",
    )
    .failure();
    assert!(
        wrong
            .stderr
            .contains("names release@example.com, not \"mallory@example.com\""),
        "{wrong}"
    );
    let wrong = verify_keyless(
        &setup,
        &image,
        "release@example.com",
        "https://evil.example",
        "trusted_root.json",
    )
    .failure();
    assert!(wrong.stderr.contains("issued for OIDC issuer"), "{wrong}");
    let missing = setup
        .verify(
            &image,
            &[
                "--certificate-identity",
                "release@example.com",
                "--trusted-root",
                &setup.file("trusted_root.json"),
            ],
        )
        .failure();
    assert!(
        missing.stderr.contains("needs its OIDC issuer too"),
        "{missing}"
    );
    std::fs::write(
        setup.sandbox.join("other_root.json"),
        SigningCa::new("someone else").trusted_root_json(),
    )
    .unwrap();
    let other = verify_keyless(
        &setup,
        &image,
        "release@example.com",
        OIDC_ISSUER,
        "other_root.json",
    )
    .failure();
    assert!(
        other.stderr.contains("does not chain to the trusted root"),
        "{other}"
    );
}

#[test]
fn a_keyless_legacy_signature_with_an_expired_certificate_is_refused() {
    let setup = Setup::new(Registry::tls_basic_auth());
    let ca = setup.signing_ca();
    let (old, old_digest) = setup.push_skill("expired");
    let last_week = (-Duration::days(8), -Duration::days(7));
    sign_keyless(
        &setup,
        &ca,
        "old@example.com",
        last_week,
        &format!("{old}@{old_digest}"),
        true,
    );
    let expired = verify_keyless(
        &setup,
        &old,
        "old@example.com",
        OIDC_ISSUER,
        "trusted_root.json",
    )
    .failure();
    assert!(
        expired
            .stderr
            .contains(".sig layer 1: the signing certificate has expired"),
        "{expired}"
    );
}
