//! `tutor lb bench`: ns per packet under BPF_PROG_TEST_RUN, and requests/s through the VIP
//! with the XDP LB vs nftables DNAT in the same namespace setup.
//!
//! BPF_PROG_TEST_RUN with `repeat > 1` does not reset the packet between iterations, so a
//! program that rewrites it would measure itself on its own output. Every figure here is
//! many `repeat = 1` calls on a fresh copy of the frame; the kernel-reported duration of each
//! call is kept, outliers above the 99th percentile dropped, and the harness overhead
//! (an XDP program that only returns XDP_PASS, measured the same way, before and after)
//! subtracted.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::balancer::{AttachMode, LoadBalancer, LoadOptions};
use super::error::{LbError, Result};
use super::netns::in_scratch_netns;
use super::maps::FlowKey;
use super::service::{Service, ServiceKind};
use super::topology::{self, LB_IFACE, Topology, VIP, Workload};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// BPF_PROG_TEST_RUN calls per figure.
    pub calls: u32,
    /// Seconds of requests per datapath in the namespace comparison; 0 skips it.
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub calls: u32,
    pub overhead_ns: f64,
    /// Net of the overhead.
    pub established_ns: f64,
    /// Net of the overhead.
    pub new_flow_ns: f64,
    /// New flows with a connection table of KATRAN_LRU entries (net of the overhead).
    pub new_flow_small_table_ns: f64,
    /// New flows from a set of RECYCLED flows whose entries are deleted between calls
    /// (untimed): the same code path on warm memory (net of the overhead).
    pub new_flow_recycled_ns: f64,
    pub rps: Option<RpsReport>,
}

#[derive(Debug, Clone)]
pub struct RpsReport {
    pub seconds: f64,
    pub rounds: usize,
    pub clients: usize,
    pub figures: Vec<RpsFigure>,
}

/// Medians over the rounds; failures summed.
#[derive(Debug, Clone)]
pub struct RpsFigure {
    pub workload: Workload,
    /// XDP in native (driver) mode, as `tutor lb attach` does by default.
    pub xdp_rps: f64,
    /// The same program in SKB (generic) mode.
    pub xdp_skb_rps: f64,
    pub nft_rps: f64,
    pub failed: u64,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "overhead_ns={:.1} established_ns={:.1} new_flow_ns={:.1}",
            self.overhead_ns, self.established_ns, self.new_flow_ns
        )?;
        writeln!(
            f,
            "method: {} BPF_PROG_TEST_RUN calls with repeat=1 per figure (kernel-timed, p99-trimmed mean), \
             overhead of an XDP_PASS program subtracted; frames leave by XDP_TX to the next hop found by \
             bpf_fib_lookup (cached per backend and CPU for 250 ms)",
            self.calls
        )?;
        writeln!(
            f,
            "targets: established < 80 ns ({}), new flow < 240 ns ({}) with the default {}-entry connection table",
            verdict(self.established_ns < 80.0),
            verdict(self.new_flow_ns < 240.0),
            LoadOptions::default().max_flows
        )?;
        writeln!(
            f,
            "new_flow_ns with a {KATRAN_LRU}-entry connection table: {:.1} ({}); Katran's XDP LB loaded without \
             its userspace forwards through its {KATRAN_LRU}-entry fallback LRU",
            self.new_flow_small_table_ns,
            verdict(self.new_flow_small_table_ns < 240.0)
        )?;
        writeln!(
            f,
            "new_flow_ns on warm memory ({RECYCLED} flows, each one's entry deleted before it comes back): {:.1}",
            self.new_flow_recycled_ns
        )?;
        if let Some(r) = &self.rps {
            for fig in &r.figures {
                let how = match fig.workload {
                    Workload::ConnectionPerRequest => "one TCP connection per request",
                    Workload::KeepAlive => "requests on kept-alive connections",
                };
                writeln!(
                    f,
                    "requests/s through the VIP, {how} ({} clients, median of {} alternating rounds, {:.1} s each): \
                     xdp_lb={:.0} nft_dnat={:.0} ratio={:.2}; xdp_lb in SKB mode {:.0} (ratio {:.2}); failed requests: {}",
                    r.clients,
                    r.rounds,
                    r.seconds,
                    fig.xdp_rps,
                    fig.nft_rps,
                    fig.xdp_rps / fig.nft_rps.max(1e-9),
                    fig.xdp_skb_rps,
                    fig.xdp_skb_rps / fig.nft_rps.max(1e-9),
                    fig.failed
                )?;
            }
        }
        Ok(())
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}

pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    if opts.calls == 0 {
        return Err(LbError::Invalid("--calls must be at least 1".into()));
    }
    let (overhead_ns, established_gross, new_flow_gross, recycled_gross) =
        in_scratch_netns(|lbin| micro(opts.calls, lbin, LoadOptions::default().max_flows))??;
    let (small_overhead, _, small_new_gross, _) = in_scratch_netns(|lbin| micro(opts.calls, lbin, KATRAN_LRU))??;
    let rps = if opts.seconds > 0.0 { Some(requests_per_second(opts.seconds)?) } else { None };
    Ok(BenchReport {
        calls: opts.calls,
        overhead_ns,
        established_ns: established_gross - overhead_ns,
        new_flow_ns: new_flow_gross - overhead_ns,
        new_flow_small_table_ns: small_new_gross - small_overhead,
        new_flow_recycled_ns: recycled_gross - overhead_ns,
        rps,
    })
}

/// Katran's DEFAULT_LRU_SIZE (its fallback connection table).
const KATRAN_LRU: u32 = 1000;
const RECYCLED: usize = 64;

/// (overhead, established, new flow, recycled new flow), gross.
fn micro(calls: u32, lbin: u32, max_flows: u32) -> Result<(f64, f64, f64, f64)> {
    let mut lb = LoadBalancer::load(&LoadOptions { max_services: 1, max_flows, ..Default::default() })?;
    let backends = (1..=10).map(|i| SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, i), 8080)).collect();
    lb.upsert_service(&Service { frontend: "172.18.255.200:80/tcp".parse()?, backends, kind: ServiceKind::LoadBalancer })?;
    let vip = SocketAddrV4::new(Ipv4Addr::new(172, 18, 255, 200), 80);

    let established = tcp_frame(SocketAddrV4::new(Ipv4Addr::new(172, 18, 0, 1), 40000), vip, ACK);
    let (action, _) = lb.test_run(&established, Some(lbin))?;
    if action != super::action::TX {
        return Err(LbError::Invalid(format!("the benchmark flow was not forwarded (action {action})")));
    }
    let fresh: Vec<Vec<u8>> = (0..calls)
        .map(|i| {
            let src = Ipv4Addr::new(10, 200, (i >> 16) as u8, (i >> 8) as u8);
            tcp_frame(SocketAddrV4::new(src, 1024 + (i & 0xff) as u16 * 200 + (i % 199) as u16), vip, SYN)
        })
        .collect();

    let timed = |lb: &LoadBalancer, program: &str, frames: &mut dyn Iterator<Item = &Vec<u8>>| -> Result<f64> {
        let mut ns = Vec::with_capacity(calls as usize);
        for frame in frames {
            ns.push(lb.run_program(program, frame, Some(lbin))?.2.as_nanos() as u64);
        }
        Ok(trimmed_mean(ns))
    };
    let before = timed(&lb, "lb_pass", &mut std::iter::repeat_n(&established, calls as usize))?;
    let est = timed(&lb, "lb_xdp", &mut std::iter::repeat_n(&established, calls as usize))?;
    let new = timed(&lb, "lb_xdp", &mut fresh.iter())?;
    let after = timed(&lb, "lb_pass", &mut std::iter::repeat_n(&established, calls as usize))?;

    let recycled: Vec<(Vec<u8>, FlowKey)> = (0..RECYCLED as u16)
        .map(|i| {
            let src = SocketAddrV4::new(Ipv4Addr::new(10, 201, 0, 1), 2000 + i);
            (tcp_frame(src, vip, SYN), FlowKey::new(*src.ip(), src.port(), *vip.ip(), vip.port(), 6))
        })
        .collect();
    let mut ns = Vec::with_capacity(calls as usize);
    for (frame, flow) in recycled.iter().cycle().take(calls as usize) {
        ns.push(lb.run_program("lb_xdp", frame, Some(lbin))?.2.as_nanos() as u64);
        if !lb.forget_connection(flow) {
            return Err(LbError::Invalid("a benchmark flow was not in the connection table".into()));
        }
    }
    Ok(((before + after) / 2.0, est, new, trimmed_mean(ns)))
}

fn trimmed_mean(mut ns: Vec<u64>) -> f64 {
    ns.sort_unstable();
    let keep = ((ns.len() as f64) * 0.99).ceil().max(1.0) as usize;
    let kept = &ns[..keep.min(ns.len())];
    kept.iter().sum::<u64>() as f64 / kept.len() as f64
}

/// The machine is shared: datapaths take turns in short rounds and each figure is a median.
fn requests_per_second(seconds: f64) -> Result<RpsReport> {
    const CLIENTS: usize = 2;
    const ROUNDS: usize = 5;
    const WORKLOADS: [Workload; 2] = [Workload::ConnectionPerRequest, Workload::KeepAlive];
    let round = Duration::from_secs_f64(seconds / ROUNDS as f64);
    let topo = Topology::create(&format!("tutor-lbbench-{}", std::process::id()), 2)?;
    let service = Service {
        frontend: format!("{VIP}/tcp").parse()?,
        backends: vec![Topology::backend(1), Topology::backend(2)],
        kind: ServiceKind::LoadBalancer,
    };
    // rps[datapath][workload] over rounds; datapaths: XDP native, XDP SKB, nftables.
    let mut rps = vec![vec![Vec::new(); WORKLOADS.len()]; 3];
    let mut failed = vec![0u64; WORKLOADS.len()];
    let mut measure = |datapath: usize, rps: &mut Vec<Vec<Vec<f64>>>| -> Result<()> {
        for (w, &workload) in WORKLOADS.iter().enumerate() {
            topology::load(&topo, VIP, workload, CLIENTS, round / 10)?; // warm-up
            let (_, f, r) = topology::load(&topo, VIP, workload, CLIENTS, round)?;
            rps[datapath][w].push(r);
            failed[w] += f;
        }
        Ok(())
    };
    for _ in 0..ROUNDS {
        for (datapath, mode) in [(0, AttachMode::Native), (1, AttachMode::Skb)] {
            let mut lb = LoadBalancer::load(&LoadOptions { max_services: 1, ..Default::default() })?;
            lb.upsert_service(&service)?;
            lb.attach_in_netns(&topo.ns_path("lb"), LB_IFACE, mode)?;
            measure(datapath, &mut rps)?;
            drop(lb); // detaches
        }
        topo.nft_dnat(&[1, 2])?;
        measure(2, &mut rps)?;
        topo.nft_flush()?;
    }
    let figures = WORKLOADS
        .iter()
        .enumerate()
        .map(|(w, &workload)| RpsFigure {
            workload,
            xdp_rps: median(&rps[0][w]),
            xdp_skb_rps: median(&rps[1][w]),
            nft_rps: median(&rps[2][w]),
            failed: failed[w],
        })
        .collect::<Vec<_>>();
    if let Some(f) = figures.iter().find(|f| f.xdp_rps == 0.0 || f.nft_rps == 0.0 || f.xdp_skb_rps == 0.0) {
        return Err(LbError::Invalid(format!("{:?}: a datapath completed no request", f.workload)));
    }
    Ok(RpsReport { seconds: round.as_secs_f64(), rounds: ROUNDS, clients: CLIENTS, figures })
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// Ethernet + IPv4 + TCP (no payload) with valid checksums.
pub fn tcp_frame(src: SocketAddrV4, dst: SocketAddrV4, flags: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(54);
    f.extend([0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x10, 0x08, 0x00]);
    let mut ip = [0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let c = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&src.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&dst.port().to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let pseudo = [&ip[12..20], &[0, 6, 0, 20][..]].concat();
    let c = checksum(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend(ip);
    f.extend(tcp);
    f
}

fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for part in parts {
        for pair in part.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_checksums_verify() {
        let f = tcp_frame("10.0.0.1:1234".parse().unwrap(), "10.0.0.2:80".parse().unwrap(), SYN);
        assert_eq!(f.len(), 54);
        assert_eq!(checksum(&[&f[14..34]]), 0, "IPv4 header");
        let pseudo = [&f[26..34], &[0, 6, 0, 20][..]].concat();
        assert_eq!(checksum(&[&pseudo, &f[34..54]]), 0, "TCP");
    }

    #[test]
    fn trimmed_mean_drops_the_top_percent() {
        let mut v = vec![10u64; 99];
        v.push(100_000);
        assert_eq!(trimmed_mean(v), 10.0);
    }
}
