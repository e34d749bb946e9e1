//! Pod addresses from the node's podCIDR (host-local IPAM's role): the first address is the
//! pods' gateway, pods get the lowest free address after it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::backend::lab::topology::Cidr;

/// Why no pod address can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("the node has no podCIDR yet")]
    NoCidr,
    #[error("no free address left in {0}")]
    Full(Cidr),
}

#[derive(Debug, Default)]
pub struct Ipam {
    cidr: Option<Cidr>,
    /// Address → owner (pod uid).
    used: BTreeMap<Ipv4Addr, String>,
}

impl Ipam {
    pub fn set_cidr(&mut self, cidr: Cidr) {
        self.cidr = Some(cidr);
    }

    pub fn cidr(&self) -> Option<Cidr> {
        self.cidr
    }

    /// The pods' gateway: the first address of the podCIDR.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.cidr.map(|c| c.nth(1))
    }

    /// An address for `owner` (the same one again if it has one).
    pub fn allocate(&mut self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        if let Some((ip, _)) = self.used.iter().find(|(_, o)| *o == owner) {
            return Ok(*ip);
        }
        let cidr = self.cidr.ok_or(IpamError::NoCidr)?;
        let last = cidr.size().saturating_sub(1) as u32;
        let ip = (2..last).map(|i| cidr.nth(i)).find(|ip| !self.used.contains_key(ip)).ok_or(IpamError::Full(cidr))?;
        self.used.insert(ip, owner.to_string());
        Ok(ip)
    }

    /// Keep `ip` from pods (Cilium's router address on `cilium_host`).
    pub fn reserve(&mut self, ip: Ipv4Addr, owner: &str) {
        if self.cidr.is_some_and(|c| c.contains(ip)) {
            self.used.entry(ip).or_insert_with(|| owner.to_string());
        }
    }

    pub fn release(&mut self, owner: &str) {
        self.used.retain(|_, o| o != owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_and_reuses() {
        let mut i = Ipam::default();
        assert_eq!(i.allocate("a"), Err(IpamError::NoCidr));
        assert!(IpamError::NoCidr.to_string().contains("podCIDR"));
        i.set_cidr(Cidr::parse("10.244.1.0/24").unwrap());
        assert_eq!(i.gateway(), Some(Ipv4Addr::new(10, 244, 1, 1)));
        assert_eq!(i.allocate("a").unwrap(), Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(i.allocate("b").unwrap(), Ipv4Addr::new(10, 244, 1, 3));
        assert_eq!(i.allocate("a").unwrap(), Ipv4Addr::new(10, 244, 1, 2));
        i.release("a");
        assert_eq!(i.allocate("c").unwrap(), Ipv4Addr::new(10, 244, 1, 2));
        i.reserve(Ipv4Addr::new(10, 244, 1, 4), "router");
        assert_eq!(i.allocate("d").unwrap(), Ipv4Addr::new(10, 244, 1, 5));
    }

    #[test]
    fn exhaustion_is_an_error() {
        let mut i = Ipam::default();
        i.set_cidr(Cidr::parse("10.0.0.0/30").unwrap());
        assert_eq!(i.allocate("a").unwrap(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(i.allocate("b"), Err(IpamError::Full(Cidr::parse("10.0.0.0/30").unwrap())));
        assert_eq!(i.allocate("b").unwrap_err().to_string(), "no free address left in 10.0.0.0/30");
    }
}
