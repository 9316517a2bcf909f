//! An axum router served over HTTPS on 127.0.0.1 — what an admission webhook looks like to the
//! API server.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::ca::IssuedCert;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `router` on `https://127.0.0.1:<random port>` with a server certificate (say, from
/// [`crate::TestCa::issue_server`]), HTTP/1.1, on the current Tokio runtime. Stops on drop.
pub struct TlsServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TlsServer {
    /// Binds and starts serving; must run inside a Tokio runtime.
    pub async fn start(router: Router, certificate: &IssuedCert) -> TlsServer {
        let chain = CertificateDer::pem_slice_iter(certificate.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("the server certificate is PEM");
        let key = PrivateKeyDer::from_pem_slice(certificate.key_pem.as_bytes())
            .expect("the server key is PEM");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("the certificate and key match");
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("binding 127.0.0.1:0");
        let addr = tcp.local_addr().expect("a bound listener has an address");
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        };
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        TlsServer {
            addr,
            shutdown: Some(shutdown),
            task,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // Open connections may hold the graceful shutdown; a test server need not wait for them.
        self.task.abort();
    }
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TlsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Accepts TCP and finishes the TLS handshake before handing the stream to axum. Handshakes run
/// one at a time, which a test server can afford; a failed or stalled one is dropped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, peer)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream));
            if let Ok(Ok(tls)) = handshake.await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
