//! Helpers of the lab's LoadBalancer tests: the article's LoadBalancer setup, the lab host's
//! own view (neighbours, its bridge) and a raw ARP probe sent from the lab host.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::lab_support::Lab;

pub const VIP: &str = "172.18.250.1";

/// The article's cluster with `values` (Helm values files), the http-sw-app, the
/// `deathstar-lb` Service, the IP pool and (when `policy`) the L2 announcement policy.
pub fn lb_lab(tag: &str, values: &str, policy: bool) -> Lab {
    let lab = Lab::up(tag, Some("kind-config.yaml"));
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
        serde_json::from_str(&std::fs::read_to_string(format!("/run/tutor/labs/{}/lab.json", lab.name)).unwrap()).unwrap();
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
    let proto = (libc::ETH_P_ARP as u16).to_be();
    let c = std::ffi::CString::new(dev).unwrap();
    // SAFETY: plain libc calls on values we own; the fd is wrapped at once.
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert!(ifindex > 0, "no {dev}");
    let sock = unsafe { OwnedFd::from_raw_fd(libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto as i32)) };
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
    assert_eq!(unsafe { libc::bind(sock.as_raw_fd(), (&sll as *const libc::sockaddr_ll).cast(), len) }, 0);
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[172, 18, 0, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    let sent = unsafe { libc::sendto(sock.as_raw_fd(), f.as_ptr().cast(), f.len(), 0, (&sll as *const libc::sockaddr_ll).cast(), len) };
    assert_eq!(sent, f.len() as isize);
    let tv = libc::timeval { tv_sec: 0, tv_usec: 50_000 };
    unsafe {
        libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), std::mem::size_of::<libc::timeval>() as u32)
    };
    let mut macs = Vec::new();
    let end = Instant::now() + wait;
    let mut buf = [0u8; 128];
    while Instant::now() < end {
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        // An ARP reply (op 2) whose sender address is `ip`.
        if n >= 42 && buf[12..14] == [0x08, 0x06] && buf[20..22] == [0, 2] && buf[28..32] == ip.octets() {
            macs.push(buf[22..28].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"));
        }
    }
    macs
}
