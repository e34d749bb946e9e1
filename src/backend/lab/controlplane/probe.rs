//! Health probes of the control plane's endpoints: one HTTP(S) GET, the status code back. The
//! socket is made by the caller's thread, so a probe run on a lab target's thread reaches that
//! target's network namespace.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::super::LabError;
use super::pki::Pair;

fn tls_err(e: impl std::error::Error + Send + Sync + 'static) -> LabError {
    LabError::ProbeTls(Box::new(e))
}

/// TLS settings for probing: the cluster CA as the only root, a client certificate.
#[derive(Clone)]
pub struct Tls(Arc<rustls::ClientConfig>);

impl Tls {
    pub fn new(ca: &str, client: &Pair) -> Result<Tls, LabError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(c.map_err(tls_err)?).map_err(tls_err)?;
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(client.cert.as_bytes()).collect::<Result<_, _>>().map_err(tls_err)?;
        let key = PrivateKeyDer::from_pem_slice(client.key.as_bytes()).map_err(tls_err)?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(tls_err)?;
        Ok(Tls(Arc::new(config)))
    }
}

fn request(stream: &mut impl ReadWrite, host: &str, path: &str) -> std::io::Result<u16> {
    // One write: a request split over several segments is legal, but one is cheaper.
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
    stream.flush()?;
    let mut buf = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n") && buf.len() < 256 {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        buf.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad status line `{}`", line.trim()))
    })
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

/// `GET http://addr/path`: the status code.
pub fn http(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let mut s = connect(addr, timeout)?;
    request(&mut s, &addr.to_string(), path)
}

/// `GET https://addr/path`, the server verified against the CA for its IP address.
pub fn https(tls: &Tls, addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let s = connect(addr, timeout)?;
    let name = ServerName::from(addr.ip());
    let conn = rustls::ClientConnection::new(tls.0.clone(), name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, s);
    request(&mut tls, &addr.to_string(), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_reads_the_status_code() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            // The whole head, however many reads it takes.
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.ends_with(b"\r\n\r\n") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended early: {:?}", String::from_utf8_lossy(&req));
                req.extend_from_slice(&buf[..n]);
            }
            assert!(String::from_utf8_lossy(&req).starts_with("GET /health HTTP/1.1\r\n"));
            c.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").unwrap();
        });
        assert_eq!(http(addr, "/health", Duration::from_secs(5)).unwrap(), 503);
        t.join().unwrap();
    }

    #[test]
    fn a_closed_port_is_an_error() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(http(addr, "/", Duration::from_secs(1)).is_err());
    }
}
