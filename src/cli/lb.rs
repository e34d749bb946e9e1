//! `tutor lb`: the bundled XDP load balancer on a real interface. Maps and links are pinned
//! under /sys/fs/bpf/tutor/<iface>/, so each command is a separate process.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use crate::lb::{self, AttachMode, Frontend, LoadBalancer, LoadOptions, Service, ServiceKind};
use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

use super::Exit;

#[derive(Debug, Args)]
pub struct LbArgs {
    #[command(subcommand)]
    command: LbCommand,
}

#[derive(Debug, Args)]
struct Target {
    /// Interface the load balancer is attached to (default: the only one attached).
    #[arg(long, env = "TUTOR_LB_IFACE")]
    iface: Option<String>,
    /// Pin directory (default: /sys/fs/bpf/tutor/<iface>).
    #[arg(long)]
    pin_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Native,
    Skb,
}

#[derive(Debug, Subcommand)]
enum LbCommand {
    /// Load the program, pin its maps and attach it (XDP ingress + tc egress) to an interface.
    Attach {
        #[arg(long)]
        iface: String,
        /// native falls back to skb with a warning when the driver refuses.
        #[arg(long, value_enum, default_value = "native")]
        mode: Mode,
        /// Slots per Maglev table (a prime).
        #[arg(long, default_value_t = 65537)]
        maglev_size: u32,
        #[arg(long, default_value_t = 16)]
        max_services: u32,
        /// Connection table: flows in all (each CPU holds its share, rounded up to a power of two).
        #[arg(long, default_value_t = 65536)]
        max_flows: u32,
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Network namespace of the interface (a name from `ip netns list`, or a path).
        #[arg(long)]
        netns: Option<String>,
    },
    /// Detach from the interface and remove every pin.
    Detach {
        #[command(flatten)]
        target: Target,
    },
    /// Manage services.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Answer ARP requests for a VIP on the attached interface (or stop with --withdraw).
    Announce {
        vip: Ipv4Addr,
        #[arg(long)]
        withdraw: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Packet and byte counters: global, per service, per backend.
    Stats {
        #[command(flatten)]
        target: Target,
    },
    /// Measure the datapath (BPF_PROG_TEST_RUN) and requests/s against nftables DNAT.
    #[cfg(feature = "lb-testing")]
    Bench {
        /// BPF_PROG_TEST_RUN calls per figure (repeat = 1 each).
        #[arg(long, default_value_t = 200_000)]
        calls: u32,
        /// Seconds of HTTP-like requests per datapath in the namespace comparison (0: skip it).
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Instead: packets per second through a lab-shaped node, XDP LB (native, generic)
        /// against nftables DNAT with conntrack, the generator being XDP live frames.
        #[arg(long)]
        traffic: bool,
        #[command(flatten)]
        traffic_opts: TrafficArgs,
    },
}

/// Options of `lb bench --traffic`.
#[cfg(feature = "lb-testing")]
#[derive(Debug, Args)]
struct TrafficArgs {
    /// The service address (a VIP: the lab's deathstar-lb is 192.168.250.1:80).
    #[arg(long, default_value = "192.168.250.1:80", requires = "traffic")]
    vip: SocketAddrV4,
    /// A backend IP:PORT (repeatable; one pod each). Default: 10.244.1.11:80 and 10.244.2.12:80.
    #[arg(long = "backend", requires = "traffic")]
    backends: Vec<SocketAddrV4>,
    #[arg(long, value_enum, default_value = "udp", requires = "traffic")]
    proto: TrafficProto,
    /// Packets per path and round.
    #[arg(long, default_value_t = 1_000_000, requires = "traffic")]
    packets: u32,
    /// Rounds; in each, every path takes a turn. Figures are medians over the rounds.
    #[arg(long, default_value_t = 3, requires = "traffic")]
    rounds: usize,
    /// Distinct client (address, port) sources the packets cycle through.
    #[arg(long, default_value_t = 16384, requires = "traffic")]
    flows: u32,
}

#[cfg(feature = "lb-testing")]
#[derive(Debug, Clone, Copy, ValueEnum)]
enum TrafficProto {
    /// UDP datagrams.
    Udp,
    /// TCP SYNs.
    Tcp,
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Create a service, or replace the backends of an existing one (established flows stay).
    Add {
        /// VIP:PORT[/tcp|/udp]
        frontend: String,
        /// IP:PORT, repeatable.
        #[arg(long = "backend")]
        backends: Vec<SocketAddrV4>,
        /// Type shown by `service list`.
        #[arg(long = "type", default_value = "LoadBalancer")]
        kind: String,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a service.
    Del {
        frontend: String,
        #[command(flatten)]
        target: Target,
    },
    /// List services like `cilium-dbg service list`.
    List {
        #[command(flatten)]
        target: Target,
    },
}

pub async fn execute(args: LbArgs) -> anyhow::Result<Exit> {
    match args.command {
        LbCommand::Attach { iface, mode, maglev_size, max_services, max_flows, pin_dir, netns } => {
            let pin_dir = pin_dir.unwrap_or_else(|| lb::default_pin_dir(&iface));
            if pin_dir.join("config").exists() {
                bail!(
                    "a load balancer is already attached with pins in {} (run `tutor lb detach` first)",
                    pin_dir.display()
                );
            }
            let opts = LoadOptions {
                maglev_size,
                max_services,
                max_flows,
                pin_dir: Some(pin_dir.clone()),
                shared_pin_dir: None,
            };
            let mut balancer = LoadBalancer::load(&opts).context("loading the load balancer")?;
            let mode = match mode {
                Mode::Native => AttachMode::Native,
                Mode::Skb => AttachMode::Skb,
            };
            let attached = match &netns {
                Some(ns) => {
                    let path = if ns.contains('/') { PathBuf::from(ns) } else { PathBuf::from("/run/netns").join(ns) };
                    balancer.attach_in_netns(&path, &iface, mode)
                }
                None => balancer.attach(&iface, mode),
            };
            match attached {
                Ok(attached) => {
                    if let Some(why) = attached.fallback {
                        eprintln!("{} {why}", console::style("warning:").yellow().bold());
                    }
                    out(&format!("attached to {iface} ({:?} mode), pinned in {}\n", attached.mode, pin_dir.display()));
                    Ok(Exit::Pass)
                }
                Err(e) => {
                    drop(balancer);
                    let _ = lb::detach_pinned(&pin_dir);
                    Err(e).with_context(|| format!("attaching to {iface}"))
                }
            }
        }
        LbCommand::Detach { target } => {
            let dir = target.pin_dir()?;
            lb::detach_pinned(&dir)?;
            out(&format!("detached, removed {}\n", dir.display()));
            Ok(Exit::Pass)
        }
        LbCommand::Service { command } => service(command),
        LbCommand::Announce { vip, withdraw, target } => {
            let mut balancer = target.open()?;
            if withdraw {
                if !balancer.withdraw_vip(vip)? {
                    bail!("{vip} was not announced");
                }
            } else {
                balancer.announce_vip(vip)?;
            }
            Ok(Exit::Pass)
        }
        LbCommand::Stats { target } => {
            out(&render_stats(&target.open()?.stats()?));
            Ok(Exit::Pass)
        }
        #[cfg(feature = "lb-testing")]
        LbCommand::Bench { traffic: true, traffic_opts: t, .. } => {
            let defaults = lb::traffic::TrafficOptions::default();
            let opts = lb::traffic::TrafficOptions {
                vip: t.vip,
                backends: if t.backends.is_empty() { defaults.backends } else { t.backends },
                proto: match t.proto {
                    TrafficProto::Udp => lb::Proto::Udp,
                    TrafficProto::Tcp => lb::Proto::Tcp,
                },
                packets: t.packets,
                rounds: t.rounds,
                flows: t.flows,
                dedupe: false,
            };
            let report = tokio::task::spawn_blocking(move || lb::traffic::run(&opts)).await??;
            out(&report.to_string());
            Ok(Exit::Pass)
        }
        #[cfg(feature = "lb-testing")]
        LbCommand::Bench { calls, seconds, .. } => {
            let opts = lb::bench::BenchOptions { calls, seconds };
            let report = tokio::task::spawn_blocking(move || lb::bench::run(&opts)).await??;
            out(&report.to_string());
            Ok(Exit::Pass)
        }
    }
}

fn service(command: ServiceCommand) -> anyhow::Result<Exit> {
    match command {
        ServiceCommand::Add { frontend, backends, kind, target } => {
            let frontend: Frontend = frontend.parse()?;
            let kind: ServiceKind = kind.parse()?;
            let mut balancer = target.open()?;
            let view = balancer.upsert_service(&Service { frontend, backends, kind })?;
            out(&format!("{} ({} backends)\n", view.frontend, view.backends.len()));
        }
        ServiceCommand::Del { frontend, target } => {
            let frontend: Frontend = frontend.parse()?;
            if !target.open()?.remove_service(&frontend)? {
                bail!("no service {frontend}");
            }
        }
        ServiceCommand::List { target } => {
            out(&render_services(&target.open()?.services()?));
        }
    }
    Ok(Exit::Pass)
}

impl Target {
    fn pin_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.pin_dir {
            return Ok(dir.clone());
        }
        if let Some(iface) = &self.iface {
            return Ok(lb::default_pin_dir(iface));
        }
        let root = lb::default_pin_dir("");
        let attached: Vec<PathBuf> = std::fs::read_dir(&root)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("config").exists()).collect())
            .unwrap_or_default();
        match attached.as_slice() {
            [one] => Ok(one.clone()),
            [] => bail!(
                "no load balancer is attached (nothing in {}): run `tutor lb attach --iface IFACE`",
                root.display()
            ),
            _ => bail!("several load balancers are attached under {}: say which with --iface", root.display()),
        }
    }

    fn open(&self) -> anyhow::Result<LoadBalancer> {
        Ok(LoadBalancer::open(&self.pin_dir()?)?)
    }
}

/// Writes to stdout; a closed pipe (`tutor lb stats | head -1`) is not an error.
fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// The layout of `cilium-dbg service list`.
fn render_services(services: &[lb::ServiceView]) -> String {
    let mut out = format!("{:<5}{:<24}{:<15}{}\n", "ID", "Frontend", "Service Type", "Backend");
    for s in services {
        let frontend = s.frontend.to_string();
        let kind = s.kind.to_string();
        let proto = s.frontend.proto;
        if s.backends.is_empty() {
            out.push_str(&format!("{:<5}{frontend:<24}{kind:<15}\n", s.id + 1));
        }
        for (i, b) in s.backends.iter().enumerate() {
            let backend = format!("{} => {}/{proto} (active)", i + 1, b.addr);
            if i == 0 {
                out.push_str(&format!("{:<5}{frontend:<24}{kind:<15}{backend}\n", s.id + 1));
            } else {
                out.push_str(&format!("{:<44}{backend}\n", ""));
            }
        }
    }
    out
}

fn render_stats(stats: &lb::Stats) -> String {
    let mut out = String::new();
    for (name, value) in &stats.global {
        out.push_str(&format!("{name:<18}{value}\n"));
    }
    out.push_str(&format!("\n{:<24}{:>12}{:>14}\n", "Frontend", "Packets", "Bytes"));
    for (f, c) in &stats.services {
        out.push_str(&format!("{:<24}{:>12}{:>14}\n", f.to_string(), c.packets, c.bytes));
    }
    out.push_str(&format!("\n{:<24}{:>12}{:>14}\n", "Backend", "Packets", "Bytes"));
    for (b, c) in &stats.backends {
        out.push_str(&format!("{:<24}{:>12}{:>14}\n", b.to_string(), c.packets, c.bytes));
    }
    out
}
