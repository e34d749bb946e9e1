//! Links and addresses of the lab: the bridge in the host namespace, each node's eth0 on it,
//! each pod's eth0 behind its node. Changes go through `ip -batch` run inside the namespace
//! (one process per namespace and step).

use std::net::Ipv4Addr;

use super::LabError;
use super::sandbox::NsThread;
use super::topology::{BRIDGE_PREFIX, GATEWAY, NodePlan};

/// Short stable hex id for link names (`veth1a2b3c4`, `lxc…`, `br-…`).
pub fn hex_id(parts: &[&str], len: usize) -> String {
    // FNV-1a: stable across runs and Rust versions, unlike DefaultHasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")[..len].to_string()
}

pub fn bridge_name(lab: &str) -> String {
    format!("br-{}", hex_id(&[lab], 12))
}

/// The lab host: the bridge that plays docker's `kind` network.
pub fn setup_host(host: &NsThread, lab: &str) -> Result<(), LabError> {
    let br = bridge_name(lab);
    host.ip(&[
        "link set lo up".into(),
        format!("link add {br} type bridge"),
        format!("link set {br} address 02:42:{}", colon_hex(&hex_id(&[lab, "br"], 8))),
        format!("addr add {GATEWAY}/{BRIDGE_PREFIX} dev {br}"),
        format!("link set {br} up"),
    ])?;
    host.sysctl("net.ipv4.ip_forward", "1")
}

fn colon_hex(h: &str) -> String {
    h.as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":")
}

/// The bridge-side peer of node `node`'s eth0, in the lab host.
pub fn node_veth(lab: &str, node: &str) -> String {
    format!("veth{}", hex_id(&[lab, node], 7))
}

/// A node's eth0 on the bridge, its address and default route.
pub fn attach_node(host: &NsThread, node: &NsThread, lab: &str, plan: &NodePlan) -> Result<(), LabError> {
    let veth = node_veth(lab, &plan.name);
    // A cluster deleted just before leaves its nodes' veths until the kernel has finished
    // tearing their namespaces down; the name is this lab's own, so take it back.
    let _ = host.ip(&[format!("link del {veth}")]);
    host.ip(&[
        format!("link add {veth} type veth peer name eth0 netns {}", node.tid()),
        format!("link set {veth} master {} up", bridge_name(lab)),
    ])?;
    node.ip(&[
        "link set lo up".into(),
        format!("link set eth0 address {}", plan.mac),
        format!("addr add {}/{BRIDGE_PREFIX} dev eth0", plan.ip),
        "link set eth0 up".into(),
        format!("route add default via {GATEWAY} dev eth0"),
    ])?;
    node.sysctl("net.ipv4.ip_forward", "1")?;
    node.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
    node.sysctl("net.ipv4.conf.default.rp_filter", "0")
}

/// kind's rewrite of Docker's embedded-DNS rules: queries to the gateway's port 53 (from the
/// node or from its pods) go to the resolver on 127.0.0.11.
pub fn docker_dns_rules(node: &NsThread, udp: u16, tcp: u16) -> Result<(), LabError> {
    node.sysctl("net.ipv4.conf.all.route_localnet", "1")?;
    let rules = format!(
        "*nat\n:DOCKER_OUTPUT - [0:0]\n:DOCKER_POSTROUTING - [0:0]\n\
         -A PREROUTING -d {GATEWAY}/32 -j DOCKER_OUTPUT\n\
         -A OUTPUT -d {GATEWAY}/32 -j DOCKER_OUTPUT\n\
         -A POSTROUTING -d {GATEWAY}/32 -j DOCKER_POSTROUTING\n\
         -A DOCKER_OUTPUT -d {GATEWAY}/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 127.0.0.11:{tcp}\n\
         -A DOCKER_OUTPUT -d {GATEWAY}/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:{udp}\n\
         -A DOCKER_POSTROUTING -s 127.0.0.11/32 -p tcp -m tcp --sport {tcp} -j SNAT --to-source {GATEWAY}:53\n\
         -A DOCKER_POSTROUTING -s 127.0.0.11/32 -p udp -m udp --sport {udp} -j SNAT --to-source {GATEWAY}:53\n\
         COMMIT\n"
    );
    node.command(&["iptables-restore", "--noflush"], &rules).map(|_| ())
}

/// Routing table of a node's local pods (`ip rule` sends the node's pod CIDR here first), so
/// that the main table shows exactly what Cilium's does.
pub const POD_TABLE: u32 = 2005;

/// A pod's eth0 behind its node: a veth named like Cilium's (`lxc…`), the pod's /32, and the
/// node's router IP as the pod's gateway (Cilium's layout). The node's side: the link, the
/// route in the pods' table.
pub fn cilium_node_lines(lxc: &str, pod_tid: i32, ip: Ipv4Addr) -> Vec<String> {
    vec![
        format!("link add {lxc} type veth peer name eth0 netns {pod_tid}"),
        format!("link set {lxc} up"),
        format!("route add {ip}/32 dev {lxc} table {POD_TABLE}"),
    ]
}

/// The pod's side of Cilium's layout. `route_mtu` is Cilium's route MTU: the device's, less the
/// encapsulation in tunnel mode.
pub fn cilium_pod_lines(ip: Ipv4Addr, router: Ipv4Addr, route_mtu: u32) -> Vec<String> {
    vec![
        "link set lo up".into(),
        format!("addr add {ip}/32 dev eth0"),
        "link set eth0 up".into(),
        format!("route add {router} dev eth0 scope link"),
        format!("route add default via {router} dev eth0 mtu {route_mtu}"),
    ]
}

/// Cilium's layout for a pod of the emulated lab (see `cilium_node_lines`).
pub fn attach_pod(node: &NsThread, pod: &NsThread, lxc: &str, ip: Ipv4Addr, router: Ipv4Addr) -> Result<(), LabError> {
    node.ip(&cilium_node_lines(lxc, pod.tid(), ip))?;
    // Answer the pod's ARP for its gateway (Cilium answers it in BPF).
    node.sysctl(&format!("net.ipv4.conf.{lxc}.proxy_arp"), "1")?;
    node.sysctl(&format!("net.ipv4.conf.{lxc}.rp_filter"), "0")?;
    pod.ip(&cilium_pod_lines(ip, router, 1500))
}

pub fn detach_pod(node: &NsThread, lxc: &str, ip: Ipv4Addr) -> Result<(), LabError> {
    node.ip(&[format!("route del {ip}/32 table {POD_TABLE}"), format!("link del {lxc}")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_short() {
        assert_eq!(hex_id(&["a", "b"], 7), hex_id(&["a", "b"], 7));
        assert_ne!(hex_id(&["a", "b"], 7), hex_id(&["ab"], 7));
        assert!(bridge_name("lab-1").len() <= 15);
    }
}
