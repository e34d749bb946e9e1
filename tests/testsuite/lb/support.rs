//! Shared by the lb tests: a private network namespace where
//! `bpf_fib_lookup` finds a next hop, frame builders, a private bpf filesystem.

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{Ipv4Header, PacketBuilder, TcpHeader, UdpHeader};
use tutor::lb::{LoadBalancer, LoadOptions};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
#[allow(unused_imports)]
pub use tutor::lb::netns::{SCRATCH_DEV_MAC as DEV_MAC, SCRATCH_NEXT_HOP_MAC as NEXT_HOP_MAC};

/// See `tutor::lb::netns::in_scratch_netns`.
pub fn in_test_netns<T: Send>(f: impl FnOnce(u32) -> T + Send) -> T {
    tutor::lb::netns::in_scratch_netns(f).expect("scratch network namespace")
}

pub fn small_lb() -> LoadBalancer {
    LoadBalancer::load(&LoadOptions { maglev_size: 251, max_services: 4, ..Default::default() }).expect("load lb")
}

pub fn sa(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

pub fn tcp(src: SocketAddrV4, dst: SocketAddrV4, syn: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, DEV_MAC).ipv4(src.ip().octets(), dst.ip().octets(), 64);
    let b = b.tcp(src.port(), dst.port(), 1000, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

pub fn udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, DEV_MAC).ipv4(src.ip().octets(), dst.ip().octets(), 64);
    let mut v = Vec::new();
    b.udp(src.port(), dst.port()).write(&mut v, payload).unwrap();
    v
}

pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend([0xff; 6]);
    v.extend(CLIENT_MAC);
    v.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    v.extend(CLIENT_MAC);
    v.extend(sender.octets());
    v.extend([0; 6]);
    v.extend(target.octets());
    v
}

/// `frame` with its IPv4 destination (or source, `rewrite_src`) set to `to`, TTL decremented
/// when `forwarded`, the MACs replaced when given, and every checksum recomputed from scratch.
pub fn rewritten(
    frame: &[u8],
    to: SocketAddrV4,
    rewrite_src: bool,
    forwarded: bool,
    macs: Option<([u8; 6], [u8; 6])>,
) -> Vec<u8> {
    let (mut ip, rest) = Ipv4Header::from_slice(&frame[14..]).unwrap();
    if rewrite_src {
        ip.source = to.ip().octets();
    } else {
        ip.destination = to.ip().octets();
    }
    if forwarded {
        ip.time_to_live -= 1;
    }
    ip.header_checksum = ip.calc_header_checksum();
    let mut out = frame[..14].to_vec();
    if let Some((dst, src)) = macs {
        out[..6].copy_from_slice(&dst);
        out[6..12].copy_from_slice(&src);
    }
    out.extend(ip.to_bytes());
    match ip.protocol {
        etherparse::IpNumber::TCP => {
            let (mut t, payload) = TcpHeader::from_slice(rest).unwrap();
            if rewrite_src {
                t.source_port = to.port()
            } else {
                t.destination_port = to.port()
            }
            t.checksum = t.calc_checksum_ipv4(&ip, payload).unwrap();
            out.extend(t.to_bytes());
            out.extend(payload);
        }
        etherparse::IpNumber::UDP => {
            let (mut u, payload) = UdpHeader::from_slice(rest).unwrap();
            if rewrite_src {
                u.source_port = to.port()
            } else {
                u.destination_port = to.port()
            }
            if u.checksum != 0 {
                u.checksum = u.calc_checksum_ipv4(&ip, payload).unwrap();
            }
            out.extend(u.to_bytes());
            out.extend(payload);
        }
        other => panic!("unexpected protocol {other:?}"),
    }
    out
}

/// The destination of an IPv4 TCP/UDP frame.
pub fn destination(frame: &[u8]) -> SocketAddrV4 {
    let ip = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
    SocketAddrV4::new(ip, u16::from_be_bytes([frame[36], frame[37]]))
}

/// A private bpf filesystem for pins, unmounted at the end (the machine's /sys/fs/bpf is left
/// alone).
pub struct Bpffs(pub tempfile::TempDir);

impl Bpffs {
    pub fn mount() -> Bpffs {
        let dir = tempfile::tempdir().unwrap();
        nix::mount::mount(Some("bpf"), dir.path(), Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>).unwrap();
        Bpffs(dir)
    }
}

impl Bpffs {
    /// Options of node `node`'s instance: its own pins, and the maps shared by every node.
    pub fn node_options(&self, node: &str) -> LoadOptions {
        LoadOptions {
            maglev_size: 251,
            max_services: 4,
            pin_dir: Some(self.0.path().join(node)),
            shared_pin_dir: Some(self.0.path().join("shared")),
            ..Default::default()
        }
    }

    /// Detaches the nodes' instances and removes the shared pins.
    pub fn clean(&self, nodes: &[&str]) {
        for node in nodes {
            tutor::lb::detach_pinned(&self.0.path().join(node)).unwrap();
        }
        tutor::lb::remove_shared_pins(&self.0.path().join("shared")).unwrap();
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = nix::mount::umount(self.0.path());
    }
}
