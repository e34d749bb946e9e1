//! ClusterIP Services in the datapath. Cilium's kube-proxy replacement translates service
//! addresses in BPF; the lab does the same translation with an nftables table of its own in
//! every node (`ip tutor_services`: DNAT to a random ready endpoint), so pods and nodes reach
//! `10.96.x.y:port` and the load spreads over the endpoints.

use super::LabError;
use super::state::ClusterRt;

pub const TABLE: &str = "tutor_services";

impl ClusterRt {
    /// The nft script for the current services and endpoints (replaces the whole table).
    pub fn services_script(&self) -> String {
        let mut rules = String::new();
        for svc in &self.store.services {
            let eps = self.store.endpoints(svc);
            for port in &svc.ports {
                let proto = port.protocol.to_lowercase();
                let mut ips: Vec<_> = eps.iter().filter(|(_, p)| *p == port.target_port).map(|(ip, _)| *ip).collect();
                ips.dedup();
                let m = format!("ip daddr {} {proto} dport {}", svc.cluster_ip, port.port);
                if ips.is_empty() {
                    rules.push_str(&format!("    {m} reject\n"));
                } else {
                    let map: Vec<String> = ips.iter().enumerate().map(|(i, ip)| format!("{i} : {ip}")).collect();
                    rules.push_str(&format!(
                        "    {m} dnat to numgen random mod {} map {{ {} }} : {}\n",
                        ips.len(),
                        map.join(", "),
                        port.target_port
                    ));
                }
            }
        }
        format!(
            "table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n  chain services {{\n{rules}  }}\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n    jump services\n  }}\n  chain output {{\n    type nat hook output priority -100; policy accept;\n    jump services\n  }}\n}}\n"
        )
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
