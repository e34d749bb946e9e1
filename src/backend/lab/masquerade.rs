//! `enableIPv4Masquerade`: Cilium's iptables masquerade chain in every node (iptables mode), or
//! the lab's BPF programs (`bpf.masquerade`, see `bpf_masq`) with no iptables rule at all.

use super::LabError;
use super::sandbox::NsThread;
use super::topology::NodePlan;
use super::values::CiliumValues;

/// Cilium's ipset of node addresses.
const NODE_SET: &str = "cilium_node_set_v4";

/// The rules the article prints with `iptables -t nat -S CILIUM_POST_nat`. Without the `ipset`
/// tool the node-set match becomes one ACCEPT per node (same effect, different listing).
/// `exclusion` is what pods reach unmasqueraded: the native-routing CIDR, or in tunnel mode
/// without one the node's own podCIDR (other nodes' pods are reached through the tunnel, which
/// `! -o cilium_+` leaves alone); tunnel mode also masquerades the host's traffic into
/// `cilium_host` to the router address, as Cilium does.
pub fn iptables_rules(me: &NodePlan, all: &[NodePlan], exclusion: &str, ipset: bool, tunnel: bool) -> String {
    let cidr = me.pod_cidr;
    let router = me.router_ip;
    let mut r = String::from(
        "*nat\n:CILIUM_POST_nat - [0:0]\n-A POSTROUTING -m comment --comment \"cilium-feeder: CILIUM_POST_nat\" -j CILIUM_POST_nat\n",
    );
    if ipset {
        r.push_str(&format!(
            "-A CILIUM_POST_nat -s {cidr} -m set --match-set {NODE_SET} dst -m comment --comment \"exclude traffic to cluster nodes from masquerade\" -j ACCEPT\n"
        ));
    }
    for n in all.iter().filter(|_| !ipset) {
        r.push_str(&format!(
            "-A CILIUM_POST_nat -s {cidr} -d {}/32 -m comment --comment \"exclude traffic to cluster nodes from masquerade\" -j ACCEPT\n",
            n.ip
        ));
    }
    r.push_str(&format!(
        "-A CILIUM_POST_nat -s {cidr} ! -d {exclusion} ! -o cilium_+ -m comment --comment \"cilium masquerade non-cluster\" -j MASQUERADE\n\
         -A CILIUM_POST_nat -m mark --mark 0xa00/0xe00 -m comment --comment \"exclude proxy return traffic from masquerade\" -j ACCEPT\n"
    ));
    if tunnel {
        r.push_str(&format!(
            "-A CILIUM_POST_nat ! -s {cidr} ! -d {cidr} -o cilium_host -m comment --comment \"cilium host->cluster masquerade\" -j SNAT --to-source {router}\n"
        ));
    }
    r.push_str(&format!(
        "-A CILIUM_POST_nat -s 127.0.0.1/32 -o cilium_host -m comment --comment \"cilium host->cluster from 127.0.0.1 masquerade\" -j SNAT --to-source {router}\n\
         -A CILIUM_POST_nat -o cilium_host -m mark --mark 0xf00/0xf00 -m conntrack --ctstate DNAT -m comment --comment \"hairpin traffic that originated from a local pod\" -j SNAT --to-source {router}\n\
         COMMIT\n"
    ));
    r
}

/// Make a node's masquerade match `values`.
pub fn sync(ns: &NsThread, me: &NodePlan, all: &[NodePlan], values: &CiliumValues) -> Result<(), LabError> {
    // Start from no Cilium nat rules, so that an upgrade can turn masquerade off.
    let _ = ns.command(
        &[
            "iptables",
            "-t",
            "nat",
            "-D",
            "POSTROUTING",
            "-m",
            "comment",
            "--comment",
            "cilium-feeder: CILIUM_POST_nat",
            "-j",
            "CILIUM_POST_nat",
        ],
        "",
    );
    let _ = ns.command(&["iptables", "-t", "nat", "-F", "CILIUM_POST_nat"], "");
    let _ = ns.command(&["iptables", "-t", "nat", "-X", "CILIUM_POST_nat"], "");
    if !values.ipv4_masquerade {
        return Ok(());
    }
    if values.bpf_masquerade {
        return Ok(());
    }
    let exclusion = exclusion(values, me).to_string();
    let ipset = super::preflight::which("ipset").is_some();
    if ipset {
        let mut script = format!("create {NODE_SET} hash:ip family inet -exist\nflush {NODE_SET}\n");
        for n in all {
            script.push_str(&format!("add {NODE_SET} {}\n", n.ip));
        }
        ns.command(&["ipset", "restore"], &script)?;
    }
    ns.command(&["iptables-restore", "--noflush"], &iptables_rules(me, all, &exclusion, ipset, values.tunnel.is_some()))
        .map(|_| ())
}

/// The ipmasq map's content for `values`: nonMasqueradeCIDRs plus link-local (Cilium adds it
/// unless `masqLinkLocal`), or nothing without ip-masq-agent.
pub fn non_masquerade(values: &CiliumValues) -> Vec<super::topology::Cidr> {
    let mut v = Vec::new();
    if values.ip_masq_agent {
        v.extend(values.non_masquerade_cidrs.iter().copied());
        v.push(super::topology::Cidr::parse("169.254.0.0/16").expect("valid"));
    }
    v
}

/// What a node's pods reach without masquerade (Cilium's SNAT exclusion CIDR): the native-routing
/// CIDR, or else the node's own podCIDR.
pub fn exclusion(values: &CiliumValues, me: &NodePlan) -> super::topology::Cidr {
    values.native_routing_cidr.unwrap_or(me.pod_cidr)
}

/// `cilium-dbg status`'s Routing value: `Network: Tunnel [vxlan]` or `Network: Native`, and the
/// host routing.
pub fn routing_value(values: &CiliumValues) -> String {
    let host = if values.bpf_masquerade { "BPF" } else { "Legacy" };
    match values.tunnel {
        Some(t) => format!("Network: Tunnel [{}]   Host: {host}", t.protocol.name()),
        None => format!("Network: Native   Host: {host}"),
    }
}

/// `cilium-dbg status`'s Masquerading value for `values` on node `me` (the emulated lab's and
/// the agent's).
pub fn status_value(values: &CiliumValues, me: &NodePlan) -> String {
    let native = exclusion(values, me);
    if !values.ipv4_masquerade {
        "Disabled".to_string()
    } else if values.bpf_masquerade {
        let agent = if values.ip_masq_agent { " (ip-masq-agent)" } else { "" };
        format!("BPF{agent}   [eth0]   {native} [IPv4: Enabled, IPv6: Disabled]")
    } else {
        "IPTables [IPv4: Enabled, IPv6: Disabled]".to_string()
    }
}
