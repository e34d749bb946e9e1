//! LoadBalancer IP address management, as Cilium's operator does it (LB IPAM, Cilium 1.15):
//! `CiliumLoadBalancerIPPool`s (`spec.blocks[]` of `cidr` or `start`/`stop`, also the older
//! `spec.cidrs`), services of `type: LoadBalancer` get the first free address of the first
//! usable pool, in creation order, and stay `<pending>` while no pool has one.
//!
//! Cilium's documented rules kept here: a pool overlapping an older one is marked conflicting
//! and allocates nothing; `spec.disabled` pools allocate nothing new but keep what they gave;
//! an address whose pool is deleted (or no longer covers it) is taken back; the first and last
//! address of a CIDR larger than /31 are reserved unless `allowFirstLastIPs: "Yes"` (1.15's
//! default, which is why the article's first address is `.1`); `spec.serviceSelector.matchLabels`
//! limits which services a pool serves.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::SystemTime;

use serde_json::Value;

use super::LabError;
use super::store::{Labels, Service, Store, selects};
use super::topology::Cidr;

/// An inclusive address range of a pool, as host-order integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub first: u32,
    pub last: u32,
}

#[allow(clippy::len_without_is_empty)]
impl Block {
    pub fn overlaps(&self, other: &Block) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    pub fn contains(&self, ip: u32) -> bool {
        self.first <= ip && ip <= self.last
    }

    pub fn len(&self) -> u64 {
        (self.last - self.first) as u64 + 1
    }
}

#[derive(Debug, Clone)]
pub struct IpPool {
    pub name: String,
    pub blocks: Vec<Block>,
    pub disabled: bool,
    pub service_selector: Option<Labels>,
    pub created: SystemTime,
    /// Set by `sync`: overlaps an older pool.
    pub conflicting: bool,
}

fn bad(name: &str, what: String) -> LabError {
    LabError::Input(format!("error: CiliumLoadBalancerIPPool {name}: {what}"))
}

/// What is wrong with one block of a pool's `spec.blocks`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("cidr {cidr}: {source}")]
    Cidr {
        cidr: String,
        #[source]
        source: super::topology::CidrError,
    },
    #[error("bad IPv4 address {0:?}")]
    Address(String),
    #[error("stop {stop} is before start {start}")]
    Reversed { start: String, stop: String },
    #[error("a block needs `cidr` or `start`")]
    Empty,
}

/// One parsed block: the whole range it names (what pools conflict over) and the addresses it
/// gives out (a CIDR larger than /31 keeps its first and last address back unless
/// `allow_first_last`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedBlock {
    pub range: Block,
    pub usable: Block,
    pub from_cidr: bool,
}

/// Parse one entry of `spec.blocks` (`cidr`, or `start` with an optional `stop`); `Ok(None)`
/// for an IPv6 block (the lab is IPv4 only).
pub fn parse_block(b: &Value, allow_first_last: bool) -> Result<Option<ParsedBlock>, BlockError> {
    let ip = |s: &str| s.parse::<Ipv4Addr>().map(u32::from).map_err(|_| BlockError::Address(s.to_string()));
    if let Some(c) = b.get("cidr").and_then(Value::as_str) {
        if c.contains(':') {
            return Ok(None);
        }
        let cidr = Cidr::parse(c).map_err(|source| BlockError::Cidr { cidr: c.to_string(), source })?;
        let first = u32::from(cidr.addr);
        let range = Block { first, last: first + (cidr.size() - 1) as u32 };
        let usable =
            if cidr.len < 31 && !allow_first_last { Block { first: first + 1, last: range.last - 1 } } else { range };
        return Ok(Some(ParsedBlock { range, usable, from_cidr: true }));
    }
    let Some(start) = b.get("start").and_then(Value::as_str) else { return Err(BlockError::Empty) };
    if start.contains(':') {
        return Ok(None);
    }
    let first = ip(start)?;
    let last = match b.get("stop").and_then(Value::as_str) {
        Some(stop) => ip(stop)?,
        None => first,
    };
    if last < first {
        return Err(BlockError::Reversed { start: start.to_string(), stop: Ipv4Addr::from(last).to_string() });
    }
    let range = Block { first, last };
    Ok(Some(ParsedBlock { range, usable: range, from_cidr: false }))
}

impl IpPool {
    pub fn from_manifest(obj: &Value, name: &str) -> Result<IpPool, LabError> {
        let spec = obj.get("spec").ok_or_else(|| bad(name, "no spec".into()))?;
        let allow_first_last = spec.get("allowFirstLastIPs").and_then(Value::as_str) == Some("Yes");
        let entries =
            spec.get("blocks").or_else(|| spec.get("cidrs")).and_then(Value::as_array).cloned().unwrap_or_default();
        let mut blocks = Vec::new();
        for b in &entries {
            if let Some(p) = parse_block(b, allow_first_last).map_err(|e| bad(name, e.to_string()))? {
                blocks.push(p.usable);
            }
        }
        if entries.is_empty() {
            return Err(bad(name, "spec.blocks is empty".into()));
        }
        let service_selector = obj
            .pointer("/spec/serviceSelector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect());
        Ok(IpPool {
            name: name.to_string(),
            blocks,
            disabled: spec.get("disabled").and_then(Value::as_bool).unwrap_or(false),
            service_selector,
            created: SystemTime::now(),
            conflicting: false,
        })
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        self.blocks.iter().any(|b| b.first <= ip && ip <= b.last)
    }

    pub fn size(&self) -> u64 {
        self.blocks.iter().map(Block::len).sum()
    }

    fn serves(&self, svc: &Service) -> bool {
        self.service_selector.as_ref().is_none_or(|sel| sel.is_empty() || selects(sel, &svc.labels))
    }

    /// `kubectl get ippools`: NAME DISABLED CONFLICTING IPS AVAILABLE AGE.
    pub fn row(&self, used: usize) -> Vec<String> {
        let available = if self.conflicting { 0 } else { self.size().saturating_sub(used as u64) };
        vec![
            self.name.clone(),
            self.disabled.to_string(),
            if self.conflicting { "True" } else { "False" }.into(),
            available.to_string(),
            super::store::age(self.created),
        ]
    }
}

/// `kubectl get ippools`: header and (namespace, name, API object, cells) per pool.
#[allow(clippy::type_complexity)]
pub fn table(store: &Store) -> (Vec<&'static str>, Vec<(String, String, Value, Vec<String>)>) {
    let rows = store
        .ip_pools
        .iter()
        .map(|p| {
            let blocks: Vec<Value> = p
                .blocks
                .iter()
                .map(|b| serde_json::json!({ "start": Ipv4Addr::from(b.first).to_string(), "stop": Ipv4Addr::from(b.last).to_string() }))
                .collect();
            let j = serde_json::json!({
                "apiVersion": "cilium.io/v2alpha1", "kind": "CiliumLoadBalancerIPPool",
                "metadata": { "name": p.name, "creationTimestamp": super::store::rfc3339(p.created) },
                "spec": { "blocks": blocks, "disabled": p.disabled },
                "status": { "conditions": [{ "type": "cilium.io/PoolConflict", "status": if p.conflicting { "True" } else { "False" } }] }
            });
            (String::new(), p.name.clone(), j, p.row(used_in(store, p)))
        })
        .collect();
    (vec!["NAME", "DISABLED", "CONFLICTING", "IPS AVAILABLE", "AGE"], rows)
}

/// Whether a service asks LB IPAM for an address.
pub fn wants_address(svc: &Service) -> bool {
    svc.type_ == "LoadBalancer"
}

/// Mark conflicting pools, take back addresses no usable pool covers, then give each pending
/// LoadBalancer service (oldest first) the first free address. Returns whether anything changed.
pub fn sync(store: &mut Store) -> bool {
    for i in 0..store.ip_pools.len() {
        let (older, rest) = store.ip_pools.split_at_mut(i);
        let pool = &mut rest[0];
        pool.conflicting = older
            .iter()
            .filter(|o| !o.conflicting)
            .any(|o| o.blocks.iter().any(|a| pool.blocks.iter().any(|b| a.overlaps(b))));
    }
    let mut changed = false;
    let pools = &store.ip_pools;
    for svc in store.services.iter_mut() {
        let keep = wants_address(svc)
            && svc.load_balancer_ip.is_some_and(|ip| pools.iter().any(|p| !p.conflicting && p.contains(ip)));
        if svc.load_balancer_ip.is_some() && !keep {
            svc.load_balancer_ip = None;
            changed = true;
        }
    }
    let mut used: BTreeSet<u32> = store.services.iter().filter_map(|s| s.load_balancer_ip).map(u32::from).collect();
    let mut order: Vec<usize> = (0..store.services.len())
        .filter(|&i| wants_address(&store.services[i]) && store.services[i].load_balancer_ip.is_none())
        .collect();
    order.sort_by_key(|&i| store.services[i].created);
    for i in order {
        let svc = &store.services[i];
        let free = pools
            .iter()
            .filter(|p| !p.conflicting && !p.disabled && p.serves(svc))
            .flat_map(|p| p.blocks.iter().flat_map(|b| b.first..=b.last))
            .find(|ip| !used.contains(ip));
        if let Some(ip) = free {
            used.insert(ip);
            store.services[i].load_balancer_ip = Some(Ipv4Addr::from(ip));
            changed = true;
        }
    }
    changed
}

/// Addresses of `pool` that services hold.
pub fn used_in(store: &Store, pool: &IpPool) -> usize {
    store.services.iter().filter_map(|s| s.load_balancer_ip).filter(|ip| pool.contains(*ip)).count()
}

/// The node port of port `port` of service `ns/name`: the one it has, or a free one in
/// Kubernetes' 30000–32767 range (pseudo-random like the API server's, stable per service).
pub fn node_port(store: &Store, ns: &str, name: &str, port: u16) -> u16 {
    if let Some(np) = store
        .services
        .iter()
        .find(|s| s.namespace == ns && s.name == name)
        .and_then(|s| s.ports.iter().find(|p| p.port == port))
        .and_then(|p| p.node_port)
    {
        return np;
    }
    let taken: BTreeSet<u16> = store.services.iter().flat_map(|s| s.ports.iter().filter_map(|p| p.node_port)).collect();
    let seed = super::network::hex_id(&[ns, name, &port.to_string()], 8);
    let mut h = u32::from_str_radix(&seed, 16).unwrap_or(0);
    loop {
        let np = 30000 + (h % 2768) as u16;
        if !taken.contains(&np) {
            return np;
        }
        h = h.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pool(yaml: &str) -> IpPool {
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        IpPool::from_manifest(&v, v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("p")).unwrap()
    }

    fn lb(name: &str, age: u64) -> Service {
        Service {
            namespace: "default".into(),
            name: name.into(),
            labels: Labels::new(),
            type_: "LoadBalancer".into(),
            cluster_ip: Ipv4Addr::new(10, 96, 0, 20),
            ports: vec![],
            selector: Labels::new(),
            created: SystemTime::UNIX_EPOCH + Duration::from_secs(age),
            load_balancer_ip: None,
        }
    }

    const ARTICLE: &str = "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata:\n  name: default\nspec:\n  blocks:\n  - cidr: 172.18.250.0/24\n";

    #[test]
    fn first_address_of_the_article_pool_is_dot_one() {
        let mut store = Store { services: vec![lb("deathstar-lb", 1)], ..Default::default() };
        assert!(!sync(&mut store), "no pool: pending");
        assert_eq!(store.services[0].load_balancer_ip, None);
        store.ip_pools.push(pool(ARTICLE));
        assert!(sync(&mut store));
        assert_eq!(store.services[0].load_balancer_ip, Some(Ipv4Addr::new(172, 18, 250, 1)));
        assert_eq!(store.ip_pools[0].size(), 254);
        assert_eq!(store.ip_pools[0].row(used_in(&store, &store.ip_pools[0].clone()))[3], "253");
    }

    #[test]
    fn ranges_exhaustion_release_and_order() {
        let mut store = Store { services: vec![lb("b", 2), lb("a", 1), lb("c", 3)], ..Default::default() };
        store.ip_pools.push(pool(
            "metadata:\n  name: small\nspec:\n  blocks:\n  - start: 192.168.250.10\n    stop: 192.168.250.11\n",
        ));
        sync(&mut store);
        let ip = |s: &Store, n: &str| s.services.iter().find(|x| x.name == n).unwrap().load_balancer_ip;
        assert_eq!(ip(&store, "a"), Some(Ipv4Addr::new(192, 168, 250, 10)), "oldest first");
        assert_eq!(ip(&store, "b"), Some(Ipv4Addr::new(192, 168, 250, 11)));
        assert_eq!(ip(&store, "c"), None, "exhausted: pending");
        store.services.retain(|s| s.name != "a");
        sync(&mut store);
        assert_eq!(ip(&store, "c"), Some(Ipv4Addr::new(192, 168, 250, 10)), "released address reused");
        store.ip_pools.clear();
        sync(&mut store);
        assert!(store.services.iter().all(|s| s.load_balancer_ip.is_none()), "pool deleted: addresses taken back");
    }

    #[test]
    fn overlapping_pool_is_conflicting_and_unused() {
        let mut store = Store { services: vec![lb("a", 1)], ..Default::default() };
        store.ip_pools.push(pool("metadata:\n  name: one\nspec:\n  blocks:\n  - start: 10.9.0.5\n"));
        store.ip_pools.push(pool("metadata:\n  name: two\nspec:\n  blocks:\n  - cidr: 10.9.0.0/24\n"));
        store.services.push(lb("b", 2));
        sync(&mut store);
        assert!(!store.ip_pools[0].conflicting && store.ip_pools[1].conflicting);
        assert_eq!(store.services[0].load_balancer_ip, Some(Ipv4Addr::new(10, 9, 0, 5)));
        assert_eq!(store.services[1].load_balancer_ip, None, "the conflicting pool gives nothing");
        assert_eq!(store.ip_pools[1].row(0)[2], "True");
        store.ip_pools.remove(0);
        sync(&mut store);
        assert!(!store.ip_pools[0].conflicting, "no longer overlapping once the older pool is gone");
        assert!(store.services.iter().all(|s| s.load_balancer_ip.is_some_and(|ip| ip.octets()[..3] == [10, 9, 0])));
    }

    #[test]
    fn small_cidrs_disabled_pools_and_bad_input() {
        let p = pool("metadata:\n  name: x\nspec:\n  blocks:\n  - cidr: 10.1.1.0/31\n  - cidr: 10.2.0.0/30\n");
        assert_eq!(p.size(), 2 + 2);
        let p = pool("metadata:\n  name: x\nspec:\n  allowFirstLastIPs: \"Yes\"\n  blocks:\n  - cidr: 10.2.0.0/30\n");
        assert_eq!(p.size(), 4);
        let mut store = Store { services: vec![lb("a", 1)], ..Default::default() };
        store.ip_pools.push(pool("metadata:\n  name: x\nspec:\n  disabled: true\n  blocks:\n  - cidr: 10.2.0.0/30\n"));
        sync(&mut store);
        assert_eq!(store.services[0].load_balancer_ip, None);
        let v: Value = serde_yaml::from_str("spec:\n  blocks:\n  - cidr: 10.0.0.0/33\n").unwrap();
        let e = IpPool::from_manifest(&v, "bad").unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("CiliumLoadBalancerIPPool bad"), "{e}");
    }

    #[test]
    fn node_ports_are_stable_and_distinct() {
        let store = Store::default();
        let a = node_port(&store, "default", "deathstar-lb", 80);
        assert!((30000..=32767).contains(&a));
        assert_eq!(a, node_port(&store, "default", "deathstar-lb", 80));
    }
}
