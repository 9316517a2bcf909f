//! Just enough HTTP/1.1 to ask a server for a status code, over TCP or TLS (rustls with ring,
//! trusting only the test CA). Used for readiness checks; no HTTP client crate needed.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};

/// The status code of `GET path` on `addr`, trusting `ca_der` for TLS when given.
pub(crate) fn get_status(addr: SocketAddr, path: &str, ca_der: Option<&[u8]>) -> io::Result<u16> {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    tcp.set_read_timeout(Some(Duration::from_secs(2)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(2)))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    match ca_der {
        None => exchange(&mut tcp, &request),
        Some(ca_der) => {
            let connection =
                rustls::ClientConnection::new(client_config(ca_der), server_name(addr))
                    .map_err(io::Error::other)?;
            exchange(&mut rustls::StreamOwned::new(connection, tcp), &request)
        }
    }
}

/// A rustls client configuration trusting only `ca_der`. It uses its own ring provider rather
/// than the process default, which the code under test may install (or not) as it likes.
pub(crate) fn client_config(ca_der: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .expect("the test CA is a valid certificate");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

fn server_name(addr: SocketAddr) -> ServerName<'static> {
    ServerName::IpAddress(addr.ip().into())
}

/// Writes `request` and reads up to the end of the status line.
fn exchange(stream: &mut impl ReadWrite, request: &str) -> io::Result<u16> {
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut head = Vec::new();
    let mut buffer = [0_u8; 512];
    while !head.windows(2).any(|pair| pair == b"\r\n") {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before a status line",
            ));
        }
        head.extend_from_slice(&buffer[..read]);
    }
    // "HTTP/1.1 401 Unauthorized"
    let line = String::from_utf8_lossy(&head);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP status line: {line:?}")))
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
