//! The world outside the cluster, as the article's laptop sees it: the lab host's uplink
//! (`wlp2s0`, 192.168.1.63/24) to a LAN router (192.168.1.1) that also plays "the internet".
//! The router serves an HTTP(S) API on every address that echoes the client's source address —
//! which shows whether and how the cluster masqueraded a request — and holds public-looking
//! addresses from TEST-NET-3 (203.0.113.0/24), which exist only inside the lab.
//!
//! Unlike a real home router, it does not NAT the lab's private addresses: that is what lets
//! the echo server see a node address (masqueraded) versus a pod address (not masqueraded,
//! and then unroutable back, as on the real internet).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use super::LabError;
use super::apps::{self, Server};
use super::dns::{self, DnsServer, Policy};
use super::sandbox::{Mounts, NsThread};
use super::topology::{BRIDGE_NET, BRIDGE_PREFIX};

pub const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
pub const UPLINK: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 63);
/// The external API (`swapi.dev` in the lab's DNS).
pub const API: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// Public names the router's DNS answers, and their addresses.
/// `helm.cilium.io` is the lab's chart repository, served by the same web server (by `Host`).
pub const PUBLIC_NAMES: &[(&str, Ipv4Addr)] =
    &[("swapi.dev", API), ("api.example.com", API), (super::charts::HOST, API)];

pub struct Outside {
    pub router: NsThread,
    pub servers: Vec<Server>,
    pub dns: DnsServer,
}

pub fn build(host: &NsThread, lab: &str) -> Result<Outside, LabError> {
    let router = NsThread::new(&format!("{lab}-router"), Some("router"), Mounts::default())?;
    // The laptop of the article: Wi-Fi uplink managed by NetworkManager (metric 600, the
    // link-local route), and Docker's default bridge, idle.
    host.ip(&[
        format!("link add wlp2s0 type veth peer name eth0 netns {}", router.tid()),
        format!("addr add {UPLINK}/24 dev wlp2s0 metric 600"),
        "link set wlp2s0 up".into(),
        format!("route add default via {ROUTER} dev wlp2s0 proto dhcp src {UPLINK} metric 600"),
        "route add 169.254.0.0/16 dev wlp2s0 scope link metric 1000".into(),
        "link add docker0 type bridge".into(),
        "addr add 172.17.0.1/16 dev docker0".into(),
        "link set docker0 up".into(),
        // A bridge that never had a port claims a carrier; one that lost its last port does
        // not, which is how Docker's idle docker0 shows up (`linkdown`).
        "link add docker0-tmp type veth peer name docker0-tmq".into(),
        "link set docker0-tmp master docker0".into(),
        "link del docker0-tmp".into(),
    ])?;
    router.ip(&[
        "link set lo up".into(),
        format!("addr add {ROUTER}/24 dev eth0"),
        "link set eth0 up".into(),
        format!("addr add {API}/32 dev lo"),
        format!("route add {BRIDGE_NET}/{BRIDGE_PREFIX} via {UPLINK} dev eth0"),
    ])?;
    router.sysctl("net.ipv4.ip_forward", "1")?;
    let servers =
        vec![apps::http(&router, 80, "swapi", apps::outside)?, apps::https(&router, 443, "swapi", apps::outside)?];
    let zone = PUBLIC_NAMES.iter().map(|(n, ip)| (n.to_string(), *ip)).collect();
    let policy = Policy { zone: Arc::new(RwLock::new(zone)), authoritative_suffix: None, upstream: None };
    let dns = dns::serve(&router, SocketAddr::from((ROUTER, 53)), policy)?;
    Ok(Outside { router, servers, dns })
}
