//! TLS for the lab's outside world, so that the article's `https://swapi.dev/...` and helm's
//! `https://helm.cilium.io/` work as written. A fixed lab CA (tls/ca.pem, valid 2020–2120) signed
//! the server certificate; the CA is trusted only inside labs: every target gets a CA bundle (the
//! machine's plus the lab CA) bind-mounted over /etc/ssl/certs/ca-certificates.crt. Its key was
//! thrown away after signing.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::LabError;

const CA: &str = include_str!("tls/ca.pem");
const CERT: &str = include_str!("tls/server.pem");
const KEY: &str = include_str!("tls/server.key");

/// Where Debian's OpenSSL (and so curl) reads trusted CAs.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub fn server_config() -> Result<Arc<rustls::ServerConfig>, LabError> {
    // The PEM texts are compiled in: a failure to parse them is a build defect, not a condition.
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(format!("{CERT}{CA}").as_bytes())
        .collect::<Result<_, _>>()
        .expect("the lab's certificates parse");
    let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).expect("the lab's key parses");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| LabError::Tls(Box::new(e)))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| LabError::Tls(Box::new(e)))?;
    Ok(Arc::new(config))
}

/// Write the lab's CA bundle to `<dir>/etc/ca-certificates.crt` (nothing when the machine has
/// no bundle to extend: then https to the lab's outside fails verification, as it should).
pub fn write_bundle(dir: &Path) -> Result<(), LabError> {
    let Ok(system) = std::fs::read_to_string(SYSTEM_BUNDLE) else { return Ok(()) };
    let path = dir.join("etc").join("ca-certificates.crt");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|source| LabError::Io { what: parent.display().to_string(), source })?;
    }
    std::fs::write(&path, format!("{system}{CA}"))
        .map_err(|source| LabError::Io { what: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_certificate_and_key_load() {
        super::server_config().unwrap();
    }
}
