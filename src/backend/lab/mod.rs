//! The embedded kind-shaped lab (docs/architecture.md, "The lab"): a cluster network in network
//! namespaces on the real kernel, owned by one supervisor process per lab, with `kind`/`kubectl`/`helm`/`docker`
//! answered from its state.

pub mod agent;
pub mod api;
mod apps;
pub mod arp;
pub mod bpf_masq;
pub use bpf_masq::BpfCause;
pub mod charts;
pub mod cilium;
mod cilium_dbg;
mod cni;
pub mod config;
pub mod controlplane;
pub mod datapath;
mod dns;
mod l2_announce;
mod lb_ipam;
mod lb_objects;
pub mod masquerade;
mod network;
mod objects;
mod outside;
pub mod preflight;
pub mod programs;
pub mod protocol;
pub mod registry;
pub mod sandbox;
mod seed;
pub mod services;
pub mod shims;
mod state;
pub mod store;
pub mod supervisor;
mod tls;
pub mod topology;
pub mod tunnel;
pub mod upstream;
pub mod values;
pub mod xdp_lb;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::process::Command;

use super::{Backend, BackendError, BackendKind, BgTask, ExecRequest, Observation, Target, UpContext};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Bad input (config, manifest, name): exit 2.
    #[error("{0}")]
    Input(String),
    /// Outside the lab's subset, the whole message (what and what to do): exit 2.
    #[error("{0}")]
    Unsupported(String),
    /// Outside the lab's subset, only the detail (a flag, a value); the shim dispatcher names
    /// the whole command around it (`UnsupportedCommand`): exit 2.
    #[error("{0}")]
    UnsupportedDetail(String),
    /// The machine lacks something the lab needs: exit 2.
    #[error("{0}")]
    Preflight(String),
    #[error("no lab named {0}")]
    NoSuchLab(String),
    #[error("{0}")]
    UnknownTarget(String),
    /// `tutor lab up --name NAME` while a lab of that name is up: exit 2.
    #[error("a lab named `{0}` is already up")]
    AlreadyUp(String),
    /// The name is claimed by a lab whose supervisor is still starting it: exit 2.
    #[error("a lab named `{name}` is starting (supervisor pid {pid}); choose another name or wait for it")]
    Starting { name: String, pid: i32 },
    /// A whole command outside the lab's subset, with what in it is outside when known: exit 2.
    #[error(
        "`{tool} {}` is not supported on the lab backend: mark the block backend=kind{}",
        args.join(" "),
        detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    UnsupportedCommand { tool: String, args: Vec<String>, detail: Option<String> },
    /// A file, socket or device operation failed.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A system call refused (unshare, mount, …).
    #[error("{what}")]
    Sys {
        what: String,
        #[source]
        source: nix::errno::Errno,
    },
    /// A command the lab ran to build or change a target exited unsuccessfully.
    #[error(
        "`{command}` failed: {stderr}{}",
        input.as_ref().map(|i| format!("\ninput:\n{i}")).unwrap_or_default()
    )]
    CommandFailed { command: String, stderr: String, input: Option<String> },
    /// Creating the namespaces of one target failed.
    #[error("creating namespaces for {target}")]
    Namespaces {
        target: String,
        #[source]
        source: Box<LabError>,
    },
    /// The bundled XDP load balancer (the lab's LoadBalancer datapath) refused.
    #[error("XDP load balancer: {what}")]
    Lb {
        what: String,
        #[source]
        source: Box<crate::lb::LbError>,
    },
    /// The lab's fixed test CA or key did not load.
    #[error("lab TLS")]
    Tls(#[source] Box<rustls::Error>),
    /// A node's podCIDR has no address left for these pods (`namespace/name`): they stay
    /// Pending, the lab goes on (exit 1, as a refused `kubectl apply`).
    #[error(
        "node {node} has no free pod address in its podCIDR {pod_cidr} ({} {} left Pending): delete pods, \
         lower replicas or add nodes",
        if pods.len() == 1 { "pod" } else { "pods" },
        pods.join(", ")
    )]
    PodAddressesExhausted { node: String, pod_cidr: String, pods: Vec<String> },
    /// A message on the lab's control socket is not the JSON it should be.
    #[error("{what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// Rendering an object as YAML failed.
    #[error("{what}")]
    Yaml {
        what: String,
        #[source]
        source: serde_yaml::Error,
    },
    /// The lab's BPF masquerade (its programs or maps) refused.
    #[error("BPF masquerade: {what}")]
    BpfMasq {
        what: String,
        #[source]
        source: Box<bpf_masq::BpfCause>,
    },
    /// The tunnel datapath (its device, programs or maps) refused.
    #[error("tunnel: {what}")]
    Tunnel {
        what: String,
        #[source]
        source: Box<bpf_masq::BpfCause>,
    },
    /// The XDP load balancer fell back from native mode, which the lab asked for.
    #[error("XDP load balancer: native mode refused on {node} eth0: {why}")]
    XdpNativeRefused { node: String, why: String },
    /// The lab's own state names a node it does not have.
    #[error("no node {0}")]
    NoSuchNode(String),
    /// A pod is bound to a node the lab does not have.
    #[error("pod {pod} on unknown node {node}")]
    PodOnUnknownNode { pod: String, node: String },
    /// A pod (or its host-network node) has no network namespace to run a command in.
    #[error("pod {0} has no namespace")]
    PodWithoutNamespace(String),
    /// A node's MAC address in the lab's plan does not parse.
    #[error("bad MAC {0}")]
    BadMac(String),
    /// A `cilium-dbg` call in a cluster without cilium.
    #[error("cilium is not installed")]
    CiliumNotInstalled,
    /// A namespace thread ended before it was ready.
    #[error("namespace thread died")]
    NsThreadDied,
    /// A namespace thread no longer takes jobs.
    #[error("namespace thread is gone")]
    NsThreadGone,
    /// A job on a namespace thread panicked before answering.
    #[error("namespace job panicked")]
    NsJobPanicked,
    /// The lab's supervisor hung up without answering.
    #[error("lab {0}: the supervisor closed the connection")]
    SupervisorClosed(String),
    /// The lab's supervisor answered something the request does not expect.
    #[error("unexpected answer from the lab supervisor: {0}")]
    UnexpectedAnswer(String),
    /// The lab's supervisor exited before reporting ready or an error.
    #[error("the lab supervisor failed to start{}", if output.is_empty() { String::new() } else { format!(": {output}") })]
    SupervisorFailed { output: String },
    /// The lab's certificate authority could not make a key or certificate.
    #[error("lab PKI ({what})")]
    Pki {
        what: String,
        #[source]
        source: Box<rcgen::Error>,
    },
    /// The TLS settings the control plane is probed with do not load.
    #[error("probe TLS")]
    ProbeTls(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A control plane component exited while the control plane started.
    #[error("{name} exited ({status}) while the control plane started; its log ({}) ends with:\n{tail}", log.display())]
    ComponentExited { name: String, status: String, log: PathBuf, tail: String },
    /// The API server did not become ready in time.
    #[error("the API server at {api} was not ready after {timeout:?}; its log ({}) ends with:\n{tail}", log.display())]
    ApiNotReady { api: std::net::SocketAddr, timeout: Duration, log: PathBuf, tail: String },
    /// A system failure the lab's supervisor reported over its control socket: the message is
    /// its report (message and causes); the typed error stayed in the supervisor's process.
    #[error("{0}")]
    Remote(String),
}

impl LabError {
    pub fn is_usage(&self) -> bool {
        !matches!(
            self,
            LabError::Io { .. }
                | LabError::Json { .. }
                | LabError::Yaml { .. }
                | LabError::Sys { .. }
                | LabError::CommandFailed { .. }
                | LabError::Namespaces { .. }
                | LabError::Lb { .. }
                | LabError::BpfMasq { .. }
                | LabError::Tunnel { .. }
                | LabError::XdpNativeRefused { .. }
                | LabError::Tls(_)
                | LabError::NoSuchNode(_)
                | LabError::PodOnUnknownNode { .. }
                | LabError::PodWithoutNamespace(_)
                | LabError::BadMac(_)
                | LabError::CiliumNotInstalled
                | LabError::NsThreadDied
                | LabError::NsThreadGone
                | LabError::NsJobPanicked
                | LabError::SupervisorClosed(_)
                | LabError::UnexpectedAnswer(_)
                | LabError::SupervisorFailed { .. }
                | LabError::Remote(_)
                | LabError::Pki { .. }
                | LabError::ProbeTls(_)
                | LabError::ComponentExited { .. }
                | LabError::ApiNotReady { .. }
                | LabError::PodAddressesExhausted { .. }
        )
    }

    /// A file operation on `path` failed: the path is the message, `source` the cause.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> LabError {
        LabError::Io { what: path.display().to_string(), source }
    }

    /// The error a supervisor's `Response::Error` stands for: bad input stays bad input.
    pub fn remote(message: String, usage: bool) -> LabError {
        if usage { LabError::Input(message) } else { LabError::Remote(message) }
    }

    /// The message followed by its causes (`what: cause: cause`), for where errors travel as
    /// text: the control socket's answers, a backend's error.
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }
}

impl From<LabError> for BackendError {
    fn from(e: LabError) -> BackendError {
        match e {
            LabError::Preflight(m) => BackendError::Preflight { backend: BackendKind::Lab, message: m },
            LabError::Unsupported(m) => BackendError::Unsupported(m),
            e @ (LabError::UnsupportedCommand { .. } | LabError::UnsupportedDetail(_)) => {
                BackendError::Unsupported(e.to_string())
            }
            LabError::UnknownTarget(m) => BackendError::TargetMissing(m),
            other => BackendError::Other(other.report()),
        }
    }
}

/// The tutor binary: supervisors and shims are this executable. `TUTOR_BIN` overrides it
/// (tests run from a test harness binary).
pub fn tutor_exe() -> PathBuf {
    std::env::var_os("TUTOR_BIN")
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("tutor"))
}

/// Start a lab supervisor and wait until it is ready. `owner`: tear down when it exits.
/// `kubernetes`: the tutorial's choice, whatever `TUTOR_LAB_K8S` says; `None`: the variable's,
/// else the real control plane (`controlplane::mode`), whose binaries must then be built.
pub fn start(
    name: &str,
    owner: Option<i32>,
    config: Option<&std::path::Path>,
    kubernetes: Option<crate::backend::LabKubernetes>,
) -> Result<registry::LabInfo, LabError> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let mode = controlplane::mode(kubernetes)?;
    // A taken name is refused before anything is created; the supervisor's claim decides races.
    registry::check_free(name)?;
    preflight::check()?;
    if mode == crate::backend::LabKubernetes::Upstream {
        upstream::check(&upstream::Binary::ALL).map_err(|e| LabError::Preflight(e.to_string()))?;
    }
    let mut cmd = std::process::Command::new(tutor_exe());
    cmd.args(["lab", "supervise", "--name", name]);
    // The supervisor gets the mode decided here, never a default of its own.
    cmd.env(controlplane::MODE_VAR, mode.as_str());
    if let Some(o) = owner {
        cmd.args(["--owner", &o.to_string()]);
    }
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    // Its own session: a Ctrl-C in the terminal reaches the runner, which tears down in order.
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from));
    }
    let mut child =
        cmd.spawn().map_err(|e| LabError::Preflight(format!("cannot start {}: {e}", tutor_exe().display())))?;
    let mut out = String::new();
    let _ = child.stdout.take().expect("piped").read_to_string(&mut out);
    // The supervisor closes stdout once ready; it keeps running (reaped by init when we exit).
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    let line = out.lines().next().unwrap_or("");
    if let Some(json) = line.strip_prefix("ready ") {
        serde_json::from_str(json).map_err(|source| LabError::Json { what: "bad supervisor answer".into(), source })
    } else if let Some(err) = line.strip_prefix("error ") {
        let e: protocol::Response = serde_json::from_str(err)
            .map_err(|source| LabError::Json { what: "bad supervisor answer".into(), source })?;
        match e {
            protocol::Response::Error { message, usage } => Err(LabError::remote(message, usage)),
            other => Err(LabError::UnexpectedAnswer(format!("{other:?}"))),
        }
    } else {
        Err(LabError::SupervisorFailed { output: out })
    }
}

/// Tear lab `name` down and wait until its supervisor is gone.
pub fn stop(name: &str) -> Result<(), LabError> {
    let info = registry::read_info(name)?;
    let _ = protocol::call(name, &protocol::Request::Down);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while info.alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    if info.alive() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(info.pid), nix::sys::signal::Signal::SIGKILL);
    }
    // A supervisor that could not end its cgroup (killed, or stuck past the deadline): end it
    // here, unless the name has been claimed again since.
    if let Some(cg) = crate::backend::cgroup::Cgroup::lab(name)
        && !matches!(registry::entry(name), Some(registry::Entry::Live(i)) if i.pid != info.pid)
        && !matches!(registry::entry(name), Some(registry::Entry::Starting { pid, .. }) if pid != info.pid)
    {
        cg.remove()
            .map_err(|source| LabError::Io { what: format!("removing cgroup {}", cg.path().display()), source })?;
    }
    // SIGKILL is not instant for a large process (an API server takes milliseconds to exit):
    // `down` returns once nothing is left in the lab's namespaces.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while supervisor::kill_inside(&info.netns_inodes) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    registry::release_dead(&info);
    Ok(())
}

/// A command that runs `argv` inside `target` of lab `info`, with the shims first on PATH.
pub fn target_command(
    info: &registry::LabInfo,
    target: &Target,
    workdir: &std::path::Path,
    argv: &[String],
) -> Result<std::process::Command, LabError> {
    // On the real control plane the node agents own the pods: a pod is entered as kubectl
    // enters it, through the exec API, from the lab host (with a terminal when there is one).
    if let (Target::Pod { namespace, name }, Some(_)) = (target, &info.kubeconfig) {
        use std::io::IsTerminal;
        let mut kubectl: Vec<String> = vec!["kubectl".into(), "exec".into(), "-i".into()];
        if std::io::stdin().is_terminal() {
            kubectl.push("-t".into());
        }
        kubectl.extend(["-n".into(), namespace.clone(), name.clone(), "--".into()]);
        kubectl.extend(argv.iter().cloned());
        return target_command(info, &Target::Host, workdir, &kubectl);
    }
    let tid = info.target_tid(target)?;
    if *target == Target::Host && sandbox::HOST_PRIVATE.iter().any(|d| workdir.starts_with(d)) {
        // The lab host's /tmp and /run are its own: the supervisor binds the work directory in.
        match protocol::call(&info.name, &protocol::Request::Share { path: workdir.to_path_buf() })? {
            protocol::Response::Done => {}
            protocol::Response::Error { message, usage } => return Err(LabError::remote(message, usage)),
            other => return Err(LabError::UnexpectedAnswer(format!("{other:?}"))),
        }
    }
    let mut cmd = std::process::Command::new("nsenter");
    cmd.args(sandbox::nsenter_args(info.pid, tid, workdir)).args(argv);
    // In the lab's cgroup, so whatever it starts ends with the lab.
    if let Some(cg) = crate::backend::cgroup::Cgroup::lab(&info.name).filter(|c| c.exists()) {
        cg.place(&mut cmd)
            .map_err(|source| LabError::Io { what: format!("joining cgroup {}", cg.path().display()), source })?;
    }
    cmd.env("TUTOR_LAB", &info.name);
    let path =
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    if *target == Target::Host {
        // A TMPDIR in the machine's /tmp is not the lab host's.
        if std::env::var_os("TMPDIR")
            .is_some_and(|t| sandbox::HOST_PRIVATE.iter().any(|d| std::path::Path::new(&t).starts_with(d)))
        {
            cmd.env_remove("TMPDIR");
        }
        cmd.env("PATH", format!("{}:{path}", registry::shim_dir(&info.name).display()));
        if let Some(k) = &info.kubeconfig {
            cmd.env("KUBECONFIG", k);
            // kubectl's discovery and HTTP caches too: keyed by server address, which every
            // lab's API server shares (172.18.0.2:6443), so a shared cache would answer one lab
            // with another's resources (a CRD version it does not serve).
            cmd.env("KUBECACHEDIR", registry::dir(&info.name).join("kube-cache"));
            // The real helm keeps its repositories and caches in the lab, as kubectl its
            // kubeconfig: never in the user's own ~/.config/helm.
            let helm = registry::dir(&info.name).join("helm");
            for (var, sub) in [("HELM_CONFIG_HOME", "config"), ("HELM_CACHE_HOME", "cache"), ("HELM_DATA_HOME", "data")]
            {
                cmd.env(var, helm.join(sub));
            }
        }
    }
    Ok(cmd)
}

/// The lab as the runner's backend: one fresh lab per tutorial, named after the run, or
/// ([`LabBackend::attach`]) the lab an earlier `tutor run --keep` left.
pub struct LabBackend {
    name: Option<String>,
    workdir: PathBuf,
    keep: bool,
    /// Attached to a running lab: `up` checks it is there instead of starting one.
    attached: bool,
}

pub fn create() -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(LabBackend { name: None, workdir: PathBuf::from("/"), keep: false, attached: false }))
}

impl LabBackend {
    /// The running lab `name` as it is, never started nor torn down (`tutor run --env NAME`).
    pub fn attach(name: &str) -> LabBackend {
        LabBackend { name: Some(name.to_string()), workdir: PathBuf::from("/"), keep: true, attached: true }
    }

    /// Read on every use: the lab's nodes and pods change as the tutorial goes on.
    fn info(&self) -> Result<registry::LabInfo, BackendError> {
        let name = self.name.as_deref().ok_or_else(|| BackendError::Other("the lab is not up".into()))?;
        Ok(registry::read_info(name)?)
    }

    /// The lab's kubeconfig when it runs the real API server.
    fn kubeconfig(&self) -> Option<PathBuf> {
        let path = registry::dir(self.name.as_deref()?).join("kubeconfig");
        path.exists().then_some(path)
    }

    /// Pods of a lab that runs the real API server are reached as on any cluster: through the
    /// Kubernetes exec API (the kind and kube backends' code), which the node agent's kubelet
    /// API serves. `None` for the emulated lab.
    async fn pod_transport(&self) -> Result<Option<super::kind::pod_exec::KubeTransport>, BackendError> {
        let Some(kubeconfig) = self.kubeconfig() else {
            return Ok(None);
        };
        // The API server is on the lab's bridge: connect from the lab host's namespace.
        let info = self.info()?;
        let netns = PathBuf::from(format!("/proc/{}/task/{}/ns/net", info.pid, info.host_tid));
        let client = api::client(&kubeconfig, &netns).await?;
        Ok(Some(super::kind::pod_exec::KubeTransport { client }))
    }

    fn command(&self, req: &ExecRequest<'_>) -> Result<Command, BackendError> {
        let info = self.info()?;
        let argv: Vec<String> = ["bash", "--noprofile", "--norc", "-c", req.script].map(str::to_string).to_vec();
        let mut cmd = Command::from(target_command(&info, req.target, &self.workdir, &argv)?);
        for (k, v) in req.env {
            cmd.env(k, v);
        }
        Ok(cmd)
    }
}

#[async_trait]
impl Backend for LabBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Lab
    }

    async fn up(&mut self, ctx: &UpContext) -> Result<(), BackendError> {
        if self.attached {
            let name = self.name.as_deref().unwrap_or_default();
            let gone = |why: String| BackendError::Preflight {
                backend: BackendKind::Lab,
                message: format!("the kept lab `{name}` is gone ({why}); start again without --env"),
            };
            let info = registry::read_info(name).map_err(|e| gone(e.report()))?;
            if !info.alive() {
                return Err(gone("its supervisor has exited".into()));
            }
            self.workdir = ctx.workdir.clone();
            return Ok(());
        }
        let name: String =
            ctx.run_name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
        let owner = if ctx.keep { None } else { Some(std::process::id() as i32) };
        let n = name.clone();
        let kubernetes = ctx.kubernetes;
        let files = ctx.offline.clone();
        tokio::task::spawn_blocking(move || -> Result<(), LabError> {
            start(&n, owner, None, kubernetes)?;
            // The tutorial's `offline:` URLs, served before its first block runs.
            if !files.is_empty() {
                let serve = match protocol::call(&n, &protocol::Request::Serve { files }) {
                    Ok(protocol::Response::Done) => Ok(()),
                    Ok(protocol::Response::Error { message, usage }) => Err(LabError::remote(message, usage)),
                    Ok(other) => Err(LabError::UnexpectedAnswer(format!("{other:?}"))),
                    Err(e) => Err(e),
                };
                if let Err(e) = serve {
                    let _ = stop(&n);
                    return Err(e);
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| BackendError::Other(e.to_string()))??;
        self.name = Some(name);
        self.workdir = ctx.workdir.clone();
        self.keep = ctx.keep;
        Ok(())
    }

    async fn exec(&self, req: ExecRequest<'_>) -> Result<Observation, BackendError> {
        if let Target::Pod { namespace, name } = req.target
            && let Some(transport) = self.pod_transport().await?
        {
            let deadline = super::kind::remote::Deadline::new(req.timeout);
            return super::kind::pod_exec::exec(&transport, namespace, name, req.script, req.env, deadline).await;
        }
        let cmd = self.command(&req)?;
        super::process::run(cmd, req.timeout).await
    }

    async fn spawn(&self, req: ExecRequest<'_>) -> Result<Box<dyn BgTask>, BackendError> {
        if let Target::Pod { namespace, name } = req.target
            && let Some(transport) = self.pod_transport().await?
        {
            return super::kind::pod_exec::spawn(std::sync::Arc::new(transport), namespace, name, req.script, req.env)
                .await;
        }
        super::process::spawn(self.command(&req)?)
    }

    async fn exec_shell(
        &self,
        target: &Target,
        argv: Vec<String>,
    ) -> Result<Option<super::shell::ExecShell>, BackendError> {
        if let Target::Pod { namespace, name } = target
            && let Some(transport) = self.pod_transport().await?
        {
            let shell = super::kind::pod_exec::shell(std::sync::Arc::new(transport), namespace, name, argv).await?;
            return Ok(Some(shell));
        }
        Ok(None)
    }

    fn kernel_command(&self, target: &Target) -> Result<Option<std::process::Command>, BackendError> {
        // Pods behind a real API server are reached through its exec API (`exec_shell`, see
        // `pod_transport`).
        if matches!(target, Target::Pod { .. }) && self.kubeconfig().is_some() {
            return Ok(None);
        }
        let mut cmd = target_command(&self.info()?, target, &self.workdir, &["bash".to_string()])?;
        super::block_env(&mut cmd);
        Ok(Some(cmd))
    }

    fn state_path(&self, target: &Target) -> String {
        super::local_state_path(&self.workdir, target)
    }

    fn facts(&self) -> serde_json::Value {
        let Ok(info) = self.info() else { return serde_json::json!({ "backend": "lab" }) };
        let nodes: serde_json::Map<String, serde_json::Value> = info
            .nodes
            .iter()
            .map(|n| {
                (n.name.clone(), serde_json::json!({ "ip": n.ip.to_string(), "podCIDR": n.pod_cidr, "role": n.role }))
            })
            .collect();
        let tutor = tutor_exe().display().to_string();
        serde_json::json!({ "backend": "lab", "lab": info.name, "cluster": info.cluster, "nodes": nodes, "tutor": tutor })
    }

    async fn down(&mut self) -> Result<(), BackendError> {
        let Some(name) = self.name.take() else { return Ok(()) };
        if self.keep {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || match stop(&name) {
            Err(LabError::NoSuchLab(_)) => Ok(()),
            other => other,
        })
        .await
        .map_err(|e| BackendError::Other(e.to_string()))??;
        Ok(())
    }
}

/// A short id derived from `seed` (lab names, link names).
pub fn network_id(seed: &str) -> String {
    network::hex_id(&[seed, &format!("{:?}", std::time::SystemTime::now())], 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_source_and_name_the_path() {
        let path = std::path::Path::new("/nonexistent/tutor/lab.json");
        let source = std::fs::read_to_string(path).unwrap_err();
        let e = LabError::io(path, source);
        let cause = std::error::Error::source(&e).expect("the io error is the source");
        assert_eq!(cause.downcast_ref::<std::io::Error>().unwrap().kind(), std::io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), "/nonexistent/tutor/lab.json");
        let report = e.report();
        assert!(report.starts_with("/nonexistent/tutor/lab.json: ") && report.contains("No such file"), "{report}");
        assert!(!e.is_usage());
    }

    #[test]
    fn bpf_causes_are_chained() {
        let e = LabError::BpfMasq { what: "eth0".into(), source: Box::new(BpfCause::NoDevice) };
        assert_eq!(e.report(), "BPF masquerade: eth0: no such device");
        assert!(!e.is_usage());
    }

    #[test]
    fn system_failures_are_not_usage_errors() {
        let system = [
            LabError::NoSuchNode("kind-worker".into()),
            LabError::PodOnUnknownNode { pod: "p".into(), node: "n".into() },
            LabError::PodAddressesExhausted {
                node: "n".into(),
                pod_cidr: "10.244.1.0/24".into(),
                pods: vec!["d/p".into()],
            },
            LabError::PodWithoutNamespace("p".into()),
            LabError::BadMac("zz".into()),
            LabError::CiliumNotInstalled,
            LabError::NsThreadDied,
            LabError::NsThreadGone,
            LabError::NsJobPanicked,
            LabError::SupervisorClosed("l".into()),
            LabError::UnexpectedAnswer("Done".into()),
            LabError::SupervisorFailed { output: String::new() },
            LabError::Remote("bind: address in use".into()),
            LabError::XdpNativeRefused { node: "kind-worker".into(), why: "no driver".into() },
            LabError::ComponentExited {
                name: "etcd".into(),
                status: "exit status: 1".into(),
                log: "/l/etcd.log".into(),
                tail: String::new(),
            },
            LabError::ApiNotReady {
                api: ([172, 18, 0, 2], 6443).into(),
                timeout: Duration::from_secs(1),
                log: "/l/kube-apiserver.log".into(),
                tail: String::new(),
            },
            LabError::ProbeTls(Box::new(std::io::Error::other("bad PEM"))),
        ];
        for e in system {
            assert!(!e.is_usage(), "{e:?}");
        }
        assert!(LabError::Input("bad".into()).is_usage());
        assert!(LabError::NoSuchLab("x".into()).is_usage());
    }

    #[test]
    fn supervisor_errors_keep_their_class() {
        assert!(matches!(LabError::remote("bad manifest".into(), true), LabError::Input(m) if m == "bad manifest"));
        assert!(matches!(LabError::remote("mount failed".into(), false), LabError::Remote(m) if m == "mount failed"));
        assert_eq!(
            LabError::SupervisorFailed { output: "boom".into() }.to_string(),
            "the lab supervisor failed to start: boom"
        );
        assert_eq!(
            LabError::SupervisorFailed { output: String::new() }.to_string(),
            "the lab supervisor failed to start"
        );
    }
}
