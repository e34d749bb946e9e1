//! Helpers of the lab's LoadBalancer tests: the article's LoadBalancer setup, the lab host's
//! own view (neighbours, its bridge) and a raw ARP probe sent from the lab host.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::lab::support::Lab;
use tutor::backend::lab::arp;

pub const VIP: &str = "172.18.250.1";

/// The article's cluster with `values` (Helm values files), the http-sw-app, the
/// `deathstar-lb` Service, the IP pool and (when `policy`) the L2 announcement policy.
pub fn lb_lab(tag: &str, values: &str, policy: bool) -> Lab {
    let lab = Lab::up_emulated(tag, Some("kind-config.yaml"));
    let policy = if policy { " -f cilium-l2-policy.yaml" } else { "" };
    lab.sh(
        "host",
        &format!("helm install -n kube-system cilium cilium/cilium {values} && kubectl apply -f http-sw-app.yaml -f deathstar-svc.yaml -f cilium-lbsvc-pool.yaml{policy}"),
    )
    .ok();
    lab
}

/// `X-Served-By` of `n` POSTs to `url` from the lab host, one line per answer (failures: none).
pub fn served_by(lab: &Lab, url: &str, n: usize) -> Vec<String> {
    let out = lab
        .sh("host", &format!("for i in $(seq {n}); do curl -si --connect-timeout 2 -m 4 -XPOST {url} | tr -d '\\r' | grep -i '^x-served-by:' ; done; true"))
        .ok();
    out.lines().map(|l| l.split_once(':').unwrap().1.trim().to_string()).collect()
}

/// The MAC of node `node`'s eth0.
pub fn node_mac(lab: &Lab, node: &str) -> String {
    lab.sh(node, "cat /sys/class/net/eth0/address").ok().trim().to_string()
}

/// The lab host's bridge of the kind network (`br-…`; the host also has docker0).
pub fn bridge(lab: &Lab) -> String {
    lab.sh("host", "ip -br link show type bridge | cut -d' ' -f1 | grep '^br-'").ok().trim().to_string()
}

fn host_netns(lab: &Lab) -> PathBuf {
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("/run/tutor/labs/{}/lab.json", lab.name)).unwrap())
            .unwrap();
    PathBuf::from(format!("/proc/{}/task/{}/ns/net", info["pid"], info["host_tid"]))
}

fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s.split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
    v.try_into().unwrap()
}

/// Broadcast one ARP request for `ip` from the lab host's bridge and collect, for `wait`, the
/// MACs of every reply: who answers ARP for the address.
pub fn arp_answers(lab: &Lab, ip: Ipv4Addr, wait: Duration) -> Vec<String> {
    let br = bridge(lab);
    let br_mac = parse_mac(lab.sh("host", &format!("cat /sys/class/net/{br}/address")).ok().trim());
    tutor::lb::netns::in_netns(&host_netns(lab), move || probe(&br, br_mac, ip, wait)).unwrap()
}

fn probe(dev: &str, mac: [u8; 6], ip: Ipv4Addr, wait: Duration) -> Vec<String> {
    let sock = arp::ArpSocket::open(dev).unwrap_or_else(|e| panic!("ARP socket on {dev}: {e}"));
    sock.send(&arp::request(mac, Ipv4Addr::new(172, 18, 0, 1), ip)).unwrap();
    let mut macs = Vec::new();
    let end = Instant::now() + wait;
    let mut buf = [0u8; 128];
    while Instant::now() < end {
        let n = sock.recv(&mut buf, Duration::from_millis(50)).unwrap();
        if let Some(m) = arp::reply_from(&buf[..n], ip) {
            macs.push(m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"));
        }
    }
    macs
}
