//! Real clusters: `--backend kind` (a fresh kind cluster per run, in Docker) and `--backend
//! kube --context NAME` (an existing cluster from kubeconfig).
//!
//! How a kind run works (README, "Running tutorials on a real cluster"):
//! - `up` runs the pre-flight checks, then prepares — but does not create — the run's cluster
//!   `tutor-<run>`: host blocks get a per-run `KUBECONFIG` and a `kind` wrapper first on PATH,
//!   so the tutorial's own `kind create cluster --config kind-config.yaml` block (the step the
//!   tutorial documents for its readers) creates *this run's* cluster from the tutorial's
//!   kind-config block.
//! - After each host block the backend looks for the cluster's node containers; once they
//!   appear it waits for the API server and adds the tutorial's node names
//!   (`kind-control-plane`, …) to the nodes' `/etc/hosts`.
//! - Scripts are rewritten from the tutorial's names to the run's and outputs back
//!   ([`naming::NameMap`]), so tutorials and their expected outputs stay written for `kind`.
//! - Node targets exec in the node container through the Docker API, pod targets through the
//!   Kubernetes exec API.
//! - `down` saves debugging artifacts under `target/tutor/artifacts/<cluster>/` (or
//!   `$TUTOR_ARTIFACTS_DIR/<cluster>/`) when a block failed, then
//!   deletes the cluster (whatever state it is in) unless `--keep`.

pub mod artifacts;
pub mod cluster;
pub mod config;
mod docker_exec;
pub mod load;
pub mod naming;
pub mod own_build;
pub(crate) mod pod_exec;
pub mod preflight;
pub mod registry;
pub mod remote;
pub mod shims;
pub mod workload;

#[cfg(test)]
mod fake_docker;
#[cfg(test)]
mod fake_kube;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::process::Command;

use super::shell::{ExecShell, ShellControl};
use super::{
    Backend, BackendError, BackendKind, BgTask, ExecRequest, Observation, Target, UpContext, local_state_path, process,
};
use cluster::Node;
use naming::NameMap;
use preflight::{Found, Probe};

/// How long a freshly created cluster's API server gets to become ready.
const APISERVER_WAIT: Duration = Duration::from_secs(180);
/// How long an existing cluster (kube backend) gets to answer during pre-flight.
const CONTEXT_WAIT: Duration = Duration::from_secs(15);

/// The node image the run's `kind create cluster` gets: `TUTOR_KIND_IMAGE` when set (empty:
/// kind's own default), else the image `k8s/kind-node.sh` built when the engine has it, else
/// kind's default (`kindest/node`, pulled from its registry where one is reachable).
async fn node_image(docker: &bollard::Docker) -> Option<String> {
    if let Ok(v) = std::env::var(own_build::IMAGE_VAR) {
        return Some(v.trim().to_string()).filter(|v| !v.is_empty());
    }
    let ours = own_build::node_image();
    docker.inspect_image(&ours).await.is_ok().then_some(ours)
}

/// Build the kind or kube backend, after the pre-flight checks that need no network (the rest
/// run in `up`). The kube backend refuses to exist without an explicit context: running a
/// tutorial against whatever `current-context` happens to be is how production clusters get
/// tutorials applied to them.
pub fn create(kind: BackendKind, context: Option<&str>) -> Result<Box<dyn Backend>, BackendError> {
    let context = context.map(str::trim).filter(|c| !c.is_empty());
    match (kind, context) {
        (BackendKind::Kind, None) => {
            let probe = Probe::from_env();
            own_build::ensure_dockerd(probe.docker_host.as_deref(), probe.path.as_deref())
                .map_err(|e| BackendError::Preflight { backend: BackendKind::Kind, message: e.to_string() })?;
            preflight::check_local(BackendKind::Kind, &probe)?;
            Ok(Box::new(KindBackend::new(Mode::Kind, probe)))
        }
        (BackendKind::Kind, Some(ctx)) => Err(BackendError::Unsupported(format!(
            "--context {ctx} applies to --backend kube; --backend kind always creates its own cluster"
        ))),
        (BackendKind::Kube, Some(ctx)) => {
            let probe = Probe::from_env();
            preflight::check_local(BackendKind::Kube, &probe)?;
            context_kubeconfig(&probe, ctx)?;
            Ok(Box::new(KindBackend::new(Mode::Kube { context: ctx.to_string() }, probe)))
        }
        (BackendKind::Kube, None) => Err(BackendError::Preflight {
            backend: BackendKind::Kube,
            message: format!(
                "refusing to run without --context NAME: tutor only runs against a kubeconfig context you name \
                 explicitly, never the current one{}",
                known_contexts()
            ),
        }),
        (other, _) => Err(BackendError::Other(format!("the kind module does not build the {other} backend"))),
    }
}

/// The user's kubeconfig reduced to `context`; a missing context is a pre-flight error.
fn context_kubeconfig(probe: &Probe, context: &str) -> Result<kube::config::Kubeconfig, BackendError> {
    let preflight =
        |e: config::KubeconfigError| BackendError::Preflight { backend: BackendKind::Kube, message: e.to_string() };
    let kc = probe.load_kubeconfig().map_err(preflight)?;
    config::single_context(&kc, context).map_err(preflight)
}

fn known_contexts() -> String {
    match Probe::from_env().load_kubeconfig() {
        Ok(kc) if !kc.contexts.is_empty() => {
            let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
            format!(" (contexts in your kubeconfig: {})", names.join(", "))
        }
        _ => String::new(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A fresh kind cluster per run.
    Kind,
    /// An existing cluster, through this kubeconfig context.
    Kube { context: String },
}

/// What the backend knows about the cluster, refreshed after host blocks.
#[derive(Debug)]
struct Live {
    names: NameMap,
    nodes: Vec<Node>,
    /// API server answered and aliases are in place.
    ready: bool,
}

struct Run {
    workdir: PathBuf,
    keep: bool,
    /// Unique per run: the kind cluster's name (kind) or the run's id (kube).
    id: String,
    /// The runner's name for the run.
    run_name: String,
    /// `<workdir>/.tutor/kind` or `.tutor/kube`: kubeconfig, shims, the wrapper's records.
    state_dir: PathBuf,
    bin: PathBuf,
    kubeconfig: PathBuf,
    found: Found,
    live: Mutex<Live>,
    refreshing: tokio::sync::Mutex<()>,
    /// A block failed (failure artifacts are saved at `down`); shared with the kernels'
    /// exec sessions.
    failed: Arc<AtomicBool>,
    /// The image references the tutorial names (loaded into a new cluster, see `load.rs`).
    images: Vec<String>,
    /// The run's registry, once a cluster exists (kind only).
    registry: tokio::sync::Mutex<Option<registry::Registry>>,
}

pub struct KindBackend {
    mode: Mode,
    probe: Probe,
    run: Option<Run>,
    /// The nodes' hosts file that receives the tutorial-name aliases (a scratch file in tests,
    /// where the fake Docker engine runs execs on the test machine).
    hosts_file: String,
    /// How long the kube backend's context gets to answer in pre-flight.
    context_wait: Duration,
    /// Failure artifacts go to `<artifacts_root>/<run id>/`.
    artifacts_root: PathBuf,
    /// Prepare a new cluster's workload images (off in tests with a fake Docker engine).
    load_images: bool,
}

impl KindBackend {
    /// A backend that checks and runs with the given environment (tests describe a machine
    /// with a [`Probe`] rather than by changing the process environment).
    pub fn new(mode: Mode, probe: Probe) -> Self {
        KindBackend {
            mode,
            probe,
            run: None,
            hosts_file: "/etc/hosts".into(),
            context_wait: CONTEXT_WAIT,
            artifacts_root: default_artifacts_root(),
            load_images: true,
        }
    }

    fn backend_kind(&self) -> BackendKind {
        match self.mode {
            Mode::Kind => BackendKind::Kind,
            Mode::Kube { .. } => BackendKind::Kube,
        }
    }

    fn run(&self) -> Result<&Run, BackendError> {
        self.run.as_ref().ok_or_else(|| BackendError::Other(format!("the {} backend is not up", self.backend_kind())))
    }

    fn docker(&self) -> Result<&bollard::Docker, BackendError> {
        self.run()?.found.docker.as_ref().ok_or_else(|| {
            BackendError::Unsupported("node targets need the kind backend (Docker): on the kube backend use pod targets or `kubectl debug node/…`".into())
        })
    }

    /// Environment of host blocks: the shims first on PATH, the run's kubeconfig, then the
    /// block's own variables (a block's PATH keeps the shims in front).
    fn host_env(&self, run: &Run, extra: &[(String, String)]) -> Vec<(String, String)> {
        let with_bin = |path: &str| format!("{}:{path}", run.bin.display());
        let base_path = self.probe.path.as_ref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let mut env = vec![
            ("PATH".to_string(), with_bin(&base_path)),
            ("KUBECONFIG".to_string(), run.kubeconfig.display().to_string()),
            ("TUTOR_CLUSTER".to_string(), run.id.clone()),
        ];
        if self.mode == Mode::Kind {
            env.push(("KIND_CLUSTER_NAME".to_string(), run.id.clone()));
        }
        // `helm repo add` in a tutorial must not depend on, or change, the user's repositories;
        // the download cache stays shared.
        for (var, dir) in [("HELM_CONFIG_HOME", "helm/config"), ("HELM_DATA_HOME", "helm/data")] {
            env.push((var.to_string(), run.state_dir.join(dir).display().to_string()));
        }
        for (k, v) in extra {
            let v = if k == "PATH" { with_bin(v) } else { v.clone() };
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v));
        }
        env
    }

    fn host_command(&self, run: &Run, req: &ExecRequest<'_>, script: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg("--noprofile").arg("--norc").arg("-c").arg(script);
        cmd.current_dir(&run.workdir);
        cmd.envs(self.host_env(run, req.env));
        cmd
    }

    fn names(&self) -> NameMap {
        match &self.run {
            Some(run) => run.live.lock().unwrap().names.clone(),
            None => NameMap::new("", ""),
        }
    }

    /// Look at the cluster after a host block: it may have just been created (then wait for
    /// the API server and add the aliases) or deleted.
    async fn refresh(&self) -> Result<(), BackendError> {
        let run = self.run()?;
        let Some(docker) = run.found.docker.as_ref() else { return Ok(()) };
        let _one_at_a_time = run.refreshing.lock().await;
        let nodes = cluster::nodes(docker, &run.id).await?;
        {
            let mut live = run.live.lock().unwrap();
            if nodes.is_empty() {
                live.nodes.clear();
                live.ready = false;
                live.names.set_nodes([]);
                return Ok(());
            }
            if live.ready && live.nodes == nodes {
                return Ok(());
            }
        }
        let requested = shims::requested(&run.state_dir);
        let config_name = requested
            .config
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| config::KindConfig::parse(&text).ok())
            .and_then(|c| c.name);
        let alias = requested.name.or(config_name).unwrap_or_else(|| naming::KIND_DEFAULT_NAME.to_string());
        let mut names = NameMap::new(alias, run.id.clone());
        names.set_nodes(nodes.iter().map(|n| n.name.as_str()));
        let was_ready = run.live.lock().unwrap().ready;
        if !was_ready {
            let client = cluster::client(&run.kubeconfig, None).await?;
            cluster::wait_apiserver(&client, APISERVER_WAIT)
                .await
                .map_err(|e| BackendError::Other(format!("kind cluster `{}` was created, but {e}", run.id)))?;
        }
        cluster::add_aliases(docker, &nodes, &names, &self.hosts_file).await?;
        if !was_ready && self.mode == Mode::Kind && self.load_images {
            self.prepare_images(run, docker, &nodes).await?;
        }
        let mut live = run.live.lock().unwrap();
        *live = Live { names, nodes, ready: true };
        Ok(())
    }

    /// A new cluster's workload images (`load.rs`): the registry on the kind network, the
    /// nodes' mirror configuration, and the tutorial's images loaded into every node.
    async fn prepare_images(&self, run: &Run, docker: &bollard::Docker, nodes: &[Node]) -> Result<(), BackendError> {
        let cache = workload::Cache { dir: workload::Cache::default_dir() };
        let mut registry = run.registry.lock().await;
        if registry.is_none() {
            *registry = Some(load::start_registry(docker, cache.clone()).await?);
        }
        let addr = registry.as_ref().expect("started above").addr;
        drop(registry);
        load::configure_mirrors(docker, nodes, addr).await?;
        let kind = run.found.tool("kind").ok_or_else(|| BackendError::Other("kind is not on PATH".into()))?;
        let mut prepared = load::load(docker, kind, &run.id, &cache, &run.images, &run.state_dir).await?;
        prepared.registry = addr.to_string();
        let path = run.state_dir.join("images.json");
        let text = serde_json::to_string_pretty(&prepared).expect("serialises");
        std::fs::write(&path, text).map_err(io_err(format!("writing {}", path.display())))?;
        Ok(())
    }

    /// The node container a tutorial's node name stands for.
    async fn resolve_node(&self, name: &str) -> Result<String, BackendError> {
        let run = self.run()?;
        if run.live.lock().unwrap().nodes.is_empty() {
            self.refresh().await?;
        }
        let live = run.live.lock().unwrap();
        if live.nodes.is_empty() {
            return Err(BackendError::Other(format!(
                "node `{name}`: the run's cluster does not exist yet (node targets exist once the tutorial's \
                 `kind create cluster` block has run)"
            )));
        }
        if live.nodes.iter().any(|n| n.name == name) {
            return Ok(name.to_string());
        }
        live.names
            .node_real(name)
            .ok_or_else(|| BackendError::UnknownTarget { backend: BackendKind::Kind, target: name.to_string() })
    }

    async fn pod_transport(&self) -> Result<pod_exec::KubeTransport, BackendError> {
        let run = self.run()?;
        if !run.kubeconfig.exists() {
            return Err(BackendError::Other(
                "pod targets need the cluster: no kubeconfig yet (has the tutorial's `kind create cluster` block run?)"
                    .into(),
            ));
        }
        Ok(pod_exec::KubeTransport { client: cluster::client(&run.kubeconfig, None).await? })
    }

    async fn exec_inner(&self, req: &ExecRequest<'_>) -> Result<Observation, BackendError> {
        let run = self.run()?;
        let names = self.names();
        let script = names.to_real(req.script);
        let mut obs = match req.target {
            Target::Host => {
                let obs = process::run(self.host_command(run, req, &script), req.timeout).await?;
                if self.mode == Mode::Kind {
                    // The block may have created the cluster; if that cluster is unusable, say
                    // so with what the block printed.
                    if let Err(e) = self.refresh().await {
                        let shown = names.to_alias(&obs.output);
                        return Err(BackendError::Other(format!("{e}\noutput of the block:\n{shown}")));
                    }
                }
                obs
            }
            Target::Node(name) => {
                let docker = self.docker()?;
                let container = self.resolve_node(name).await?;
                docker_exec::exec(docker, &container, &script, req.env, remote::Deadline::new(req.timeout)).await?
            }
            Target::Pod { namespace, name } => {
                let transport = self.pod_transport().await?;
                pod_exec::exec(&transport, namespace, name, &script, req.env, remote::Deadline::new(req.timeout))
                    .await?
            }
        };
        // The names may have changed during a host block (the cluster was just created).
        obs.output = self.names().to_alias(&obs.output);
        Ok(obs)
    }

    fn artifacts_plan(&self, run: &Run) -> Option<artifacts::Plan> {
        let kubectl = run.found.tool("kubectl")?.to_path_buf();
        let kind = match self.mode {
            Mode::Kind => Some((run.found.tool("kind")?.to_path_buf(), run.id.clone())),
            Mode::Kube { .. } => None,
        };
        Some(artifacts::Plan { dir: self.artifacts_dir(run), kubeconfig: run.kubeconfig.clone(), kubectl, kind })
    }

    /// Where this run's failure artifacts go: `<root>/<run id>/`.
    fn artifacts_dir(&self, run: &Run) -> PathBuf {
        self.artifacts_root.join(&run.id)
    }
}

/// The default root of failure artifacts: `$TUTOR_ARTIFACTS_DIR`, else `target/tutor/artifacts`
/// beside the run record and JUnit report (the work directory itself is usually a temporary
/// one that the runner removes after the run).
pub fn default_artifacts_root() -> PathBuf {
    let root = std::env::var_os("TUTOR_ARTIFACTS_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/tutor/artifacts"));
    std::path::absolute(&root).unwrap_or(root)
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> BackendError {
    move |source| BackendError::Io { context, source }
}

#[async_trait]
impl Backend for KindBackend {
    fn kind(&self) -> BackendKind {
        self.backend_kind()
    }

    async fn up(&mut self, ctx: &UpContext) -> Result<(), BackendError> {
        let backend = self.backend_kind();
        let found = preflight::check(backend, &self.probe).await?;
        let id = naming::cluster_name(&ctx.run_name);
        let state_dir = ctx.workdir.join(".tutor").join(backend.as_str());
        std::fs::create_dir_all(&state_dir).map_err(io_err(format!("creating {}", state_dir.display())))?;
        let kubeconfig = state_dir.join("kubeconfig");
        let bin_dir = state_dir.join("bin");
        let bin = match &self.mode {
            Mode::Kind => {
                let docker = found.docker.as_ref().expect("pre-flight connects to Docker for kind");
                if !cluster::nodes(docker, &id).await?.is_empty() {
                    return Err(BackendError::Preflight {
                        backend,
                        message: format!(
                            "a kind cluster named `{id}` already exists (left by an earlier run that was killed?): \
                             delete it with `kind delete cluster --name {id}`"
                        ),
                    });
                }
                let real = found.tool("kind").expect("pre-flight found kind");
                let image = node_image(docker).await;
                shims::install(
                    &bin_dir,
                    shims::KindShim::Wrap { real, cluster: &id, state: &state_dir, image: image.as_deref() },
                )?
            }
            Mode::Kube { context } => {
                let preflight = |message: String| BackendError::Preflight { backend, message };
                let one = context_kubeconfig(&self.probe, context)?;
                let text = serde_yaml::to_string(&one).map_err(|e| preflight(format!("kubeconfig: {e}")))?;
                write_private(&kubeconfig, &text)?;
                let client = cluster::client(&kubeconfig, None).await.map_err(|e| preflight(e.to_string()))?;
                cluster::wait_apiserver(&client, self.context_wait)
                    .await
                    .map_err(|e| preflight(format!("context `{context}`: {e}")))?;
                shims::install(&bin_dir, shims::KindShim::Refuse)?
            }
        };
        // Only kind clusters are renamed; on an existing cluster names are what they are.
        let alias = if self.mode == Mode::Kind { naming::KIND_DEFAULT_NAME } else { id.as_str() };
        self.run = Some(Run {
            workdir: ctx.workdir.clone(),
            keep: ctx.keep,
            live: Mutex::new(Live { names: NameMap::new(alias, id.clone()), nodes: Vec::new(), ready: false }),
            id,
            run_name: ctx.run_name.clone(),
            state_dir,
            bin,
            kubeconfig,
            found,
            refreshing: tokio::sync::Mutex::new(()),
            failed: Arc::new(AtomicBool::new(false)),
            images: ctx.images.clone(),
            registry: tokio::sync::Mutex::new(None),
        });
        Ok(())
    }

    async fn exec(&self, req: ExecRequest<'_>) -> Result<Observation, BackendError> {
        let result = self.exec_inner(&req).await;
        let failed = match &result {
            Ok(o) => o.timed_out || o.exit != Some(0),
            Err(_) => true,
        };
        if failed && let Some(run) = &self.run {
            run.failed.store(true, Ordering::Relaxed);
        }
        result
    }

    async fn spawn(&self, req: ExecRequest<'_>) -> Result<Box<dyn BgTask>, BackendError> {
        let run = self.run()?;
        let script = self.names().to_real(req.script);
        match req.target {
            Target::Host => process::spawn(self.host_command(run, &req, &script)),
            Target::Node(name) => {
                let docker = self.docker()?;
                let container = self.resolve_node(name).await?;
                docker_exec::spawn(docker, &container, &script, req.env).await
            }
            Target::Pod { namespace, name } => {
                let transport = Arc::new(self.pod_transport().await?);
                pod_exec::spawn(transport, namespace, name, &script, req.env).await
            }
        }
    }

    async fn exec_shell(&self, target: &Target, argv: Vec<String>) -> Result<Option<ExecShell>, BackendError> {
        let run = self.run()?;
        let mut shell = match target {
            // Host blocks stay one process each: after each the backend looks for the cluster
            // the block may have created (`refresh`).
            Target::Host => return Ok(None),
            Target::Node(name) => {
                let docker = self.docker()?;
                let container = self.resolve_node(name).await?;
                docker_exec::shell(docker, &container, argv).await?
            }
            Target::Pod { namespace, name } => {
                let transport = Arc::new(self.pod_transport().await?);
                pod_exec::shell(transport, namespace, name, argv).await?
            }
        };
        shell.control = Arc::new(Named { inner: shell.control, names: self.names(), failed: run.failed.clone() });
        Ok(Some(shell))
    }

    fn state_path(&self, target: &Target) -> String {
        let id = self.run.as_ref().map(|r| r.id.as_str()).unwrap_or("run");
        match (target, &self.run) {
            (Target::Host, Some(run)) => local_state_path(&run.workdir, target),
            (Target::Host, None) => local_state_path(Path::new("."), target),
            // Each node and pod has its own /tmp; the run's id keeps concurrent runs on a
            // shared (kube) cluster apart.
            _ => format!("/tmp/tutor-state-{id}.sh"),
        }
    }

    fn facts(&self) -> serde_json::Value {
        let Some(run) = &self.run else {
            return serde_json::json!({ "backend": self.backend_kind().as_str() });
        };
        let live = run.live.lock().unwrap();
        let nodes: serde_json::Map<String, serde_json::Value> = live
            .nodes
            .iter()
            .map(|n| {
                let alias = live.names.node_alias(&n.name);
                (alias.clone(), serde_json::json!({ "name": alias, "container": n.name, "role": n.role, "ip": n.ip }))
            })
            .collect();
        let context = match &self.mode {
            Mode::Kind => format!("kind-{}", run.id),
            Mode::Kube { context } => context.clone(),
        };
        serde_json::json!({
            "backend": self.backend_kind().as_str(),
            "cluster": run.id,
            "cluster_alias": live.names.alias,
            "context": context,
            "kubeconfig": run.kubeconfig.display().to_string(),
            "workdir": run.workdir.display().to_string(),
            "run_name": run.run_name,
            "artifacts": self.artifacts_dir(run).display().to_string(),
            "nodes": nodes,
            "tutor": crate::backend::lab::tutor_exe().display().to_string(),
        })
    }

    async fn lacks_images(&self, images: &[String]) -> Option<String> {
        // An existing cluster (kube) pulls from wherever it can reach: only it knows.
        let docker = self.run.as_ref()?.found.docker.as_ref().filter(|_| self.mode == Mode::Kind)?;
        load::lacking(docker, images).await
    }

    async fn down(&mut self) -> Result<(), BackendError> {
        let Some(run) = self.run.as_ref() else { return Ok(()) };
        let exists = match (&self.mode, run.found.docker.as_ref()) {
            (Mode::Kind, Some(docker)) => cluster::nodes(docker, &run.id).await.map(|n| !n.is_empty()).unwrap_or(true),
            _ => true,
        };
        if run.failed.load(Ordering::Relaxed)
            && exists
            && run.kubeconfig.exists()
            && let Some(plan) = self.artifacts_plan(run)
        {
            let client = cluster::client(&run.kubeconfig, None).await.ok();
            // Problems are listed in artifacts/errors.txt; teardown goes on regardless.
            let _ = artifacts::collect(&plan, client.as_ref()).await;
        }
        let result = match (&self.mode, run.keep) {
            (Mode::Kind, false) => match run.found.tool("kind") {
                Some(kind) => cluster::delete(kind, &run.id, &run.kubeconfig).await,
                None => Ok(()),
            },
            _ => Ok(()),
        };
        if result.is_ok() {
            self.run = None;
        }
        result
    }
}

/// A kernel's exec session on a kind or kube cluster: commands get the run's names, output the
/// tutorial's, and a failing block marks the run for failure artifacts.
struct Named {
    inner: Arc<dyn ShellControl>,
    names: NameMap,
    failed: Arc<AtomicBool>,
}

#[async_trait]
impl ShellControl for Named {
    async fn kill_tree(&self, pid: u32) {
        self.inner.kill_tree(pid).await
    }

    fn to_target(&self, text: &str) -> String {
        self.names.to_real(text)
    }

    fn output_from_target(&self, text: String) -> String {
        self.names.to_alias(&text)
    }

    fn failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

/// Write a file only the user can read (kubeconfigs hold credentials).
fn write_private(path: &Path, text: &str) -> Result<(), BackendError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(format!("writing {}", path.display())))?;
    f.write_all(text.as_bytes()).map_err(io_err(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests;
