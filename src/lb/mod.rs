//! Userspace of the bundled XDP L4 load balancer (docs/architecture.md, "The XDP load
//! balancer"): the C datapath in `ebpf/lb.bpf.c`, loaded and driven with aya.
//!
//! # Library use (the lab backend programs it from Kubernetes Services)
//!
//! ```no_run
//! use tutor::lb::{AttachMode, Frontend, LoadBalancer, LoadOptions, Service, ServiceKind};
//! # fn main() -> Result<(), tutor::lb::LbError> {
//! // Maps pinned under a directory of your choice so another process can manage them.
//! let opts = LoadOptions { pin_dir: Some("/sys/fs/bpf/tutor/lab1-kind-worker".into()), ..Default::default() };
//! let mut lb = LoadBalancer::load(&opts)?;
//! // XDP on eth0 of a node's network namespace (entered with setns on a dedicated thread),
//! // plus the reply translation on the same device's egress.
//! let attached = lb.attach_in_netns("/run/netns/kind-worker".as_ref(), "eth0", AttachMode::Native)?;
//! if let Some(why) = attached.fallback { eprintln!("warning: {why}"); }
//! // XDP_TX out of a veth is delivered only if its peer runs XDP: give it the XDP_PASS program.
//! lb.attach_peer_pass_in_netns("/run/netns/tutor-1-host".as_ref(), "veth-kind-worker")?;
//! lb.upsert_service(&Service {
//!     frontend: "172.18.255.200:80/tcp".parse()?,
//!     backends: vec!["10.244.1.5:8080".parse().unwrap(), "10.244.2.7:8080".parse().unwrap()],
//!     kind: ServiceKind::LoadBalancer,
//! })?;
//! lb.announce_vip("172.18.255.200".parse().unwrap())?;    // ARP replies for the VIP
//! for svc in lb.services()? { println!("{} -> {:?}", svc.frontend, svc.backends); }
//! println!("{:?}", lb.stats()?.global);
//! lb.remove_service(&"172.18.255.200:80/tcp".parse::<Frontend>()?)?;
//! lb.detach()?;                                             // links and pins removed
//! # Ok(()) }
//! ```
//!
//! - `LoadBalancer::load` loads the programs and creates the maps (reusing maps already pinned
//!   in `pin_dir`); `LoadBalancer::open(pin_dir)` reopens pinned maps without programs, enough
//!   for services, announcements and stats from another process.
//! - With a `pin_dir`, `attach` pins the XDP and tc links there: the attachment outlives the
//!   process (kernel ≥ 5.9 links otherwise die with it) until `detach`/`detach_pinned`.
//!   Without one, the attachment ends when the `LoadBalancer` is dropped.
//! - `services()` reads everything back from the maps; no side table exists.
//! - One instance per device (each node's eth0 in the lab), each with its own `pin_dir`, and
//!   all with the same `shared_pin_dir`: they share services, backends and the connection
//!   table, so a reply leaving through another node than the one that balanced the request is
//!   still translated back to the VIP; ARP announcements and counters stay per node. Remove
//!   the shared pins with `remove_shared_pins` once every instance is detached.
//! - Senders into a veth carrying the program should not leave TCP/UDP checksums to offload
//!   (`ethtool -K <peer> tx off`): XDP cannot see that a checksum is only partial.
//! - Test and benchmark helpers sit behind the `lb-testing` cargo feature (on by default, for
//!   `tutor lb bench` and the test suite): `LoadBalancer::test_run`/`test_run_rev`
//!   (BPF_PROG_TEST_RUN), `netns::in_scratch_netns`, the `topology` test network and `bench`.

mod balancer;
#[cfg(feature = "lb-testing")]
pub mod bench;
mod error;
pub mod flowtable;
pub mod hash;
mod iface;
pub mod maglev;
pub mod maps;
pub mod netns;
mod pins;
mod service;
mod stats;
#[cfg(feature = "lb-testing")]
mod testrun;
#[cfg(feature = "lb-testing")]
pub mod topology;
#[cfg(feature = "lb-testing")]
pub mod traffic;

pub use balancer::{AttachMode, Attached, LoadBalancer, LoadOptions, MAP_NAMES, SHARED_MAPS, default_pin_dir};
pub use error::LbError;
pub use pins::{detach_pinned, remove_shared_pins};
pub use service::{BackendView, Frontend, Proto, Service, ServiceKind, ServiceView};
pub use stats::Stats;

/// XDP actions as `BPF_PROG_TEST_RUN` returns them.
pub mod action {
    pub const ABORTED: u32 = 0;
    pub const DROP: u32 = 1;
    pub const PASS: u32 = 2;
    pub const TX: u32 = 3;
    pub const REDIRECT: u32 = 4;
}
