//! The node agent (the kubelet's role, as kwok plays it, with real processes): one per lab
//! node, running inside the node's namespaces against the cluster's real API server. It
//! registers its Node, renews its Lease, reports Ready once a CNI is configured, and runs the
//! pods the scheduler binds to it (see `runtime`). Two kube-rs controllers reconcile from
//! observed state: one for its Node, one for its pods. See docs/architecture.md.

pub mod api;
pub mod env;
pub mod events;
pub mod images;
pub mod ipam;
pub mod kindnet;
pub mod logs;
pub mod node;
pub mod podfiles;
pub mod runtime;
pub mod static_pods;
pub mod status;
pub mod volumes;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, Service};
use k8s_openapi::chrono::Utc;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource};

use crate::backend::lab::topology::Cidr;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Input(String),
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// A file, socket or signal handler of the agent's could not be set up.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A blocking task of the agent's panicked or was cancelled.
    #[error("{what}: {source}")]
    Task {
        what: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl AgentError {
    fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
        move |source| AgentError::Io { what: path.display().to_string(), source }
    }
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> AgentError {
    let what = what.into();
    move |source| AgentError::Api { what, source: Box::new(source) }
}

/// The agent's settings (`tutor lab node-agent` flags, named as the kubelet's).
#[derive(Debug, Clone)]
pub struct Options {
    pub node: String,
    pub node_ip: Ipv4Addr,
    pub kubeconfig: PathBuf,
    pub state_dir: PathBuf,
    pub image_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub cluster_dns: Vec<Ipv4Addr>,
    pub cluster_domain: String,
    pub node_labels: BTreeMap<String, String>,
    pub taints: Vec<k8s_openapi::api::core::v1::Taint>,
    /// The kubelet API server (`tutor-kubelet`, built with the control plane); without it the
    /// node serves no exec, attach, logs or port-forward.
    pub kubelet_server: Option<PathBuf>,
    /// Serving certificate and key of the kubelet API, and the CA its clients' certificates
    /// must chain to (the kubelet's flags); a self-signed certificate and no client check when
    /// absent.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    /// Play kindnet on this node (see `kindnet`).
    pub kindnet: bool,
    /// The cluster's pod network, for kindnet's masquerade.
    pub cluster_cidr: Option<Cidr>,
    /// kindnet's own identity (the node's may not list other Nodes); the node's when absent.
    pub kindnet_kubeconfig: Option<PathBuf>,
    /// Static pods to mirror (see `static_pods`).
    pub pod_manifest_path: Option<PathBuf>,
}

/// The annotation of mirror pods (static pods' API objects): their processes are not the
/// agent's to run.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Start the kubelet API server as a child that dies with the agent.
fn start_kubelet_server(opts: &Options, socket: &std::path::Path) -> Result<Option<std::process::Child>, AgentError> {
    use std::os::unix::process::CommandExt;
    let Some(bin) = &opts.kubelet_server else {
        eprintln!("node agent {}: no --kubelet-server: exec, attach, logs and port-forward are not served", opts.node);
        return Ok(None);
    };
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--listen")
        .arg(format!("{}:{}", opts.node_ip, node::KUBELET_PORT))
        .arg("--agent-socket")
        .arg(socket)
        .arg("--node")
        .arg(&opts.node);
    for (flag, v) in [
        ("--tls-cert-file", &opts.tls_cert_file),
        ("--tls-private-key-file", &opts.tls_private_key_file),
        ("--client-ca-file", &opts.client_ca_file),
    ] {
        if let Some(v) = v {
            cmd.arg(flag).arg(v);
        }
    }
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn()
        .map(Some)
        .map_err(|e| AgentError::Input(format!("cannot start the kubelet API server {}: {e}", bin.display())))
}

struct Ctx {
    client: Client,
    opts: Options,
    rt: Arc<runtime::Runtime>,
    network_ready: AtomicBool,
    recorder: events::Recorder,
    facts: node::NodeFacts,
    tokens: volumes::Tokens,
}

/// A client from a kubeconfig file.
pub async fn client(path: &std::path::Path) -> Result<Client, AgentError> {
    let bad = |message: String| AgentError::Kubeconfig { path: path.display().to_string(), message };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    Client::try_from(cfg).map_err(|e| bad(e.to_string()))
}

/// Run the agent until SIGTERM/SIGINT; its pods' processes go with it.
pub async fn run(opts: Options) -> Result<(), AgentError> {
    std::fs::create_dir_all(&opts.state_dir).map_err(AgentError::io(&opts.state_dir))?;
    std::fs::create_dir_all(&opts.cni_conf_dir).map_err(AgentError::io(&opts.cni_conf_dir))?;
    let client = client(&opts.kubeconfig).await?;
    let version = client.apiserver_version().await.map_err(api_err("asking the API server its version"))?;
    let facts = node::NodeFacts::gather(
        &opts.node,
        opts.node_ip,
        opts.node_labels.clone(),
        opts.taints.clone(),
        &version.git_version,
    );
    register(&client, &facts).await?;
    let node_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (wake_tx, wake_rx) = futures_channel::mpsc::unbounded::<()>();
    let rt = Arc::new(runtime::Runtime::new(
        runtime::Config {
            node: opts.node.clone(),
            node_ip: opts.node_ip,
            state_dir: opts.state_dir.clone(),
            image_dir: opts.image_dir.clone(),
            path: format!(
                "{}:{}",
                images::link_built(&opts.image_dir).map_err(AgentError::io(&opts.image_dir))?.display(),
                std::env::var("PATH")
                    .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())
            ),
            dns: podfiles::DnsSettings {
                cluster_dns: opts.cluster_dns.clone(),
                cluster_domain: opts.cluster_domain.clone(),
                node_resolv,
            },
            cni_conf_dir: opts.cni_conf_dir.clone(),
            tutor: {
                let exe = std::env::current_exe().map_err(AgentError::io(std::path::Path::new("/proc/self/exe")))?;
                images::link_tutor(&opts.image_dir, &exe).map_err(AgentError::io(&opts.image_dir))?
            },
        },
        move || {
            let _ = wake_tx.unbounded_send(());
        },
    ));
    let socket = opts.state_dir.join("agent.sock");
    api::serve(&socket, rt.clone()).map_err(AgentError::io(&socket))?;
    let mut kubelet_server = start_kubelet_server(&opts, &socket)?;
    let recorder = events::Recorder::new(client.clone(), &opts.node);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        opts: opts.clone(),
        rt: rt.clone(),
        network_ready: AtomicBool::new(false),
        recorder,
        facts,
        tokens: volumes::Tokens::default(),
    });

    // Readiness before the first pod sync (pods bound before the node controller's first look
    // must not see a network that is there).
    if let Ok(n) = Api::<Node>::all(client.clone()).get(&opts.node).await {
        let _ = reconcile_node(Arc::new(n), ctx.clone()).await;
    }
    let lease = tokio::spawn(lease_loop(ctx.clone()));
    let kindnet_client = match (&opts.kindnet_kubeconfig, opts.kindnet) {
        (Some(path), true) => self::client(path).await?,
        _ => client.clone(),
    };
    let kindnet = opts.kindnet.then(|| {
        tokio::spawn(kindnet::run_for(kindnet_client, opts.node.clone(), opts.cni_conf_dir.clone(), opts.cluster_cidr))
    });
    let mirrors = opts
        .pod_manifest_path
        .clone()
        .map(|dir| tokio::spawn(static_pods::run_for(client.clone(), opts.node.clone(), opts.node_ip, dir)));
    let node_ctl = Controller::new(
        Api::<Node>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={}", opts.node)),
    )
    .run(reconcile_node, |_, _, _| Action::requeue(Duration::from_secs(2)), ctx.clone())
    .for_each(|_| async {});
    let pods = Controller::new(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields(&format!("spec.nodeName={}", opts.node)),
    );
    let store = pods.store();
    let pod_ctl =
        pods.reconcile_all_on(wake_rx).run(reconcile_pod, pod_error_policy, ctx.clone()).for_each(|r| async move {
            if let Err(e) = r {
                eprintln!("pod controller: {e}");
            }
        });
    // Pods removed without a graceful delete (force deletion): their processes go too.
    let housekeeping = {
        let rt = rt.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if store.wait_until_ready().await.is_err() {
                    continue;
                }
                let known: Vec<String> = store.state().iter().filter_map(|p| p.metadata.uid.clone()).collect();
                for uid in rt.pod_uids().into_iter().filter(|u| !known.contains(u)) {
                    let rt = rt.clone();
                    let _ = tokio::task::spawn_blocking(move || rt.kill_pod(&uid, Duration::ZERO)).await;
                }
            }
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| AgentError::Io { what: "handling SIGTERM".into(), source })?;
    tokio::select! {
        _ = node_ctl => {}
        _ = pod_ctl => {}
        _ = housekeeping => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    lease.abort();
    for task in [kindnet, mirrors].into_iter().flatten() {
        task.abort();
    }
    if let Some(k) = kubelet_server.as_mut() {
        let _ = k.kill();
        let _ = k.wait();
    }
    let _ = tokio::task::spawn_blocking(move || rt.kill_all()).await;
    Ok(())
}

/// Create the Node, or take over the one registered before (same name: a restarted agent).
async fn register(client: &Client, facts: &node::NodeFacts) -> Result<(), AgentError> {
    let api = Api::<Node>::all(client.clone());
    let obj = node::node_object(facts);
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = serde_json::json!({ "metadata": { "labels": obj.metadata.labels } });
            api.patch(&facts.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(api_err(format!("updating node {}", facts.name)))
        }
        Err(e) => Err(api_err(format!("registering node {}", facts.name))(e)),
    }
}

/// Renew the node's Lease every 10 s (duration 40 s, the kubelet's defaults).
async fn lease_loop(ctx: Arc<Ctx>) {
    let leases = Api::<Lease>::namespaced(ctx.client.clone(), "kube-node-lease");
    let nodes = Api::<Node>::all(ctx.client.clone());
    loop {
        if let Ok(n) = nodes.get(&ctx.opts.node).await {
            let lease = node::lease(&n, 40, Utc::now());
            let r = leases
                .patch(
                    &ctx.opts.node,
                    &PatchParams::apply("kubelet").force(),
                    &Patch::Apply(serde_json::to_value(&lease).unwrap_or_default()),
                )
                .await;
            if let Err(e) = r {
                eprintln!("renewing lease of {}: {e}", ctx.opts.node);
            }
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

async fn reconcile_node(n: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, AgentError> {
    if let Some(c) = n.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()) {
        let cidr = Cidr::parse(c).map_err(|e| AgentError::Input(format!("node {}: podCIDR {e}", ctx.opts.node)))?;
        let mut ipam = ctx.rt.ipam.lock().unwrap_or_else(|e| e.into_inner());
        if ipam.cidr() != Some(cidr) {
            ipam.set_cidr(cidr);
        }
    }
    // Pods wait for a network configuration and an address range.
    let has_cidr = ctx.rt.ipam.lock().unwrap_or_else(|e| e.into_inner()).cidr().is_some();
    let ready = node::cni_configured(&ctx.opts.cni_conf_dir) && has_cidr;
    let was = ctx.network_ready.swap(ready, Ordering::SeqCst);
    let old_ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status == "True", c.last_heartbeat_time.clone()));
    let stale = match &old_ready {
        Some((r, Some(t))) => *r != ready || (Utc::now() - t.0).num_seconds() >= 50,
        _ => true,
    };
    if stale {
        let status = node::node_status(&ctx.facts, n.status.as_ref(), ready, Utc::now());
        Api::<Node>::all(ctx.client.clone())
            .patch_status(
                &ctx.opts.node,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await
            .map_err(api_err(format!("updating node {} status", ctx.opts.node)))?;
    }
    if ready && !was {
        // Pods that waited for the network: look at them again.
        ctx.rt.wake();
    }
    // The CNI configuration is looked for every second, as the runtime's config watcher would.
    Ok(Action::requeue(Duration::from_secs(1)))
}

fn pod_error_policy(_: Arc<Pod>, e: &AgentError, _: Arc<Ctx>) -> Action {
    eprintln!("pod sync: {e}");
    Action::requeue(Duration::from_secs(2))
}

/// ConfigMaps, Secrets and Services a pod's containers need, then each container's environment.
async fn environments(
    pod: &Pod,
    ctx: &Ctx,
    pod_ip: Option<String>,
) -> BTreeMap<String, Result<Vec<(String, String)>, env::EnvError>> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let mut services: Vec<Service> = Api::<Service>::namespaced(ctx.client.clone(), &ns)
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    if ns != "default"
        && let Ok(k) = Api::<Service>::namespaced(ctx.client.clone(), "default").get("kubernetes").await
    {
        services.push(k);
    }
    let spec = pod.spec.clone().unwrap_or_default();
    let mut sources = env::Sources::default();
    let cms = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns);
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ns);
    for c in &spec.containers {
        let mut cm_names: Vec<String> = vec![];
        let mut secret_names: Vec<String> = vec![];
        for f in c.env_from.iter().flatten() {
            cm_names.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
            secret_names.extend(f.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for e in c.env.iter().flatten() {
            if let Some(v) = &e.value_from {
                cm_names.extend(v.config_map_key_ref.as_ref().map(|r| r.name.clone()));
                secret_names.extend(v.secret_key_ref.as_ref().map(|r| r.name.clone()));
            }
        }
        for n in cm_names {
            if !sources.config_maps.contains_key(&n)
                && let Ok(Some(cm)) = cms.get_opt(&n).await
            {
                sources.config_maps.insert(n, cm.data.unwrap_or_default());
            }
        }
        for n in secret_names {
            if !sources.secrets.contains_key(&n)
                && let Ok(Some(s)) = secrets.get_opt(&n).await
            {
                let data = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                sources.secrets.insert(n, data);
            }
        }
    }
    let host_ip = ctx.opts.node_ip.to_string();
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .map(|c| (c.name.clone(), env::build(pod, c, &services, &sources, pod_ip.as_deref(), &host_ip)))
        .collect()
}

async fn reconcile_pod(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action, AgentError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    if pod.metadata.deletion_timestamp.is_some() {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or(pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .max(0) as u64;
        let rt = ctx.rt.clone();
        let u = uid.clone();
        let _ = tokio::task::spawn_blocking(move || rt.kill_pod(&u, Duration::from_secs(grace))).await;
        ctx.tokens.forget(&uid);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(api_err(format!("deleting pod {ns}/{name}"))(e)),
        }
        return Ok(Action::await_change());
    }
    if pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(MIRROR_ANNOTATION)) {
        return Ok(Action::await_change());
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if matches!(phase, "Succeeded" | "Failed") && !ctx.rt.pod_uids().contains(&uid) {
        // A finished pod stays finished (after an agent restart too).
        return Ok(Action::await_change());
    }
    let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
    let inputs = runtime::SyncInputs {
        network_ready: ctx.network_ready.load(Ordering::SeqCst),
        env: environments(&pod, &ctx, pod_ip).await,
        volumes: volumes::resolve(
            &pod,
            &volumes::Source { client: &ctx.client, tokens: &ctx.tokens, host_ip: ctx.opts.node_ip.to_string() },
        )
        .await,
    };
    let rt = ctx.rt.clone();
    let p = pod.clone();
    let result = tokio::task::spawn_blocking(move || rt.sync(&p, &inputs))
        .await
        .map_err(|source| AgentError::Task { what: format!("pod {ns}/{name}"), source })?;
    // Containers read the pod's IP from their environment: a pod whose IP only now became known
    // gets it on its next start (the kubelet has it before starting any container).
    let reference = pod.object_ref(&());
    for ev in &result.events {
        let mut r = reference.clone();
        r.field_path = ev.field.clone();
        if let Err(err) = ctx.recorder.record(&r, ev.warning, &ev.reason, &ev.note).await {
            eprintln!("event for pod {ns}/{name}: {err}");
        }
    }
    let status = status::pod_status(&pod, &result.sandbox, &result.init_records, &result.records, Utc::now());
    let old = serde_json::to_value(pod.status.clone().unwrap_or_default()).unwrap_or_default();
    let new = serde_json::to_value(&status).unwrap_or_default();
    if old != new {
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({ "status": status })))
            .await
            .map_err(api_err(format!("updating pod {ns}/{name} status")))?;
    }
    Ok(match result.requeue {
        Some(d) => Action::requeue(d.max(Duration::from_millis(50))),
        None => Action::requeue(Duration::from_secs(30)),
    })
}
