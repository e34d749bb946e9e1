//! The agent's load balancer for LoadBalancer services: the bundled XDP LB (`crate::lb`) on its
//! node's `eth0`, programmed from the Services' load-balancer addresses and ready endpoints,
//! and the ARP answers for the addresses this node announces (`l2.rs` elects the announcer).
//!
//! - `bpf-lb-acceleration: native` attaches in native (driver) XDP mode; otherwise the agent
//!   serves the addresses through the same program in generic (SKB) mode, so `ip link` shows
//!   `xdp` or `xdpgeneric`.
//! - The instances of all the agents share their services, backends and connection table
//!   through maps pinned in the bpf filesystem the lab's nodes share (`sandbox::SharedBpffs`):
//!   the reply of a flow balanced on node A leaves through the backend's node B, whose `lb_rev`
//!   translates it back to the address. Every agent computes the same services from the same
//!   API objects; a lock on the pin directory serialises their writes. ARP answers and counters
//!   stay per node. The programs and links belong to the agent process: they go with it.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::CiliumError;
use crate::backend::lab::services::Frontend;
use crate::lb::{AttachMode, Frontend as LbFrontend, LoadBalancer, LoadOptions, Proto, Service, ServiceKind};

/// The node device the agent attaches to and announces on.
pub const DEVICE: &str = "eth0";

fn pins() -> PathBuf {
    Path::new(crate::backend::lab::sandbox::SHARED_BPFFS).join("lb")
}

fn err(what: impl Into<String>) -> impl FnOnce(crate::lb::LbError) -> CiliumError {
    let what = what.into();
    move |source| CiliumError::Datapath(Box::new(crate::backend::lab::LabError::Lb { what, source: Box::new(source) }))
}

/// `bpf-lb-acceleration` of `cilium-config`: `native` (or `best-effort`) is driver mode.
pub fn acceleration(option: Option<&str>) -> AttachMode {
    if matches!(option, Some("native") | Some("best-effort")) { AttachMode::Native } else { AttachMode::Skb }
}

/// The XDP LB's services for the LoadBalancer frontends the kube-proxy replacement serves.
pub fn services(frontends: &[Frontend]) -> Vec<Service> {
    let mut out: Vec<Service> = frontends
        .iter()
        .filter(|f| f.kind == "LoadBalancer")
        .filter_map(|f| {
            let proto = match f.proto.as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => return None,
            };
            let mut backends: Vec<SocketAddrV4> =
                f.backends.iter().map(|b| SocketAddrV4::new(*b, f.target_port)).collect();
            backends.sort();
            backends.dedup();
            Some(Service {
                frontend: LbFrontend { vip: f.ip, port: f.port, proto },
                backends,
                kind: ServiceKind::LoadBalancer,
            })
        })
        .collect();
    out.sort_by_key(|s| s.frontend);
    out.dedup_by_key(|s| s.frontend);
    out
}

/// The agent's instance and what it announces.
#[derive(Default)]
pub struct AgentLb {
    lb: Option<LoadBalancer>,
    mode: Option<AttachMode>,
}

/// An exclusive lock on the shared pin directory, released when dropped.
struct Locked(std::fs::File);

impl Locked {
    fn take(dir: &Path) -> Result<Locked, CiliumError> {
        std::fs::create_dir_all(dir).map_err(CiliumError::io(format!("creating {}", dir.display())))?;
        let f = std::fs::File::open(dir).map_err(CiliumError::io(format!("opening {}", dir.display())))?;
        // SAFETY: a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(CiliumError::Io {
                what: format!("locking {}", dir.display()),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Locked(f))
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: the descriptor is still open.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

impl AgentLb {
    /// Bring the instance in line: attached in `mode` while there is a service to serve, the
    /// shared maps holding `wanted`, and ARP answers for `announce`. Returns the addresses newly
    /// announced (the caller sends a gratuitous ARP for each).
    pub fn sync(
        &mut self,
        wanted: &[Service],
        mode: AttachMode,
        announce: &BTreeSet<Ipv4Addr>,
    ) -> Result<Vec<Ipv4Addr>, CiliumError> {
        let dir = pins();
        let _lock = Locked::take(&dir)?;
        if wanted.is_empty() {
            if let Some(mut lb) = self.lb.take() {
                lb.sync_services(&[]).map_err(err("removing the services"))?;
            }
            self.mode = None;
            return Ok(vec![]);
        }
        if self.mode != Some(mode) {
            // Dropping the instance detaches its program (the links are the process's).
            self.lb = None;
            self.mode = None;
        }
        if self.lb.is_none() {
            // A flow balanced to a pod of this node is redirected into the pod past the node's
            // conntrack, which would then pick the pod's replies up mid-stream as new
            // connections (and masquerade them) before the LB's reply translation sees them.
            let loose = "/proc/sys/net/netfilter/nf_conntrack_tcp_loose";
            std::fs::write(loose, "0").map_err(CiliumError::io(format!("writing {loose}")))?;
            let opts = LoadOptions {
                maglev_size: 1021,
                max_services: 64,
                max_flows: 65536,
                pin_dir: None,
                shared_pin_dir: Some(dir.clone()),
            };
            let mut lb = LoadBalancer::load(&opts).map_err(err("loading the XDP load balancer"))?;
            let attached = lb.attach(DEVICE, mode).map_err(err(format!("attaching to {DEVICE}")))?;
            if let Some(why) = attached.fallback {
                return Err(CiliumError::Config { key: "bpf-lb-acceleration".into(), why });
            }
            self.lb = Some(lb);
            self.mode = Some(mode);
        }
        let lb = self.lb.as_mut().expect("loaded above");
        lb.sync_services(wanted).map_err(err("programming the services"))?;
        let current: BTreeSet<Ipv4Addr> = lb.announced().map_err(err("reading announcements"))?.into_iter().collect();
        for ip in current.difference(announce) {
            lb.withdraw_vip(*ip).map_err(err("withdrawing an address"))?;
        }
        let mut new = Vec::new();
        for ip in announce.difference(&current) {
            lb.announce_vip(*ip).map_err(err("announcing an address"))?;
            new.push(*ip);
        }
        Ok(new)
    }
}
