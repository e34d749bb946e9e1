//! `tutor lb bench --traffic`: packets per second through the bundled XDP load balancer, in
//! native and in generic (SKB) mode, against nftables DNAT with conntrack (kube-proxy's
//! path), on one lab-shaped node built in network namespaces, the three taking turns in one
//! run (see docs/architecture.md, "Packet-rate benchmark").
//!
//! ```text
//!  <p>-gen: gen0 172.18.0.1 ══ eth0 172.18.0.3 :<p>-node ── lxc1 ══ eth0 <backend 1> :<p>-pod1
//!          (tg_gen, live frames)   (XDP LB or nftables)     lxc2 ══ eth0 <backend 2> :<p>-pod2 …
//!                                                                     (tg_count)
//! ```
//!
//! - The generator is `tg_gen` (ebpf/traffic.bpf.c) run by BPF_PROG_TEST_RUN with
//!   BPF_F_TEST_XDP_LIVE_FRAMES and `ctx.ingress_ifindex = gen0`: each frame it returns XDP_TX
//!   for is sent out of gen0 (the kernel turns XDP_TX into a redirect to the ingress device),
//!   so the node's eth0 receives it like a frame from a NIC. UDP datagrams (or TCP SYNs) to the
//!   VIP from `flows` distinct (address, port) sources, every packet with its own sequence
//!   number.
//! - The backends count what reaches them with `tg_count` on their eth0 (native XDP), by
//!   destination address and port, then drop it: a backend is a sink, the same for every path.
//! - Everything runs on the generator's CPU: the test run sends a batch with bottom halves off,
//!   and the receive work of the node and of the pods (veth NAPI) runs in the softirq that
//!   follows, on the same CPU. The kernel times the run (pauses for rescheduling are left out):
//!   that time per packet is the CPU time of generator + path + counter. A fourth turn, the
//!   node's eth0 dropping every frame in XDP, measures what the generator and one veth hop
//!   cost; a path's own cost is the difference.
//! - Nothing leaves these namespaces; they are deleted when the run ends.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};

use super::balancer::{AttachMode, LoadBalancer, LoadOptions};
use super::error::{LbError, Result, map_err, prog_err};
#[cfg(test)]
use super::netns::stale_owner;
use super::netns::{BENCH_PREFIX as PREFIX, in_netns, run_command, sweep_stale};
use super::service::{Frontend, Proto, Service, ServiceKind};

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/traffic.bpf.o"));

/// `TG_HEADER_COPY` of ebpf/traffic.h.
pub const HEADER_COPY: usize = 56;
/// `TG_PORT_BITS`: flow f's source is (saddr + f >> 14, sport + f & 0x3fff).
pub const PORT_BITS: u32 = 14;
/// `TG_MAX_SLOTS`: slot 0 and up to 63 watched addresses.
pub const MAX_SLOTS: u32 = 64;
/// Length of every generated frame (the minimum Ethernet frame without its FCS).
pub const FRAME_LEN: usize = 60;
// MACs, TTL, addresses, ports, checksums and the sequence number (UDP: bytes 42..46, TCP's
// checksum: 50..52) all lie in the copied header, in whole words, inside every frame.
const _: () = assert!(HEADER_COPY >= 14 + 20 + 18 && HEADER_COPY.is_multiple_of(8) && FRAME_LEN >= HEADER_COPY);

/// Frames per live-frames batch (the kernel's default, NAPI's weight).
pub const BATCH: u32 = 64;

/// `struct tg_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GenConfig {
    pub header: [u8; HEADER_COPY],
    pub flows: u32,
    pub saddr: u32,
    pub sport: u16,
    pub proto: u8,
    pub pad: u8,
    pub pad2: u32,
}

/// `struct tg_state`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GenState {
    pub next: u64,
}

/// `struct tg_slot` (value of the `slots` map).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SlotValue {
    pub slot: u32,
    pub port: u16,
    pub pad: u16,
}

/// `struct tg_counts`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub packets: u64,
    pub bytes: u64,
    pub duplicates: u64,
}

// SAFETY: plain #[repr(C)] data without padding, mirrored from ebpf/traffic.h.
unsafe impl aya::Pod for GenConfig {}
unsafe impl aya::Pod for GenState {}
unsafe impl aya::Pod for SlotValue {}
unsafe impl aya::Pod for Counts {}

/// What the generator sends: flow 0's source and the destination, both as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub proto: Proto,
}

impl FrameSpec {
    /// Source of flow `f` (f < 2^32).
    pub fn flow_source(&self, f: u32) -> SocketAddrV4 {
        let addr = u32::from(*self.src.ip()).wrapping_add(f >> PORT_BITS);
        let port = self.src.port().wrapping_add((f & ((1 << PORT_BITS) - 1)) as u16);
        SocketAddrV4::new(Ipv4Addr::from(addr), port)
    }

    /// The frame of packet `n` with `flows` flows: the bytes `tg_gen` writes (FRAME_LEN long,
    /// valid IPv4 and L4 checksums, sequence number n).
    pub fn frame(&self, flows: u32, n: u64) -> Vec<u8> {
        let src = self.flow_source((n % u64::from(flows.max(1))) as u32);
        build_frame(self, src, n as u32)
    }
}

/// Ethernet + IPv4 (DF, TTL 64) + UDP with an 18-byte payload starting with `seq`, or TCP SYN
/// with sequence number `seq` and an MSS option, padded to FRAME_LEN.
fn build_frame(spec: &FrameSpec, src: SocketAddrV4, seq: u32) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(26);
    l4.extend_from_slice(&src.port().to_be_bytes());
    l4.extend_from_slice(&spec.dst.port().to_be_bytes());
    match spec.proto {
        Proto::Udp => {
            l4.extend_from_slice(&26u16.to_be_bytes()); // 8 + 18
            l4.extend_from_slice(&[0, 0]);
            l4.extend_from_slice(&seq.to_be_bytes());
            l4.extend_from_slice(&[0u8; 14]);
        }
        Proto::Tcp => {
            l4.extend_from_slice(&seq.to_be_bytes());
            l4.extend_from_slice(&0u32.to_be_bytes()); // ack
            l4.extend_from_slice(&[6 << 4, 0x02]); // 24-byte header, SYN
            l4.extend_from_slice(&64240u16.to_be_bytes());
            l4.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
            l4.extend_from_slice(&[2, 4]); // MSS
            l4.extend_from_slice(&1460u16.to_be_bytes());
        }
    }
    let proto = spec.proto.number();
    let check = l4_checksum(*src.ip(), *spec.dst.ip(), proto, &l4);
    let at = if spec.proto == Proto::Udp { 6 } else { 16 };
    // A UDP checksum of 0 means "none": 0xffff stands for it (RFC 768).
    let check = if spec.proto == Proto::Udp && check == 0 { 0xffff } else { check };
    l4[at..at + 2].copy_from_slice(&check.to_be_bytes());

    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&spec.dst.ip().octets());
    let ip_check = !fold(sum_words(&ip));
    ip[10..12].copy_from_slice(&ip_check.to_be_bytes());

    let mut frame = Vec::with_capacity(FRAME_LEN);
    frame.extend_from_slice(&spec.dst_mac);
    frame.extend_from_slice(&spec.src_mac);
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&l4);
    frame.resize(FRAME_LEN, 0);
    frame
}

fn sum_words(bytes: &[u8]) -> u32 {
    bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> u16 {
    let pseudo = sum_words(&src.octets()) + sum_words(&dst.octets()) + u32::from(proto) + l4.len() as u32;
    !fold(pseudo + sum_words(l4))
}

/// The generator and counter programs with their maps.
pub struct Traffic {
    ebpf: Ebpf,
    gen_cfg: Array<MapData, GenConfig>,
    gen_state: Array<MapData, GenState>,
    slots: BpfHashMap<MapData, u32, SlotValue>,
    counts: PerCpuArray<MapData, Counts>,
    seen: PerCpuArray<MapData, u64>,
    fwd_cfg: Array<MapData, u32>,
    seen_words: u32,
    /// The frame handed to the kernel (its pages are initialised from it).
    frame: Vec<u8>,
    counters: Vec<(PathBuf, String, XdpLinkId)>,
    forwarder: Option<XdpLinkId>,
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    ebpf.program_mut(name)
        .ok_or_else(|| LbError::Invalid(format!("object has no program {name}")))?
        .try_into()
        .map_err(prog_err(name))
}

fn program_ref<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a Xdp> {
    ebpf.program(name)
        .ok_or_else(|| LbError::Invalid(format!("object has no program {name}")))?
        .try_into()
        .map_err(prog_err(name))
}

fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(ebpf: &mut Ebpf, name: &str) -> Result<T> {
    let map = ebpf.take_map(name).ok_or_else(|| LbError::Invalid(format!("object has no map {name}")))?;
    T::try_from(map).map_err(map_err(format!("map {name}")))
}

/// `struct xdp_md` as BPF_PROG_TEST_RUN takes it: data 0, data_end = length, the ingress device.
fn xdp_md(len: u32, ingress_ifindex: u32) -> Vec<u8> {
    [0u32, len, 0, ingress_ifindex, 0, 0].iter().flat_map(|w| w.to_ne_bytes()).collect()
}

impl Traffic {
    /// Loads both programs. `seen_packets` > 0 makes the counter remember that many sequence
    /// numbers (rounded up to a power of two) to catch a packet delivered twice.
    pub fn load(seen_packets: u64) -> Result<Traffic> {
        let seen_words = if seen_packets == 0 {
            0
        } else {
            let words = seen_packets.div_ceil(64).next_power_of_two();
            u32::try_from(words).ok().filter(|&w| w <= 1 << 20).ok_or_else(|| {
                LbError::Invalid(format!("cannot remember {seen_packets} sequence numbers (at most 2^26)"))
            })?
        };
        let mut loader = EbpfLoader::new();
        loader.override_global("tg_seen_words", &seen_words, true).map_max_entries("seen", seen_words.max(1));
        let mut ebpf = loader.load(OBJECT)?;
        for name in ["tg_gen", "tg_count", "tg_fwd"] {
            program(&mut ebpf, name)?.load().map_err(prog_err(format!("verifying {name}")))?;
        }
        Ok(Traffic {
            gen_cfg: take(&mut ebpf, "gen_cfg")?,
            gen_state: take(&mut ebpf, "gen_state")?,
            slots: take(&mut ebpf, "slots")?,
            counts: take(&mut ebpf, "counts")?,
            seen: take(&mut ebpf, "seen")?,
            fwd_cfg: take(&mut ebpf, "fwd_cfg")?,
            ebpf,
            seen_words,
            frame: Vec::new(),
            counters: Vec::new(),
            forwarder: None,
        })
    }

    /// What the generator sends from now on; its packet counter restarts at 0.
    pub fn configure(&mut self, spec: &FrameSpec, flows: u32) -> Result<()> {
        if flows == 0 {
            return Err(LbError::Invalid("at least one flow is needed".into()));
        }
        self.frame = spec.frame(flows, 0);
        let mut header = [0u8; HEADER_COPY];
        header.copy_from_slice(&self.frame[..HEADER_COPY]);
        let cfg = GenConfig {
            header,
            flows,
            saddr: u32::from(*spec.src.ip()),
            sport: spec.src.port(),
            proto: spec.proto.number(),
            pad: 0,
            pad2: 0,
        };
        self.gen_cfg.set(0, cfg, 0).map_err(map_err("writing gen_cfg"))?;
        self.gen_state.set(0, GenState::default(), 0).map_err(map_err("writing gen_state"))
    }

    /// Packets the generator has written since `configure`.
    pub fn sent(&self) -> Result<u64> {
        Ok(self.gen_state.get(&0, 0).map_err(map_err("reading gen_state"))?.next)
    }

    /// Counts packets to `addr` in `slot` (1..MAX_SLOTS); packets to its address on another
    /// port count in slot 0.
    pub fn watch(&mut self, slot: u32, addr: SocketAddrV4) -> Result<()> {
        if slot == 0 || slot >= MAX_SLOTS {
            return Err(LbError::Invalid(format!("counter slot {slot} out of 1..{MAX_SLOTS}")));
        }
        let value = SlotValue { slot, port: addr.port().to_be(), pad: 0 };
        self.slots.insert(u32::from(*addr.ip()).to_be(), value, 0).map_err(map_err("writing slots"))
    }

    /// Every slot's counts, summed over the CPUs.
    pub fn counts(&self) -> Result<Vec<Counts>> {
        (0..MAX_SLOTS)
            .map(|slot| {
                let per_cpu = self.counts.get(&slot, 0).map_err(map_err("reading counts"))?;
                Ok(per_cpu.iter().fold(Counts::default(), |a, c| Counts {
                    packets: a.packets + c.packets,
                    bytes: a.bytes + c.bytes,
                    duplicates: a.duplicates + c.duplicates,
                }))
            })
            .collect()
    }

    /// Sequence numbers recorded by more than one CPU (each CPU catches its own duplicates).
    pub fn cross_cpu_duplicates(&self) -> Result<u64> {
        let mut dups = 0u64;
        for w in 0..self.seen_words {
            let words = self.seen.get(&w, 0).map_err(map_err("reading seen"))?;
            let mut union = 0u64;
            for &word in words.iter() {
                dups += u64::from((union & word).count_ones());
                union |= word;
            }
        }
        Ok(dups)
    }

    /// Attaches the counter in native mode to `iface` of the namespace at `netns`.
    pub fn attach_counter(&mut self, netns: &Path, iface: &str) -> Result<()> {
        let prog = program(&mut self.ebpf, "tg_count")?;
        let id = in_netns(netns, || prog.attach(iface, XdpMode::Driver))?
            .map_err(prog_err(format!("attaching tg_count to {iface} in {}", netns.display())))?;
        self.counters.push((netns.to_path_buf(), iface.to_string(), id));
        Ok(())
    }

    /// Detaches the counter from `iface` of `netns`.
    pub fn detach_counter(&mut self, netns: &Path, iface: &str) -> Result<()> {
        let Some(at) = self.counters.iter().position(|(n, i, _)| n == netns && i == iface) else {
            return Err(LbError::Invalid(format!("no counter on {iface} in {}", netns.display())));
        };
        let (_, _, id) = self.counters.remove(at);
        program(&mut self.ebpf, "tg_count")?.detach(id).map_err(prog_err(format!("detaching tg_count from {iface}")))
    }

    /// Attaches `tg_fwd` (native mode) to `iface` of `netns`, redirecting every frame to
    /// `to` of the same namespace untouched.
    pub fn attach_forwarder(&mut self, netns: &Path, iface: &str, to: &str) -> Result<()> {
        let target = in_netns(netns, || super::iface::ifindex(to))??;
        self.fwd_cfg.set(0, target, 0).map_err(map_err("writing fwd_cfg"))?;
        let prog = program(&mut self.ebpf, "tg_fwd")?;
        let id = in_netns(netns, || prog.attach(iface, XdpMode::Driver))?
            .map_err(prog_err(format!("attaching tg_fwd to {iface} in {}", netns.display())))?;
        self.forwarder = Some(id);
        Ok(())
    }

    pub fn detach_forwarder(&mut self) -> Result<()> {
        match self.forwarder.take() {
            Some(id) => program(&mut self.ebpf, "tg_fwd")?.detach(id).map_err(prog_err("detaching tg_fwd")),
            None => Ok(()),
        }
    }

    /// Sends `packets` frames out of `ifindex` (of the calling thread's namespace) with live
    /// frames. Returns the kernel's time per frame.
    pub fn generate(&self, ifindex: u32, packets: u32) -> Result<Duration> {
        let prog = program_ref(&self.ebpf, "tg_gen")?;
        let ctx = xdp_md(self.frame.len() as u32, ifindex);
        let opts = TestRunOptions {
            data_in: Some(&self.frame),
            ctx_in: Some(&ctx),
            repeat: packets,
            attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
            ..Default::default()
        };
        let r = prog.test_run(opts).map_err(prog_err("BPF_PROG_TEST_RUN of tg_gen with live frames"))?;
        Ok(r.duration)
    }

    /// One run of `tg_gen` on `page` (what a recycled page may hold), not sent: (action,
    /// frame written).
    pub fn generate_on(&self, page: &[u8]) -> Result<(u32, Vec<u8>)> {
        self.run_once("tg_gen", page)
    }

    /// One run of `tg_count` on `frame`: its action.
    pub fn count_one(&self, frame: &[u8]) -> Result<u32> {
        Ok(self.run_once("tg_count", frame)?.0)
    }

    fn run_once(&self, name: &str, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let prog = program_ref(&self.ebpf, name)?;
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions { data_in: Some(frame), data_out: Some(&mut out), repeat: 1, ..Default::default() };
        let r = prog.test_run(opts).map_err(prog_err(format!("BPF_PROG_TEST_RUN of {name}")))?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }
}

/// MACs of the lab: the host's bridge side is 02:42:ac:12:00:01, node N's eth0 02:42:ac:12:00:0N.
pub const GEN_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x12, 0, 0x01];
pub const NODE_MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x12, 0, 0x03];
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 3);
/// Flow 0's source; later flows count up from it (ports first).
pub const CLIENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(172, 18, 200, 1), 1024);

fn mac_text(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn pod_mac(i: usize) -> [u8; 6] {
    [0x02, 0x0a, 0xf4, 0, (i >> 8) as u8, i as u8]
}

/// The generator's namespace, one node and a pod per backend; deleted on drop.
pub struct Node {
    prefix: String,
    pods: usize,
    /// gen0's index in the generator namespace.
    pub gen_ifindex: u32,
}

impl Node {
    /// Builds `<prefix>-gen`, `<prefix>-node` and `<prefix>-pod<i>` for each backend address.
    pub fn create(prefix: &str, backends: &[Ipv4Addr]) -> Result<Node> {
        let mut node = Node { prefix: prefix.to_string(), pods: 0, gen_ifindex: 0 };
        node.build(backends)?;
        Ok(node)
    }

    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    pub fn ns_path(&self, name: &str) -> PathBuf {
        PathBuf::from("/run/netns").join(self.ns(name))
    }

    fn exec(&self, ns: &str, args: &[&str]) -> Result<()> {
        let ns = self.ns(ns);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        run_command(&full)
    }

    fn build(&mut self, backends: &[Ipv4Addr]) -> Result<()> {
        let (gen_ns, node) = (self.ns("gen"), self.ns("node"));
        run_command(&["ip", "netns", "add", &gen_ns])?;
        self.pods = 0; // from here on, drop removes what exists
        run_command(&["ip", "netns", "add", &node])?;
        let (gen_mac, node_mac) = (mac_text(GEN_MAC), mac_text(NODE_MAC));
        run_command(&[
            "ip", "link", "add", "gen0", "netns", &gen_ns, "address", &gen_mac, "type", "veth", "peer", "name", "eth0",
            "netns", &node, "address", &node_mac,
        ])?;
        self.exec("gen", &["ip", "link", "set", "lo", "up"])?;
        self.exec("gen", &["ip", "addr", "add", "172.18.0.1/16", "dev", "gen0"])?;
        self.exec("gen", &["ip", "link", "set", "gen0", "up"])?;
        self.exec("node", &["ip", "link", "set", "lo", "up"])?;
        self.exec("node", &["ip", "addr", "add", &format!("{NODE_IP}/16"), "dev", "eth0"])?;
        self.exec("node", &["ip", "link", "set", "eth0", "up"])?;
        // Frames sent to a veth with ndo_xdp_xmit arrive only if the receiving end runs NAPI:
        // an XDP program or GRO on (see docs/architecture.md).
        self.exec("node", &["ethtool", "-K", "eth0", "gro", "on"])?;
        self.exec("node", &["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0"])?;
        self.exec("node", &["sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=0"])?;
        for (k, addr) in backends.iter().enumerate() {
            let i = k + 1;
            let pod = self.ns(&format!("pod{i}"));
            run_command(&["ip", "netns", "add", &pod])?;
            self.pods = i;
            let (lxc, mac) = (format!("lxc{i}"), mac_text(pod_mac(i)));
            run_command(&[
                "ip", "link", "add", &lxc, "netns", &node, "type", "veth", "peer", "name", "eth0", "netns", &pod,
                "address", &mac,
            ])?;
            let podn = format!("pod{i}");
            self.exec(&podn, &["ip", "link", "set", "lo", "up"])?;
            self.exec(&podn, &["ip", "addr", "add", &format!("{addr}/32"), "dev", "eth0"])?;
            self.exec(&podn, &["ip", "link", "set", "eth0", "up"])?;
            self.exec("node", &["ip", "link", "set", &lxc, "up"])?;
            self.exec("node", &["ip", "route", "add", &format!("{addr}/32"), "dev", &lxc])?;
            // The counter drops what it counts and passes ARP, but no ARP should race the run.
            self.exec(
                "node",
                &["ip", "neigh", "add", &addr.to_string(), "lladdr", &mac, "dev", &lxc, "nud", "permanent"],
            )?;
        }
        self.gen_ifindex = in_netns(&self.ns_path("gen"), || super::iface::ifindex("gen0"))??;
        Ok(())
    }

    /// kube-proxy's nftables layout: a verdict map of service addresses, a chain per service
    /// picking an endpoint chain at random, a DNAT per endpoint; conntrack remembers the choice.
    pub fn nft_dnat(&self, vip: SocketAddrV4, proto: Proto, backends: &[SocketAddrV4]) -> Result<()> {
        let l4 = if proto == Proto::Udp { "udp" } else { "tcp" };
        let pick: Vec<String> = (0..backends.len()).map(|k| format!("{k} : goto ep{k}")).collect();
        let mut rules = format!(
            "table ip tutor_pps {{\n  map service_ips {{\n    type ipv4_addr . inet_proto . inet_service : verdict\n    \
             elements = {{ {} . {l4} . {} : goto svc }}\n  }}\n  chain prerouting {{\n    type nat hook prerouting \
             priority dstnat; policy accept;\n    ip daddr . meta l4proto . th dport vmap @service_ips\n  }}\n  \
             chain svc {{\n    numgen random mod {} vmap {{ {} }}\n  }}\n",
            vip.ip(),
            vip.port(),
            backends.len(),
            pick.join(", ")
        );
        for (k, b) in backends.iter().enumerate() {
            rules.push_str(&format!("  chain ep{k} {{\n    meta l4proto {l4} dnat to {b}\n  }}\n"));
        }
        rules.push_str("}\n");
        let path = std::env::temp_dir().join(format!("{}.nft", self.prefix));
        std::fs::write(&path, rules).map_err(|cause| LbError::Io { what: "writing nft rules".into(), cause })?;
        let r = self.exec("node", &["nft", "-f", &path.to_string_lossy()]);
        let _ = std::fs::remove_file(&path);
        r
    }

    pub fn nft_flush(&self) -> Result<()> {
        self.exec("node", &["nft", "delete", "table", "ip", "tutor_pps"])
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let mut names = vec![self.ns("gen"), self.ns("node")];
        names.extend((1..=self.pods).map(|i| self.ns(&format!("pod{i}"))));
        for n in names {
            let _ = run_command(&["ip", "netns", "del", &n]);
        }
    }
}

/// How packets cross the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathKind {
    /// The node's eth0 drops every frame in XDP: the generator and one veth hop.
    GeneratorOnly,
    /// The node's eth0 redirects every frame to the first pod untouched: a second veth hop,
    /// no load balancing.
    ForwardOnly,
    XdpNative,
    XdpGeneric,
    Nftables,
}

impl PathKind {
    pub const MEASURED: [PathKind; 5] =
        [PathKind::GeneratorOnly, PathKind::ForwardOnly, PathKind::XdpNative, PathKind::XdpGeneric, PathKind::Nftables];

    /// Whether the path balances over the backends (the other two are yardsticks).
    pub fn balances(self) -> bool {
        !matches!(self, PathKind::GeneratorOnly | PathKind::ForwardOnly)
    }

    pub fn label(self) -> &'static str {
        match self {
            PathKind::GeneratorOnly => "generator only (eth0 drops in XDP)",
            PathKind::ForwardOnly => "XDP redirect to a pod, no LB",
            PathKind::XdpNative => "XDP LB, native",
            PathKind::XdpGeneric => "XDP LB, generic (SKB)",
            PathKind::Nftables => "nftables DNAT + conntrack",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrafficOptions {
    /// The service: its address and port, and where it goes.
    pub vip: SocketAddrV4,
    pub backends: Vec<SocketAddrV4>,
    pub proto: Proto,
    /// Packets per path and round.
    pub packets: u32,
    pub rounds: usize,
    /// Distinct sources cycled through.
    pub flows: u32,
    /// Remember every sequence number to catch a packet delivered twice (costs a bitmap
    /// update per packet at the backends: for tests).
    pub dedupe: bool,
}

impl Default for TrafficOptions {
    fn default() -> Self {
        TrafficOptions {
            vip: SocketAddrV4::new(Ipv4Addr::new(192, 168, 250, 1), 80),
            backends: vec![
                SocketAddrV4::new(Ipv4Addr::new(10, 244, 1, 11), 80),
                SocketAddrV4::new(Ipv4Addr::new(10, 244, 2, 12), 80),
            ],
            proto: Proto::Udp,
            packets: 1_000_000,
            rounds: 3,
            flows: 16384,
            dedupe: false,
        }
    }
}

/// One path's turn.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    pub sent: u64,
    /// Per backend, in the order of the options (the generator-only turn counts at eth0: one entry).
    pub delivered: Vec<u64>,
    /// Packets at a backend address on the wrong port.
    pub stray: u64,
    pub duplicates: u64,
    /// Kernel-timed CPU time per packet sent (generator + path + counter).
    pub ns_per_packet: f64,
    pub wall: Duration,
}

impl Turn {
    pub fn delivered_total(&self) -> u64 {
        self.delivered.iter().sum()
    }
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.delivered_total() + self.stray)
    }
    /// Packets delivered per second of the CPU time the run took.
    pub fn mpps(&self) -> f64 {
        self.delivered_total() as f64 / (self.ns_per_packet * self.sent as f64).max(1e-9) * 1e3
    }
    pub fn wall_mpps(&self) -> f64 {
        self.delivered_total() as f64 / self.wall.as_secs_f64().max(1e-9) / 1e6
    }
}

#[derive(Debug, Clone)]
pub struct PathReport {
    pub path: PathKind,
    pub turns: Vec<Turn>,
    /// Each backend's expected share: Maglev's slots for the XDP LB, 1/N for nftables.
    pub expected_shares: Vec<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

impl PathReport {
    pub fn mpps(&self) -> f64 {
        median(self.turns.iter().map(Turn::mpps).collect())
    }
    pub fn wall_mpps(&self) -> f64 {
        median(self.turns.iter().map(Turn::wall_mpps).collect())
    }
    pub fn ns_per_packet(&self) -> f64 {
        median(self.turns.iter().map(|t| t.ns_per_packet).collect())
    }
    pub fn sent(&self) -> u64 {
        self.turns.iter().map(|t| t.sent).sum()
    }
    pub fn delivered(&self) -> Vec<u64> {
        let n = self.turns.first().map_or(0, |t| t.delivered.len());
        (0..n).map(|i| self.turns.iter().map(|t| t.delivered[i]).sum()).collect()
    }
    pub fn lost(&self) -> u64 {
        self.turns.iter().map(Turn::lost).sum()
    }
    pub fn stray(&self) -> u64 {
        self.turns.iter().map(|t| t.stray).sum()
    }
    pub fn duplicates(&self) -> u64 {
        self.turns.iter().map(|t| t.duplicates).sum()
    }
    /// Each backend's share of what was delivered.
    pub fn shares(&self) -> Vec<f64> {
        let d = self.delivered();
        let total: u64 = d.iter().sum();
        d.iter().map(|&n| n as f64 / total.max(1) as f64).collect()
    }
}

#[derive(Debug, Clone)]
pub struct TrafficReport {
    pub options: TrafficOptions,
    pub paths: Vec<PathReport>,
    /// Sequence numbers seen by two CPUs (only with `dedupe`).
    pub cross_cpu_duplicates: u64,
    pub cpus: usize,
}

impl TrafficReport {
    pub fn path(&self, p: PathKind) -> &PathReport {
        self.paths.iter().find(|r| r.path == p).expect("every path is measured")
    }

    pub fn ratio_native_nft(&self) -> f64 {
        self.path(PathKind::XdpNative).mpps() / self.path(PathKind::Nftables).mpps().max(1e-9)
    }

    /// A path's own CPU time per packet: its time less the generator-only turn's.
    pub fn node_ns(&self, p: PathKind) -> f64 {
        self.path(p).ns_per_packet() - self.path(PathKind::GeneratorOnly).ns_per_packet()
    }
}

impl fmt::Display for TrafficReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "xdp_native_mpps={:.2} xdp_generic_mpps={:.2} nftables_mpps={:.2} ratio_native_nft={:.2}",
            self.path(PathKind::XdpNative).mpps(),
            self.path(PathKind::XdpGeneric).mpps(),
            self.path(PathKind::Nftables).mpps(),
            self.ratio_native_nft()
        )?;
        writeln!(
            f,
            "{} {} packets to {} from {} flows, {} per path in each of {} rounds, 1 CPU:",
            FRAME_LEN + 4,
            match o.proto {
                Proto::Udp => "byte UDP",
                Proto::Tcp => "byte TCP SYN",
            },
            o.vip,
            o.flows,
            o.packets,
            o.rounds
        )?;
        writeln!(
            f,
            "{:<36}{:>8}{:>10}{:>11}{:>11}{:>13}{:>13}{:>8}{:>6}",
            "path", "Mpps", "wall Mpps", "ns/packet", "path ns", "sent", "delivered", "lost", "dup"
        )?;
        for p in &self.paths {
            let own = if p.path == PathKind::GeneratorOnly {
                "-".to_string()
            } else {
                format!("{:.0}", self.node_ns(p.path))
            };
            writeln!(
                f,
                "{:<36}{:>8.2}{:>10.2}{:>11.0}{:>11}{:>13}{:>13}{:>8}{:>6}",
                p.path.label(),
                p.mpps(),
                p.wall_mpps(),
                p.ns_per_packet(),
                own,
                p.sent(),
                p.delivered().iter().sum::<u64>(),
                p.lost() + p.stray(),
                p.duplicates()
            )?;
        }
        for p in self.paths.iter().filter(|p| p.path.balances()) {
            let shares: Vec<String> = o
                .backends
                .iter()
                .zip(p.shares())
                .zip(&p.expected_shares)
                .map(|((b, got), want)| format!("{b} {:.1}% (expected {:.1}%)", got * 100.0, want * 100.0))
                .collect();
            writeln!(f, "  {}: {}", p.path.label(), shares.join(", "))?;
        }
        writeln!(
            f,
            "path cost ratio (nftables / XDP native, generator subtracted): {:.2}",
            self.node_ns(PathKind::Nftables) / self.node_ns(PathKind::XdpNative).max(1e-9)
        )?;
        let ns = |p: PathKind| self.path(p).ns_per_packet();
        writeln!(
            f,
            "where the time goes: generator + its veth hop + counter {:.0} ns per packet; a second veth hop to a pod \
             (XDP redirect, no LB) {:.0} ns; the XDP LB's own work (lookup, rewrite, FIB cache) {:.0} ns",
            ns(PathKind::GeneratorOnly),
            ns(PathKind::ForwardOnly) - ns(PathKind::GeneratorOnly),
            ns(PathKind::XdpNative) - ns(PathKind::ForwardOnly)
        )?;
        writeln!(
            f,
            "method: the generator (XDP live frames, one CPU) and every receive step run on the same CPU; \
             Mpps = packets delivered at the backends per second of CPU time the kernel timed for the run; \
             ns/packet = that time per packet sent; path ns = ns/packet less the generator-only turn's; \
             medians over the rounds; lost = sent - delivered ({} CPUs on this machine)",
            self.cpus
        )
    }
}

/// Runs the comparison in namespaces of its own (prefix `lbpps-<pid>`).
pub fn run(opts: &TrafficOptions) -> Result<TrafficReport> {
    validate(opts)?;
    sweep_stale();
    let prefix = format!("{PREFIX}{}", std::process::id());
    let addrs: Vec<Ipv4Addr> = opts.backends.iter().map(|b| *b.ip()).collect();
    let node = Node::create(&prefix, &addrs)?;
    let seen = if opts.dedupe {
        (u64::from(opts.packets) + u64::from(opts.flows)) * opts.rounds as u64 * PathKind::MEASURED.len() as u64
    } else {
        0
    };
    let mut traffic = Traffic::load(seen)?;
    let spec = FrameSpec { src_mac: GEN_MAC, dst_mac: NODE_MAC, src: CLIENT, dst: opts.vip, proto: opts.proto };
    traffic.configure(&spec, opts.flows)?;
    for (k, b) in opts.backends.iter().enumerate() {
        traffic.watch(k as u32 + 1, *b)?;
        traffic.attach_counter(&node.ns_path(&format!("pod{}", k + 1)), "eth0")?;
    }
    let vip_slot = opts.backends.len() as u32 + 1;
    traffic.watch(vip_slot, opts.vip)?;
    let gen_ns = node.ns_path("gen");
    // The generator's thread lives in its namespace (live frames leave through gen0 of the
    // calling thread's namespace) and stays on one CPU for the whole run.
    let paths = in_netns(&gen_ns, || -> Result<Vec<PathReport>> {
        pin_to_current_cpu();
        let mut reports: Vec<PathReport> = PathKind::MEASURED
            .iter()
            .map(|&path| PathReport { path, turns: Vec::new(), expected_shares: Vec::new() })
            .collect();
        for _ in 0..opts.rounds {
            for report in reports.iter_mut() {
                let (turn, expected) = turn(&node, &mut traffic, opts, report.path, vip_slot)?;
                report.turns.push(turn);
                report.expected_shares = expected;
            }
        }
        Ok(reports)
    })??;
    let cross_cpu_duplicates = traffic.cross_cpu_duplicates()?;
    drop(traffic);
    drop(node);
    Ok(TrafficReport {
        options: opts.clone(),
        paths,
        cross_cpu_duplicates,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

fn validate(opts: &TrafficOptions) -> Result<()> {
    if opts.backends.is_empty() || opts.backends.len() as u32 >= MAX_SLOTS - 1 {
        return Err(LbError::Invalid(format!("between 1 and {} backends are needed", MAX_SLOTS - 2)));
    }
    let unique: BTreeSet<Ipv4Addr> = opts.backends.iter().map(|b| *b.ip()).collect();
    if unique.len() != opts.backends.len() {
        return Err(LbError::Invalid("each backend needs an address of its own (one pod each)".into()));
    }
    if unique.contains(opts.vip.ip()) || *opts.vip.ip() == NODE_IP || opts.vip.ip().is_unspecified() {
        return Err(LbError::Invalid(format!("{} cannot be the VIP here", opts.vip.ip())));
    }
    if opts.packets == 0 || opts.rounds == 0 {
        return Err(LbError::Invalid("--packets and --rounds must be at least 1".into()));
    }
    if opts.flows == 0 || opts.flows > 1 << 20 {
        return Err(LbError::Invalid("--flows must be between 1 and 1048576".into()));
    }
    Ok(())
}

fn pin_to_current_cpu() {
    let mut cpus = nix::sched::CpuSet::new();
    if let Ok(cpu) = nix::sched::sched_getcpu() {
        let _ = cpus.set(cpu).and_then(|_| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus));
    }
}

/// Sets up `path` on the node, sends a warm-up (every flow once, so the connection table and
/// conntrack know them all), then the measured packets; tears the path down again.
fn turn(
    node: &Node,
    traffic: &mut Traffic,
    opts: &TrafficOptions,
    path: PathKind,
    vip_slot: u32,
) -> Result<(Turn, Vec<f64>)> {
    let node_ns = node.ns_path("node");
    let n = opts.backends.len();
    let mut lb = None;
    let mut expected = vec![1.0 / n as f64; n];
    match path {
        PathKind::GeneratorOnly => traffic.attach_counter(&node_ns, "eth0")?,
        PathKind::ForwardOnly => traffic.attach_forwarder(&node_ns, "eth0", "lxc1")?,
        PathKind::XdpNative | PathKind::XdpGeneric => {
            let mut balancer = LoadBalancer::load(&LoadOptions { max_services: 1, ..Default::default() })?;
            let frontend = Frontend { vip: *opts.vip.ip(), port: opts.vip.port(), proto: opts.proto };
            let view = balancer.upsert_service(&Service {
                frontend,
                backends: opts.backends.clone(),
                kind: ServiceKind::LoadBalancer,
            })?;
            let slots: u32 = view.backends.iter().map(|b| b.slots).sum();
            expected = opts
                .backends
                .iter()
                .map(|b| {
                    let s = view.backends.iter().find(|v| v.addr == *b).map_or(0, |v| v.slots);
                    f64::from(s) / f64::from(slots.max(1))
                })
                .collect();
            let mode = if path == PathKind::XdpNative { AttachMode::Native } else { AttachMode::Skb };
            let attached = balancer.attach_in_netns(&node_ns, "eth0", mode)?;
            if attached.mode != mode {
                return Err(LbError::Invalid(format!(
                    "the XDP LB could not attach in {mode:?} mode: {}",
                    attached.fallback.unwrap_or_default()
                )));
            }
            lb = Some(balancer);
        }
        PathKind::Nftables => node.nft_dnat(opts.vip, opts.proto, &opts.backends)?,
    }
    let result = measure(node, traffic, opts, path, vip_slot);
    match path {
        PathKind::GeneratorOnly => traffic.detach_counter(&node_ns, "eth0")?,
        PathKind::ForwardOnly => traffic.detach_forwarder()?,
        PathKind::XdpNative | PathKind::XdpGeneric => drop(lb), // detaches
        PathKind::Nftables => node.nft_flush()?,
    }
    Ok((result?, expected))
}

fn measure(node: &Node, traffic: &Traffic, opts: &TrafficOptions, path: PathKind, vip_slot: u32) -> Result<Turn> {
    traffic.generate(node.gen_ifindex, opts.flows)?; // warm-up
    let before = traffic.counts()?;
    let sent_before = traffic.sent()?;
    let start = Instant::now();
    let per_packet = traffic.generate(node.gen_ifindex, opts.packets)?;
    let wall = start.elapsed();
    let sent = traffic.sent()? - sent_before;
    // Under load the kernel may leave the rest of a batch to ksoftirqd: wait until the
    // counters stand still before reading them.
    let mut after = traffic.counts()?;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(2));
        let again = traffic.counts()?;
        if again == after {
            break;
        }
        after = again;
    }
    let delta = |slot: usize| after[slot].packets - before[slot].packets;
    let slots: Vec<usize> = if path.balances() { (1..=opts.backends.len()).collect() } else { vec![vip_slot as usize] };
    let duplicates = after.iter().zip(&before).map(|(a, b)| a.duplicates - b.duplicates).sum();
    Ok(Turn {
        sent,
        delivered: slots.iter().map(|&s| delta(s)).collect(),
        stray: delta(0),
        duplicates,
        ns_per_packet: per_packet.as_nanos() as f64,
        wall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn spec(proto: Proto) -> FrameSpec {
        FrameSpec {
            src_mac: GEN_MAC,
            dst_mac: NODE_MAC,
            src: CLIENT,
            dst: SocketAddrV4::new(Ipv4Addr::new(192, 168, 250, 1), 80),
            proto,
        }
    }

    /// Parses `frame` and checks every checksum; returns (source, destination, sequence number).
    fn parse(frame: &[u8]) -> (SocketAddrV4, SocketAddrV4, u32) {
        assert_eq!(frame.len(), FRAME_LEN);
        let p = SlicedPacket::from_ethernet(frame).expect("a valid frame");
        assert_eq!((&frame[..6], &frame[6..12]), (&NODE_MAC[..], &GEN_MAC[..]), "MACs");
        let Some(NetSlice::Ipv4(ip)) = &p.net else { panic!("not IPv4") };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
        assert_eq!((h.time_to_live, h.dont_fragment), (64, true));
        let (src, dst) = (Ipv4Addr::from(h.source), Ipv4Addr::from(h.destination));
        match p.transport.as_ref().unwrap() {
            TransportSlice::Udp(u) => {
                let payload = u.payload();
                assert_eq!(payload.len(), 18);
                let uh = u.to_header();
                assert_eq!(uh.checksum, uh.calc_checksum_ipv4(&h, payload).unwrap(), "UDP checksum");
                let seq = u32::from_be_bytes(payload[..4].try_into().unwrap());
                (SocketAddrV4::new(src, uh.source_port), SocketAddrV4::new(dst, uh.destination_port), seq)
            }
            TransportSlice::Tcp(t) => {
                let th = t.to_header();
                assert!(th.syn && !th.ack && !th.rst && !th.fin, "a SYN");
                assert_eq!(th.checksum, th.calc_checksum_ipv4(&h, &[]).unwrap(), "TCP checksum");
                (
                    SocketAddrV4::new(src, th.source_port),
                    SocketAddrV4::new(dst, th.destination_port),
                    th.sequence_number,
                )
            }
            other => panic!("unexpected transport {other:?}"),
        }
    }

    #[test]
    fn frames_are_valid_udp_and_tcp_syn_with_their_sequence_number() {
        for proto in [Proto::Udp, Proto::Tcp] {
            let s = spec(proto);
            for n in [0u64, 1, 2, 0x3fff, 0x4000, 0x4001, 999_999, u64::from(u32::MAX)] {
                let (src, dst, seq) = parse(&s.frame(1 << 20, n));
                assert_eq!(dst, s.dst);
                assert_eq!(seq, n as u32);
                assert_eq!(src, s.flow_source((n % (1 << 20)) as u32), "{proto} packet {n}");
            }
        }
    }

    #[test]
    fn flows_cycle_ports_first_then_addresses() {
        let s = spec(Proto::Udp);
        assert_eq!(s.flow_source(0), CLIENT);
        assert_eq!(s.flow_source(1), SocketAddrV4::new(*CLIENT.ip(), 1025));
        assert_eq!(s.flow_source(0x3fff), SocketAddrV4::new(*CLIENT.ip(), 1024 + 0x3fff));
        assert_eq!(s.flow_source(0x4000), SocketAddrV4::new(Ipv4Addr::new(172, 18, 200, 2), 1024));
        // Packet n belongs to flow n % flows: 3 flows repeat every 3 packets.
        let sources: Vec<SocketAddrV4> = (0..7).map(|n| parse(&s.frame(3, n)).0).collect();
        assert_eq!(sources[0], sources[3]);
        assert_eq!(sources[1], sources[4]);
        assert_eq!(sources[2], sources[5]);
        assert_ne!(sources[0], sources[1]);
        let distinct: BTreeSet<SocketAddrV4> = (0..5000).map(|n| s.flow_source(n)).collect();
        assert_eq!(distinct.len(), 5000);
    }

    #[test]
    fn only_namespaces_of_gone_processes_are_stale() {
        let me = std::process::id();
        assert_eq!(stale_owner(&format!("lbpps-{me}-node")), None);
        assert_eq!(stale_owner("lbpps-2147483647-gen"), Some(2147483647));
        assert_eq!(stale_owner("tutor-1-host"), None);
        assert!(!PREFIX.starts_with(crate::backend::lab::registry::PREFIX));
        assert_eq!(stale_owner("lbpps-x-gen"), None);
    }

    #[test]
    fn constants_match_the_c_header() {
        let header = include_str!("../../ebpf/traffic.h");
        let define = |name: &str| -> u64 {
            let line = header.lines().find(|l| l.starts_with(&format!("#define {name} "))).expect(name);
            line.split_whitespace().nth(2).unwrap().parse().unwrap()
        };
        assert_eq!(define("TG_HEADER_COPY"), HEADER_COPY as u64);
        assert_eq!(define("TG_PORT_BITS"), u64::from(PORT_BITS));
        assert_eq!(define("TG_MAX_SLOTS"), u64::from(MAX_SLOTS));
    }

    fn report(native: f64, nft: f64) -> TrafficReport {
        let turn = |ns: f64, delivered: u64| Turn {
            sent: 1000,
            delivered: vec![delivered / 2, delivered - delivered / 2],
            stray: 0,
            duplicates: 0,
            ns_per_packet: ns,
            wall: Duration::from_millis(10),
        };
        let path = |path, ns, d| PathReport { path, turns: vec![turn(ns, d)], expected_shares: vec![0.5, 0.5] };
        TrafficReport {
            options: TrafficOptions::default(),
            paths: vec![
                path(PathKind::GeneratorOnly, 100.0, 1000),
                path(PathKind::ForwardOnly, 200.0, 1000),
                path(PathKind::XdpNative, native, 1000),
                path(PathKind::XdpGeneric, 500.0, 1000),
                path(PathKind::Nftables, nft, 990),
            ],
            cross_cpu_duplicates: 0,
            cpus: 2,
        }
    }

    #[test]
    fn the_report_line_gives_rates_per_cpu_second_and_their_ratio() {
        let r = report(250.0, 1000.0);
        let first = r.to_string().lines().next().unwrap().to_string();
        // native: 1000 packets in 250 µs = 4 Mpps; nftables: 990 in 1000 µs = 0.99 Mpps.
        assert_eq!(first, "xdp_native_mpps=4.00 xdp_generic_mpps=2.00 nftables_mpps=0.99 ratio_native_nft=4.04");
        assert_eq!(r.path(PathKind::Nftables).lost(), 10);
        assert_eq!(r.node_ns(PathKind::Nftables), 900.0);
        assert!(r.to_string().contains("generator subtracted): 6.00"));
        assert!(r.to_string().contains("counter 100 ns per packet; a second veth hop to a pod (XDP redirect, no LB) 100 ns; the XDP LB's own work (lookup, rewrite, FIB cache) 50 ns"));
    }
}
