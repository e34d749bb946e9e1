//! The address plan of a lab: which node gets which name, bridge address, MAC and pod CIDR.
//! Pure functions, so the plan can be tested without touching the kernel.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::LabError;
use super::config::{Cluster, Role};

/// The docker network kind uses (`kind` network, 172.18.0.0/16, gateway .1).
pub const BRIDGE_NET: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 0);
pub const BRIDGE_PREFIX: u8 = 16;
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 1);
pub const DEFAULT_POD_SUBNET: &str = "10.244.0.0/16";
/// kind's default (kubeadm's own would be 10.96.0.0/12; kind narrows it to a /16).
pub const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/16";
/// Host octet of each node's cilium_host router IP inside its /24 (the article's kind-worker
/// shows 10.244.2.224; Cilium picks it at random, the lab picks it the same for every node).
pub const ROUTER_OCTET: u8 = 224;

/// An IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

/// Text that is not an IPv4 prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("`{0}` is not a CIDR (a.b.c.d/n)")]
    NotCidr(String),
    #[error("`{cidr}`: bad address")]
    BadAddress {
        cidr: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("`{0}`: bad prefix length")]
    BadLength(String),
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let (a, l) = s.split_once('/').ok_or_else(|| CidrError::NotCidr(s.to_string()))?;
        let addr: Ipv4Addr = a.parse().map_err(|source| CidrError::BadAddress { cidr: s.to_string(), source })?;
        let len: u8 = l.parse().ok().filter(|l| *l <= 32).ok_or_else(|| CidrError::BadLength(s.to_string()))?;
        Ok(Cidr { addr: Ipv4Addr::from(u32::from(addr) & mask(len)), len })
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == u32::from(self.addr)
    }

    /// The `n`th address inside the prefix.
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + n)
    }

    pub fn size(&self) -> u64 {
        1u64 << (32 - self.len as u32)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len as u32) }
}

/// How many nodes the node network holds: every address but the network's, the bridge's (.1)
/// and the broadcast address.
pub fn max_nodes() -> u64 {
    Cidr { addr: BRIDGE_NET, len: BRIDGE_PREFIX }.size() - 3
}

/// The address of node `i` (0-based): .2, .3, … through the whole node network, as Docker
/// hands them out.
pub fn node_ip(i: usize) -> Option<Ipv4Addr> {
    ((i as u64) < max_nodes()).then(|| Cidr { addr: BRIDGE_NET, len: BRIDGE_PREFIX }.nth(2 + i as u32))
}

/// One node of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    pub name: String,
    pub role: Role,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub pod_cidr: Cidr,
    pub router_ip: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub cluster: String,
    pub nodes: Vec<NodePlan>,
    pub pod_subnet: Cidr,
    pub service_subnet: Cidr,
}

/// Docker's MAC for a container address: 02:42 followed by the IPv4 bytes.
pub fn docker_mac(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// Build the plan. `name` (kind's `--name`) wins over the config's `name:`, default `kind`.
pub fn plan(cluster: &Cluster, name: Option<&str>) -> Result<Plan, LabError> {
    let cname = name.or(cluster.name.as_deref()).unwrap_or("kind").to_string();
    if cname.is_empty() || !cname.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(LabError::Input(format!("invalid cluster name `{cname}`")));
    }
    let subnet = |v: &Option<String>, default: &str, what: &str| {
        Cidr::parse(v.as_deref().unwrap_or(default)).map_err(|e| LabError::Input(format!("networking.{what}: {e}")))
    };
    let pod_subnet = subnet(&cluster.networking.pod_subnet, DEFAULT_POD_SUBNET, "podSubnet")?;
    let service_subnet = subnet(&cluster.networking.service_subnet, DEFAULT_SERVICE_SUBNET, "serviceSubnet")?;
    if pod_subnet.len > 24 || pod_subnet.size() / 256 < cluster.nodes.len() as u64 {
        return Err(LabError::Input(format!(
            "networking.podSubnet {pod_subnet} cannot hold one /24 per node for {} nodes",
            cluster.nodes.len()
        )));
    }
    if cluster.nodes.len() as u64 > max_nodes() {
        return Err(LabError::Input(format!(
            "{} nodes do not fit in the node network {BRIDGE_NET}/{BRIDGE_PREFIX} (at most {})",
            cluster.nodes.len(),
            max_nodes()
        )));
    }
    let roles = cluster.nodes.iter().map(|n| match n.role {
        Role::ControlPlane => "control-plane",
        Role::Worker => "worker",
    });
    let names: Vec<(String, Role)> = crate::backend::kind_names::node_names(&cname, roles)
        .into_iter()
        .zip(cluster.nodes.iter().map(|n| n.role))
        .collect();
    // Pod CIDRs go to nodes in the order they register with the API server: control planes
    // first, then the workers, which kind joins concurrently. The lab fixes that order as the
    // article's run shows it (the last worker registered first).
    let mut order: Vec<usize> = (0..names.len()).filter(|&i| names[i].1 == Role::ControlPlane).collect();
    order.extend((0..names.len()).filter(|&i| names[i].1 == Role::Worker).rev());
    let mut cidr_index = vec![0u32; names.len()];
    for (k, &i) in order.iter().enumerate() {
        cidr_index[i] = k as u32;
    }
    let nodes = names
        .into_iter()
        .enumerate()
        .map(|(i, (name, role))| {
            let ip = node_ip(i).expect("node count checked above");
            let pod_cidr = Cidr { addr: pod_subnet.nth(cidr_index[i] * 256), len: 24 };
            NodePlan { name, role, ip, mac: docker_mac(ip), router_ip: pod_cidr.nth(ROUTER_OCTET as u32), pod_cidr }
        })
        .collect();
    Ok(Plan { cluster: cname, nodes, pod_subnet, service_subnet })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(yaml: &str) -> Cluster {
        Cluster::parse(yaml, "t").unwrap()
    }

    const HEAD: &str = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n";

    #[test]
    fn article_plan() {
        let c = cluster(&format!("{HEAD}nodes:\n- role: control-plane\n- role: worker\n- role: worker\n"));
        let p = plan(&c, None).unwrap();
        let got: Vec<(String, String, String)> =
            p.nodes.iter().map(|n| (n.name.clone(), n.ip.to_string(), n.pod_cidr.to_string())).collect();
        let want = [
            ("kind-control-plane", "172.18.0.2", "10.244.0.0/24"),
            ("kind-worker", "172.18.0.3", "10.244.2.0/24"),
            ("kind-worker2", "172.18.0.4", "10.244.1.0/24"),
        ];
        assert_eq!(got, want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())));
        assert_eq!(p.nodes[1].router_ip, Ipv4Addr::new(10, 244, 2, 224));
        assert_eq!(p.nodes[2].mac, "02:42:ac:12:00:04");
        assert_eq!(p.service_subnet.to_string(), "10.96.0.0/16");
    }

    #[test]
    fn names_custom_subnet_and_cluster_name() {
        let c = cluster(&format!(
            "{HEAD}name: dev\nnodes:\n- role: control-plane\n- role: control-plane\n- role: worker\nnetworking:\n  podSubnet: 10.100.0.0/16\n"
        ));
        let p = plan(&c, None).unwrap();
        let names: Vec<_> = p.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["dev-control-plane", "dev-control-plane2", "dev-worker"]);
        assert_eq!(p.nodes[2].pod_cidr.to_string(), "10.100.2.0/24");
        assert_eq!(plan(&c, Some("x")).unwrap().nodes[0].name, "x-control-plane");
    }

    #[test]
    fn too_small_pod_subnet_is_an_error() {
        let c = cluster(&format!(
            "{HEAD}nodes:\n- role: control-plane\n- role: worker\nnetworking:\n  podSubnet: 10.1.0.0/24\n"
        ));
        assert!(plan(&c, None).is_err());
    }

    #[test]
    fn node_addresses_never_wrap() {
        assert_eq!(node_ip(0), Some(Ipv4Addr::new(172, 18, 0, 2)));
        assert_eq!(node_ip(253), Some(Ipv4Addr::new(172, 18, 0, 255)));
        assert_eq!(node_ip(254), Some(Ipv4Addr::new(172, 18, 1, 0)));
        assert_eq!(node_ip(65532), Some(Ipv4Addr::new(172, 18, 255, 254)));
        assert_eq!(node_ip(65533), None);
        let mut c = cluster(&format!("{HEAD}nodes:\n- role: control-plane\nnetworking:\n  podSubnet: 10.128.0.0/9\n"));
        c.nodes = vec![c.nodes[0].clone(); 300];
        let p = plan(&c, None).unwrap();
        let mut ips: Vec<Ipv4Addr> = p.nodes.iter().map(|n| n.ip).collect();
        assert!(!ips.contains(&GATEWAY));
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 300, "every node has its own address");
    }

    #[test]
    fn cidr_math() {
        let c = Cidr::parse("10.244.7.9/16").unwrap();
        assert_eq!(c.to_string(), "10.244.0.0/16");
        assert!(c.contains(Ipv4Addr::new(10, 244, 255, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 245, 0, 1)));
        assert_eq!(Cidr::parse("10.0.0.0/33"), Err(CidrError::BadLength("10.0.0.0/33".into())));
        assert_eq!(Cidr::parse("10.0.0.0").unwrap_err().to_string(), "`10.0.0.0` is not a CIDR (a.b.c.d/n)");
        assert!(matches!(Cidr::parse("10.0.0/8"), Err(CidrError::BadAddress { .. })));
    }
}
