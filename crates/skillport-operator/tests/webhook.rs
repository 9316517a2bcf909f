//! The webhook's HTTPS server over real TLS: it answers, refuses oversized bodies cleanly, and
//! serves a renewed certificate to new connections without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use skillport_operator::webhook::{self, TlsFiles};
use skillport_testkit::{IssuedCert, TestCa};

fn write(dir: &Path, cert: &IssuedCert) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    // As a Secret volume updates: new files renamed into place.
    for (path, text) in [(&files.key, &cert.key_pem), (&files.cert, &cert.cert_pem)] {
        let temporary = path.with_extension("new");
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(&temporary, path).unwrap();
    }
    files
}

/// The certificate the server presents to a new connection.
async fn presented(port: u16, ca: &TestCa) -> CertificateDer<'static> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_https_echoes_limits_bodies_and_reloads_its_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let first = ca.issue_server(&["127.0.0.1"]);
    let files = write(dir.path(), &first);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(webhook::serve(
        tcp,
        files.clone(),
        webhook::with_echo(axum::Router::new()),
        async {
            let _ = stopped.await;
        },
    ));

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/echo");
    let answer = client.post(&url).body("hello").send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "hello");

    let oversized = client
        .post(&url)
        .body(vec![b'x'; 10 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413, "a 10 MB body is refused cleanly");
    let after = client.post(&url).body("still up").send().await.unwrap();
    assert_eq!(after.text().await.unwrap(), "still up");

    let first_der = CertificateDer::from_pem_slice(first.cert_pem.as_bytes()).unwrap();
    assert_eq!(presented(port, &ca).await, first_der);
    let renewed = ca.issue_server(&["127.0.0.1"]);
    let renewed_der = CertificateDer::from_pem_slice(renewed.cert_pem.as_bytes()).unwrap();
    assert_ne!(first_der, renewed_der);
    // Keep the mtime visibly newer than the first write.
    tokio::time::sleep(Duration::from_millis(20)).await;
    write(dir.path(), &renewed);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if presented(port, &ca).await == renewed_der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is served within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The pooled connection (old certificate) still works.
    let pooled = client.post(&url).body("pooled").send().await.unwrap();
    assert_eq!(pooled.text().await.unwrap(), "pooled");

    stop.send(()).unwrap();
    drop(client);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_missing_certificate_fails_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = webhook::serve(
        tcp,
        TlsFiles {
            cert: dir.path().join("absent.crt"),
            key: dir.path().join("absent.key"),
        },
        axum::Router::new(),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("absent.crt"), "{err:#}");
}
