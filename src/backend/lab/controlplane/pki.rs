//! The certificates of one lab cluster, as kubeadm lays them out on a kind node: a cluster CA,
//! the API server's serving certificate (its service IP, the control-plane node's IP and name),
//! the service-account signing key, and one client identity per component (admin, controller
//! manager, scheduler, each node's kubelet, the API server towards kubelets). ECDSA P-256
//! throughout: generated in microseconds, accepted by every component.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::super::LabError;

fn err(what: &str, source: rcgen::Error) -> LabError {
    LabError::Pki { what: what.to_string(), source: Box::new(source) }
}

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

impl Pair {
    /// Write `<stem>.crt` and `<stem>.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), LabError> {
        let (c, k) = (dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")));
        write_file(&c, &self.cert)?;
        write_private(&k, &self.key)?;
        Ok((c, k))
    }
}

pub fn write_file(path: &Path, text: &str) -> Result<(), LabError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| LabError::io(d, e))?;
    }
    std::fs::write(path, text).map_err(|e| LabError::io(path, e))
}

/// A key file, readable by root only.
pub fn write_private(path: &Path, text: &str) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    write_file(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| LabError::io(path, e))
}

/// Who a client certificate names: `CN` is the user, each `O` a group.
pub struct Identity<'a> {
    pub user: &'a str,
    pub groups: &'a [&'a str],
}

/// The cluster CA: signs every other certificate of the cluster.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pair: Pair,
}

impl Ca {
    pub fn generate(name: &str) -> Result<Ca, LabError> {
        let key = KeyPair::generate().map_err(|e| err("CA key", e))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err("CA", e))?;
        params.distinguished_name = dn(name, &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
        validity(&mut params, 10);
        let cert = params.self_signed(&key).map_err(|e| err("CA", e))?;
        let pair = Pair { cert: cert.pem(), key: key.serialize_pem() };
        Ok(Ca { issuer: Issuer::new(params, key), pair })
    }

    /// A server certificate for `names` (DNS names and IP addresses).
    pub fn server(&self, cn: &str, dns: &[&str], ips: &[Ipv4Addr]) -> Result<Pair, LabError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err(cn, e))?;
        params.distinguished_name = dn(cn, &[]);
        params.subject_alt_names = dns
            .iter()
            .map(|d| d.to_string().try_into().map(SanType::DnsName).map_err(|e| err(cn, e)))
            .chain(ips.iter().map(|ip| Ok(SanType::IpAddress(IpAddr::V4(*ip)))))
            .collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(cn, params)
    }

    /// A client certificate for `id`.
    pub fn client(&self, id: &Identity<'_>) -> Result<Pair, LabError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err(id.user, e))?;
        params.distinguished_name = dn(id.user, id.groups);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(id.user, params)
    }

    fn sign(&self, what: &str, mut params: CertificateParams) -> Result<Pair, LabError> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        validity(&mut params, 1);
        let key = KeyPair::generate().map_err(|e| err(what, e))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| err(what, e))?;
        Ok(Pair { cert: cert.pem(), key: key.serialize_pem() })
    }
}

/// The service-account token signing key: (private PEM, public PEM).
pub fn service_account_key() -> Result<(String, String), LabError> {
    let key = KeyPair::generate().map_err(|e| err("service-account key", e))?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

fn dn(cn: &str, groups: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for g in groups {
        dn.push(DnType::OrganizationName, *g);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

/// Valid from an hour ago (clock skew between processes is nil here, but cheap to allow) for
/// `years`.
fn validity(params: &mut CertificateParams, years: i64) {
    let now = rcgen::date_time_ymd(1970, 1, 1)
        + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    params.not_before = now - std::time::Duration::from_secs(3600);
    params.not_after = now + std::time::Duration::from_secs(years as u64 * 365 * 86400);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[test]
    fn server_certificate_verifies_for_its_ip_and_names() {
        let ca = Ca::generate("kubernetes").unwrap();
        let ip = Ipv4Addr::new(172, 18, 0, 2);
        let srv = ca.server("kube-apiserver", &["kubernetes", "kind-control-plane"], &[ip]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca.pair.cert.as_bytes()).unwrap()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider).build().unwrap();
        let leaf = CertificateDer::from_pem_slice(srv.cert.as_bytes()).unwrap();
        for name in ["172.18.0.2", "kubernetes", "kind-control-plane"] {
            let sn = ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(&leaf, &[], &sn, &[], UnixTime::now())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = ServerName::try_from("172.18.0.3").unwrap();
        assert!(verifier.verify_server_cert(&leaf, &[], &other, &[], UnixTime::now()).is_err());
    }

    #[test]
    fn keys_are_pkcs8_and_public_keys_pem() {
        let (private, public) = service_account_key().unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"), "{private}");
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
    }
}
