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
use super::maps::FlowKey;
use super::netns::in_scratch_netns;
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
    /// Net of the overhead: a SYN of a never-seen client into a full default-size connection
    /// table (every new flow evicts one), mean per call, median over the rounds.
    pub new_flow_ns: f64,
    /// Lowest and highest round of `new_flow_ns` (net).
    pub new_flow_range_ns: (f64, f64),
    /// The per-call median and 90th percentile of new flows (net, median over the rounds).
    pub new_flow_p50_ns: f64,
    pub new_flow_p90_ns: f64,
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
            "method: {} BPF_PROG_TEST_RUN calls with repeat=1 per figure on one CPU, kernel-timed; a figure is the \
             median over {ROUNDS} rounds (each program's calls back to back) of the mean per call (calls over \
             {CAP_US} µs dropped: the vCPU was descheduled); the overhead of an XDP_PASS program measured the same \
             way is subtracted; new flows are TCP SYNs of never-seen clients into a connection table first filled \
             until every set is full, so each one evicts; frames leave by XDP_TX to the next hop found by bpf_fib_lookup \
             (cached per backend and CPU for 250 ms)",
            self.calls
        )?;
        writeln!(
            f,
            "new_flow_ns over the rounds: {:.1}..{:.1}; per call: median {:.1}, 90th percentile {:.1}",
            self.new_flow_range_ns.0, self.new_flow_range_ns.1, self.new_flow_p50_ns, self.new_flow_p90_ns
        )?;
        writeln!(
            f,
            "targets: established < 80 ns ({}), new flow < 240 ns ({}) with the default connection table ({} flows, split over the CPUs)",
            verdict(self.established_ns < 80.0),
            verdict(self.new_flow_ns < 240.0),
            LoadOptions::default().max_flows
        )?;
        writeln!(
            f,
            "new_flow_ns with a connection table of {KATRAN_LRU} flows (split over the CPUs): {:.1} ({}); Katran's XDP LB loaded without \
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
    let big = in_scratch_netns(|lbin| micro(opts.calls, lbin, LoadOptions::default().max_flows))??;
    let small = in_scratch_netns(|lbin| micro(opts.calls, lbin, KATRAN_LRU))??;
    let rps = if opts.seconds > 0.0 { Some(requests_per_second(opts.seconds)?) } else { None };
    let net = |gross: f64| gross - big.overhead;
    Ok(BenchReport {
        calls: opts.calls,
        overhead_ns: big.overhead,
        established_ns: net(big.established),
        new_flow_ns: net(big.new_flow),
        new_flow_range_ns: (net(big.new_flow_range.0), net(big.new_flow_range.1)),
        new_flow_p50_ns: net(big.new_flow_p50),
        new_flow_p90_ns: net(big.new_flow_p90),
        new_flow_small_table_ns: small.new_flow - small.overhead,
        new_flow_recycled_ns: net(big.recycled),
        rps,
    })
}

/// Katran's DEFAULT_LRU_SIZE (its fallback connection table).
const KATRAN_LRU: u32 = 1000;
const RECYCLED: usize = 64;
/// Each figure is the median of this many rounds; in each round the programs take turns.
pub const ROUNDS: usize = 5;

/// Gross figures (ns per call) of one `micro` run: medians over ROUNDS rounds.
struct Micro {
    overhead: f64,
    established: f64,
    new_flow: f64,
    new_flow_range: (f64, f64),
    new_flow_p50: f64,
    new_flow_p90: f64,
    recycled: f64,
}

/// Calls slower than this were interrupted at length or their vCPU was descheduled.
const CAP_US: u64 = 100;

fn micro(calls: u32, lbin: u32, max_flows: u32) -> Result<Micro> {
    // Per-CPU LRU lists and caches: one CPU for the whole run, so every round sees the same state.
    let mut cpus = nix::sched::CpuSet::new();
    if let Ok(cpu) = nix::sched::sched_getcpu() {
        let _ = cpus.set(cpu).and_then(|_| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus));
    }
    let mut lb = LoadBalancer::load(&LoadOptions { max_services: 1, max_flows, ..Default::default() })?;
    let backends = (1..=10).map(|i| SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, i), 8080)).collect();
    lb.upsert_service(&Service {
        frontend: "172.18.255.200:80/tcp".parse()?,
        backends,
        kind: ServiceKind::LoadBalancer,
    })?;
    let vip = SocketAddrV4::new(Ipv4Addr::new(172, 18, 255, 200), 80);

    let established = tcp_frame(SocketAddrV4::new(Ipv4Addr::new(172, 18, 0, 1), 40000), vip, ACK);
    let (action, _) = lb.test_run(&established, Some(lbin))?;
    if action != super::action::TX {
        return Err(LbError::Invalid(format!("the benchmark flow was not forwarded (action {action})")));
    }
    // Client n of 10.128.0.0/10 (never reused: every timed new flow is one the table has never seen).
    let client = |n: u32| SocketAddrV4::new(Ipv4Addr::from(0x0a80_0000 + (n >> 14)), 1024 + (n & 0x3fff) as u16);
    let mut next_client = 0u32;
    let mut fresh_syn = || {
        next_client += 1;
        tcp_frame(client(next_client), vip, SYN)
    };
    // Fill the table first (untimed), so that every timed new flow evicts one, as on an LB that
    // has seen more flows than its table holds (entries never expire otherwise). Flows spread
    // over the sets at random: 4 × capacity leaves a set with a free way about once in 10^4.
    for _ in 0..lb.flows_per_cpu() * 4 {
        lb.run_program("lb_xdp", &fresh_syn(), Some(lbin))?;
    }
    lb.run_program("lb_xdp", &established, Some(lbin))?; // pinned again if the fill evicted it

    let per_round = (calls as usize).div_ceil(ROUNDS).max(1);
    let time = |lb: &LoadBalancer, program: &str, frame: &[u8]| -> Result<u64> {
        Ok(lb.run_program(program, frame, Some(lbin))?.2.as_nanos() as u64)
    };
    let recycled: Vec<(Vec<u8>, FlowKey)> = (0..RECYCLED as u16)
        .map(|i| {
            let src = SocketAddrV4::new(Ipv4Addr::new(10, 201, 0, 1), 2000 + i);
            (tcp_frame(src, vip, SYN), FlowKey::new(*src.ip(), src.port(), *vip.ip(), vip.port(), 6))
        })
        .collect();
    // [pass, established, new flow, recycled, new flow p50, new flow p90] per round
    let mut rounds: [Vec<f64>; 6] = Default::default();
    for _ in 0..ROUNDS {
        let fresh: Vec<Vec<u8>> = (0..per_round).map(|_| fresh_syn()).collect();
        let mut ns: [Vec<u64>; 4] = Default::default();
        // Back to back, as a busy datapath sees them; the frames are made beforehand.
        for _ in 0..per_round {
            ns[0].push(time(&lb, "lb_pass", &established)?);
        }
        for _ in 0..per_round {
            ns[1].push(time(&lb, "lb_xdp", &established)?);
        }
        for frame in &fresh {
            ns[2].push(time(&lb, "lb_xdp", frame)?);
        }
        // Warm memory: the same few flows, each one's entry deleted (untimed) before it returns.
        for (frame, flow) in recycled.iter().cycle().take(per_round) {
            ns[3].push(time(&lb, "lb_xdp", frame)?);
            if !lb.forget_connection(flow)? {
                return Err(LbError::Invalid("a benchmark flow was not in the connection table".into()));
            }
        }
        rounds[4].push(percentile(&mut ns[2], 50) as f64);
        rounds[5].push(percentile(&mut ns[2], 90) as f64);
        for (r, v) in rounds.iter_mut().zip(ns) {
            r.push(capped_mean(&v));
        }
    }
    let new = &rounds[2];
    Ok(Micro {
        overhead: median(&rounds[0]),
        established: median(&rounds[1]),
        new_flow: median(new),
        new_flow_range: (new.iter().copied().fold(f64::MAX, f64::min), new.iter().copied().fold(0.0, f64::max)),
        new_flow_p50: median(&rounds[4]),
        new_flow_p90: median(&rounds[5]),
        recycled: median(&rounds[3]),
    })
}

fn percentile(ns: &mut [u64], p: usize) -> u64 {
    ns.sort_unstable();
    ns.get((ns.len() * p / 100).min(ns.len().saturating_sub(1))).copied().unwrap_or(0)
}

/// The mean per call, leaving out calls over CAP_US. Not a median, nor a trimmed mean: an LRU
/// hash map evicts in batches (4 entries every 4th insert with per-CPU lists, 128 every 128th
/// with a common list), so both would drop exactly the calls that pay for the evictions; the
/// set-associative table evicts one entry per insert, measured the same way to compare.
fn capped_mean(ns: &[u64]) -> f64 {
    let kept: Vec<u64> = ns.iter().copied().filter(|&n| n <= CAP_US * 1000).collect();
    kept.iter().sum::<u64>() as f64 / kept.len().max(1) as f64
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
    fn capped_mean_keeps_eviction_batches_and_drops_descheduled_calls() {
        // 3 cheap calls and one that evicts a batch: the batch stays in the mean.
        assert_eq!(capped_mean(&[100, 100, 100, 1100]), 350.0);
        assert_eq!(capped_mean(&[100, 100, CAP_US * 1000 + 1]), 100.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(percentile(&mut [5, 1, 4, 2, 3], 50), 3);
        assert_eq!(percentile(&mut [5, 1, 4, 2, 3, 6, 7, 8, 9, 10], 90), 10);
    }
}
