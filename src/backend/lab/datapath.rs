//! The node datapath that Cilium's Helm values ask for: `cilium_host` with the router IP, the
//! route to the node's own pod CIDR through it and, with `autoDirectNodeRoutes`, a route to every
//! other node's pod CIDR via that node's eth0 address — as the article's `ip route` shows them.

use super::LabError;
use super::network::POD_TABLE;
use super::sandbox::NsThread;
use super::topology::NodePlan;
use super::values::CiliumValues;

/// Install Cilium's per-node devices and routes on `node` (first install).
pub fn install_node(ns: &NsThread, me: &NodePlan) -> Result<(), LabError> {
    let (cidr, router) = (me.pod_cidr, me.router_ip);
    ns.ip(&[
        "link add cilium_host type veth peer name cilium_net".into(),
        // NOARP, as Cilium's: what the node routes via the router address on cilium_host needs
        // no neighbour (in tunnel mode the lab's tc program takes it from there).
        "link set cilium_host arp off".into(),
        "link set cilium_net arp off".into(),
        "link set cilium_net up".into(),
        "link set cilium_host up".into(),
        format!("addr add {router}/32 dev cilium_host"),
        format!("route add {router} dev cilium_host proto kernel scope link"),
        format!("route add {cidr} via {router} dev cilium_host proto kernel src {router}"),
        format!("rule add to {cidr} lookup {POD_TABLE} pref 100"),
    ])
}

/// Make the direct node routes match `values` (adds or removes them; idempotent). Only routes
/// via eth0 are removed: tunnel mode's routes through `cilium_host` are `tunnel.rs`'s.
pub fn sync_node_routes(ns: &NsThread, me: &NodePlan, all: &[NodePlan], values: &CiliumValues) -> Result<(), LabError> {
    let want = values.native_routing() && values.auto_direct_node_routes;
    let lines: Vec<String> = all
        .iter()
        .filter(|n| n.name != me.name)
        .map(|n| {
            if want {
                format!("route replace {} via {} dev eth0 proto kernel", n.pod_cidr, n.ip)
            } else {
                format!("route flush {} dev eth0 proto kernel", n.pod_cidr)
            }
        })
        .collect();
    ns.ip(&lines)
}
