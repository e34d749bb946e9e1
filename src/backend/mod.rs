//! Environments that blocks run against (docs/architecture.md, "Backends").
//!
//! The runner only knows this trait: it brings an environment [`Backend::up`], runs each block
//! with [`Backend::exec`] (or [`Backend::spawn`] for `bg` blocks) on a [`Target`], and always
//! calls [`Backend::down`], whatever happened.

pub mod attach;
pub mod cgroup;
pub mod host;
pub mod kind;
pub mod kind_names;
pub mod lab;
pub mod process;
pub mod shell;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;

/// Which environment to run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The embedded kind-shaped lab in network namespaces (default).
    Lab,
    /// A real kind cluster (Docker + Kubernetes + Helm).
    Kind,
    /// An existing cluster from kubeconfig (`--context` required).
    Kube,
    /// The local shell.
    Host,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Lab => "lab",
            BackendKind::Kind => "kind",
            BackendKind::Kube => "kube",
            BackendKind::Host => "host",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which Kubernetes a lab cluster runs: the real control plane (default) or the older,
/// deprecated hand-written emulation (docs/architecture.md, "The real control plane").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabKubernetes {
    /// etcd, kube-apiserver, controller-manager and scheduler built from their Go modules, the
    /// real kubectl and helm, a node agent per node.
    #[default]
    Upstream,
    /// The emulation (an object store answering shims of kubectl and helm). Deprecated: only
    /// by explicit opt-in, to be removed once Cilium on the real API covers what it still does.
    Emulated,
}

impl LabKubernetes {
    pub fn as_str(self) -> &'static str {
        match self {
            LabKubernetes::Upstream => "upstream",
            LabKubernetes::Emulated => "emulated",
        }
    }
}

impl fmt::Display for LabKubernetes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `kubernetes:` value that is neither `upstream` nor `emulated`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown lab Kubernetes `{0}` (expected `upstream`, the real control plane and the default, or `emulated`, the deprecated emulation)"
)]
pub struct UnknownLabKubernetes(pub String);

impl FromStr for LabKubernetes {
    type Err = UnknownLabKubernetes;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "upstream" => Ok(LabKubernetes::Upstream),
            "emulated" => Ok(LabKubernetes::Emulated),
            other => Err(UnknownLabKubernetes(other.to_string())),
        }
    }
}

/// A backend name that is none of lab, kind, kube, host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend `{0}` (expected lab, kind, kube or host)")]
pub struct UnknownBackend(pub String);

impl FromStr for BackendKind {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lab" => Ok(BackendKind::Lab),
            "kind" => Ok(BackendKind::Kind),
            "kube" => Ok(BackendKind::Kube),
            "host" => Ok(BackendKind::Host),
            other => Err(UnknownBackend(other.to_string())),
        }
    }
}

/// Where a block runs (`on=` attribute).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Target {
    /// The user's machine (on the lab: the lab's host namespace).
    Host,
    /// A cluster node by name, e.g. `kind-worker`.
    Node(String),
    /// A pod: `pod/NAME` (namespace `default`) or `ns/NS/pod/NAME`.
    Pod { namespace: String, name: String },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Host => f.write_str("host"),
            Target::Node(n) => f.write_str(n),
            Target::Pod { namespace, name } if namespace == "default" => write!(f, "pod/{name}"),
            Target::Pod { namespace, name } => write!(f, "ns/{namespace}/pod/{name}"),
        }
    }
}

/// Text that is not a target (`on=` attribute, `tutor lab exec`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target `{0}` (expected host, a node name, pod/NAME or ns/NS/pod/NAME)")]
pub struct InvalidTarget(pub String);

impl FromStr for Target {
    type Err = InvalidTarget;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid =
            |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
        match parts.as_slice() {
            ["host"] => Ok(Target::Host),
            [node] if valid(node) => Ok(Target::Node(node.to_string())),
            ["pod", name] if valid(name) => Ok(Target::Pod { namespace: "default".into(), name: name.to_string() }),
            ["ns", ns, "pod", name] if valid(ns) && valid(name) => {
                Ok(Target::Pod { namespace: ns.to_string(), name: name.to_string() })
            }
            _ => Err(InvalidTarget(s.to_string())),
        }
    }
}

impl Target {
    /// A file-name-safe form (for per-target state files).
    pub fn slug(&self) -> String {
        self.to_string().replace('/', "_")
    }
}

/// What the runner hands a backend when bringing it up.
#[derive(Debug, Clone)]
pub struct UpContext {
    /// Per-run work directory: `file=` blocks are written here and host commands start here.
    pub workdir: PathBuf,
    /// A short unique name for this run (labs and clusters are named after it).
    pub run_name: String,
    /// Leave the environment up after the run (`--keep`).
    pub keep: bool,
    /// The Kubernetes the tutorial asks for on the lab (`kubernetes:` in its front matter);
    /// `None`: `TUTOR_LAB_K8S`, else the real control plane.
    pub kubernetes: Option<LabKubernetes>,
    /// The image references the tutorial's blocks name (`kind::workload::references`): the kind
    /// backend loads those it builds into the cluster as soon as the cluster exists.
    pub images: Vec<String>,
    /// What the tutorial's `offline:` URLs serve: the lab's outside world answers them (it has
    /// no internet); the other backends fetch the real URLs and ignore this.
    pub offline: Vec<Served>,
}

/// Content served at a URL by the lab's outside world (front matter `offline:`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Served {
    /// The URL as the tutorial wrote it.
    pub url: String,
    /// Host name (lower-case) and path with query: what a request names.
    pub host: String,
    pub target: String,
    /// The tutorial's `type:`, else the lab picks one.
    pub content_type: Option<String>,
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
}

/// Bytes as one base64 string in JSON (the lab's control socket), not an array of numbers.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// One block execution.
#[derive(Debug, Clone)]
pub struct ExecRequest<'a> {
    pub target: &'a Target,
    /// Complete bash script (the runner has already added notebook-state restore/save).
    pub script: &'a str,
    /// Kill the whole process group after this long.
    pub timeout: Duration,
    /// Extra environment variables for this block.
    pub env: &'a [(String, String)],
}

/// What a block did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Observation {
    /// stdout and stderr, interleaved as a terminal would show them.
    pub output: String,
    /// Exit status; `None` when killed (timeout or signal).
    pub exit: Option<i32>,
    pub timed_out: bool,
    #[serde(serialize_with = "ser_ms")]
    pub duration: Duration,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// A running `bg` block.
#[async_trait]
pub trait BgTask: Send {
    /// Stop the task (its whole process group) and return what it printed.
    async fn stop(self: Box<Self>) -> Observation;
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("the {0} backend is not built yet")]
    NotBuilt(BackendKind),
    #[error("target `{target}` does not exist on the {backend} backend")]
    UnknownTarget { backend: BackendKind, target: String },
    /// A target the environment does not have now, in the backend's own words: a lab node
    /// before its cluster is created, a pod that is not running.
    #[error("{0}")]
    TargetMissing(String),
    #[error("{backend} backend: pre-flight failed: {message}")]
    Preflight { backend: BackendKind, message: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("I/O error while {context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

impl BackendError {
    /// Whether the message already starts by naming backend `kind` (`kind backend: …`).
    pub fn names_backend(&self, kind: BackendKind) -> bool {
        matches!(self, BackendError::Preflight { backend, .. } if *backend == kind)
    }

    /// Errors that mean the user's input or machine set-up is wrong (exit 2), as opposed to a
    /// block that failed while running (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            BackendError::NotBuilt(_)
                | BackendError::Preflight { .. }
                | BackendError::UnknownTarget { .. }
                | BackendError::Unsupported(_)
        )
    }
}

/// An environment blocks run against.
#[async_trait]
pub trait Backend: Send + Sync {
    fn kind(&self) -> BackendKind;

    /// Create the environment. Called once per tutorial before any block.
    async fn up(&mut self, ctx: &UpContext) -> Result<(), BackendError>;

    /// Run one block to completion (or timeout) on `req.target`.
    async fn exec(&self, req: ExecRequest<'_>) -> Result<Observation, BackendError>;

    /// Start a `bg` block; the runner stops it when the tutorial ends.
    async fn spawn(&self, req: ExecRequest<'_>) -> Result<Box<dyn BgTask>, BackendError>;

    /// A command that starts `bash` on `target` for the runner's kernel (one long-lived shell
    /// per target, fed through stdin; the runner appends bash's arguments). `None`: this
    /// backend runs each block of `target` through [`Backend::exec`].
    fn kernel_command(&self, target: &Target) -> Result<Option<std::process::Command>, BackendError> {
        let _ = target;
        Ok(None)
    }

    /// A shell on `target` through an exec API with stdin attached, running `argv` (the runner's
    /// kernel, where [`Backend::kernel_command`] has none: kind nodes, pods behind an API
    /// server). `None`: this backend runs each block of `target` through [`Backend::exec`].
    async fn exec_shell(&self, target: &Target, argv: Vec<String>) -> Result<Option<shell::ExecShell>, BackendError> {
        let _ = (target, argv);
        Ok(None)
    }

    /// Where the notebook state (env, cwd) of `target` is kept, as a path valid *where the
    /// script runs*. The runner's script wrapper restores from and saves to it.
    fn state_path(&self, target: &Target) -> String;

    /// Facts for templates: `{{ backend }}`, `{{ nodes["kind-worker"].ip }}`, …
    fn facts(&self) -> serde_json::Value;

    /// Tear everything down. Must be safe to call after a failed or partial `up`.
    async fn down(&mut self) -> Result<(), BackendError>;

    /// Why this backend cannot give a tutorial's pods these images here (they are neither
    /// built, nor present, nor pullable), or `None` when it can. The runner skips the steps
    /// that need them with this reason (front matter `needs:`; docs/architecture.md, "Stages a
    /// backend cannot run"). Called after `up`.
    async fn lacks_images(&self, images: &[String]) -> Option<String> {
        let _ = images;
        None
    }
}

/// Build the backend of the given kind. `context` is the kubeconfig context (`--context`),
/// required by the kube backend.
pub fn create(kind: BackendKind, context: Option<&str>) -> Result<Box<dyn Backend>, BackendError> {
    match kind {
        BackendKind::Host => Ok(Box::new(host::HostBackend::default())),
        BackendKind::Lab => lab::create(),
        BackendKind::Kind | BackendKind::Kube => kind::create(kind, context),
    }
}

/// The environment every block starts with (terminal hygiene): a fixed terminal size, a UTF-8
/// C locale, UTC, and no `NO_COLOR` from the user's own shell (a tutorial may set it).
pub fn block_env(cmd: &mut std::process::Command) {
    cmd.env("COLUMNS", "80").env("LINES", "24").env("LC_ALL", "C.UTF-8").env("TZ", "UTC").env_remove("NO_COLOR");
}

/// Helper for local-process backends: per-target state file under the work directory.
pub fn local_state_path(workdir: &Path, target: &Target) -> String {
    workdir.join(".tutor").join("state").join(format!("{}.sh", target.slug())).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print() {
        for s in ["host", "kind-worker", "pod/tiefighter", "ns/kube-system/pod/coredns-1"] {
            assert_eq!(s.parse::<Target>().unwrap().to_string(), s);
        }
        assert_eq!(
            "ns/default/pod/x".parse::<Target>().unwrap(),
            Target::Pod { namespace: "default".into(), name: "x".into() }
        );
        for bad in ["", "pod/", "a/b", "ns/x/pod", "kind worker"] {
            assert_eq!(bad.parse::<Target>(), Err(InvalidTarget(bad.to_string())), "{bad:?} should not parse");
        }
        assert_eq!(
            "a/b".parse::<Target>().unwrap_err().to_string(),
            "invalid target `a/b` (expected host, a node name, pod/NAME or ns/NS/pod/NAME)"
        );
    }

    #[test]
    fn backend_kinds_parse() {
        assert_eq!("lab".parse::<BackendKind>().unwrap(), BackendKind::Lab);
        assert_eq!("docker".parse::<BackendKind>(), Err(UnknownBackend("docker".into())));
        assert_eq!(
            UnknownBackend("docker".into()).to_string(),
            "unknown backend `docker` (expected lab, kind, kube or host)"
        );
    }

    #[test]
    fn only_its_own_preflight_names_the_backend() {
        let pre = BackendError::Preflight { backend: BackendKind::Kind, message: "no docker".into() };
        assert!(pre.names_backend(BackendKind::Kind) && pre.to_string().starts_with("kind backend"));
        assert!(!pre.names_backend(BackendKind::Kube));
        assert!(!BackendError::Other("kind backend lookalike".into()).names_backend(BackendKind::Kind));
    }
}
