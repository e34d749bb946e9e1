//! Loading the program, its maps (created fresh, pinned, or reopened from pins), attaching it
//! to a device, detaching, and running it under BPF_PROG_TEST_RUN.

use std::fs;
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray};
use aya::programs::links::FdLink;
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};

use super::error::{LbError, Result, io_err, map_err, prog_err};
use super::flowtable::flow_sets;
use super::maglev::is_prime;
use super::maps::*;
use super::pins::{detach_pinned, ensure_bpffs};
use super::{iface, netns};

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb.bpf.o"));

/// Every map of `ebpf/lb.bpf.c`; also their pin names.
pub const MAP_NAMES: [&str; 11] = [
    "services",
    "backends",
    "maglev",
    "conn",
    "backend_vips",
    "nexthop",
    "announce",
    "config",
    "svc_stats",
    "backend_stats",
    "global_stats",
];
/// The maps several instances can share through `LoadOptions::shared_pin_dir`: the service
/// tables and the flow state. The rest (device, announcements, counters, next-hop cache) stays
/// per instance.
pub const SHARED_MAPS: [&str; 5] = ["services", "backends", "maglev", "conn", "backend_vips"];
pub(crate) const LINK_XDP: &str = "link_xdp";
pub(crate) const LINK_TC: &str = "link_tc";

/// Where `tutor lb` pins the maps and links of the load balancer attached to `iface`.
pub fn default_pin_dir(iface: &str) -> PathBuf {
    PathBuf::from("/sys/fs/bpf/tutor").join(iface)
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Slots of each service's Maglev table: a prime, much larger than the backends of a service.
    pub maglev_size: u32,
    /// Services the maps can hold (the Maglev map takes `maglev_size × max_services × 4` bytes).
    pub max_services: u32,
    /// Flows the connection table holds in all: each CPU's copy holds max_flows / CPUs, rounded
    /// up to a power of two; beyond, the least recently used flow of a set of 4 is evicted (a
    /// set can fill before the table does: see `ebpf/lb_flows.h`).
    pub max_flows: u32,
    /// Pin every map here (created, or reused when already pinned) so other processes find them.
    pub pin_dir: Option<PathBuf>,
    /// Take the `SHARED_MAPS` from (or create and pin them in) this directory, so instances on
    /// several devices of one kernel — the lab's nodes — share services and flows: the reply of
    /// a flow balanced on node A is translated back by the tc program of node B, whose device
    /// the reply leaves through. All sharing instances must use the same sizes.
    pub shared_pin_dir: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { maglev_size: 65537, max_services: 16, max_flows: 65536, pin_dir: None, shared_pin_dir: None }
    }
}

/// XDP attachment mode. `Native` falls back to `Skb` when the driver refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    Native,
    Skb,
}

/// What `attach` did.
#[derive(Debug, Clone)]
pub struct Attached {
    pub ifindex: u32,
    pub mode: AttachMode,
    /// Set when native mode was refused and the program runs in SKB mode instead.
    pub fallback: Option<String>,
}

pub(crate) struct LbMaps {
    pub services: HashMap<MapData, VipKey, ServiceValue>,
    pub backends: Array<MapData, BackendValue>,
    pub maglev: Array<MapData, u32>,
    pub conn: PerCpuArray<MapData, FlowSet>,
    pub backend_vips: HashMap<MapData, VipKey, FrontendsValue>,
    pub announce: HashMap<MapData, u32, u32>,
    pub config: Array<MapData, ConfigValue>,
    pub svc_stats: PerCpuArray<MapData, Counters>,
    pub backend_stats: PerCpuArray<MapData, Counters>,
    pub global_stats: PerCpuArray<MapData, GlobalValue>,
}

impl LbMaps {
    /// Each field is the map of the same name.
    fn from_maps(mut take: impl FnMut(&str) -> Result<Map>) -> Result<Self> {
        fn typed<T: TryFrom<Map, Error = aya::maps::MapError>>(map: Map, name: &str) -> Result<T> {
            T::try_from(map).map_err(map_err(format!("map {name}")))
        }
        macro_rules! maps {
            ($($name:ident),+) => {
                LbMaps { $($name: typed(take(stringify!($name))?, stringify!($name))?),+ }
            };
        }
        Ok(maps!(
            services,
            backends,
            maglev,
            conn,
            backend_vips,
            announce,
            config,
            svc_stats,
            backend_stats,
            global_stats
        ))
    }
}

/// The load balancer: its maps, and its programs when loaded by this process.
pub struct LoadBalancer {
    pub(crate) ebpf: Option<Ebpf>,
    pub(crate) maps: LbMaps,
    pub(crate) maglev_size: u32,
    pub(crate) max_services: u32,
    pin_dir: Option<PathBuf>,
    /// Attachments owned by this process (not pinned): they end when it is dropped.
    links: Vec<FdLink>,
}

impl LoadBalancer {
    /// Loads the programs and creates the maps (or reuses the ones pinned in `opts.pin_dir`).
    pub fn load(opts: &LoadOptions) -> Result<Self> {
        if opts.maglev_size < 3 || !is_prime(opts.maglev_size) {
            return Err(LbError::Invalid(format!("Maglev table size {} is not a prime ≥ 3", opts.maglev_size)));
        }
        if opts.max_services == 0 {
            return Err(LbError::Invalid("max services must be at least 1".into()));
        }
        let slots = opts
            .maglev_size
            .checked_mul(opts.max_services)
            .filter(|&s| s <= 1 << 28)
            .ok_or_else(|| LbError::Invalid("Maglev size × max services is too large".into()))?;
        let cpus = aya::util::nr_cpus().map_err(|(what, cause)| LbError::Io { what: what.into(), cause })? as u32;
        let sets = flow_sets(opts.max_flows, cpus)?;
        let flow_mask = sets - 1;
        let mut loader = EbpfLoader::new();
        loader
            .override_global("lb_maglev_size", &opts.maglev_size, true)
            .map_max_entries("maglev", slots)
            .map_max_entries("services", opts.max_services)
            .map_max_entries("svc_stats", opts.max_services)
            .override_global("lb_flow_mask", &flow_mask, true)
            .override_global("lb_nr_cpus", &cpus, true)
            .map_max_entries("conn", sets);
        for dir in opts.pin_dir.iter().chain(&opts.shared_pin_dir) {
            ensure_bpffs(dir)?;
            fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        }
        let shared = |name: &str| opts.shared_pin_dir.is_some() && SHARED_MAPS.contains(&name);
        let mut pin_paths: Vec<(&str, PathBuf)> = Vec::new();
        for name in MAP_NAMES {
            match (&opts.shared_pin_dir, &opts.pin_dir) {
                (Some(dir), _) if shared(name) => pin_paths.push((name, dir.join(name))),
                (_, Some(dir)) => pin_paths.push((name, dir.join(name))),
                _ => {}
            }
        }
        for (name, path) in &pin_paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(OBJECT)?;
        // Shared maps are pinned in the instance's directory too, so `open(pin_dir)` finds all.
        if let Some(dir) = &opts.pin_dir {
            for name in MAP_NAMES.iter().filter(|n| shared(n)) {
                let path = dir.join(name);
                if !path.exists() {
                    let map = ebpf.map(name).ok_or_else(|| LbError::Invalid(format!("object has no map {name}")))?;
                    map.pin(&path).map_err(|e| LbError::Io {
                        what: format!("pinning {}", path.display()),
                        cause: std::io::Error::other(e.to_string()),
                    })?;
                }
            }
        }
        for name in ["lb_xdp", "lb_pass"] {
            xdp_program(&mut ebpf, name)?.load().map_err(prog_err(format!("verifying {name}")))?;
        }
        tc_program(&mut ebpf)?.load().map_err(prog_err("verifying lb_rev"))?;
        let maps = LbMaps::from_maps(|name| {
            ebpf.take_map(name).ok_or_else(|| LbError::Invalid(format!("object has no map {name}")))
        })?;
        // A reused pinned table keeps its size; the datapath's set mask must be made for it.
        if maps.conn.len() != sets {
            return Err(LbError::Invalid(format!(
                "the pinned connection table holds {} flows per CPU, not {}",
                maps.conn.len() as usize * FLOW_WAYS,
                sets as usize * FLOW_WAYS
            )));
        }
        let mut lb = LoadBalancer {
            ebpf: Some(ebpf),
            maps,
            maglev_size: opts.maglev_size,
            max_services: opts.max_services,
            pin_dir: opts.pin_dir.clone(),
            links: Vec::new(),
        };
        let mut cfg = lb.config()?;
        if cfg.maglev_size != 0 && (cfg.maglev_size, cfg.max_services) != (opts.maglev_size, opts.max_services) {
            return Err(LbError::Invalid(format!(
                "the pinned maps were made for Maglev size {} × {} services, not {} × {}",
                cfg.maglev_size, cfg.max_services, opts.maglev_size, opts.max_services
            )));
        }
        cfg.maglev_size = opts.maglev_size;
        cfg.max_services = opts.max_services;
        lb.set_config(cfg)?;
        Ok(lb)
    }

    /// Opens the maps another process pinned in `pin_dir` (no programs: enough to manage
    /// services, announcements and read stats).
    pub fn open(pin_dir: &Path) -> Result<Self> {
        if !pin_dir.join("config").exists() {
            return Err(LbError::NotAttached(pin_dir.to_path_buf()));
        }
        let maps = LbMaps::from_maps(|name| {
            let path = pin_dir.join(name);
            let data = MapData::from_pin(&path).map_err(map_err(format!("opening {}", path.display())))?;
            Map::from_map_data(data).map_err(map_err(format!("opening {}", path.display())))
        })?;
        let cfg = maps.config.get(&0, 0).map_err(map_err("reading config"))?;
        Ok(LoadBalancer {
            ebpf: None,
            maps,
            maglev_size: cfg.maglev_size,
            max_services: cfg.max_services,
            pin_dir: Some(pin_dir.to_path_buf()),
            links: Vec::new(),
        })
    }

    pub fn maglev_size(&self) -> u32 {
        self.maglev_size
    }

    pub fn max_services(&self) -> u32 {
        self.max_services
    }

    pub fn pin_dir(&self) -> Option<&Path> {
        self.pin_dir.as_deref()
    }

    pub(crate) fn config(&self) -> Result<ConfigValue> {
        self.maps.config.get(&0, 0).map_err(map_err("reading config"))
    }

    pub(crate) fn set_config(&mut self, cfg: ConfigValue) -> Result<()> {
        self.maps.config.set(0, cfg, 0).map_err(map_err("writing config"))
    }

    /// Tells the datapath which device it answers ARP on and with which MAC (`attach` does
    /// this; tests call it directly). `ifindex` 0 answers on any device.
    pub fn set_device(&mut self, ifindex: u32, mac: [u8; 6]) -> Result<()> {
        let cfg = ConfigValue { mac, ifindex, ..self.config()? };
        self.set_config(cfg)
    }

    /// Attaches the XDP program to `iface` of the calling thread's network namespace, and the
    /// reply translation (tc egress) to the same device. With a pin directory the links are
    /// pinned there and outlive this process; otherwise they end when `self` is dropped.
    pub fn attach(&mut self, iface_name: &str, mode: AttachMode) -> Result<Attached> {
        let ifindex = iface::ifindex(iface_name)?;
        let mac = iface::mac(iface_name)?;
        if let Some(dir) = self.pin_dir.as_ref().filter(|d| d.join(LINK_XDP).exists()) {
            return Err(LbError::AlreadyAttached(dir.join(LINK_XDP)));
        }
        let ebpf = self.ebpf.as_mut().ok_or(LbError::NoProgram)?;
        let xdp = xdp_program(ebpf, "lb_xdp")?;
        let (id, used, fallback) = match mode {
            AttachMode::Skb => (attach_xdp(xdp, ifindex, XdpMode::Skb, iface_name)?, AttachMode::Skb, None),
            AttachMode::Native => match attach_xdp(xdp, ifindex, XdpMode::Driver, iface_name) {
                Ok(id) => (id, AttachMode::Native, None),
                Err(native) => {
                    let id = attach_xdp(xdp, ifindex, XdpMode::Skb, iface_name)?;
                    (
                        id,
                        AttachMode::Skb,
                        Some(format!("native XDP refused on {iface_name} ({native}); running in SKB mode")),
                    )
                }
            },
        };
        let xdp_link: FdLink = xdp
            .take_link(id)
            .map_err(prog_err("taking the XDP link"))?
            .try_into()
            .map_err(|e| LbError::Invalid(format!("XDP attachment is not a bpf_link: {e}")))?;
        let tc = tc_program(ebpf)?;
        let tc_id = match tc.attach(iface_name, TcAttachType::Egress) {
            Ok(id) => id,
            Err(e) => {
                drop(xdp_link);
                return Err(LbError::Program { what: format!("attaching lb_rev to {iface_name} egress"), cause: e });
            }
        };
        let tc_link: FdLink = tc
            .take_link(tc_id)
            .map_err(prog_err("taking the tc link"))?
            .try_into()
            .map_err(|e| LbError::Invalid(format!("tc attachment is not a bpf_link: {e}")))?;
        self.set_device(ifindex, mac)?;
        self.keep_link(xdp_link, LINK_XDP)?;
        self.keep_link(tc_link, LINK_TC)?;
        Ok(Attached { ifindex, mode: used, fallback })
    }

    /// Attaches the XDP_PASS program to `iface`: on a veth, frames the load balancer sends
    /// back with XDP_TX are only delivered when the peer device has an XDP program
    /// (docs/architecture.md, "Platform facts"), so call this for the peer of the device given to
    /// `attach`. Pinned as `link_pass_<iface>`
    /// with a pin directory, otherwise ends with `self`.
    pub fn attach_peer_pass(&mut self, iface_name: &str) -> Result<()> {
        let ifindex = iface::ifindex(iface_name)?;
        let ebpf = self.ebpf.as_mut().ok_or(LbError::NoProgram)?;
        let prog = xdp_program(ebpf, "lb_pass")?;
        let id = attach_xdp(prog, ifindex, XdpMode::Driver, iface_name)
            .or_else(|_| attach_xdp(prog, ifindex, XdpMode::Skb, iface_name))?;
        let link: FdLink = prog
            .take_link(id)
            .map_err(prog_err("taking the XDP link"))?
            .try_into()
            .map_err(|e| LbError::Invalid(format!("XDP attachment is not a bpf_link: {e}")))?;
        self.keep_link(link, &format!("link_pass_{iface_name}"))
    }

    /// `attach_peer_pass` inside the network namespace at `netns`.
    pub fn attach_peer_pass_in_netns(&mut self, netns: &Path, iface_name: &str) -> Result<()> {
        netns::in_netns(netns, || self.attach_peer_pass(iface_name))?
    }

    /// Pins `link` as `name` in the pin directory, or keeps it for the lifetime of `self`.
    fn keep_link(&mut self, link: FdLink, name: &str) -> Result<()> {
        match &self.pin_dir {
            Some(dir) => {
                let path = dir.join(name);
                link.pin(&path).map(drop).map_err(|e| LbError::Io {
                    what: format!("pinning {}", path.display()),
                    cause: std::io::Error::other(e.to_string()),
                })
            }
            None => {
                self.links.push(link);
                Ok(())
            }
        }
    }

    /// `attach` inside the network namespace at `netns` (e.g. `/run/netns/NAME`).
    pub fn attach_in_netns(&mut self, netns: &Path, iface_name: &str, mode: AttachMode) -> Result<Attached> {
        netns::in_netns(netns, || self.attach(iface_name, mode))?
    }

    /// Ends this process's attachments, and the pinned ones with every pinned map.
    pub fn detach(mut self) -> Result<()> {
        self.links.clear();
        match self.pin_dir.take() {
            Some(dir) => {
                drop(self);
                detach_pinned(&dir)
            }
            None => Ok(()),
        }
    }
}

pub(crate) fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    ebpf.program_mut(name)
        .ok_or_else(|| LbError::Invalid(format!("object has no program {name}")))?
        .try_into()
        .map_err(prog_err(name))
}

pub(crate) fn tc_program(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier> {
    ebpf.program_mut("lb_rev")
        .ok_or_else(|| LbError::Invalid("object has no program lb_rev".into()))?
        .try_into()
        .map_err(prog_err("lb_rev"))
}

fn attach_xdp(xdp: &mut Xdp, ifindex: u32, mode: XdpMode, iface_name: &str) -> Result<aya::programs::xdp::XdpLinkId> {
    xdp.attach_to_if_index(ifindex, mode).map_err(prog_err(format!("attaching lb_xdp to {iface_name} ({mode:?} mode)")))
}
