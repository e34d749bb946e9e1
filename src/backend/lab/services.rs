//! ClusterIP Services in the datapath. Cilium's kube-proxy replacement translates service
//! addresses in BPF; the lab does the same translation with an nftables table of its own in
//! every node (`ip tutor_services`: DNAT to a random ready endpoint), so pods and nodes reach
//! `10.96.x.y:port` and the load spreads over the endpoints.

use super::LabError;
use super::state::ClusterRt;

pub const TABLE: &str = "tutor_services";

/// One service frontend (address, protocol, port) and the endpoints it translates to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// `ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalIPs` (as `cilium-dbg service list`
    /// names them).
    pub kind: &'static str,
    pub ip: std::net::Ipv4Addr,
    /// `tcp` or `udp`.
    pub proto: String,
    pub port: u16,
    pub target_port: u16,
    pub backends: Vec<std::net::Ipv4Addr>,
}

/// The conntrack mark of connections that reached a node from outside the cluster through a
/// NodePort, external or load-balancer address: when their endpoint runs on another node, the
/// source becomes this node's address (Cilium's SNAT mode), so the reply comes back through it.
pub const FROM_OUTSIDE: u32 = 0x7475;

/// The nft script that makes a node's `tutor_services` table hold exactly `frontends` (a
/// frontend without endpoints rejects, as Cilium's does).
pub fn nft_script(frontends: &[Frontend]) -> String {
    let mut rules = String::new();
    for f in frontends {
        let m = format!("ip daddr {} {} dport {}", f.ip, f.proto, f.port);
        if f.backends.is_empty() {
            rules.push_str(&format!("    {m} reject\n"));
        } else {
            let map: Vec<String> = f.backends.iter().enumerate().map(|(i, ip)| format!("{i} : {ip}")).collect();
            let mark = match f.kind {
                "NodePort" | "LoadBalancer" | "ExternalIPs" => format!("ct mark set {FROM_OUTSIDE:#x} "),
                _ => String::new(),
            };
            rules.push_str(&format!(
                "    {m} {mark}dnat to numgen random mod {} map {{ {} }} : {}\n",
                f.backends.len(),
                map.join(", "),
                f.target_port
            ));
        }
    }
    format!(
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n  chain services {{\n{rules}  }}\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n    jump services\n  }}\n  chain output {{\n    type nat hook output priority -100; policy accept;\n    jump services\n  }}\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    ct mark {FROM_OUTSIDE:#x} oifname != \"lxc*\" masquerade\n  }}\n}}\n"
    )
}

impl ClusterRt {
    /// The nft script for the current services and endpoints (replaces the whole table).
    pub fn services_script(&self) -> String {
        let mut frontends = Vec::new();
        for svc in &self.store.services {
            let eps = self.store.endpoints(svc);
            for port in &svc.ports {
                let mut ips: Vec<_> = eps.iter().filter(|(_, p)| *p == port.target_port).map(|(ip, _)| *ip).collect();
                ips.dedup();
                frontends.push(Frontend {
                    kind: "ClusterIP",
                    ip: svc.cluster_ip,
                    proto: port.protocol.to_lowercase(),
                    port: port.port,
                    target_port: port.target_port,
                    backends: ips,
                });
            }
        }
        nft_script(&frontends)
    }

    /// Bring every node's service table up to date (after any change to services or pods).
    pub fn sync_services(&mut self) -> Result<(), LabError> {
        if let Ok(mut zone) = self.zone.write() {
            zone.clear();
            for s in &self.store.services {
                zone.insert(format!("{}.{}.svc.cluster.local", s.name, s.namespace), s.cluster_ip);
            }
        }
        if !self.store.cni {
            return Ok(());
        }
        let script = self.services_script();
        for n in &self.nodes {
            n.ns.command(&["nft", "-f", "-"], &script)?;
        }
        self.sync_load_balancers()
    }
}
