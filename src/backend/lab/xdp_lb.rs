//! LoadBalancer services in the lab's datapath: the bundled XDP LB (`crate::lb`) on every
//! node's eth0, programmed from the Services that LB IPAM gave an address and their ready
//! endpoints, with the ARP announcements L2 announcements elect (see `l2_announce`).
//!
//! - One instance per node, all sharing services, backends and flows through maps pinned in a
//!   bpffs private to the lab (mounted in the mount namespace of a thread of the supervisor),
//!   so that a reply leaving through another node than the balancing one is translated back to
//!   the VIP there. Nothing is pinned in the machine's /sys/fs/bpf and the attachments are
//!   links owned by the supervisor: they end with it.
//! - `loadBalancer.acceleration: native` attaches in native (driver) XDP mode; otherwise the
//!   lab serves the VIP through the same program in generic (SKB) mode — `ip addr` shows
//!   `xdp` or `xdpgeneric`.
//! - What the program needs from the lab (docs/architecture.md, "Platform facts"): the XDP_PASS
//!   program on the bridge-side peer of each eth0 (XDP_TX delivery), GRO on inside pods (XDP_REDIRECT delivery), and full
//!   checksums from the lab host (`tx off` on its bridge).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::lb::{AttachMode, Frontend, LoadBalancer, LoadOptions, Proto, Service as LbService, ServiceKind};

use super::LabError;
use super::l2_announce;
use super::lb_ipam;
use super::network;
use super::sandbox::{Mounts, NsThread};
use super::state::ClusterRt;

/// Where the shared maps are pinned, inside the pin thread's private bpffs.
const SHARED_PINS: &str = "/sys/fs/bpf/tutor-lab-lb";

/// The supervisor's LoadBalancer datapath of one cluster.
pub struct LbState {
    lab: String,
    host_tid: i32,
    /// Holds the private bpffs of the shared pins (its mount namespace).
    pins: Option<NsThread>,
    nodes: BTreeMap<String, LoadBalancer>,
    mode: Option<AttachMode>,
    /// Announcing node of each address (Cilium's leases).
    pub holders: BTreeMap<Ipv4Addr, String>,
    /// Pods whose eth0 has GRO on.
    gro: BTreeSet<i32>,
    bridge_ready: bool,
    /// When the last change of announcer was made, and how long the sync took.
    pub last_takeover: Option<(Ipv4Addr, String, Duration)>,
}

fn err(what: &str) -> impl Fn(crate::lb::LbError) -> LabError + '_ {
    move |source| LabError::Lb { what: what.to_string(), source: Box::new(source) }
}

fn netns(tid: i32) -> PathBuf {
    PathBuf::from(format!("/proc/{}/task/{tid}/ns/net", std::process::id()))
}

/// Run a tool inside the network namespace of thread `tid` (ethtool talks to the kernel by
/// ioctl, the mount namespace does not matter).
fn run_in(tid: i32, argv: &[&str]) -> Result<(), LabError> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    crate::lb::netns::in_netns(&netns(tid), || super::sandbox::run_command(&argv, ""))
        .map_err(err("entering a node's network namespace"))?
        .map(drop)
}

impl LbState {
    pub fn new(lab: &str, host_tid: i32) -> LbState {
        LbState {
            lab: lab.into(),
            host_tid,
            pins: None,
            nodes: BTreeMap::new(),
            mode: None,
            holders: BTreeMap::new(),
            gro: BTreeSet::new(),
            bridge_ready: false,
            last_takeover: None,
        }
    }

    /// The attach mode in force, when the datapath is up.
    pub fn mode(&self) -> Option<AttachMode> {
        self.mode
    }

    pub fn instance(&self, node: &str) -> Option<&LoadBalancer> {
        self.nodes.get(node)
    }

    fn teardown(&mut self) {
        self.nodes.clear();
        self.mode = None;
        self.holders.clear();
    }
}

/// `loadBalancer.acceleration` of the Helm values: `native` (XDP in the driver) or not.
pub fn acceleration(values: &super::values::CiliumValues) -> AttachMode {
    let acc = values.raw.get("loadBalancer").and_then(|l| l.get("acceleration")).and_then(serde_yaml::Value::as_str);
    if matches!(acc, Some("native") | Some("best-effort")) { AttachMode::Native } else { AttachMode::Skb }
}

/// `l2announcements.enabled` of the Helm values.
pub fn l2_enabled(values: &super::values::CiliumValues) -> bool {
    values.raw.get("l2announcements").and_then(|l| l.get("enabled")).and_then(serde_yaml::Value::as_bool) == Some(true)
}

fn proto(p: &str) -> Option<Proto> {
    match p.to_ascii_uppercase().as_str() {
        "TCP" => Some(Proto::Tcp),
        "UDP" => Some(Proto::Udp),
        _ => None,
    }
}

impl ClusterRt {
    /// LB IPAM, the XDP LB's services and the ARP announcements, brought in line with the
    /// store and the Helm values (after every change to services, pods, pools or policies).
    pub fn sync_load_balancers(&mut self) -> Result<(), LabError> {
        let Some(values) = self.values.clone() else { return Ok(()) };
        lb_ipam::sync(&mut self.store);
        let wanted: Vec<LbService> = self
            .store
            .services
            .iter()
            .filter(|s| lb_ipam::wants_address(s))
            .filter_map(|s| s.load_balancer_ip.map(|ip| (s, ip)))
            .flat_map(|(s, ip)| {
                let eps = self.store.endpoints(s);
                s.ports.iter().filter_map(move |p| {
                    let mut backends: Vec<SocketAddrV4> = eps
                        .iter()
                        .filter(|(_, tp)| *tp == p.target_port)
                        .map(|(a, tp)| SocketAddrV4::new(*a, *tp))
                        .collect();
                    backends.sort();
                    backends.dedup();
                    Some(LbService {
                        frontend: Frontend { vip: ip, port: p.port, proto: proto(&p.protocol)? },
                        backends,
                        kind: ServiceKind::LoadBalancer,
                    })
                })
            })
            .collect();
        // BPF masquerade must leave the backends' replies to the LB's reply translation.
        let backends: Vec<(Ipv4Addr, u16, u8)> = wanted
            .iter()
            .flat_map(|s| s.backends.iter().map(move |b| (*b.ip(), b.port(), s.frontend.proto.number())))
            .collect();
        for n in &self.nodes {
            if let Some(bpf) = &n.bpf {
                bpf.set_lb_backends(&backends)?;
            }
        }
        if wanted.is_empty() {
            self.lb.teardown();
            return Ok(());
        }
        let mode = acceleration(&values);
        if self.lb.mode != Some(mode) {
            self.lb.teardown();
        }
        // A node that left the cluster (`kubectl delete node`) no longer serves the VIP.
        let members: BTreeSet<String> = self.store.nodes.iter().map(|n| n.name.clone()).collect();
        self.lb.nodes.retain(|n, _| members.contains(n));
        self.build_lb(mode, &members)?;
        self.prepare_pods()?;
        let Some(lb) = self.lb.nodes.values_mut().next() else { return Ok(()) };
        lb.sync_services(&wanted).map_err(err("programming the services"))?;
        self.sync_announcements(l2_enabled(&values))
    }

    /// Load an instance for each member node without one and attach it to its eth0 in `mode`.
    fn build_lb(&mut self, mode: AttachMode, members: &BTreeSet<String>) -> Result<(), LabError> {
        if self.lb.pins.is_none() {
            self.lb.pins = Some(NsThread::new("lb-pins", None, Mounts::default())?);
        }
        if !self.lb.bridge_ready {
            // The lab host's packets must carry full checksums: XDP cannot finish partial ones.
            run_in(self.lb.host_tid, &["ethtool", "-K", &network::bridge_name(&self.lb.lab), "tx", "off"])?;
            self.lb.bridge_ready = true;
        }
        let pins = self.lb.pins.as_ref().expect("created above");
        let (lab, host) = (self.lb.lab.clone(), self.lb.host_tid);
        let mut built = BTreeMap::new();
        for n in
            self.nodes.iter().filter(|n| members.contains(&n.plan.name) && !self.lb.nodes.contains_key(&n.plan.name))
        {
            // A flow balanced to a pod of the node itself is redirected into the pod past the
            // node's conntrack, which would then pick the pod's replies up mid-stream as new
            // connections and masquerade them before the LB's reply translation sees them.
            // Without loose pick-up they stay untracked (INVALID) and leave as they are.
            n.ns.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")?;
            let opts = LoadOptions {
                maglev_size: 1021,
                max_services: 64,
                max_flows: 65536,
                pin_dir: None,
                shared_pin_dir: Some(SHARED_PINS.into()),
            };
            let mut lb = pins.run(move || LoadBalancer::load(&opts))?.map_err(err("loading"))?;
            let attached = lb
                .attach_in_netns(&netns(n.ns.tid()), l2_announce::DEVICE, mode)
                .map_err(err(&format!("attaching to {} eth0", n.plan.name)))?;
            if let Some(why) = attached.fallback {
                return Err(LabError::XdpNativeRefused { node: n.plan.name.clone(), why });
            }
            let peer = network::node_veth(&lab, &n.plan.name);
            lb.attach_peer_pass_in_netns(&netns(host), &peer).map_err(err(&format!("attaching to {peer}")))?;
            built.insert(n.plan.name.clone(), lb);
        }
        self.lb.nodes.extend(built);
        self.lb.mode = Some(mode);
        Ok(())
    }

    /// XDP_REDIRECT into a pod's veth is delivered only with GRO on at the pod's end.
    fn prepare_pods(&mut self) -> Result<(), LabError> {
        let live: BTreeSet<i32> = self.pods.values().map(|p| p.ns.tid()).collect();
        self.lb.gro.retain(|t| live.contains(t));
        for tid in live {
            if !self.lb.gro.contains(&tid) {
                run_in(tid, &["ethtool", "-K", "eth0", "gro", "on"])?;
                self.lb.gro.insert(tid);
            }
        }
        Ok(())
    }

    /// The elected node answers ARP for each address, nobody else does; a new holder sends a
    /// gratuitous ARP.
    fn sync_announcements(&mut self, enabled: bool) -> Result<(), LabError> {
        let started = Instant::now();
        let holders = if enabled { l2_announce::elect(&self.store, &self.lb.holders) } else { BTreeMap::new() };
        for (name, lb) in self.lb.nodes.iter_mut() {
            let want: BTreeSet<Ipv4Addr> = holders.iter().filter(|(_, h)| *h == name).map(|(ip, _)| *ip).collect();
            let have: BTreeSet<Ipv4Addr> = lb.announced().map_err(err("reading announcements"))?.into_iter().collect();
            for ip in have.difference(&want) {
                lb.withdraw_vip(*ip).map_err(err("withdrawing"))?;
            }
            for ip in want.difference(&have) {
                lb.announce_vip(*ip).map_err(err("announcing"))?;
            }
        }
        for (ip, holder) in &holders {
            if self.lb.holders.get(ip) == Some(holder) {
                continue;
            }
            let n = self.node(holder).ok_or_else(|| LabError::NoSuchNode(holder.clone()))?;
            let mac: Vec<u8> = n.plan.mac.split(':').filter_map(|h| u8::from_str_radix(h, 16).ok()).collect();
            let mac: [u8; 6] = mac.try_into().map_err(|_| LabError::BadMac(n.plan.mac.clone()))?;
            l2_announce::gratuitous_arp(&netns(n.ns.tid()), *ip, mac)?;
            if self.lb.holders.contains_key(ip) {
                self.lb.last_takeover = Some((*ip, holder.clone(), started.elapsed()));
            }
        }
        self.lb.holders = holders;
        Ok(())
    }

    /// `cilium-dbg service list`: ClusterIP services as the lab's service tables hold them,
    /// LoadBalancer frontends read back from the XDP LB's maps.
    pub fn service_list(&self, node: &str) -> Result<String, LabError> {
        let mut rows: Vec<(String, String, Vec<String>)> = Vec::new();
        for s in self.store.services.iter() {
            let eps = self.store.endpoints(s);
            for p in &s.ports {
                let mut backends: Vec<String> =
                    eps.iter().filter(|(_, tp)| *tp == p.target_port).map(|(ip, tp)| format!("{ip}:{tp}")).collect();
                backends.dedup();
                rows.push((format!("{}:{}", s.cluster_ip, p.port), "ClusterIP".into(), backends));
            }
        }
        if let Some(lb) = self.lb.nodes.get(node) {
            for v in lb.services().map_err(err("reading services"))? {
                rows.push((
                    format!("{}:{}", v.frontend.vip, v.frontend.port),
                    v.kind.to_string(),
                    v.backends.iter().map(|b| b.addr.to_string()).collect(),
                ));
            }
        }
        Ok(service_table(&rows))
    }
}

/// `cilium-dbg service list`'s table of (frontend, service type, backends) rows.
pub fn service_table(rows: &[(String, String, Vec<String>)]) -> String {
    let fw = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max("Frontend".len()) + 3;
    let tw = "Service Type".len() + 3;
    let mut out = format!("{:<5}{:<fw$}{:<tw$}Backend\n", "ID", "Frontend", "Service Type");
    for (i, (front, kind, backends)) in rows.iter().enumerate() {
        let id = (i + 1).to_string();
        if backends.is_empty() {
            out.push_str(&format!("{id:<5}{front:<fw$}{kind:<tw$}\n"));
        }
        for (k, b) in backends.iter().enumerate() {
            if k == 0 {
                out.push_str(&format!("{id:<5}{front:<fw$}{kind:<tw$}{} => {b} (active)\n", k + 1));
            } else {
                out.push_str(&format!("{:<w$}{} => {b} (active)\n", "", k + 1, w = 5 + fw + tw));
            }
        }
    }
    out
}

/// `cilium-dbg status --verbose`'s KubeProxyReplacement details: the load-balancing mode and
/// the XDP mode the lab attaches the LB in (empty without `--verbose`).
pub fn status_lines(c: &ClusterRt, verbose: bool) -> String {
    let Some(values) = c.values.as_ref().filter(|_| verbose) else { return String::new() };
    let mode = values.raw.get("loadBalancer").and_then(|l| l.get("mode")).and_then(serde_yaml::Value::as_str);
    kpr_details(values.kube_proxy_replacement, mode, acceleration(values) == AttachMode::Native, l2_enabled(values))
}

/// The KubeProxyReplacement details of `cilium-dbg status --verbose`, from the options in
/// force: `loadBalancer.mode` (`bpf-lb-mode`), whether the XDP program runs in native mode,
/// whether L2 announcements are on.
pub fn kpr_details(kpr: bool, lb_mode: Option<&str>, xdp_native: bool, l2: bool) -> String {
    let mode = match lb_mode {
        Some("dsr") => "DSR",
        Some("hybrid") => "Hybrid",
        _ => "SNAT",
    };
    let xdp = if xdp_native { "Native" } else { "Disabled" };
    format!(
        "KubeProxyReplacement Details:\n  Status:                 {}\n  Devices:                eth0\n  Mode:                   {mode}\n  Backend Selection:      Maglev\n  XDP Acceleration:       {xdp}\n  Services:\n  - ClusterIP:      Enabled\n  - LoadBalancer:   Enabled\n  - L2 Announcements: {}\n",
        if kpr { "True" } else { "False" },
        if l2 { "Enabled" } else { "Disabled" }
    )
}
