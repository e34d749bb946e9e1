//! The node agent's container runtime: per pod a sandbox (its own network namespace with a
//! veth to the node and an address from the node's podCIDR, or the node's network for
//! `hostNetwork` pods; its own mounts with the pod's /etc/hosts and /etc/resolv.conf, private
//! /run and /tmp; its own hostname), and per container a process started inside it, its output
//! kept in CRI-format log files, its exit observed, restarted per `restartPolicy` with the
//! kubelet's back-off, killed gracefully on delete.
//!
//! Everything here is blocking (namespace jobs, processes); the pod controller calls it from
//! `spawn_blocking` and turns its results into the pod's status and events.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Probe};
use k8s_openapi::chrono::{DateTime, Utc};

use super::images::{self, Image};
use super::ipam::Ipam;
use super::podfiles::{self, DnsSettings};
use super::status::{Record, Sandbox, State};
use super::volumes::{self, Content, MountError};
use crate::backend::lab::network::hex_id;
use crate::backend::lab::sandbox::{Mounts, NetNs, NsThread, Rootfs};

/// The kubelet's container restart back-off: 10 s doubling to 5 min, forgotten after a
/// container ran for 10 min.
pub const BACKOFF_START: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// The agent's runtime settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub node: String,
    pub node_ip: Ipv4Addr,
    /// Per-node state: pod files, container logs.
    pub state_dir: PathBuf,
    /// Machine-wide image helpers (busybox applet links), outside /run so pods see them.
    pub image_dir: PathBuf,
    /// Where container programs are looked up.
    pub path: String,
    pub dns: DnsSettings,
    /// The node's CNI configuration directory (which plugin gets the pods).
    pub cni_conf_dir: PathBuf,
    /// The tutor executable (for image programs tutor plays).
    pub tutor: PathBuf,
}

/// An event about a pod, for the controller to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: String,
    pub note: String,
    /// `spec.containers{NAME}` when the event is about a container.
    pub field: Option<String>,
}

impl Event {
    fn normal(reason: &str, note: String, c: Option<&str>) -> Event {
        Event { warning: false, reason: reason.into(), note, field: c.map(|c| format!("spec.containers{{{c}}}")) }
    }
    fn warning(reason: &str, note: String, c: Option<&str>) -> Event {
        Event { warning: true, ..Event::normal(reason, note, c) }
    }
}

/// Inputs of one sync that come from the API (fetched by the controller).
#[derive(Debug, Clone)]
pub struct SyncInputs {
    pub network_ready: bool,
    /// Environment per container name (built by the controller from services, ConfigMaps,
    /// Secrets), or the error that keeps it from starting.
    pub env: BTreeMap<String, Result<Vec<(String, String)>, super::env::EnvError>>,
    /// The pod's volumes, resolved by the controller from the API, or why one cannot be set up.
    pub volumes: Result<BTreeMap<String, Content>, MountError>,
}

impl Default for SyncInputs {
    fn default() -> SyncInputs {
        SyncInputs { network_ready: false, env: BTreeMap::new(), volumes: Ok(BTreeMap::new()) }
    }
}

/// Why a pod's sandbox or a container could not be set up; the text is the kubelet event's.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Ipam(#[from] super::ipam::IpamError),
    /// A volume could not be set up (`FailedMount`).
    #[error(transparent)]
    Mount(#[from] MountError),
    /// The lab's namespaces or `ip` refused. The message is the lab error's report (its causes
    /// included), so the error is kept whole but not chained a second time as a `source`.
    #[error("{}", .0.report())]
    Lab(crate::backend::lab::LabError),
    #[error("the pod has no sandbox")]
    NoSandbox,
    /// The node's CNI configuration is Cilium's but its agent has not set up `cilium_host` yet.
    #[error(
        "plugin type=\"cilium-cni\" failed (add): the node has no cilium_host address yet (is the cilium agent running?)"
    )]
    NoCiliumRouter,
    #[error("container {0}: no command specified")]
    NoCommand(String),
    #[error("busybox: {0}")]
    Busybox(#[source] std::io::Error),
    /// The container's program is not on its PATH (containerd's words).
    #[error(
        "failed to create containerd task: failed to create shim task: OCI runtime create failed: \
         exec: \"{0}\": executable file not found in $PATH"
    )]
    NotFound(String),
    #[error("starting {}: {source}", program.display())]
    Spawn { program: PathBuf, source: std::io::Error },
}

impl From<crate::backend::lab::LabError> for RuntimeError {
    fn from(e: crate::backend::lab::LabError) -> RuntimeError {
        RuntimeError::Lab(e)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::Io { path: path.to_path_buf(), source }
}

/// Why a probe failed; the text is the kubelet's `Unhealthy` event's.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("named port {0} is not supported by the lab's probes")]
    NamedPort(String),
    #[error("exec probe without a command")]
    NoCommand,
    #[error(transparent)]
    Spawn(std::io::Error),
    #[error("command {argv:?} exited with {code}: {output}")]
    Exited { argv: Vec<String>, code: i32, output: String },
    #[error("command {0:?} timed out")]
    TimedOut(Vec<String>),
    #[error("the pod has no address")]
    NoAddress,
    #[error("dial tcp {addr}: {source}")]
    Dial { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("Get \"{url}\": {source}")]
    Get { url: String, source: std::io::Error },
    #[error(transparent)]
    Send(std::io::Error),
    #[error("bad HTTP answer from {0}")]
    BadAnswer(std::net::SocketAddr),
    #[error("HTTP probe failed with statuscode: {0}")]
    Status(u16),
    #[error("the probe has no handler the lab supports (exec, httpGet, tcpSocket)")]
    NoHandler,
}

/// What one sync observed.
#[derive(Debug, Default)]
pub struct SyncResult {
    pub sandbox: Sandbox,
    pub records: Vec<Record>,
    /// The init containers' records (`initContainerStatuses`).
    pub init_records: Vec<Record>,
    pub events: Vec<Event>,
    /// When the pod needs another look (back-off ends, probe due).
    pub requeue: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Exit {
    code: i32,
    signal: Option<i32>,
    at: DateTime<Utc>,
}

struct Ctr {
    record: Record,
    image: Option<Image>,
    /// Pull back-off (failed pulls).
    pull_backoff: Duration,
    pid: Option<i32>,
    exit: Arc<Mutex<Option<Exit>>>,
    started: Option<(Instant, DateTime<Utc>)>,
    /// Crash back-off: no restart before this instant.
    not_before: Option<Instant>,
    /// The back-off being waited out, and the next one.
    delay: Duration,
    backoff: Duration,
    last_exit: i32,
    stdin: Option<ChildStdin>,
    probe: ProbeState,
    liveness: ProbeState,
    startup: ProbeState,
    log: Option<PathBuf>,
    env: Vec<(String, String)>,
    cwd: String,
    tty: bool,
    stdin_once: bool,
}

impl Ctr {
    fn new(c: &Container, waiting: &str) -> Ctr {
        Ctr {
            record: Record::waiting(&c.name, c.image.as_deref().unwrap_or_default(), waiting),
            image: None,
            pull_backoff: Duration::ZERO,
            pid: None,
            exit: Arc::new(Mutex::new(None)),
            started: None,
            not_before: None,
            delay: Duration::ZERO,
            backoff: Duration::ZERO,
            last_exit: 0,
            stdin: None,
            probe: ProbeState::default(),
            liveness: ProbeState::live(),
            startup: ProbeState::default(),
            log: None,
            env: vec![],
            cwd: "/".into(),
            tty: c.tty == Some(true),
            stdin_once: c.stdin_once == Some(true),
        }
    }

    /// Ran and exited 0 (an init container that is done).
    fn succeeded(&self) -> bool {
        self.pid.is_none() && matches!(self.record.state, State::Terminated { exit_code: 0, .. })
    }
}

/// What every container's step of one pod sync shares.
#[derive(Clone, Copy)]
struct Step<'a> {
    rt: &'a PodRt,
    spec: &'a PodSpec,
    sandbox_tid: Option<i32>,
    inputs: &'a SyncInputs,
    now: Instant,
}

#[derive(Debug, Default, Clone)]
struct ProbeState {
    next: Option<Instant>,
    successes: i32,
    failures: i32,
    /// The probe's current result (readiness starts failed, liveness passed).
    ok: bool,
}

impl ProbeState {
    fn live() -> ProbeState {
        ProbeState { ok: true, ..Default::default() }
    }
}

struct SandboxRt {
    ns: NsThread,
    ip: Option<Ipv4Addr>,
    started: DateTime<Utc>,
}

pub struct PodRt {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    hostname: String,
    dir: PathBuf,
    sandbox: Mutex<Option<SandboxRt>>,
    containers: Mutex<BTreeMap<String, Ctr>>,
}

/// Where a container's process is, for the kubelet API (exec, attach, logs).
#[derive(Debug, Clone)]
pub struct ContainerHandle {
    /// The running process (none once it exited).
    pub pid: Option<i32>,
    pub sandbox_tid: i32,
    pub log: Option<PathBuf>,
    /// The log of the run before (`kubectl logs --previous`).
    pub previous_log: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub tty: bool,
}

pub struct Runtime {
    pub cfg: Config,
    pods: Mutex<HashMap<String, Arc<PodRt>>>,
    pub ipam: Mutex<Ipam>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

fn pod_key(pod: &Pod) -> (String, String, String) {
    (
        pod.metadata.uid.clone().unwrap_or_default(),
        pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// The next back-off after `current` (10 s, 20 s, … 300 s).
pub fn next_backoff(current: Duration) -> Duration {
    if current.is_zero() { BACKOFF_START } else { (current * 2).min(BACKOFF_MAX) }
}

/// Whether `restart_policy` restarts a container that exited with `code`.
pub fn restarts(restart_policy: &str, code: i32) -> bool {
    match restart_policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

impl Runtime {
    /// `wake` is called when a container exits (the controller re-syncs its pods).
    pub fn new(cfg: Config, wake: impl Fn() + Send + Sync + 'static) -> Runtime {
        Runtime { cfg, pods: Mutex::new(HashMap::new()), ipam: Mutex::new(Ipam::default()), wake: Arc::new(wake) }
    }

    /// Ask the controller to look at the pods again.
    pub fn wake(&self) {
        (self.wake)()
    }

    pub fn pod_uids(&self) -> Vec<String> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// Process and sandbox of a container (for exec/attach/logs).
    pub fn container(&self, namespace: &str, name: &str, container: &str) -> Option<ContainerHandle> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let p = pods.values().find(|p| p.namespace == namespace && p.name == name)?;
        let tid = p.sandbox.lock().unwrap_or_else(|e| e.into_inner()).as_ref()?.ns.tid();
        let cs = p.containers.lock().unwrap_or_else(|e| e.into_inner());
        let c = cs.get(container)?;
        let running = c.exit.lock().unwrap_or_else(|e| e.into_inner()).is_none();
        let previous_log = (c.record.restarts > 0)
            .then(|| c.log.as_ref().and_then(|l| l.parent()).map(|d| d.join(format!("{}.log", c.record.restarts - 1))))
            .flatten()
            .filter(|p| p.exists());
        Some(ContainerHandle {
            pid: c.pid.filter(|_| running),
            sandbox_tid: tid,
            log: c.log.clone(),
            previous_log,
            env: c.env.clone(),
            cwd: c.cwd.clone(),
            tty: c.tty,
        })
    }

    /// The thread that owns a pod's namespaces.
    pub fn sandbox_tid(&self, namespace: &str, name: &str) -> Option<i32> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let p = pods.values().find(|p| p.namespace == namespace && p.name == name)?;
        p.sandbox.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|s| s.ns.tid())
    }

    /// A writable handle on a running container's stdin (attach).
    pub fn stdin(&self, namespace: &str, name: &str, container: &str) -> Option<std::fs::File> {
        use std::os::fd::AsFd;
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let p = pods.values().find(|p| p.namespace == namespace && p.name == name)?;
        let cs = p.containers.lock().unwrap_or_else(|e| e.into_inner());
        let fd = cs.get(container)?.stdin.as_ref()?.as_fd().try_clone_to_owned().ok()?;
        Some(std::fs::File::from(fd))
    }

    /// After an attach's stdin ended: close the container's stdin when its spec says
    /// `stdinOnce` (the shell of `kubectl run -i` then sees EOF).
    pub fn attach_ended(&self, namespace: &str, name: &str, container: &str) {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = pods.values().find(|p| p.namespace == namespace && p.name == name) else { return };
        let mut cs = p.containers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cs.get_mut(container)
            && c.stdin_once
        {
            c.stdin = None;
        }
    }

    fn pod_rt(&self, pod: &Pod) -> Arc<PodRt> {
        let (uid, namespace, name) = pod_key(pod);
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.entry(uid.clone())
            .or_insert_with(|| {
                let dir = self.cfg.state_dir.join("pods").join(format!("{namespace}_{name}_{uid}"));
                Arc::new(PodRt {
                    hostname: podfiles::hostname(pod),
                    uid,
                    namespace,
                    name,
                    dir,
                    sandbox: Mutex::new(None),
                    containers: Mutex::new(BTreeMap::new()),
                })
            })
            .clone()
    }

    /// Bring the pod's sandbox and containers towards its spec; report what is.
    pub fn sync(&self, pod: &Pod, inputs: &SyncInputs) -> SyncResult {
        let rt = self.pod_rt(pod);
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
        let mut out = SyncResult::default();
        let now = Instant::now();
        let requeue = |d: Duration, out: &mut SyncResult| {
            out.requeue = Some(out.requeue.map_or(d, |r| r.min(d)));
        };

        // The sandbox.
        {
            let mut sb = rt.sandbox.lock().unwrap_or_else(|e| e.into_inner());
            if sb.is_none() {
                if !host_network && !inputs.network_ready {
                    out.events.push(Event::warning(
                        "NetworkNotReady",
                        format!("network is not ready: {}", super::node::NO_CNI),
                        None,
                    ));
                    requeue(Duration::from_secs(2), &mut out);
                } else if let Err(e) = &inputs.volumes {
                    out.events.push(Event::warning("FailedMount", e.to_string(), None));
                    requeue(Duration::from_secs(2), &mut out);
                } else {
                    match self.create_sandbox(pod, &rt, host_network, inputs) {
                        Ok(s) => *sb = Some(s),
                        Err(e) => {
                            out.events.push(Event::warning(
                                "FailedCreatePodSandBox",
                                format!("Failed to create pod sandbox: {e}"),
                                None,
                            ));
                            requeue(Duration::from_secs(5), &mut out);
                        }
                    }
                }
            }
            // Volume content follows its sources (a ConfigMap edited, a token renewed).
            if sb.is_some()
                && let Ok(contents) = &inputs.volumes
                && let Err(e) = volumes::write_all(&rt.dir, &self.cfg.state_dir, contents)
            {
                out.events.push(Event::warning("FailedMount", e.to_string(), None));
            }
            if let Some(s) = sb.as_ref() {
                out.sandbox = Sandbox {
                    ready: true,
                    pod_ip: if host_network { Some(self.cfg.node_ip) } else { s.ip },
                    host_ip: Some(self.cfg.node_ip),
                    start_time: Some(s.started),
                };
            } else {
                out.sandbox.host_ip = Some(self.cfg.node_ip);
            }
        }
        let sandbox_tid = rt.sandbox.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|s| s.ns.tid());

        // Init containers first, one at a time, each to a successful end; then the others.
        let mut cs = rt.containers.lock().unwrap_or_else(|e| e.into_inner());
        let step = Step { rt: &rt, spec: &spec, sandbox_tid, inputs, now };
        let inits = spec.init_containers.clone().unwrap_or_default();
        // An init container is restarted on failure unless the pod never restarts.
        let init_policy = if policy == "Never" { "Never" } else { "OnFailure" };
        let mut initialized = true;
        for c in &inits {
            let ctr = cs.entry(c.name.clone()).or_insert_with(|| Ctr::new(c, "PodInitializing"));
            if !ctr.succeeded() {
                self.sync_container(&step, c, ctr, init_policy, true, &mut out);
            }
            if !ctr.succeeded() {
                initialized = false;
                break;
            }
        }
        for c in &spec.containers {
            let ctr = cs
                .entry(c.name.clone())
                .or_insert_with(|| Ctr::new(c, if inits.is_empty() { "ContainerCreating" } else { "PodInitializing" }));
            if initialized {
                self.sync_container(&step, c, ctr, &policy, false, &mut out);
            }
        }
        let record = |c: &Container| cs.get(&c.name).map(|x| x.record.clone());
        out.init_records = inits.iter().filter_map(record).collect();
        out.records = spec.containers.iter().filter_map(record).collect();
        out
    }

    /// One container's step of a sync: pull, observe its exit, restart per `policy`, start,
    /// probe (not for init containers).
    fn sync_container(
        &self,
        step: &Step<'_>,
        c: &Container,
        ctr: &mut Ctr,
        policy: &str,
        init: bool,
        out: &mut SyncResult,
    ) {
        let Step { rt, spec, sandbox_tid, inputs, now } = *step;
        let requeue = |d: Duration, out: &mut SyncResult| {
            out.requeue = Some(out.requeue.map_or(d, |r| r.min(d)));
        };
        let image_name = c.image.clone().unwrap_or_default();
        if sandbox_tid.is_none() {
            return;
        }
        // "Pull" the image: resolve it in the catalogue.
        if ctr.image.is_none() {
            if let Some(t) = ctr.not_before
                && t > now
            {
                if matches!(&ctr.record.state, State::Waiting { reason, .. } if reason == "ErrImagePull") {
                    ctr.record.state = State::Waiting {
                        reason: "ImagePullBackOff".into(),
                        message: Some(format!("Back-off pulling image \"{image_name}\"")),
                    };
                    out.events.push(Event::normal(
                        "BackOff",
                        format!("Back-off pulling image \"{image_name}\""),
                        Some(&c.name),
                    ));
                    out.events.push(Event::warning("Failed", "Error: ImagePullBackOff".into(), Some(&c.name)));
                }
                requeue(t - now, out);
                return;
            }
            match images::resolve(&image_name, &self.cfg.path) {
                Ok(img) => {
                    out.events.push(Event::normal(
                        "Pulled",
                        format!("Container image \"{image_name}\" already present on machine"),
                        Some(&c.name),
                    ));
                    // containerd's form, with the digest `docker pull` shows for the image
                    // (docs/architecture.md, "Images on the lab host").
                    let built = self.cfg.image_dir.join("built");
                    ctr.record.image_id = images::data(&image_name, &self.cfg.path, &built, &self.cfg.tutor)
                        .map(|d| d.status_id())
                        .unwrap_or_else(|_| img.reference.clone());
                    ctr.image = Some(img);
                    ctr.not_before = None;
                }
                Err(e) => {
                    out.events.push(Event::normal("Pulling", format!("Pulling image \"{image_name}\""), Some(&c.name)));
                    let msg = format!("Failed to pull image \"{image_name}\": {e}");
                    out.events.push(Event::warning("Failed", msg.clone(), Some(&c.name)));
                    out.events.push(Event::warning("Failed", "Error: ErrImagePull".into(), Some(&c.name)));
                    ctr.record.state = State::Waiting { reason: "ErrImagePull".into(), message: Some(msg) };
                    ctr.pull_backoff = next_backoff(ctr.pull_backoff);
                    ctr.not_before = Some(now + ctr.pull_backoff);
                    // The kubelet's next sync shows the back-off.
                    requeue(Duration::from_secs(1), out);
                    return;
                }
            }
        }
        // Observe an exit.
        let exited = *ctr.exit.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(_), Some(x)) = (ctr.pid, exited) {
            let started = ctr.started.map(|s| s.1).unwrap_or(x.at);
            let reason = if x.code == 0 { "Completed" } else { "Error" };
            ctr.record.state = State::Terminated {
                exit_code: x.code,
                signal: x.signal,
                reason: reason.into(),
                started,
                finished: x.at,
            };
            ctr.pid = None;
            ctr.stdin = None;
            ended(ctr, policy, x.code, now);
        }
        if ctr.pid.is_none() && ctr.started.is_some() {
            // It ran and ended: stay terminated, wait out the back-off, or restart.
            if !restarts(policy, ctr.last_exit) {
                return;
            }
            if let Some(t) = ctr.not_before
                && t > now
            {
                if let State::Terminated { .. } = ctr.record.state {
                    ctr.record.last = Some(ctr.record.state.clone());
                    ctr.record.state = State::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: Some(format!(
                            "back-off {} restarting failed container={} pod={}_{}({})",
                            humantime::format_duration(ctr.delay),
                            c.name,
                            rt.name,
                            rt.namespace,
                            rt.uid
                        )),
                    };
                    out.events.push(Event::warning(
                        "BackOff",
                        "Back-off restarting failed container".into(),
                        Some(&c.name),
                    ));
                }
                requeue(t - now, out);
                return;
            }
            if let State::Terminated { .. } = ctr.record.state {
                ctr.record.last = Some(ctr.record.state.clone());
            }
            ctr.record.restarts += 1;
        }
        // Start it (first start or restart).
        if ctr.pid.is_none() {
            let env = match inputs.env.get(&c.name) {
                Some(Ok(env)) => env.clone(),
                Some(Err(e)) => {
                    ctr.record.state =
                        State::Waiting { reason: "CreateContainerConfigError".into(), message: Some(e.to_string()) };
                    out.events.push(Event::warning("Failed", format!("Error: {e}"), Some(&c.name)));
                    requeue(Duration::from_secs(5), out);
                    return;
                }
                None => vec![],
            };
            let img = ctr.image.clone().expect("resolved above");
            match self.start(rt, c, &img, env, ctr) {
                Ok(()) => {
                    out.events.push(Event::normal("Created", format!("Created container: {}", c.name), Some(&c.name)));
                    out.events.push(Event::normal("Started", format!("Started container {}", c.name), Some(&c.name)));
                }
                Err(e) => {
                    let at = Utc::now();
                    ctr.record.state = State::Terminated {
                        exit_code: 128,
                        signal: None,
                        reason: "StartError".into(),
                        started: at,
                        finished: at,
                    };
                    ctr.record.ready = false;
                    ctr.started = Some((Instant::now(), at));
                    out.events.push(Event::warning("Failed", format!("Error: {e}"), Some(&c.name)));
                    ended(ctr, policy, 128, now);
                    if let Some(t) = ctr.not_before {
                        requeue(t.saturating_duration_since(now), out);
                    } else if restarts(policy, 128) {
                        requeue(Duration::from_millis(100), out);
                    }
                    return;
                }
            }
        }
        // Probes of a running container (init containers have none).
        if ctr.pid.is_some() && !init {
            let ip = out.sandbox.pod_ip;
            let tid = sandbox_tid.expect("sandbox exists");
            // A startup probe holds the other probes back until it succeeds; then readiness is
            // probed at once. Past its failure threshold the container is restarted.
            if let Some(p) = &c.startup_probe
                && !ctr.startup.ok
            {
                ctr.record.ready = false;
                if let Some(d) = run_probe_if_due(p, &mut ctr.startup, ctr.started.map(|s| s.0), tid, ip) {
                    if d.ready {
                        ctr.probe.next = Some(now);
                    } else {
                        requeue(d.next, out);
                        if let Some(msg) = d.failure {
                            out.events.push(Event::warning(
                                "Unhealthy",
                                format!("Startup probe failed: {msg}"),
                                Some(&c.name),
                            ));
                        }
                        if ctr.startup.failures >= p.failure_threshold.unwrap_or(3).max(1) {
                            out.events.push(Event::normal(
                                "Killing",
                                format!("Container {} failed startup probe, will be restarted", c.name),
                                Some(&c.name),
                            ));
                            if let Some(pid) = ctr.pid {
                                let grace = spec.termination_grace_period_seconds.unwrap_or(30);
                                stop_process(pid, &ctr.exit, Duration::from_secs(grace.max(0) as u64));
                            }
                            requeue(Duration::from_millis(100), out);
                        }
                        return;
                    }
                } else {
                    if let Some(n) = ctr.startup.next {
                        requeue(n.saturating_duration_since(now), out);
                    }
                    return;
                }
            }
            match &c.readiness_probe {
                None => ctr.record.ready = true,
                Some(p) => {
                    if let Some(d) = run_probe_if_due(p, &mut ctr.probe, ctr.started.map(|s| s.0), tid, ip) {
                        ctr.record.ready = d.ready;
                        requeue(d.next, out);
                        if let Some(msg) = d.failure {
                            out.events.push(Event::warning(
                                "Unhealthy",
                                format!("Readiness probe failed: {msg}"),
                                Some(&c.name),
                            ));
                        }
                    } else if let Some(n) = ctr.probe.next {
                        requeue(n.saturating_duration_since(now), out);
                    }
                }
            }
            if let Some(p) = &c.liveness_probe {
                if let Some(d) = run_probe_if_due(p, &mut ctr.liveness, ctr.started.map(|s| s.0), tid, ip) {
                    requeue(d.next, out);
                    if let Some(msg) = d.failure {
                        out.events.push(Event::warning(
                            "Unhealthy",
                            format!("Liveness probe failed: {msg}"),
                            Some(&c.name),
                        ));
                    }
                    if !d.ready {
                        out.events.push(Event::normal(
                            "Killing",
                            format!("Container {} failed liveness probe, will be restarted", c.name),
                            Some(&c.name),
                        ));
                        if let Some(pid) = ctr.pid {
                            let grace = spec.termination_grace_period_seconds.unwrap_or(30);
                            stop_process(pid, &ctr.exit, Duration::from_secs(grace.max(0) as u64));
                        }
                        requeue(Duration::from_millis(100), out);
                    }
                } else if let Some(n) = ctr.liveness.next {
                    requeue(n.saturating_duration_since(now), out);
                }
            }
        }
    }

    fn create_sandbox(
        &self,
        pod: &Pod,
        rt: &PodRt,
        host_network: bool,
        inputs: &SyncInputs,
    ) -> Result<SandboxRt, RuntimeError> {
        std::fs::create_dir_all(rt.dir.join("etc")).map_err(io(&rt.dir))?;
        let contents = inputs.volumes.as_ref().map_err(|e| RuntimeError::Mount(e.clone()))?;
        volumes::write_all(&rt.dir, &self.cfg.state_dir, contents)?;
        let volume_mounts = volumes::mounts(pod, &rt.dir, &self.cfg.state_dir, contents)?;
        // The node's CNI plugin decides the pod's network: Cilium's layout (an `lxc` veth, the
        // router address on `cilium_host` as gateway) or the ptp one (kindnet).
        let router = if host_network || super::node::cni_plugin(&self.cfg.cni_conf_dir).as_deref() != Some("cilium-cni")
        {
            None
        } else {
            Some(cilium_router()?)
        };
        let ip = if host_network {
            None
        } else {
            let mut ipam = self.ipam.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = router {
                ipam.reserve(r, "cilium_host");
            }
            Some(ipam.allocate(&rt.uid)?)
        };
        let hosts = if host_network {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            podfiles::hosts(pod, ip, &self.cfg.dns.cluster_domain)
        };
        let write = |name: &str, text: &str| -> Result<PathBuf, RuntimeError> {
            let p = rt.dir.join("etc").join(name);
            std::fs::write(&p, text).map_err(io(&p))?;
            Ok(p)
        };
        let hostname = podfiles::hostname(pod);
        let mut binds = vec![
            (write("hosts", &hosts)?, PathBuf::from("/etc/hosts")),
            (write("resolv.conf", &podfiles::resolv_conf(pod, &self.cfg.dns))?, PathBuf::from("/etc/resolv.conf")),
        ];
        // The kubelet gives each pod its own /etc/hostname too (host-network pods: the node's).
        if !host_network {
            binds.push((write("hostname", &format!("{hostname}\n"))?, PathBuf::from("/etc/hostname")));
        }
        let links = pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
            .filter_map(|c| c.image.as_deref())
            .flat_map(|image| images::layer_links(image, &self.cfg.image_dir.join("built"), &self.cfg.tutor))
            .collect();
        let rootfs = Rootfs {
            dir: rt.dir.join("rootfs"),
            keep: vec![self.cfg.image_dir.clone()],
            links,
            volumes: volume_mounts,
        };
        let mounts = Mounts { binds, tmpfs: vec![PathBuf::from("/run"), PathBuf::from("/tmp")], rootfs: Some(rootfs) };
        let release = |e: crate::backend::lab::LabError| {
            self.ipam.lock().unwrap_or_else(|e| e.into_inner()).release(&rt.uid);
            RuntimeError::Lab(e)
        };
        let ns = NsThread::with_net(
            &format!("pod-{}", rt.name),
            (!host_network).then_some(hostname.as_str()),
            mounts,
            if host_network { NetNs::Shared } else { NetNs::New },
        )
        .map_err(release)?;
        match (ip, router) {
            (Some(ip), Some(router)) => {
                let lxc = format!("lxc{}", hex_id(&[&rt.uid], 12));
                attach_cilium(&ns, &lxc, ip, router).map_err(release)?;
            }
            (Some(ip), None) => {
                let (cidr, gw) = {
                    let ipam = self.ipam.lock().unwrap_or_else(|e| e.into_inner());
                    (ipam.cidr().expect("allocated from it"), ipam.gateway().expect("has a cidr"))
                };
                let name = format!("veth{}", hex_id(&[&rt.uid], 8));
                attach(&ns, &name, ip, cidr, gw).map_err(release)?;
            }
            _ => {}
        }
        Ok(SandboxRt { ns, ip, started: Utc::now() })
    }

    fn start(
        &self,
        rt: &PodRt,
        c: &Container,
        img: &Image,
        env: Vec<(String, String)>,
        ctr: &mut Ctr,
    ) -> Result<(), RuntimeError> {
        let sb = rt.sandbox.lock().unwrap_or_else(|e| e.into_inner());
        let sb = sb.as_ref().ok_or(RuntimeError::NoSandbox)?;
        // `$(VAR)` in command and args expands from the container's environment.
        let known: BTreeMap<String, String> = env.iter().cloned().collect();
        let expand = |v: Option<&Vec<String>>| -> Vec<String> {
            v.into_iter().flatten().map(|s| super::env::expand(s, &known)).collect()
        };
        let argv = images::argv(img, &expand(c.command.as_ref()), &expand(c.args.as_ref()));
        if argv.is_empty() {
            return Err(RuntimeError::NoCommand(c.name.clone()));
        }
        let mut path = self.cfg.path.clone();
        if img.busybox {
            let dir = images::busybox_dir(&self.cfg.image_dir, &self.cfg.path).map_err(RuntimeError::Busybox)?;
            path = format!("{}:{path}", dir.display());
        }
        let log_dir = rt.dir.join(&c.name);
        std::fs::create_dir_all(&log_dir).map_err(io(&log_dir))?;
        let log = log_dir.join(format!("{}.log", ctr.record.restarts));
        let log_file = Arc::new(Mutex::new(std::fs::File::create(&log).map_err(io(&log))?));
        let mut vars: Vec<(String, String)> =
            vec![("PATH".into(), path.clone()), ("HOSTNAME".into(), rt.hostname.clone())];
        if c.tty == Some(true) {
            vars.push(("TERM".into(), "xterm".into()));
        }
        vars.extend(img.env.iter().cloned());
        vars.extend(env);
        if !vars.iter().any(|(k, _)| k == "HOME") {
            vars.push(("HOME".into(), "/root".into()));
        }
        let cwd = c.working_dir.clone().unwrap_or_else(|| "/".into());
        ctr.env = vars.clone();
        ctr.cwd = cwd.clone();
        let stdin = c.stdin == Some(true);
        // The program is looked up inside the pod's mounts (its /run and /tmp are its own), on
        // PATH as the runtime would; argv[0] stays as written (busybox picks its applet by it).
        let mut child = sb.ns.run(move || -> Result<std::process::Child, RuntimeError> {
            let program = images::which(&argv[0], &path).ok_or_else(|| RuntimeError::NotFound(argv[0].clone()))?;
            let mut cmd = std::process::Command::new(&program);
            std::os::unix::process::CommandExt::arg0(&mut cmd, &argv[0]);
            cmd.args(&argv[1..]).env_clear().envs(vars).current_dir(&cwd);
            cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() });
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            // SAFETY: setsid and prctl are async-signal-safe.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                    nix::unistd::setsid().map_err(std::io::Error::from)?;
                    // The container dies with its sandbox thread (the agent's exit included).
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            cmd.spawn().map_err(|source| RuntimeError::Spawn { program, source })
        })??;
        let pid = child.id() as i32;
        let started = Utc::now();
        for (stream, reader) in [
            ("stdout", child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>)),
            ("stderr", child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>)),
        ] {
            if let Some(r) = reader {
                let f = log_file.clone();
                std::thread::spawn(move || pump(r, stream, &f));
            }
        }
        ctr.stdin = child.stdin.take();
        let exit = Arc::new(Mutex::new(None));
        ctr.exit = exit.clone();
        ctr.pid = Some(pid);
        ctr.started = Some((Instant::now(), started));
        ctr.not_before = None;
        ctr.log = Some(log);
        ctr.record.container_id = Some(format!("tutor://{}", hex_id(&[&rt.uid, &c.name, &started.to_rfc3339()], 16)));
        ctr.record.state = State::Running { started };
        ctr.record.ready = c.readiness_probe.is_none();
        let wake = self.wake.clone();
        std::thread::spawn(move || {
            use std::os::unix::process::ExitStatusExt;
            let status = child.wait();
            let (code, signal) = match status {
                Ok(s) => match (s.code(), s.signal()) {
                    (Some(c), _) => (c, None),
                    (None, Some(sig)) => (128 + sig, Some(sig)),
                    _ => (255, None),
                },
                Err(_) => (255, None),
            };
            *exit.lock().unwrap_or_else(|e| e.into_inner()) = Some(Exit { code, signal, at: Utc::now() });
            wake();
        });
        Ok(())
    }

    /// Stop every container of pod `uid` (SIGTERM, then SIGKILL after `grace`), remove its
    /// sandbox and address. Returns whether the pod was known.
    pub fn kill_pod(&self, uid: &str, grace: Duration) -> bool {
        let Some(rt) = self.pods.lock().unwrap_or_else(|e| e.into_inner()).remove(uid) else { return false };
        let cs = std::mem::take(&mut *rt.containers.lock().unwrap_or_else(|e| e.into_inner()));
        let running: Vec<(i32, Arc<Mutex<Option<Exit>>>)> =
            cs.values().filter_map(|c| c.pid.map(|p| (p, c.exit.clone()))).collect();
        for (pid, _) in &running {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && running.iter().any(|(_, x)| x.lock().unwrap_or_else(|e| e.into_inner()).is_none())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (pid, x) in &running {
            if x.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        let sb = rt.sandbox.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(sb) = sb {
            // Whatever else still runs in the pod's network (execs) goes with it.
            if sb.ip.is_some() {
                let ino = std::fs::metadata(format!("/proc/{}/task/{}/ns/net", std::process::id(), sb.ns.tid()))
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
                if let Ok(ino) = ino {
                    crate::backend::lab::supervisor::kill_inside(&[ino]);
                }
            }
            // The veth pair goes with the pod's network namespace.
            drop(sb);
        }
        self.ipam.lock().unwrap_or_else(|e| e.into_inner()).release(uid);
        let _ = std::fs::remove_dir_all(&rt.dir);
        true
    }

    /// Stop everything (agent shutdown).
    pub fn kill_all(&self) {
        for uid in self.pod_uids() {
            self.kill_pod(&uid, Duration::from_secs(2));
        }
    }
}

/// Book a container's end: its exit code, and when it may restart (the first restart is
/// immediate, later ones wait out a doubling back-off; a long run resets it).
fn ended(ctr: &mut Ctr, policy: &str, code: i32, now: Instant) {
    ctr.record.ready = false;
    ctr.probe = ProbeState::default();
    ctr.liveness = ProbeState::live();
    ctr.startup = ProbeState::default();
    ctr.last_exit = code;
    if ctr.started.map(|s| s.0.elapsed() >= BACKOFF_RESET).unwrap_or(false) {
        ctr.backoff = Duration::ZERO;
    }
    if restarts(policy, code) {
        ctr.delay = ctr.backoff;
        ctr.not_before = (!ctr.backoff.is_zero()).then_some(now + ctr.backoff);
        ctr.backoff = next_backoff(ctr.backoff);
    }
}

/// SIGTERM a container's process group, SIGKILL after `grace`.
fn stop_process(pid: i32, exit: &Mutex<Option<Exit>>, grace: Duration) {
    let pg = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::killpg(pg, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && exit.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    if exit.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
        let _ = nix::sys::signal::killpg(pg, nix::sys::signal::Signal::SIGKILL);
    }
}

/// Copy a stream into the container's log in the CRI format (`TIME STREAM F LINE`), which
/// `kubectl logs --timestamps` shows.
fn pump(r: Box<dyn std::io::Read + Send>, stream: &str, log: &Mutex<std::fs::File>) {
    let mut r = std::io::BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (body, tag) = match line.strip_suffix(b"\n") {
            Some(b) => (b, "F"),
            None => (&line[..], "P"),
        };
        let ts = Utc::now().to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Nanos, true);
        let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(format!("{ts} {stream} {tag} ").as_bytes());
        let _ = f.write_all(body);
        let _ = f.write_all(b"\n");
    }
}

/// The address of the node's `cilium_host` (Cilium's router address, the pods' gateway).
fn cilium_router() -> Result<Ipv4Addr, RuntimeError> {
    let out = crate::backend::lab::sandbox::run_command(
        &["ip".into(), "-4".into(), "-o".into(), "addr".into(), "show".into(), "dev".into(), "cilium_host".into()],
        "",
    )
    .map_err(RuntimeError::Lab)?;
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or(RuntimeError::NoCiliumRouter)
}

/// A pod's eth0 in Cilium's layout (`network::cilium_node_lines`), from the node's namespace.
fn attach_cilium(
    pod: &NsThread,
    lxc: &str,
    ip: Ipv4Addr,
    router: Ipv4Addr,
) -> Result<(), crate::backend::lab::LabError> {
    use crate::backend::lab::network;
    let lines = network::cilium_node_lines(lxc, pod.tid(), ip);
    crate::backend::lab::sandbox::run_command(&["ip".into(), "-batch".into(), "-".into()], &(lines.join("\n") + "\n"))?;
    // Answer the pod's ARP for its gateway (Cilium answers it in BPF).
    for (key, value) in [("proxy_arp", "1"), ("rp_filter", "0")] {
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{lxc}/{key}"), value);
    }
    pod.ip(&network::cilium_pod_lines(ip, router, cilium_route_mtu()))?;
    // The agent's XDP load balancer redirects frames to a local backend straight into the pod's
    // veth (`XDP_REDIRECT`), which delivers them only when the pod's end has NAPI: GRO on.
    pod.command(&["ethtool", "-K", "eth0", "gro", "on"], "").map(drop)
}

/// Cilium's route MTU for a new pod, from the node's devices as its agent made them: eth0's MTU,
/// less the encapsulation when a tunnel device (`cilium_vxlan`, `cilium_geneve`) is there. (The
/// real CNI plugin asks the agent; the agent made the device from the same option.)
fn cilium_route_mtu() -> u32 {
    let net = std::path::Path::new("/sys/class/net");
    let mtu = std::fs::read_to_string(net.join("eth0/mtu")).ok().and_then(|m| m.trim().parse().ok()).unwrap_or(1500);
    let tunnel = ["cilium_vxlan", "cilium_geneve"].iter().any(|d| net.join(d).exists());
    if tunnel { mtu - crate::backend::lab::tunnel::OVERHEAD } else { mtu }
}

/// A pod's eth0 (ptp layout, as kind's default CNI): the pod's address in the node's podCIDR,
/// the gateway (the CIDR's first address) on the node's end, a host route to the pod.
fn attach(
    pod: &NsThread,
    veth: &str,
    ip: Ipv4Addr,
    cidr: crate::backend::lab::topology::Cidr,
    gw: Ipv4Addr,
) -> Result<(), crate::backend::lab::LabError> {
    let node = |lines: &[String]| -> Result<(), crate::backend::lab::LabError> {
        crate::backend::lab::sandbox::run_command(
            &["ip".into(), "-batch".into(), "-".into()],
            &(lines.join("\n") + "\n"),
        )
        .map(|_| ())
    };
    node(&[
        format!("link add {veth} type veth peer name eth0 netns {}", pod.tid()),
        format!("addr add {gw}/32 dev {veth}"),
        format!("link set {veth} up"),
        format!("route add {ip}/32 dev {veth} scope host"),
    ])?;
    let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{veth}/rp_filter"), "0");
    pod.ip(&[
        "link set lo up".into(),
        format!("addr add {ip}/{} dev eth0 noprefixroute", cidr.len),
        "link set eth0 up".into(),
        format!("route add {gw} dev eth0 scope link src {ip}"),
        format!("route add {cidr} via {gw} dev eth0 src {ip}"),
        format!("route add default via {gw} dev eth0"),
    ])
}

struct ProbeOutcome {
    ready: bool,
    failure: Option<String>,
    next: Duration,
}

fn run_probe_if_due(
    p: &Probe,
    st: &mut ProbeState,
    started: Option<Instant>,
    tid: i32,
    ip: Option<Ipv4Addr>,
) -> Option<ProbeOutcome> {
    let now = Instant::now();
    let period = Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64);
    let due = match st.next {
        Some(n) => n <= now,
        None => {
            let delay = Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64);
            started.map(|s| s + delay <= now).unwrap_or(false)
        }
    };
    if !due {
        if st.next.is_none() {
            let delay = Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64);
            st.next = started.map(|s| s + delay);
        }
        return None;
    }
    st.next = Some(now + period);
    let result = probe(p, tid, ip);
    let (ok_needed, fail_needed) = (p.success_threshold.unwrap_or(1).max(1), p.failure_threshold.unwrap_or(3).max(1));
    let failure = result.as_ref().err().map(ToString::to_string);
    apply_probe_result(st, result.is_ok(), ok_needed, fail_needed);
    Some(ProbeOutcome { ready: st.ok, failure, next: period })
}

/// The kubelet's thresholds: the result flips after `ok_needed` successes or `fail_needed`
/// failures in a row, and holds otherwise.
fn apply_probe_result(st: &mut ProbeState, success: bool, ok_needed: i32, fail_needed: i32) {
    if success {
        st.successes += 1;
        st.failures = 0;
        if st.successes >= ok_needed {
            st.ok = true;
        }
    } else {
        st.failures += 1;
        st.successes = 0;
        if st.failures >= fail_needed {
            st.ok = false;
        }
    }
}

/// Run one probe: exec in the pod's namespaces, HTTP GET or TCP connect to the pod.
fn probe(p: &Probe, tid: i32, ip: Option<Ipv4Addr>) -> Result<(), ProbeError> {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    let port = |port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString| match port {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => Ok(*i as u16),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
            s.parse().map_err(|_| ProbeError::NamedPort(s.clone()))
        }
    };
    if let Some(e) = &p.exec {
        let argv = e.command.clone().unwrap_or_default();
        if argv.is_empty() {
            return Err(ProbeError::NoCommand);
        }
        let mut cmd = std::process::Command::new("nsenter");
        cmd.args(crate::backend::lab::sandbox::nsenter_args(std::process::id() as i32, tid, Path::new("/")))
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(ProbeError::Spawn)?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(s)) if s.success() => return Ok(()),
                Ok(Some(s)) => {
                    let out = child
                        .wait_with_output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
                        .unwrap_or_default();
                    let (code, output) = (s.code().unwrap_or(-1), out.trim().to_string());
                    return Err(ProbeError::Exited { argv, code, output });
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ProbeError::TimedOut(argv));
                }
            }
        }
    }
    let ip = ip.ok_or(ProbeError::NoAddress)?;
    if let Some(t) = &p.tcp_socket {
        let addr = std::net::SocketAddr::from((ip, port(&t.port)?));
        return std::net::TcpStream::connect_timeout(&addr, timeout)
            .map(|_| ())
            .map_err(|source| ProbeError::Dial { addr, source });
    }
    if let Some(h) = &p.http_get {
        // `host` (an address) replaces the pod's IP, as the kubelet dials it from the node.
        let ip = h.host.as_deref().and_then(|a| a.parse::<Ipv4Addr>().ok()).unwrap_or(ip);
        let addr = std::net::SocketAddr::from((ip, port(&h.port)?));
        let headers: String = h.http_headers.iter().flatten().map(|x| format!("{}: {}\r\n", x.name, x.value)).collect();
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        let url = format!("http://{addr}{path}");
        let get = |source| ProbeError::Get { url: url.clone(), source };
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(get)?;
        let _ = s.set_read_timeout(Some(timeout));
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\n{headers}Connection: close\r\n\r\n"
        )
        .map_err(ProbeError::Send)?;
        let mut head = String::new();
        std::io::BufReader::new(s).read_line(&mut head).map_err(get)?;
        let code: u16 =
            head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or(ProbeError::BadAnswer(addr))?;
        return if (200..400).contains(&code) { Ok(()) } else { Err(ProbeError::Status(code)) };
    }
    Err(ProbeError::NoHandler)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_errors_carry_the_lab_error_with_its_causes() {
        let lab = crate::backend::lab::LabError::io(
            Path::new("/pods/p/etc"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        let e = RuntimeError::from(lab);
        assert!(matches!(e, RuntimeError::Lab(crate::backend::lab::LabError::Io { .. })));
        assert_eq!(e.to_string(), "/pods/p/etc: permission denied");
        let e = io(Path::new("/pods/p/c"))(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(e.to_string(), "/pods/p/c: entity not found");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn probe_failures_read_as_the_kubelet_writes_them() {
        assert_eq!(ProbeError::Status(503).to_string(), "HTTP probe failed with statuscode: 503");
        let e = ProbeError::Exited { argv: vec!["cat".into(), "/x".into()], code: 1, output: "no".into() };
        assert_eq!(e.to_string(), "command [\"cat\", \"/x\"] exited with 1: no");
        let e = ProbeError::Get {
            url: "http://10.244.1.2:80/".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(e.to_string(), "Get \"http://10.244.1.2:80/\": connection refused");
    }
}
