//! `tutor lab`: keep a lab up to explore by hand, and the lab's shims (`kubectl`, `kind`, …).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use super::Exit;
use crate::backend::Target;
use crate::backend::lab::{self, LabError, protocol, registry, supervisor};
use crate::runner::kept;

#[derive(Debug, clap::Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Debug, clap::Subcommand)]
enum LabCommand {
    /// Bring a lab up (with a cluster when --config is given) and leave it running.
    Up {
        /// kind Cluster config: create the cluster right away, as `kind create cluster --config`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Lab name (default: lab-XXXX).
        #[arg(long)]
        name: Option<String>,
    },
    /// List running labs.
    List,
    /// Run a command or a shell in a lab: on `host`, a node, or `pod/NAME` (`ns/NS/pod/NAME`)
    ///
    /// In a lab that `tutor run --keep` left, it starts with the tutorial's state of that target:
    /// variables, functions, captured values, working directory.
    Exec {
        /// The lab (`tutor lab list`).
        name: String,
        /// `host`, a node, `pod/NAME` or `ns/NS/pod/NAME`.
        target: String,
        /// One argument is a command line, several are a command and its arguments; none: a
        /// shell (interactive when stdin is a terminal, else the script on stdin).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Tear a lab down (the only one when no name is given).
    Down { name: Option<String> },
    /// Remove what crashed labs left behind.
    Gc,
    /// A node agent (the kubelet's role) for one node of a lab running the real control plane;
    /// started inside the node's namespaces by the lab.
    #[command(hide = true)]
    NodeAgent(Box<NodeAgentArgs>),
    /// The lab's supervisor process (started by `up` and by `tutor run`).
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner: Option<i32>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct NodeAgentArgs {
    /// The Node's name.
    #[arg(long)]
    node: String,
    /// The node's InternalIP (where the kubelet API listens).
    #[arg(long)]
    node_ip: std::net::Ipv4Addr,
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Pod files and container logs.
    #[arg(long)]
    state_dir: PathBuf,
    /// Image helpers shared by every agent (outside /run, which pods get privately).
    #[arg(long, default_value = "/var/lib/tutor/images")]
    image_dir: PathBuf,
    /// The node is NotReady until a CNI network configuration appears here.
    #[arg(long)]
    cni_conf_dir: PathBuf,
    /// Cluster DNS server(s), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10.96.0.10")]
    cluster_dns: Vec<std::net::Ipv4Addr>,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// `k=v,…` labels to register the Node with.
    #[arg(long, default_value = "")]
    node_labels: String,
    /// `key[=value]:Effect,…` taints to register the Node with.
    #[arg(long, default_value = "")]
    register_with_taints: String,
    /// The kubelet API server program (`tutor-kubelet`).
    #[arg(long)]
    kubelet_server: Option<PathBuf>,
    /// Serving certificate of the kubelet API (port 10250).
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    #[arg(long)]
    tls_private_key_file: Option<PathBuf>,
    /// CA that the kubelet API's clients (the API server) must present certificates from.
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// Play kindnet on this node (kind's default CNI): CNI configuration, routes to the other
    /// nodes' pod CIDRs, masquerade of traffic leaving the pod network.
    #[arg(long)]
    kindnet: bool,
    /// The cluster's pod network (the kind config's podSubnet), what kindnet does not masquerade.
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// The identity kindnet's role acts as (kind's `kindnet` ServiceAccount); the node's own
    /// may not list the other Nodes.
    #[arg(long)]
    kindnet_kubeconfig: Option<PathBuf>,
    /// Static pod manifests (`<name>.json`, with the running process in `<name>.pid`): the
    /// agent keeps their mirror pods in the API.
    #[arg(long)]
    pod_manifest_path: Option<PathBuf>,
}

async fn node_agent(a: NodeAgentArgs) -> anyhow::Result<Exit> {
    use crate::backend::lab::agent;
    let usage = |e: String| {
        eprintln!("{} {e}", console::style("error:").red().bold());
        Ok(Exit::Usage)
    };
    let node_labels = match agent::node::parse_labels(&a.node_labels) {
        Ok(l) => l,
        Err(e) => return usage(e.to_string()),
    };
    let taints = match agent::node::parse_taints(&a.register_with_taints) {
        Ok(t) => t,
        Err(e) => return usage(e.to_string()),
    };
    let cluster_cidr = match a.cluster_cidr.as_deref().map(crate::backend::lab::topology::Cidr::parse).transpose() {
        Ok(c) => c,
        Err(e) => return usage(format!("--cluster-cidr: {e}")),
    };
    let opts = agent::Options {
        node: a.node,
        node_ip: a.node_ip,
        kubeconfig: a.kubeconfig,
        state_dir: a.state_dir,
        image_dir: a.image_dir,
        cni_conf_dir: a.cni_conf_dir,
        cluster_dns: a.cluster_dns,
        cluster_domain: a.cluster_domain,
        node_labels,
        taints,
        kubelet_server: a.kubelet_server,
        tls_cert_file: a.tls_cert_file,
        tls_private_key_file: a.tls_private_key_file,
        client_ca_file: a.client_ca_file,
        kindnet: a.kindnet,
        cluster_cidr,
        kindnet_kubeconfig: a.kindnet_kubeconfig,
        pod_manifest_path: a.pod_manifest_path,
    };
    match agent::run(opts).await {
        Ok(()) => Ok(Exit::Pass),
        Err(e @ (agent::AgentError::Input(_) | agent::AgentError::Kubeconfig { .. })) => usage(e.to_string()),
        Err(e) => {
            eprintln!("{} {e}", console::style("error:").red().bold());
            Ok(Exit::Fail)
        }
    }
}

fn usage_or_fail(e: &LabError) -> Exit {
    if e.is_usage() { Exit::Usage } else { Exit::Fail }
}

fn report(e: LabError) -> Exit {
    eprintln!("{} {}", console::style("error:").red().bold(), e.report());
    usage_or_fail(&e)
}

pub async fn execute(args: LabArgs) -> anyhow::Result<Exit> {
    match args.command {
        LabCommand::Up { config, name } => {
            let name = name.unwrap_or_else(|| format!("lab-{}", &lab::network_id(&std::process::id().to_string())));
            let config = config.map(|c| std::path::absolute(&c).unwrap_or(c));
            let started = std::time::Instant::now();
            match tokio::task::spawn_blocking(move || lab::start(&name, None, config.as_deref(), None)).await? {
                Ok(info) => {
                    println!("lab {} is up ({} ms)", info.name, started.elapsed().as_millis());
                    for n in &info.nodes {
                        // Empty: the real control plane's node IPAM had not assigned it yet.
                        let cidr = if n.pod_cidr.is_empty() { "-" } else { n.pod_cidr.as_str() };
                        println!("  {:<22} {:<15} {cidr}", n.name, n.ip);
                    }
                    if let Err(why) = crate::backend::cgroup::base() {
                        eprintln!("note: {why}; processes a block leaves are ended by namespace only");
                    }
                    println!("enter it with:  tutor lab exec {} host -- bash", info.name);
                    println!("tear it down:   tutor lab down {}", info.name);
                    Ok(Exit::Pass)
                }
                Err(e) => Ok(report(e)),
            }
        }
        LabCommand::List => {
            // Live and starting labs; dead entries are `gc`'s.
            let entries: Vec<registry::Entry> =
                registry::entries().into_iter().filter(|e| !matches!(e, registry::Entry::Dead { .. })).collect();
            if entries.is_empty() {
                println!("no labs are up");
            }
            for e in entries {
                match e {
                    registry::Entry::Live(l) => println!(
                        "{}\tpid {}\tcluster {}\t{} nodes\t{} pods",
                        l.name,
                        l.pid,
                        l.cluster.as_deref().unwrap_or("-"),
                        l.nodes.len(),
                        l.pods.len()
                    ),
                    registry::Entry::Starting { name, pid } => println!("{name}\tpid {pid}\tstarting"),
                    registry::Entry::Dead { .. } => {}
                }
            }
            Ok(Exit::Pass)
        }
        LabCommand::Exec { name, target, command } => {
            let target: Target = target.parse().map_err(anyhow::Error::msg)?;
            let info = match registry::read_info(&name) {
                Ok(i) => i,
                Err(e) => return Ok(report(e)),
            };
            // The kept run this lab was left up for, if any: its shells' state.
            let kept = registry::kept_run(&name)
                .and_then(|path| kept::read_file(&path).ok())
                .filter(|k| k.name == name && k.backend == crate::backend::BackendKind::Lab);
            let run = kept::ShellRun::of(command);
            let shell = kept::shell(kept.as_ref(), &target, &run)?;
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            let cmd = match lab::target_command(&info, &target, &cwd, &shell.argv) {
                Ok(c) => c,
                Err(e) => return Ok(report(e)),
            };
            if kept.is_some() {
                super::shell::announce(&name, &target, &run, shell.restored);
            }
            super::shell::foreground(cmd, &shell.env).await
        }
        LabCommand::Down { name } => {
            let name = match name {
                Some(n) => n,
                None => {
                    let labs = registry::list();
                    match labs.as_slice() {
                        [one] => one.name.clone(),
                        [] => anyhow::bail!("no labs are up"),
                        _ => anyhow::bail!(
                            "several labs are up ({}): name the one to tear down",
                            labs.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    }
                }
            };
            if let Some(registry::Entry::Starting { pid, .. }) = registry::entry(&name) {
                return Ok(report(LabError::Starting { name, pid }));
            }
            match tokio::task::spawn_blocking(move || lab::stop(&name).map(|_| name)).await? {
                Ok(name) => {
                    println!("lab {name} is down");
                    Ok(Exit::Pass)
                }
                Err(e) => Ok(report(e)),
            }
        }
        LabCommand::Gc => {
            let r = registry::gc()?;
            let workdirs: Vec<String> =
                crate::runner::workdirs::sweep().iter().map(|p| p.display().to_string()).collect();
            let mut cgroups: Vec<String> =
                r.cgroups.iter().map(|(c, n)| crate::backend::cgroup::removed(c, *n)).collect();
            cgroups.extend(crate::backend::cgroup::sweep_runs());
            // Namespaces of killed packet-rate benchmarks (`tutor lb bench --traffic`).
            let bench_netns = crate::lb::netns::sweep_stale();
            let mut removed = 0;
            for (what, items) in [
                ("lab entry", &r.entries),
                ("netns", &r.netns),
                ("link", &r.links),
                ("bpf pin", &r.pins),
                ("work directory", &workdirs),
                ("cgroup", &cgroups),
                ("netns", &bench_netns),
            ] {
                for i in items {
                    println!("removed {what} {i}");
                    removed += 1;
                }
            }
            if removed == 0 {
                println!("nothing to clean");
            }
            Ok(Exit::Pass)
        }
        LabCommand::NodeAgent(a) => node_agent(*a).await,
        LabCommand::Supervise { name, owner, config } => {
            let opts = supervisor::Options { name: name.clone(), owner, config, exe: lab::tutor_exe() };
            let serving = tokio::task::spawn_blocking(move || supervise(opts));
            // SIGTERM, SIGINT or SIGHUP: tear down in order (the supervisor exits from there).
            let mut term = signal(SignalKind::terminate()).context("installing signal handlers")?;
            let mut int = signal(SignalKind::interrupt()).context("installing signal handlers")?;
            let mut hup = signal(SignalKind::hangup()).context("installing signal handlers")?;
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {}
                }
                let _ = tokio::task::spawn_blocking(move || protocol::call(&name, &protocol::Request::Down)).await;
            });
            serving.await?
        }
    }
}

/// Report readiness on stdout (a pipe read by `lab::start`), then detach from it.
fn supervise(opts: supervisor::Options) -> anyhow::Result<Exit> {
    use std::io::Write;
    let log = registry::dir(&opts.name).join("supervisor.log");
    let result = supervisor::serve(opts, |ready| {
        let line = match ready {
            Ok(info) => format!("ready {}\n", serde_json::to_string(&info).unwrap_or_default()),
            Err(e) => {
                format!("error {}\n", serde_json::to_string(&protocol::Response::from_error(e)).unwrap_or_default())
            }
        };
        let _ = std::io::stdout().write_all(line.as_bytes());
        let _ = std::io::stdout().flush();
        // Nobody reads stdout any more: point it (and stderr) at a log file.
        if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(&log) {
            use std::os::fd::AsRawFd;
            let _ = nix::unistd::dup2_stdout(&f);
            let _ = nix::unistd::dup2_stderr(&f);
            let _ = f.as_raw_fd();
        }
    });
    match result {
        Ok(()) => Ok(Exit::Pass),
        Err(_) => Ok(Exit::Usage),
    }
}

/// When this binary was started as one of the lab's shims (`kubectl`, `kind`, …), run it.
pub fn shim_dispatch() -> Option<ExitCode> {
    let argv0 = std::env::args_os().next()?;
    let tool = std::path::Path::new(&argv0).file_name()?.to_string_lossy().into_owned();
    if !lab::shims::TOOLS.contains(&tool.as_str()) {
        return None;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    Some(run_shim(&tool, args))
}

fn run_shim(tool: &str, args: Vec<String>) -> ExitCode {
    use std::io::Write;
    let Ok(name) = std::env::var("TUTOR_LAB") else {
        eprintln!("{tool}: this is tutor's lab shim; it only works inside a lab (TUTOR_LAB is not set)");
        return ExitCode::from(2);
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    if tool == "kubectl" && args.iter().any(|a| a == "edit") {
        return match lab::shims::edit::run(&name, &args, &cwd) {
            Ok(e) => {
                let _ = std::io::stdout().write_all(e.stdout.as_bytes());
                let _ = std::io::stderr().write_all(e.stderr.as_bytes());
                ExitCode::from(e.code.clamp(0, 255) as u8)
            }
            Err(e) => {
                eprintln!("error: {}", e.report());
                ExitCode::from(if e.is_usage() { 2 } else { 1 })
            }
        };
    }
    let req = protocol::Request::Shim { tool: tool.to_string(), args, cwd: cwd.clone() };
    match protocol::call(&name, &req) {
        Ok(protocol::Response::Output { stdout, stderr, code }) => {
            let _ = std::io::stdout().write_all(stdout.as_bytes());
            let _ = std::io::stderr().write_all(stderr.as_bytes());
            ExitCode::from(code.clamp(0, 255) as u8)
        }
        Ok(protocol::Response::Exec { tid, argv }) => {
            let info = match registry::read_info(&name) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("{tool}: {}", e.report());
                    return ExitCode::from(1);
                }
            };
            let mut cmd = std::process::Command::new("nsenter");
            cmd.args(lab::sandbox::nsenter_args(info.pid, tid, std::path::Path::new("/"))).args(&argv);
            match cmd.status() {
                Ok(s) => ExitCode::from(s.code().unwrap_or(137).clamp(0, 255) as u8),
                Err(e) => {
                    eprintln!("{tool}: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Ok(protocol::Response::Error { message, usage }) => {
            eprintln!("{message}");
            ExitCode::from(if usage { 2 } else { 1 })
        }
        Ok(other) => {
            eprintln!("{tool}: unexpected answer from the lab: {other:?}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{tool}: {}", e.report());
            ExitCode::from(2)
        }
    }
}
