//! A throwaway certificate authority, one server certificate it signed, and more on demand
//! (client certificates for Kubernetes identities, server certificates for webhooks).

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

/// A test CA and a leaf server certificate signed by it, written as PEM files into a temporary
/// folder that lives as long as this value.
///
/// The leaf is what rustls accepts: `basicConstraints` critical `CA:FALSE`, subject alternative
/// names for the server (by default `IP:127.0.0.1` and `DNS:localhost`), extended key usage
/// `serverAuth`. rustls refuses a CA certificate used as the server certificate
/// (`CaUsedAsEndEntity`), which is why the obvious one-certificate shortcut does not work.
///
/// Layout: `ca/ca.crt` alone in its folder (so the folder can be handed to
/// `skopeo --cert-dir`, which trusts every `*.crt` in it), `server.crt`, `server.key`.
pub struct TestCa {
    dir: TempDir,
    cert_dir: PathBuf,
    ca_file: PathBuf,
    server_cert_file: PathBuf,
    server_key_file: PathBuf,
    ca_pem: String,
    ca_der: Vec<u8>,
    server_cert_pem: String,
    server_key_pem: String,
    /// Kept to sign more certificates: [`TestCa::issue_client`], [`TestCa::issue_server`].
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate the [`TestCa`] signed and its private key, both PEM (the key PKCS#8, ECDSA P-256).
#[derive(Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the key stays out of test output.
        formatter
            .debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// A CA and a server certificate for `127.0.0.1` and `localhost`.
    pub fn new() -> TestCa {
        TestCa::with_server_names(&["127.0.0.1", "localhost"])
    }

    /// A CA and a server certificate for the given names; IP addresses become IP SANs.
    pub fn with_server_names(names: &[&str]) -> TestCa {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Skillport test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("generating the CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-signing the CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = issue_server(&issuer, names);

        let dir = tempfile::Builder::new()
            .prefix("skillport-test-ca-")
            .tempdir()
            .expect("creating a temporary folder for the test CA");
        let cert_dir = dir.path().join("ca");
        let ca = TestCa {
            ca_file: cert_dir.join("ca.crt"),
            cert_dir,
            server_cert_file: dir.path().join("server.crt"),
            server_key_file: dir.path().join("server.key"),
            dir,
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().to_vec(),
            server_cert_pem: leaf.cert_pem,
            server_key_pem: leaf.key_pem,
            issuer,
        };
        fs::create_dir(&ca.cert_dir).expect("creating the cert-dir folder");
        write(&ca.ca_file, &ca.ca_pem);
        write(&ca.server_cert_file, &ca.server_cert_pem);
        write(&ca.server_key_file, &ca.server_key_pem);
        ca
    }

    /// The CA certificate (PEM): what a client trusts.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A folder holding only the CA certificate, as `ca.crt` (`skopeo --cert-dir`, Docker's
    /// `certs.d/<host>` layout).
    pub fn cert_dir(&self) -> &Path {
        &self.cert_dir
    }

    /// The leaf server certificate (PEM).
    pub fn server_cert_file(&self) -> &Path {
        &self.server_cert_file
    }

    /// The leaf server's private key (PEM, PKCS#8).
    pub fn server_key_file(&self) -> &Path {
        &self.server_key_file
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    pub fn server_cert_pem(&self) -> &str {
        &self.server_cert_pem
    }

    pub fn server_key_pem(&self) -> &str {
        &self.server_key_pem
    }

    /// A new server certificate (`serverAuth`, `CA:FALSE`) for `names`, signed by this CA; IP
    /// addresses become IP SANs. For a second server trusting the same CA, say a webhook.
    pub fn issue_server(&self, names: &[&str]) -> IssuedCert {
        issue_server(&self.issuer, names)
    }

    /// A client certificate (`clientAuth`, `CA:FALSE`) with this common name and organizations,
    /// signed by this CA. Kubernetes reads the common name as the user name and each organization
    /// as a group: `issue_client("admin", &["system:masters"])` is a cluster admin.
    pub fn issue_client(&self, common_name: &str, organizations: &[&str]) -> IssuedCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        for organization in organizations {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *organization);
        }
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        sign(&params, &self.issuer, "client")
    }

    /// The folder all files live in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

fn issue_server(issuer: &Issuer<'static, KeyPair>, names: &[&str]) -> IssuedCert {
    let names: Vec<String> = names.iter().map(ToString::to_string).collect();
    let mut params = CertificateParams::new(names.clone()).expect("server names are valid SANs");
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("server", String::as_str),
    );
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    sign(&params, issuer, "server")
}

fn sign(params: &CertificateParams, issuer: &Issuer<'static, KeyPair>, what: &str) -> IssuedCert {
    let key = KeyPair::generate().unwrap_or_else(|err| panic!("generating a {what} key: {err}"));
    let cert = params
        .signed_by(&key, issuer)
        .unwrap_or_else(|err| panic!("signing a {what} certificate: {err}"));
    IssuedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn write(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}
