//! The admission webhook's HTTPS server (issue 13): an axum router over rustls, its certificate
//! and key read from files (as mounted from a Secret, e.g. by cert-manager) and read again when
//! they change, without dropping requests: each new connection takes the newest certificate,
//! connections already open keep theirs.
//!
//! Handshakes run concurrently (a slow or silent client holds only its own task, for at most
//! [`HANDSHAKE_TIMEOUT`]); request bodies are limited to [`MAX_BODY`] (the API server sends at
//! most a few MiB; more is answered 413). `/echo` answers with the request's body: the floor the
//! webhook's load benchmark compares the admission endpoints with.

pub mod admission;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body accepted.
pub const MAX_BODY: usize = 3 << 20;
/// How often the certificate files are looked at.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Where the serving certificate (PEM chain) and its key (PEM) are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Fails, saying why, when the files do not make a certificate and its key.
    pub fn check(&self) -> anyhow::Result<()> {
        self.load().map(drop)
    }

    fn load(&self) -> anyhow::Result<Arc<ServerConfig>> {
        use anyhow::Context as _;
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .with_context(|| format!("reading the certificate {}", self.cert.display()))?;
        anyhow::ensure!(
            !chain.is_empty(),
            "{} holds no PEM certificate",
            self.cert.display()
        );
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("reading the key {}", self.key.display()))?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")?
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .with_context(|| {
                    format!(
                        "{} and {} do not make a certificate and its key",
                        self.cert.display(),
                        self.key.display()
                    )
                })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let time = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Some((time(&self.cert)?, time(&self.key)?))
    }
}

/// `router` with the body limit.
pub fn limited(router: Router) -> Router {
    router.layer(DefaultBodyLimit::max(MAX_BODY))
}

/// `router` plus `/echo` (the load benchmark's floor), with the body limit.
pub fn with_echo(router: Router) -> Router {
    limited(router.route("/echo", post(|body: axum::body::Bytes| async move { body })))
}

/// Serves `router` (see [`with_echo`]) over HTTPS on `tcp` until `shutdown` resolves. Fails at
/// once when the certificate or key cannot be read; later a file that does not load is logged
/// and the previous certificate kept.
pub async fn serve(
    tcp: TcpListener,
    files: TlsFiles,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let current = Arc::new(RwLock::new(files.load()?));
    let addr = tcp.local_addr()?;
    tracing::info!(%addr, cert = %files.cert.display(), "webhook serving HTTPS");
    let (ready, incoming) = mpsc::channel(64);
    let accepting = tokio::spawn(accept(tcp, current.clone(), ready));
    let reloading = tokio::spawn(reload(files, current));
    let listener = HandshakenListener { incoming, addr };
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    accepting.abort();
    reloading.abort();
    served.map_err(Into::into)
}

/// Accepts connections and runs each handshake in its own task, with the newest certificate.
async fn accept(
    tcp: TcpListener,
    current: Arc<RwLock<Arc<ServerConfig>>>,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = TlsAcceptor::from(current.read().expect("not poisoned").clone());
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Loads the files again whenever either changes.
async fn reload(files: TlsFiles, current: Arc<RwLock<Arc<ServerConfig>>>) {
    let mut seen = files.modified();
    loop {
        tokio::time::sleep(RELOAD_EVERY).await;
        let now = files.modified();
        if now.is_none() || now == seen {
            continue;
        }
        match files.load() {
            Ok(config) => {
                *current.write().expect("not poisoned") = config;
                seen = now;
                tracing::info!(cert = %files.cert.display(), "webhook certificate reloaded");
            }
            // A half-written pair (cert renewed, key not yet): try again next time.
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "webhook certificate not reloaded");
            }
        }
    }
}

/// Hands axum the connections whose handshake finished.
struct HandshakenListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for HandshakenListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(connection) => connection,
            // The accepting task ended (shutdown): wait for the graceful shutdown to finish.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
