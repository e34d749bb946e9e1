//! The lab's shape: client and nodes on one bridge (kind's docker network). Node `l` announces
//! the VIP (ARP answered by XDP) and balances with XDP_TX back out of its eth0 to node `n`,
//! where the backend runs; the reply leaves through n's eth0 and is translated back to the VIP
//! by n's instance, which shares services and flows with l's (shared pins).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::Command;

use crate::lb::support::Bpffs;
use tutor::lb::topology::{BACKEND_PORT, Server, request};
use tutor::lb::{AttachMode, LoadBalancer, Service, netns::in_netns};

crate::tests![announced_vip_balanced_with_xdp_tx_and_answered_from_another_node(Bpf, Alone)];

const VIP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 100), 80);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn announced_vip_balanced_with_xdp_tx_and_answered_from_another_node() {
    let p = format!("lbtest-lab-{}", std::process::id());
    let name = |x: &str| format!("{p}-{x}");
    let path = |x: &str| PathBuf::from("/run/netns").join(name(x));
    let _guard = Namespaces(["sw", "c", "l", "n"].iter().map(|x| name(x)).collect());
    for x in ["sw", "c", "l", "n"] {
        ip(&["netns", "add", &name(x)]);
    }
    ip(&["-n", &name("sw"), "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", &name("sw"), "link", "set", "br0", "up"]);
    for (x, addr) in [("c", "10.0.0.10/24"), ("l", "10.0.0.2/24"), ("n", "10.0.0.3/24")] {
        let port = format!("p-{x}");
        ip(&["link", "add", "eth0", "netns", &name(x), "type", "veth", "peer", "name", &port, "netns", &name("sw")]);
        ip(&["-n", &name("sw"), "link", "set", &port, "master", "br0", "up"]);
        ip(&["-n", &name(x), "addr", "add", addr, "dev", "eth0"]);
        ip(&["-n", &name(x), "link", "set", "eth0", "up"]);
        ip(&["-n", &name(x), "link", "set", "lo", "up"]);
    }
    // XDP sees full checksums only if the client does not offload them.
    let out =
        Command::new("ip").args(["netns", "exec", &name("c"), "ethtool", "-K", "eth0", "tx", "off"]).output().unwrap();
    assert!(out.status.success());
    in_netns(&path("l"), tutor::lb::netns::enable_forwarding).unwrap().unwrap();
    let _server = Server::start(&path("n"), 7).unwrap();

    let fs = Bpffs::mount();
    let opts = |node: &str| fs.node_options(node);
    let mut l = LoadBalancer::load(&opts("l")).unwrap();
    let mut n = LoadBalancer::load(&opts("n")).unwrap();
    l.attach_in_netns(&path("l"), "eth0", AttachMode::Native).unwrap();
    n.attach_in_netns(&path("n"), "eth0", AttachMode::Native).unwrap();
    // XDP_TX on a veth delivers only when its peer runs XDP.
    l.attach_peer_pass_in_netns(&path("sw"), "p-l").unwrap();
    l.upsert_service(&Service {
        frontend: format!("{VIP}/tcp").parse().unwrap(),
        backends: vec![SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), BACKEND_PORT)],
        kind: Default::default(),
    })
    .unwrap();
    l.announce_vip(*VIP.ip()).unwrap();

    let answers = in_netns(&path("c"), || (0..30).map(|_| request(VIP)).collect::<Vec<_>>()).unwrap();
    for (k, a) in answers.iter().enumerate() {
        assert_eq!(a.as_ref().map_err(|e| e.to_string()), Ok(&7), "request {k}");
    }
    let (ls, ns) = (l.stats().unwrap(), n.stats().unwrap());
    assert!(ls.counter("arp_reply") >= 1, "{:?}", ls.global);
    assert!(ls.counter("tx") > ls.counter("arp_reply"), "requests left by XDP_TX: {:?}", ls.global);
    assert_eq!(ls.counter("new_flow"), 30);
    assert!(ns.counter("rev_nat") > 0, "replies translated on the other node: {:?}", ns.global);
    assert_eq!(ls.counter("rev_nat"), 0, "no reply left through the balancing node");
    drop((l, n));
    fs.clean(&["l", "n"]);
}
