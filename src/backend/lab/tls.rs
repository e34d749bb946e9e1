//! TLS for the lab's outside world, so that the article's `https://swapi.dev/...` and helm's
//! `https://helm.cilium.io/` work as written. A fixed lab CA (tls/ca.pem, valid 2020–2120) signed
//! the server certificate of those names; its key was thrown away after signing. Every other
//! name the outside world answers (a tutorial's `offline:` URLs, and the names it answers with
//! "not declared") gets a certificate from a CA each lab makes at start ([`Certs`]), whose key
//! lives only in the supervisor's memory. Both CAs are trusted only inside labs: every target
//! gets a CA bundle (the machine's plus the lab's CAs) bind-mounted over
//! /etc/ssl/certs/ca-certificates.crt.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::LabError;
use super::controlplane::pki::Ca;

const CA: &str = include_str!("tls/ca.pem");
const CERT: &str = include_str!("tls/server.pem");
const KEY: &str = include_str!("tls/server.key");

/// Where Debian's OpenSSL (and so curl) reads trusted CAs.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified(chain: &str, key: &str) -> Result<CertifiedKey, LabError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(chain.as_bytes()).collect::<Result<_, _>>().map_err(|e| {
            LabError::Tls(Box::new(rustls::Error::General(format!("a lab certificate does not parse: {e}"))))
        })?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| LabError::Tls(Box::new(rustls::Error::General(format!("a lab key does not parse: {e}")))))?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| LabError::Tls(Box::new(e)))
}

fn config(resolver: Arc<dyn rustls::server::ResolvesServerCert>) -> Result<Arc<rustls::ServerConfig>, LabError> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| LabError::Tls(Box::new(e)))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    Ok(Arc::new(config))
}

/// The outside world's certificates: the fixed one for its names, else one per name from the
/// lab's own CA, made at the first connection for it; a client that sends no name (it asked for
/// an address, `https://1.1.1.1`) gets the lab CA's certificate for the address it reached.
pub struct Certs {
    fixed: Arc<CertifiedKey>,
    fixed_names: Vec<&'static str>,
    ca: Ca,
    made: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs").field("fixed_names", &self.fixed_names).finish_non_exhaustive()
    }
}

impl Certs {
    /// A new lab CA; `fixed_names` are those the fixed certificate holds.
    pub fn new(fixed_names: Vec<&'static str>) -> Result<Arc<Certs>, LabError> {
        let fixed = Arc::new(certified(&format!("{CERT}{CA}"), KEY).expect("the lab's certificates parse"));
        let ca = Ca::generate("tutor lab outside CA")?;
        Ok(Arc::new(Certs { fixed, fixed_names, ca, made: Mutex::new(HashMap::new()) }))
    }

    /// The lab's own CA certificate (PEM), for the targets' bundle.
    pub fn ca_pem(&self) -> &str {
        &self.ca.pair.cert
    }

    /// The certificate for `name` (made and kept at the first call).
    pub fn for_name(&self, name: &str) -> Result<Arc<CertifiedKey>, LabError> {
        let name = name.to_ascii_lowercase();
        if self.fixed_names.contains(&name.as_str()) {
            return Ok(self.fixed.clone());
        }
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = made.get(&name) {
            return Ok(k.clone());
        }
        let pair = self.ca.server(&name, &[&name], &[])?;
        let key = Arc::new(certified(&format!("{}{}", pair.cert, self.ca.pair.cert), &pair.key)?);
        made.insert(name, key.clone());
        Ok(key)
    }

    /// The certificate for the address `ip` (an IP SAN), made and kept at the first call.
    pub fn for_address(&self, ip: std::net::Ipv4Addr) -> Result<Arc<CertifiedKey>, LabError> {
        let key = format!("address {ip}");
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = made.get(&key) {
            return Ok(k.clone());
        }
        let pair = self.ca.server(&ip.to_string(), &[], &[ip])?;
        let k = Arc::new(certified(&format!("{}{}", pair.cert, self.ca.pair.cert), &pair.key)?);
        made.insert(key, k.clone());
        Ok(k)
    }

    /// A server configuration that picks the certificate by the name the client asks for (the
    /// fixed certificate when it asks for none).
    pub fn server_config(self: &Arc<Certs>) -> Result<Arc<rustls::ServerConfig>, LabError> {
        config(self.clone())
    }

    /// The server configuration for connections to the local address `ip`: by name, or for
    /// `ip` itself when the client sends no name.
    pub fn at_address(self: &Arc<Certs>, ip: std::net::IpAddr) -> Result<Arc<rustls::ServerConfig>, LabError> {
        match ip {
            std::net::IpAddr::V4(v4) => config(Arc::new(AtAddress { certs: self.clone(), ip: v4 })),
            std::net::IpAddr::V6(_) => self.server_config(),
        }
    }

    /// What a TLS listener uses: the configuration per local address, made once per address.
    pub fn picker(self: &Arc<Certs>) -> Pick {
        let certs = self.clone();
        let made: Mutex<HashMap<std::net::IpAddr, Arc<rustls::ServerConfig>>> = Mutex::default();
        Arc::new(move |ip| {
            let mut made = made.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = made.get(&ip) {
                return Some(c.clone());
            }
            let c = certs.at_address(ip).ok()?;
            made.insert(ip, c.clone());
            Some(c)
        })
    }
}

/// A TLS listener's configuration for a connection, by the local address it reached.
pub type Pick = Arc<dyn Fn(std::net::IpAddr) -> Option<Arc<rustls::ServerConfig>> + Send + Sync>;

/// The resolver of connections to one local address.
#[derive(Debug)]
struct AtAddress {
    certs: Arc<Certs>,
    ip: std::net::Ipv4Addr,
}

impl rustls::server::ResolvesServerCert for AtAddress {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match hello.server_name() {
            None => self.certs.for_address(self.ip).ok(),
            Some(name) => self.certs.for_name(name).ok(),
        }
    }
}

impl rustls::server::ResolvesServerCert for Certs {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match hello.server_name() {
            None => Some(self.fixed.clone()),
            Some(name) => self.for_name(name).ok(),
        }
    }
}

/// Write the lab's CA bundle to `<dir>/etc/ca-certificates.crt`: the machine's, the fixed lab
/// CA and `extra` (the lab's own CA). Nothing when the machine has no bundle to extend: then
/// https to the lab's outside fails verification, as it should.
pub fn write_bundle(dir: &Path, extra: &str) -> Result<(), LabError> {
    let Ok(system) = std::fs::read_to_string(SYSTEM_BUNDLE) else { return Ok(()) };
    let path = dir.join("etc").join("ca-certificates.crt");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|source| LabError::Io { what: parent.display().to_string(), source })?;
    }
    std::fs::write(&path, format!("{system}{CA}{extra}"))
        .map_err(|source| LabError::Io { what: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_certificate_and_key_load() {
        certified(&format!("{CERT}{CA}"), KEY).unwrap();
    }

    /// A client trusting only `roots` connects to `name`, in memory, through `certs`.
    fn handshake(certs: &Arc<Certs>, roots: &str, name: &str) -> Result<(), rustls::Error> {
        let mut store = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(roots.as_bytes()) {
            store.add(c.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
        let sn = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(client), sn).unwrap();
        let mut s = rustls::ServerConnection::new(certs.server_config().unwrap()).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets()?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        panic!("no handshake");
    }

    #[test]
    fn any_name_gets_a_certificate_the_labs_bundle_trusts() {
        let certs = Certs::new(vec!["swapi.dev"]).unwrap();
        let bundle = format!("{CA}{}", certs.ca_pem());
        handshake(&certs, &bundle, "swapi.dev").unwrap();
        handshake(&certs, &bundle, "raw.githubusercontent.com").unwrap();
        // Made once per name.
        assert!(Arc::ptr_eq(&certs.for_name("example.com").unwrap(), &certs.for_name("Example.com").unwrap()));
        // Without the lab's own CA, only the fixed names verify.
        assert!(handshake(&certs, CA, "raw.githubusercontent.com").is_err());
    }

    #[test]
    fn a_client_asking_for_an_address_gets_that_address_certificate() {
        let certs = Certs::new(vec!["swapi.dev"]).unwrap();
        let bundle = format!("{CA}{}", certs.ca_pem());
        let at = |ip: [u8; 4], name: &str| -> Result<(), rustls::Error> {
            let mut store = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(bundle.as_bytes()) {
                store.add(c.unwrap()).unwrap();
            }
            let client = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(store)
                .with_no_client_auth();
            let sn = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
            let mut c = rustls::ClientConnection::new(Arc::new(client), sn).unwrap();
            let config = (certs.picker())(std::net::IpAddr::from(ip)).unwrap();
            let mut s = rustls::ServerConnection::new(config).unwrap();
            for _ in 0..10 {
                let mut buf = Vec::new();
                c.write_tls(&mut buf).unwrap();
                s.read_tls(&mut buf.as_slice()).unwrap();
                s.process_new_packets()?;
                let mut buf = Vec::new();
                s.write_tls(&mut buf).unwrap();
                c.read_tls(&mut buf.as_slice()).unwrap();
                c.process_new_packets()?;
                if !c.is_handshaking() && !s.is_handshaking() {
                    return Ok(());
                }
            }
            panic!("no handshake")
        };
        // An address as the server name: rustls sends no SNI for it.
        at([1, 1, 1, 1], "1.1.1.1").unwrap();
        assert!(at([1, 0, 0, 1], "1.1.1.1").is_err(), "another address's certificate does not verify");
        at([1, 1, 1, 1], "one.one.one.one").unwrap();
    }
}
