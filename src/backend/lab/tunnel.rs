//! Cilium's tunnel mode (`routing-mode: tunnel`, the chart's default) on a lab node, built from
//! the kernel's own parts as Cilium builds it:
//!
//! - the tunnel device, `cilium_vxlan` (UDP 8472) or `cilium_geneve` (UDP 6081), in flow-based
//!   ("external") mode: one device for every peer, the peer's address given per packet;
//! - a route to every other node's podCIDR via the node's router address on `cilium_host`, with
//!   the MTU left after the encapsulation's 50 bytes (`… dev cilium_host proto kernel src R mtu
//!   1450`, as on a Cilium node);
//! - the lab's tc programs (`ebpf/tunnel.bpf.c`): `from_host` on `cilium_host`'s egress gives
//!   what the node sends there the tunnel key of the node owning the destination (the
//!   `tunnel_map` LPM map: podCIDR → node address) and redirects it to the tunnel device, which
//!   encapsulates it toward that node; `from_overlay` on the tunnel device's ingress hands the
//!   decapsulated frame to the node's stack, which routes it to the pod.
//!
//! The programs are attached with TCX links owned by the agent process (they go with it); the
//! devices and routes live in the node's network namespace and go with the lab. Leaving tunnel
//! mode (a `helm upgrade` to native routing) removes the device, the programs and the routes.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::net::Ipv4Addr;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, MapData};
use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, include_bytes_aligned};

use super::LabError;
use super::bpf_masq::BpfCause;
use super::sandbox::NsThread;
use super::topology::{Cidr, NodePlan};

static OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tunnel.bpf.o"));

/// Cilium's reserved identities the encapsulation carries for the node itself and for a source
/// it knows nothing of.
pub const HOST_ID: u32 = 1;
pub const WORLD_ID: u32 = 2;

/// Bytes the encapsulation adds (outer IPv4 20 + UDP 8 + VXLAN or Geneve 8 + inner Ethernet 14),
/// Cilium's tunnel overhead for both protocols.
pub const OVERHEAD: u32 = 50;

/// The encapsulation (`tunnel-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Vxlan,
    Geneve,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "vxlan" => Some(Protocol::Vxlan),
            "geneve" => Some(Protocol::Geneve),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Vxlan => "vxlan",
            Protocol::Geneve => "geneve",
        }
    }

    /// The device Cilium names for it.
    pub fn device(self) -> &'static str {
        match self {
            Protocol::Vxlan => "cilium_vxlan",
            Protocol::Geneve => "cilium_geneve",
        }
    }

    /// Cilium's default port (`tunnel-port` unset): 8472 as the Linux VXLAN default, IANA's 6081.
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Vxlan => 8472,
            Protocol::Geneve => 6081,
        }
    }
}

/// What tunnel mode asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    pub protocol: Protocol,
    pub port: u16,
}

/// Mirror of `struct tunnel_config` (ebpf/tunnel.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct TunnelConfig {
    ifindex: u32,
    world: u32,
}

// SAFETY: plain old data, no padding (two u32).
unsafe impl aya::Pod for TunnelConfig {}

/// Mirror of `struct tunnel_value` (ebpf/tunnel.h): the node's address, network byte order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TunnelValue {
    node_ip: u32,
}

// SAFETY: plain old data (one u32).
unsafe impl aya::Pod for TunnelValue {}

fn be(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

fn err<E: Into<BpfCause>>(what: &str) -> impl Fn(E) -> LabError + '_ {
    move |e| LabError::Tunnel { what: what.to_string(), source: Box::new(e.into()) }
}

/// The peers' podCIDRs and addresses: what `tunnel_map` and the routes hold.
pub fn peers(me: &NodePlan, all: &[NodePlan]) -> Vec<(Cidr, Ipv4Addr)> {
    all.iter().filter(|n| n.name != me.name).map(|n| (n.pod_cidr, n.ip)).collect()
}

/// The route to a peer's podCIDR (Cilium's shape in tunnel mode).
pub fn peer_route(cidr: Cidr, me: &NodePlan, mtu: u32) -> String {
    let r = me.router_ip;
    format!("route replace {cidr} via {r} dev cilium_host proto kernel src {r} mtu {mtu}")
}

/// The `ip link add` line of the tunnel device.
pub fn device_line(t: Tunnel) -> String {
    match t.protocol {
        Protocol::Vxlan => format!("link add cilium_vxlan type vxlan external dstport {} nolearning", t.port),
        Protocol::Geneve => format!("link add cilium_geneve type geneve external dstport {}", t.port),
    }
}

/// A node's tunnel datapath as the agent last made it.
#[derive(Default)]
pub struct TunnelDatapath {
    /// The loaded programs, for this tunnel.
    loaded: Option<(Ebpf, Tunnel)>,
    /// The peers and route MTU the map and the routes were last made for.
    synced: Option<(Vec<(Cidr, Ipv4Addr)>, u32)>,
    /// Outside tunnel mode: nothing of it is left on the node (checked once, then kept so).
    clean: bool,
    /// The security identities of the node's endpoints (address → identity), and the node's
    /// router address (the host's identity): the VNI of what they send.
    identities: Vec<(Ipv4Addr, u32)>,
    router: Option<Ipv4Addr>,
}

/// One link of `ip -j -d link show`.
#[derive(serde::Deserialize)]
struct Link {
    ifname: String,
    #[serde(default)]
    mtu: u32,
    #[serde(default)]
    linkinfo: Option<LinkInfo>,
}

#[derive(serde::Deserialize)]
struct LinkInfo {
    #[serde(default)]
    info_data: Option<serde_json::Value>,
}

/// One route of `ip -j route show`.
#[derive(serde::Deserialize)]
struct Route {
    dst: String,
}

fn links(ns: &NsThread) -> Result<BTreeMap<String, Link>, LabError> {
    let out = ns.command(&["ip", "-j", "-d", "link", "show"], "")?;
    let v: Vec<Link> =
        serde_json::from_str(&out).map_err(|source| LabError::Json { what: "ip -j -d link show".into(), source })?;
    Ok(v.into_iter().map(|l| (l.ifname.clone(), l)).collect())
}

fn port_of(l: &Link) -> Option<u16> {
    l.linkinfo.as_ref()?.info_data.as_ref()?.get("port")?.as_u64().map(|p| p as u16)
}

impl TunnelDatapath {
    /// The tunnel the programs are loaded for, if tunnel mode is in force.
    pub fn tunnel(&self) -> Option<Tunnel> {
        self.loaded.as_ref().map(|(_, t)| *t)
    }

    /// Make node `me` match `want`: tunnel mode with that device, or no tunnel at all.
    pub fn sync(
        &mut self,
        ns: &NsThread,
        me: &NodePlan,
        all: &[NodePlan],
        want: Option<Tunnel>,
    ) -> Result<(), LabError> {
        if want.is_none() && self.clean {
            return Ok(());
        }
        let peers = peers(me, all);
        if let (Some(w), Some((_, t)), Some((p, _))) = (want, &self.loaded, &self.synced)
            && w == *t
            && *p == peers
            && ns.run(move || std::path::Path::new("/sys/class/net").join(w.protocol.device()).exists())?
        {
            return Ok(());
        }
        let links = links(ns)?;
        let Some(want) = want else {
            return self.remove(ns, me, &links);
        };
        self.clean = false;
        let device = want.protocol.device();
        // The new device first, so that a kernel refusing it leaves the running tunnel alone;
        // then the other protocol's device (and this one's if it listens on another port,
        // which has to go before its replacement can take the name).
        let mut lines = Vec::new();
        let mut stale = Vec::new();
        let mut fresh = !links.contains_key(device);
        for p in [Protocol::Vxlan, Protocol::Geneve] {
            if let Some(l) = links.get(p.device())
                && (p != want.protocol || port_of(l) != Some(want.port))
            {
                if p == want.protocol {
                    fresh = true;
                    lines.push(format!("link del {device}"));
                } else {
                    stale.push(format!("link del {}", p.device()));
                }
            }
        }
        if fresh {
            lines.push(device_line(want));
            lines.push(format!("link set {device} up"));
        }
        lines.extend(stale);
        ns.ip(&lines).map_err(|e| match (&e, want.protocol) {
            (LabError::CommandFailed { stderr, .. }, Protocol::Geneve) if stderr.contains("Unknown device type") => {
                LabError::Tunnel {
                    what: "tunnel-protocol geneve: this kernel cannot make Geneve devices (CONFIG_GENEVE)".into(),
                    source: Box::new(BpfCause::NoDevice),
                }
            }
            _ => e,
        })?;
        if fresh {
            // The programs were attached to the device that went.
            self.loaded = None;
        }
        if self.loaded.as_ref().map(|(_, t)| *t) != Some(want) {
            self.loaded = None;
            let ebpf = ns.run(move || load(device))??;
            self.loaded = Some((ebpf, want));
            self.synced = None;
        }
        if self.router != Some(me.router_ip) || self.synced.is_none() {
            self.router = Some(me.router_ip);
            self.fill_ids()?;
        }
        let mtu = links.get("eth0").map(|l| l.mtu).filter(|m| *m > OVERHEAD).unwrap_or(1500) - OVERHEAD;
        if self.synced.as_ref() != Some(&(peers.clone(), mtu)) {
            let (ebpf, _) = self.loaded.as_mut().expect("loaded above");
            fill_map(ebpf, &peers)?;
            let mut lines: Vec<String> = peers.iter().map(|(cidr, _)| peer_route(*cidr, me, mtu)).collect();
            let keep: Vec<Cidr> = peers.iter().map(|(c, _)| *c).collect();
            lines.extend(stale_routes(ns, me, &keep)?);
            ns.ip(&lines)?;
            self.synced = Some((peers, mtu));
        }
        Ok(())
    }

    /// The node's endpoints' security identities (from the agent's endpoints), carried as the
    /// VNI of what they send.
    pub fn set_identities(&mut self, ids: Vec<(Ipv4Addr, u32)>) -> Result<(), LabError> {
        if ids == self.identities {
            return Ok(());
        }
        self.identities = ids;
        self.fill_ids()
    }

    /// Make `tunnel_ids` hold the endpoints' identities and the router address's (the host's).
    fn fill_ids(&mut self) -> Result<(), LabError> {
        let Some((ebpf, _)) = self.loaded.as_mut() else { return Ok(()) };
        let mut want: BTreeMap<u32, u32> = self.identities.iter().map(|(ip, id)| (be(*ip), *id)).collect();
        if let Some(r) = self.router {
            want.insert(be(r), HOST_ID);
        }
        let mut map: aya::maps::HashMap<&mut MapData, u32, u32> =
            aya::maps::HashMap::try_from(ebpf.map_mut("tunnel_ids").expect("map in object"))
                .map_err(err("tunnel_ids"))?;
        let stale: Vec<u32> = map.keys().filter_map(Result::ok).filter(|k| !want.contains_key(k)).collect();
        for k in stale {
            map.remove(&k).map_err(err("tunnel_ids"))?;
        }
        for (k, v) in want {
            map.insert(k, v, 0).map_err(err("tunnel_ids"))?;
        }
        Ok(())
    }

    /// No tunnel: the programs, the devices and the routes to the peers through `cilium_host` go.
    fn remove(&mut self, ns: &NsThread, me: &NodePlan, links: &BTreeMap<String, Link>) -> Result<(), LabError> {
        self.loaded = None;
        self.synced = None;
        let mut lines: Vec<String> = [Protocol::Vxlan, Protocol::Geneve]
            .into_iter()
            .filter(|p| links.contains_key(p.device()))
            .map(|p| format!("link del {}", p.device()))
            .collect();
        if links.contains_key("cilium_host") {
            lines.extend(stale_routes(ns, me, &[])?);
        }
        ns.ip(&lines)?;
        self.clean = true;
        Ok(())
    }
}

/// `route del` lines for the routes through `cilium_host` that are neither the node's own
/// (its podCIDR, its router address) nor in `keep`.
fn stale_routes(ns: &NsThread, me: &NodePlan, keep: &[Cidr]) -> Result<Vec<String>, LabError> {
    let out = ns.command(&["ip", "-j", "route", "show", "dev", "cilium_host"], "")?;
    let routes: Vec<Route> =
        serde_json::from_str(&out).map_err(|source| LabError::Json { what: "ip -j route show".into(), source })?;
    let own = [me.pod_cidr.to_string(), me.router_ip.to_string()];
    Ok(routes
        .into_iter()
        .filter(|r| !own.contains(&r.dst) && !keep.iter().any(|c| c.to_string() == r.dst))
        .map(|r| format!("route del {} dev cilium_host", r.dst))
        .collect())
}

fn ifindex(name: &str) -> Result<u32, LabError> {
    let c = CString::new(name).expect("no NUL");
    // SAFETY: a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 { Err(err(name)(BpfCause::NoDevice)) } else { Ok(i) }
}

/// Load the programs (in the node's namespace: aya resolves names there), set the tunnel
/// device, attach `from_host` to `cilium_host`'s egress and `from_overlay` to the device.
fn load(device: &'static str) -> Result<Ebpf, LabError> {
    let mut ebpf = Ebpf::load(OBJECT).map_err(err("loading"))?;
    let cfg = TunnelConfig { ifindex: ifindex(device)?, world: WORLD_ID };
    let mut config: Array<&mut MapData, TunnelConfig> =
        Array::try_from(ebpf.map_mut("tunnel_config").expect("map in object")).map_err(err("tunnel_config"))?;
    config.set(0, cfg, 0).map_err(err("tunnel_config"))?;
    for (prog, iface, side) in
        [("from_host", "cilium_host", TcAttachType::Egress), ("from_overlay", device, TcAttachType::Ingress)]
    {
        let p: &mut SchedClassifier = ebpf.program_mut(prog).expect("program in object").try_into().map_err(err::<
            aya::programs::ProgramError,
        >(
            prog
        ))?;
        p.load().map_err(err(prog))?;
        p.attach(iface, side).map_err(err(&format!("attaching {prog} to {iface}")))?;
    }
    Ok(ebpf)
}

/// Make `tunnel_map` hold exactly `peers`.
fn fill_map(ebpf: &mut Ebpf, peers: &[(Cidr, Ipv4Addr)]) -> Result<(), LabError> {
    let mut map: LpmTrie<&mut MapData, u32, TunnelValue> =
        LpmTrie::try_from(ebpf.map_mut("tunnel_map").expect("map in object")).map_err(err("tunnel_map"))?;
    let want: Vec<(u32, u32)> = peers.iter().map(|(c, _)| (c.len as u32, be(c.addr))).collect();
    let stale: Vec<Key<u32>> =
        map.keys().filter_map(Result::ok).filter(|k| !want.contains(&(k.prefix_len(), k.data()))).collect();
    for k in stale {
        map.remove(&k).map_err(err("tunnel_map"))?;
    }
    for (c, ip) in peers {
        map.insert(&Key::new(c.len as u32, be(c.addr)), TunnelValue { node_ip: be(*ip) }, 0)
            .map_err(err("tunnel_map"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::lab::config::Role;

    fn node(name: &str, ip: [u8; 4], cidr: &str) -> NodePlan {
        let pod_cidr = Cidr::parse(cidr).unwrap();
        NodePlan {
            name: name.into(),
            role: Role::Worker,
            ip: ip.into(),
            mac: String::new(),
            router_ip: pod_cidr.nth(224),
            pod_cidr,
        }
    }

    #[test]
    fn devices_and_routes_are_ciliums() {
        let vx = Tunnel { protocol: Protocol::Vxlan, port: Protocol::Vxlan.default_port() };
        assert_eq!(device_line(vx), "link add cilium_vxlan type vxlan external dstport 8472 nolearning");
        let gn = Tunnel { protocol: Protocol::Geneve, port: Protocol::Geneve.default_port() };
        assert_eq!(device_line(gn), "link add cilium_geneve type geneve external dstport 6081");
        let me = node("kind-worker", [172, 18, 0, 3], "10.244.2.0/24");
        assert_eq!(
            peer_route(Cidr::parse("10.244.1.0/24").unwrap(), &me, 1450),
            "route replace 10.244.1.0/24 via 10.244.2.224 dev cilium_host proto kernel src 10.244.2.224 mtu 1450"
        );
        let all =
            [node("a", [172, 18, 0, 2], "10.244.0.0/24"), me.clone(), node("b", [172, 18, 0, 4], "10.244.1.0/24")];
        let p = peers(&me, &all);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1], (Cidr::parse("10.244.1.0/24").unwrap(), Ipv4Addr::new(172, 18, 0, 4)));
        assert_eq!(Protocol::parse("geneve"), Some(Protocol::Geneve));
        assert_eq!(Protocol::parse("gre"), None);
    }

    #[test]
    fn config_layout_matches_the_c_header() {
        assert_eq!(std::mem::size_of::<TunnelConfig>(), 8);
        assert_eq!(std::mem::size_of::<TunnelValue>(), 4);
    }
}
