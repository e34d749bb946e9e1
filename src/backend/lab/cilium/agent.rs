//! `cilium-agent` on a lab node: the container of the `cilium` DaemonSet's pod (host network, so
//! it runs in its node's network namespace). Like the real agent it reads its options from
//! `--config-dir`, talks to the API server named by `KUBERNETES_SERVICE_HOST` with its
//! service-account token, and programs its node from what it watches — the Nodes, Services and
//! EndpointSlices, and the `cilium-config` ConfigMap — with the lab's datapath code:
//!
//! - `cilium_host`/`cilium_net` with the router address, the route to the node's own podCIDR
//!   through it and, with `auto-direct-node-routes`, a route to every other node's podCIDR via
//!   that node's InternalIP (`datapath.rs`);
//! - in tunnel mode (the default), `cilium_vxlan` or `cilium_geneve` and the routes to the other
//!   nodes' podCIDRs through `cilium_host`, encapsulated by the lab's tc programs (`tunnel.rs`);
//! - masquerade: Cilium's `CILIUM_POST_nat` chain (`masquerade.rs`);
//! - with `kube-proxy-replacement`, the Services' ClusterIPs, NodePorts, external and
//!   load-balancer addresses translated to their ready endpoints (`services.rs`);
//! - with kube-proxy replacement, the LoadBalancer addresses also through the bundled XDP load
//!   balancer on `eth0` (`lb.rs`), and with L2 announcements the ARP answers for the addresses
//!   this node won the lease of (`l2.rs`);
//! - the CNI configuration `05-cilium.conflist` once the node is programmed (what turns the node
//!   `Ready`), and `/healthz` on 127.0.0.1:9879 for the pod's probes.
//!
//! One difference from the real agent, said where it shows: an edit of `cilium-config` (a
//! `helm upgrade`) takes effect at once, without restarting the agents.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod api;
mod endpoints;
mod health;

use super::CiliumError;
use super::config::AgentConfig;
use super::lb::AgentLb;
use crate::backend::lab::bpf_masq::BpfMasq;
use crate::backend::lab::config::Role;
use crate::backend::lab::sandbox::{Mounts, NetNs, NsThread};
use crate::backend::lab::services::{Frontend, nft_script};
use crate::backend::lab::topology::{Cidr, NodePlan, ROUTER_OCTET, docker_mac};
use crate::backend::lab::tunnel::TunnelDatapath;
use crate::backend::lab::values::CiliumValues;
use crate::backend::lab::{datapath, masquerade};

/// Where the agent writes the CNI configuration (the DaemonSet mounts the node's
/// `/etc/cni/net.d` there).
const CNI_DIR: &str = "/host/etc/cni/net.d";
pub const CNI_CONF: &str = "05-cilium.conflist";
const HEALTH: &str = "127.0.0.1:9879";
/// The agent's API socket (Cilium's path).
pub const SOCKET: &str = "/var/run/cilium/cilium.sock";
/// ip-masq-agent's configuration, mounted from its ConfigMap.
const IP_MASQ_AGENT: &str = "/etc/config/ip-masq-agent";

struct Args {
    config_dir: PathBuf,
}

fn parse(args: &[String]) -> Result<Args, CiliumError> {
    let mut a = Args { config_dir: PathBuf::from("/tmp/cilium/config-map") };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        match flag {
            "--config-dir" => {
                let v = inline.or_else(|| it.next().cloned());
                a.config_dir = PathBuf::from(v.ok_or_else(|| CiliumError::Usage("--config-dir needs a value".into()))?);
            }
            other => return Err(CiliumError::Usage(format!("unknown flag: {other}"))),
        }
    }
    Ok(a)
}

/// The state the agent reconciles from.
struct Observed {
    config: AgentConfig,
    nodes: Vec<Arc<Node>>,
    services: Vec<Arc<Service>>,
    slices: Vec<Arc<EndpointSlice>>,
    /// This node's pods (their host ports).
    pods: Vec<Arc<Pod>>,
    /// The load-balancer addresses whose L2 announcement lease this node holds.
    held: BTreeSet<Ipv4Addr>,
}

/// What was last applied (to change the node only when the inputs change).
#[derive(Default, PartialEq, Clone)]
struct Applied {
    installed: bool,
    routes: Option<(Vec<NodePlan>, bool)>,
    masquerade: Option<(Vec<NodePlan>, CiliumValues)>,
    services: Option<String>,
    cni: bool,
}

/// The agent's view of its node, shared by the reconciler and the API `cilium-dbg` asks.
#[derive(Default)]
struct NodeState {
    applied: Applied,
    /// BPF masquerade (`enable-bpf-masquerade`), loaded for these inputs.
    bpf: Option<(BpfMasq, (Cidr, Vec<Cidr>))>,
    /// `lxc` devices `from_pod` is attached to.
    attached: BTreeSet<String>,
    values: Option<CiliumValues>,
    me: Option<NodePlan>,
    frontends: Vec<Frontend>,
    /// The XDP load balancer for LoadBalancer addresses.
    lb: AgentLb,
    /// The last reconcile's error, if it failed.
    failure: Option<String>,
    /// Tunnel mode's device, programs and routes (`tunnel.rs`).
    tunnel: TunnelDatapath,
}

/// Facts read once at start.
struct Facts {
    node: String,
    kubernetes: String,
    cilium: String,
    service_subnet: Cidr,
    /// The cluster's pod range: what BPF masquerade leaves alone in tunnel mode.
    pod_subnet: Cidr,
}

pub async fn main(args: &[String]) -> Result<ExitCode, CiliumError> {
    let args = parse(args)?;
    let node = std::env::var("K8S_NODE_NAME").map_err(|_| {
        CiliumError::InCluster("K8S_NODE_NAME is not set (the DaemonSet sets it from spec.nodeName)".into())
    })?;
    let namespace = std::env::var("CILIUM_K8S_NAMESPACE").unwrap_or_else(|_| "kube-system".into());
    let initial = AgentConfig::from_dir(&args.config_dir)?;
    // A configuration the lab cannot play is fatal, as an invalid option is for the real agent.
    initial.datapath()?;
    let client = Client::try_default().await.map_err(CiliumError::api("connecting to the API server"))?;
    eprintln!("level=info msg=\"Cilium agent starting\" node={node} routing-mode={}", initial.routing_mode());
    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(health(ready.clone()));

    let (nodes, w) = reflector::store::<Node>();
    let node_events = reflector(w, watcher(Api::<Node>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .map(|r| r.map(drop));
    let (services, w) = reflector::store::<Service>();
    let service_events = reflector(w, watcher(Api::<Service>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .map(|r| r.map(drop));
    let (slices, w) = reflector::store::<EndpointSlice>();
    let slice_events = reflector(w, watcher(Api::<EndpointSlice>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .map(|r| r.map(drop));
    let (configs, w) = reflector::store::<ConfigMap>();
    let config_events = reflector(
        w,
        watcher(
            Api::<ConfigMap>::namespaced(client.clone(), &namespace),
            watcher::Config::default().fields("metadata.name=cilium-config"),
        ),
    )
    .default_backoff()
    .touched_objects()
    .map(|r| r.map(drop));
    // The node's pods: a new pod's lxc device gets the BPF programs at once, and its host
    // ports are served.
    let (pods, w) = reflector::store::<Pod>();
    let pod_events = reflector(
        w,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default().fields(&format!("spec.nodeName={node}"))),
    )
    .default_backoff()
    .touched_objects()
    .map(|r| r.map(drop));
    let events = futures_util::stream::select_all([
        node_events.boxed(),
        service_events.boxed(),
        slice_events.boxed(),
        config_events.boxed(),
        pod_events.boxed(),
    ]);
    futures_util::pin_mut!(events);

    let facts = Arc::new(Facts {
        kubernetes: client
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .map_err(CiliumError::api("reading the API server's version"))?,
        cilium: own_version(&client, &namespace, &node).await,
        service_subnet: subnet(&client, "serviceSubnet", "10.96.0.0/16").await,
        pod_subnet: subnet(&client, "podSubnet", "10.244.0.0/16").await,
        node: node.clone(),
    });
    let ns = Arc::new(NsThread::with_net("cilium-agent", None, Mounts::default(), NetNs::Shared)?);
    let state = Arc::new(Mutex::new(NodeState::default()));
    let extra = Arc::new(api::Extra::default());
    let cluster = initial.get("cluster-name").unwrap_or("default").to_string();
    tokio::spawn(endpoints::run(client.clone(), node.clone(), cluster, state.clone(), extra.endpoints.clone()));
    tokio::spawn(health::run(nodes.clone(), extra.health.clone()));
    tokio::spawn(api::serve(state.clone(), facts.clone(), nodes.clone(), extra.clone()));
    let shared_config = Arc::new(Mutex::new(initial.clone()));
    let held = Arc::new(Mutex::new(BTreeSet::new()));
    let l2_changed = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(super::l2::run(super::l2::Inputs {
        client: client.clone(),
        namespace: namespace.clone(),
        node: node.clone(),
        nodes: nodes.clone(),
        services: services.clone(),
        config: shared_config.clone(),
        held: held.clone(),
        changed: l2_changed.clone(),
    }));
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut reported: Option<String> = None;
    loop {
        tokio::select! {
            _ = l2_changed.notified() => {}
            ev = events.next() => match ev {
                None => return Ok(ExitCode::from(1)),
                Some(Err(e)) => eprintln!("level=warning msg=\"watching the API: {e}\""),
                Some(Ok(())) => {
                    // Let a burst of events settle into one pass.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = tick.tick() => {}
        }
        let config = configs
            .state()
            .first()
            .and_then(|c| c.data.clone())
            .map(|d| AgentConfig::from_map(d.into_iter().collect()))
            .unwrap_or_else(|| initial.clone());
        *extra.config.lock().unwrap_or_else(|e| e.into_inner()) = config.clone();
        *shared_config.lock().unwrap_or_else(|e| e.into_inner()) = config.clone();
        let observed = Observed {
            config,
            nodes: nodes.state(),
            services: services.state(),
            slices: slices.state(),
            pods: pods.state(),
            held: held.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        };
        let (ns2, st, f) = (ns.clone(), state.clone(), facts.clone());
        let r = tokio::task::spawn_blocking(move || {
            let mut st = st.lock().unwrap_or_else(|e| e.into_inner());
            let r = reconcile(&ns2, &f, &observed, &mut st);
            st.failure = r.as_ref().err().map(ToString::to_string);
            r.map(|()| st.applied.cni)
        })
        .await;
        match r {
            Ok(Ok(cni)) => {
                ready.store(cni, Ordering::SeqCst);
                reported = None;
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                if reported.as_deref() != Some(&msg) {
                    eprintln!("level=error msg=\"{msg}\" node={node}");
                    reported = Some(msg);
                }
            }
            Err(e) => eprintln!("level=error msg=\"{e}\""),
        }
    }
}

/// The Cilium version of this node's agent pod, from its image tag (`v1.19.1` → `1.19.1`).
async fn own_version(client: &Client, namespace: &str, node: &str) -> String {
    let lp = kube::api::ListParams::default().labels("k8s-app=cilium").fields(&format!("spec.nodeName={node}"));
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), namespace).list(&lp).await;
    pods.ok()
        .and_then(|l| l.items.into_iter().next())
        .and_then(|p| p.spec?.containers.into_iter().find(|c| c.name == "cilium-agent")?.image)
        .and_then(|i| image_version(&i))
        .unwrap_or_else(|| "unknown".into())
}

/// `quay.io/cilium/cilium:v1.19.1@sha256:…` → `1.19.1`.
pub fn image_version(image: &str) -> Option<String> {
    let no_digest = image.split('@').next()?;
    let (_, tag) = no_digest.rsplit_once(':').filter(|(repo, _)| !repo.is_empty())?;
    Some(tag.trim_start_matches('v').to_string())
}

/// One of the cluster's ranges (`serviceSubnet`, `podSubnet`), from kubeadm's `kubeadm-config`
/// (kind's default when absent).
async fn subnet(client: &Client, key: &str, default: &str) -> Cidr {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "kube-system").get("kubeadm-config").await;
    cm.ok()
        .and_then(|c| c.data?.get("ClusterConfiguration").cloned())
        .and_then(|y| serde_yaml::from_str::<serde_yaml::Value>(&y).ok())
        .and_then(|v| Cidr::parse(v.get("networking")?.get(key)?.as_str()?).ok())
        .unwrap_or_else(|| Cidr::parse(default).expect("valid"))
}

/// `/healthz` for the startup, liveness and readiness probes: 200 once the node is programmed.
async fn health(ready: Arc<AtomicBool>) {
    let listener = match tokio::net::TcpListener::bind(HEALTH).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("level=error msg=\"health endpoint {HEALTH}: {e}\"");
            return;
        }
    };
    loop {
        let Ok((mut conn, _)) = listener.accept().await else { continue };
        let ok = ready.load(Ordering::SeqCst);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut buf)).await;
            let (status, body) = if ok { ("200 OK", "ok") } else { ("503 Service Unavailable", "starting") };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        });
    }
}

fn internal_ip(n: &Node) -> Option<Ipv4Addr> {
    n.status.as_ref()?.addresses.as_ref()?.iter().find(|a| a.type_ == "InternalIP")?.address.parse().ok()
}

/// The nodes as the lab's datapath code knows them: name, address, podCIDR and Cilium's router
/// address in it. Nodes without an address or a podCIDR yet are left out.
pub fn plans(nodes: &[Arc<Node>]) -> Vec<NodePlan> {
    let mut v: Vec<NodePlan> = nodes
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.clone()?;
            let ip = internal_ip(n)?;
            let pod_cidr = Cidr::parse(n.spec.as_ref()?.pod_cidr.as_deref()?).ok()?;
            let cp =
                n.metadata.labels.as_ref().is_some_and(|l| l.contains_key("node-role.kubernetes.io/control-plane"));
            Some(NodePlan {
                name,
                role: if cp { Role::ControlPlane } else { Role::Worker },
                ip,
                mac: docker_mac(ip),
                router_ip: pod_cidr.nth(ROUTER_OCTET as u32),
                pod_cidr,
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The node a frontend list is built for: its InternalIP and its name (which endpoints are local).
#[derive(Clone, Copy)]
pub struct Here<'a> {
    pub ip: Ipv4Addr,
    pub node: &'a str,
}

/// The Services' frontends and their ready endpoints, as the kube-proxy replacement serves
/// them on the node `here` (ClusterIPs, this node's NodePorts, external and load-balancer
/// addresses). A Service with `externalTrafficPolicy: Local` sends what reaches it from outside
/// (NodePort, external and load-balancer addresses) to this node's endpoints only, and one with
/// `internalTrafficPolicy: Local` does the same with its ClusterIP; with none on this node, the
/// frontend has no backends.
pub fn frontends(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>], here: Here) -> Vec<Frontend> {
    let mut out = Vec::new();
    for svc in services {
        let (Some(ns), Some(name), Some(spec)) = (&svc.metadata.namespace, &svc.metadata.name, &svc.spec) else {
            continue;
        };
        let Some(cluster_ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else {
            continue;
        };
        let mine: Vec<&EndpointSlice> = slices
            .iter()
            .map(|s| s.as_ref())
            .filter(|s| {
                s.metadata.namespace.as_deref() == Some(ns)
                    && s.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name")) == Some(name)
                    && s.address_type == "IPv4"
            })
            .collect();
        let lb: Vec<Ipv4Addr> = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .map(|s| s.ingress.iter().flatten().filter_map(|i| i.ip.as_deref()?.parse().ok()).collect())
            .unwrap_or_default();
        let external: Vec<Ipv4Addr> = spec.external_ips.iter().flatten().filter_map(|ip| ip.parse().ok()).collect();
        let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
        let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
        for port in spec.ports.iter().flatten() {
            let proto = port.protocol.as_deref().unwrap_or("TCP").to_lowercase();
            // The endpoints' port for this service port (matched by name), and the ready
            // endpoints with whether each runs on this node.
            let mut target = None;
            let mut backends: Vec<(Ipv4Addr, bool)> = Vec::new();
            for s in &mine {
                // An unnamed service port is "" in the slice.
                let named = |n: &Option<String>| n.clone().unwrap_or_default();
                let Some(p) = s.ports.iter().flatten().find(|p| named(&p.name) == named(&port.name)) else { continue };
                let Some(tp) = p.port else { continue };
                target = Some(tp as u16);
                for e in &s.endpoints {
                    if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                        continue;
                    }
                    let local = e.node_name.as_deref() == Some(here.node);
                    backends.extend(e.addresses.iter().filter_map(|a| Some((a.parse::<Ipv4Addr>().ok()?, local))));
                }
            }
            backends.sort();
            backends.dedup();
            let all: Vec<Ipv4Addr> = backends.iter().map(|(ip, _)| *ip).collect();
            let local: Vec<Ipv4Addr> = backends.iter().filter(|(_, l)| *l).map(|(ip, _)| *ip).collect();
            let target_port = target.unwrap_or(port.port as u16);
            let mut add = |kind: &'static str, ip: Ipv4Addr, port_no: u16, only_local: bool| {
                out.push(Frontend {
                    kind,
                    ip,
                    proto: proto.clone(),
                    port: port_no,
                    target_port,
                    backends: if only_local { local.clone() } else { all.clone() },
                })
            };
            add("ClusterIP", cluster_ip, port.port as u16, internal_local);
            for a in &lb {
                add("LoadBalancer", *a, port.port as u16, external_local);
            }
            for a in &external {
                add("ExternalIPs", *a, port.port as u16, external_local);
            }
            if let Some(np) = port.node_port {
                add("NodePort", here.ip, np as u16, external_local);
            }
        }
    }
    out
}

/// The host ports of this node's running pods (`ports[].hostPort`): the node's address (or the
/// port's `hostIP`) and the host port, translated to the pod's address and container port, as
/// Cilium's kube-proxy replacement serves them (`HostPort` in `cilium-dbg service list`).
pub fn host_ports(pods: &[Arc<Pod>], here: Here) -> Vec<Frontend> {
    let mut out = Vec::new();
    for pod in pods {
        let (Some(spec), Some(status)) = (&pod.spec, &pod.status) else { continue };
        if spec.node_name.as_deref() != Some(here.node)
            || spec.host_network == Some(true)
            || status.phase.as_deref() != Some("Running")
        {
            continue;
        }
        let Some(pod_ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else { continue };
        for port in spec.containers.iter().flat_map(|c| c.ports.iter().flatten()) {
            let Some(host_port) = port.host_port.filter(|p| (1..=65535).contains(p)) else { continue };
            let ip = port
                .host_ip
                .as_deref()
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                .filter(|ip| !ip.is_unspecified())
                .unwrap_or(here.ip);
            out.push(Frontend {
                kind: "HostPort",
                ip,
                proto: port.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
                port: host_port as u16,
                target_port: port.container_port as u16,
                backends: vec![pod_ip],
            });
        }
    }
    out.sort_by(|a, b| (a.ip, a.port, &a.proto).cmp(&(b.ip, b.port, &b.proto)));
    out
}

/// The CNI network configuration that hands the node's pods to Cilium.
pub fn cni_conflist() -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "cniVersion": "0.3.1",
        "name": "cilium",
        "plugins": [{ "type": "cilium-cni", "enable-debug": false, "log-file": "/var/run/cilium/cilium-cni.log" }]
    }))
    .expect("serializable")
}

fn write_cni(dir: &Path) -> Result<(), CiliumError> {
    std::fs::create_dir_all(dir).map_err(CiliumError::io(format!("creating {}", dir.display())))?;
    let tmp = dir.join(format!(".{CNI_CONF}.tmp"));
    std::fs::write(&tmp, cni_conflist()).map_err(CiliumError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, dir.join(CNI_CONF)).map_err(CiliumError::io(format!("writing {CNI_CONF}")))
}

/// The MAC address of the node's `eth0` (for gratuitous ARP).
fn mine_mac() -> Result<[u8; 6], CiliumError> {
    let path = format!("/sys/class/net/{}/address", super::lb::DEVICE);
    let text = std::fs::read_to_string(&path).map_err(CiliumError::io(format!("reading {path}")))?;
    let bytes: Vec<u8> = text.trim().split(':').filter_map(|h| u8::from_str_radix(h, 16).ok()).collect();
    bytes.try_into().map_err(|_| CiliumError::Config { key: path, why: format!("not a MAC address: {}", text.trim()) })
}

fn has_link(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The node's `lxc` devices (its pods' veths in Cilium's layout).
fn lxc_links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("lxc")).collect()
        })
        .unwrap_or_default()
}

/// ip-masq-agent's configuration as the DaemonSet mounts it (`nonMasqueradeCIDRs`).
fn ip_masq_agent_cidrs() -> Result<Vec<Cidr>, CiliumError> {
    let Ok(text) = std::fs::read_to_string(IP_MASQ_AGENT) else { return Ok(vec![]) };
    let bad = |why: String| CiliumError::Config { key: IP_MASQ_AGENT.into(), why };
    let v: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    v.get("nonMasqueradeCIDRs")
        .and_then(serde_yaml::Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|c| {
            let s = c.as_str().ok_or_else(|| bad("nonMasqueradeCIDRs holds a non-string".into()))?;
            Cidr::parse(s).map_err(|e| bad(format!("{s}: {e}")))
        })
        .collect()
}

fn reconcile(ns: &NsThread, facts: &Facts, o: &Observed, st: &mut NodeState) -> Result<(), CiliumError> {
    let mut values = o.config.datapath()?;
    if values.ip_masq_agent {
        values.non_masquerade_cidrs = ip_masq_agent_cidrs()?;
    }
    let all = plans(&o.nodes);
    let Some(mine) = all.iter().find(|p| p.name == facts.node).cloned() else {
        // Not registered yet, or no podCIDR from the node IPAM controller yet.
        return Ok(());
    };
    let a = &mut st.applied;
    if !a.installed {
        // An agent that restarts finds its devices in place, as the real one restores them.
        if !has_link("cilium_host") {
            datapath::install_node(ns, &mine)?;
        }
        a.installed = true;
    }
    let routes = (all.clone(), values.auto_direct_node_routes);
    if a.routes.as_ref() != Some(&routes) {
        datapath::sync_node_routes(ns, &mine, &all, &values)?;
        a.routes = Some(routes);
    }
    st.tunnel.sync(ns, &mine, &all, values.tunnel)?;
    let a = &mut st.applied;
    let masq = (all.clone(), values.clone());
    if a.masquerade.as_ref() != Some(&masq) {
        masquerade::sync(ns, &mine, &all, &values)?;
        a.masquerade = Some(masq);
    }
    // BPF masquerade: loaded for the current inputs, attached to every pod's lxc device. In
    // tunnel mode the other nodes' pods are reached through the tunnel, never masqueraded.
    let routed = if values.tunnel.is_some() { facts.pod_subnet } else { mine.pod_cidr };
    let want = (values.ipv4_masquerade && values.bpf_masquerade)
        .then(|| (values.native_routing_cidr.unwrap_or(routed), masquerade::non_masquerade(&values)));
    if st.bpf.as_ref().map(|(_, inputs)| inputs) != want.as_ref() {
        st.bpf = None;
        st.attached.clear();
        if let Some(inputs) = want {
            let bpf = BpfMasq::load(ns, mine.ip, inputs.0, facts.service_subnet, &inputs.1)?;
            st.bpf = Some((bpf, inputs));
        }
    }
    if let Some((bpf, _)) = &st.bpf {
        let links = lxc_links();
        st.attached.retain(|l| links.contains(l));
        for l in links {
            if !st.attached.contains(&l) {
                bpf.attach_pod(ns, &l)?;
                st.attached.insert(l);
            }
        }
    }
    let here = Here { ip: mine.ip, node: &facts.node };
    let frontends = if values.kube_proxy_replacement {
        let mut f = frontends(&o.services, &o.slices, here);
        f.extend(host_ports(&o.pods, here));
        f
    } else {
        vec![]
    };
    let a = &mut st.applied;
    if values.kube_proxy_replacement {
        let script = nft_script(&frontends);
        if a.services.as_ref() != Some(&script) {
            ns.command(&["nft", "-f", "-"], &script)?;
            a.services = Some(script);
        }
    }
    // LoadBalancer addresses through the XDP load balancer, announced where this node holds
    // the lease; BPF masquerade leaves the backends' replies to the LB's reply translation.
    let wanted = super::lb::services(&frontends);
    let mode = super::lb::acceleration(o.config.get("bpf-lb-acceleration"));
    let announce: BTreeSet<Ipv4Addr> = if o.config.l2_announcements() {
        o.held.iter().filter(|ip| wanted.iter().any(|w| w.frontend.vip == **ip)).copied().collect()
    } else {
        BTreeSet::new()
    };
    for ip in st.lb.sync(&wanted, mode, &announce)? {
        crate::backend::lab::l2_announce::gratuitous_arp(Path::new("/proc/thread-self/ns/net"), ip, mine_mac()?)?;
    }
    if let Some((bpf, _)) = &st.bpf {
        let backends: Vec<(Ipv4Addr, u16, u8)> = wanted
            .iter()
            .flat_map(|s| s.backends.iter().map(move |b| (*b.ip(), b.port(), s.frontend.proto.number())))
            .collect();
        bpf.set_lb_backends(&backends)?;
    }
    let a = &mut st.applied;
    if !a.cni {
        write_cni(Path::new(CNI_DIR))?;
        a.cni = true;
    }
    st.frontends = frontends;
    st.values = Some(values);
    st.me = Some(mine);
    Ok(())
}

/// The options of `cilium-config` (for `cilium-dbg build-config`).
pub async fn config_map(client: &Client, namespace: &str) -> Result<BTreeMap<String, String>, CiliumError> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get("cilium-config")
        .await
        .map_err(CiliumError::api(format!("reading configmap {namespace}/cilium-config")))?;
    Ok(cm.data.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> Arc<Service> {
        Arc::new(serde_yaml::from_str(yaml).unwrap())
    }

    fn slice(yaml: &str) -> Arc<EndpointSlice> {
        Arc::new(serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn frontends_follow_services_and_ready_endpoints() {
        let s = svc(
            "metadata: {name: web, namespace: default}\nspec:\n  clusterIP: 10.96.0.20\n  type: NodePort\n  externalIPs: [198.51.100.7]\n  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}]\nstatus:\n  loadBalancer: {ingress: [{ip: 172.18.250.1}]}\n",
        );
        let sl = slice(
            "metadata: {name: web-abc, namespace: default, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{name: http, port: 8080, protocol: TCP}]\nendpoints:\n- {addresses: [10.244.1.5], conditions: {ready: true}}\n- {addresses: [10.244.2.9], conditions: {ready: false}}\n- {addresses: [10.244.2.7]}\n",
        );
        let f = frontends(&[s], &[sl], Here { ip: Ipv4Addr::new(172, 18, 0, 3), node: "kind-worker" });
        let addrs: Vec<String> = f.iter().map(|f| format!("{}:{}", f.ip, f.port)).collect();
        assert_eq!(addrs, ["10.96.0.20:80", "172.18.250.1:80", "198.51.100.7:80", "172.18.0.3:30080"]);
        assert!(f.iter().all(|f| f.target_port == 8080 && f.proto == "tcp"));
        assert_eq!(f[0].backends, [Ipv4Addr::new(10, 244, 1, 5), Ipv4Addr::new(10, 244, 2, 7)]);
    }

    #[test]
    fn traffic_policies_local_keep_to_this_nodes_endpoints() {
        let s = svc(
            "metadata: {name: web, namespace: default}\nspec:\n  clusterIP: 10.96.0.20\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]\nstatus:\n  loadBalancer: {ingress: [{ip: 172.18.250.1}]}\n",
        );
        let sl = slice(
            "metadata: {name: web-abc, namespace: default, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{port: 8080}]\nendpoints:\n- {addresses: [10.244.1.5], nodeName: kind-worker}\n- {addresses: [10.244.2.7], nodeName: kind-worker2}\n",
        );
        let here = Here { ip: Ipv4Addr::new(172, 18, 0, 3), node: "kind-worker" };
        let f = frontends(std::slice::from_ref(&s), std::slice::from_ref(&sl), here);
        let by_kind = |f: &[Frontend], k: &str| f.iter().find(|f| f.kind == k).unwrap().backends.clone();
        // From inside the cluster, every endpoint; from outside, this node's only.
        assert_eq!(by_kind(&f, "ClusterIP"), [Ipv4Addr::new(10, 244, 1, 5), Ipv4Addr::new(10, 244, 2, 7)]);
        assert_eq!(by_kind(&f, "NodePort"), [Ipv4Addr::new(10, 244, 1, 5)]);
        assert_eq!(by_kind(&f, "LoadBalancer"), [Ipv4Addr::new(10, 244, 1, 5)]);
        // A node without a local endpoint has none to send to.
        let f = frontends(
            std::slice::from_ref(&s),
            std::slice::from_ref(&sl),
            Here { ip: Ipv4Addr::new(172, 18, 0, 2), node: "kind-control-plane" },
        );
        assert!(by_kind(&f, "NodePort").is_empty());
        assert_eq!(by_kind(&f, "ClusterIP").len(), 2);
        let mut internal = (*s).clone();
        let spec = internal.spec.as_mut().unwrap();
        spec.external_traffic_policy = None;
        spec.internal_traffic_policy = Some("Local".into());
        let f = frontends(&[Arc::new(internal)], &[sl], here);
        assert_eq!(by_kind(&f, "ClusterIP"), [Ipv4Addr::new(10, 244, 1, 5)]);
        assert_eq!(by_kind(&f, "NodePort").len(), 2);
    }

    #[test]
    fn host_ports_of_this_nodes_running_pods() {
        let pod = |yaml: &str| Arc::new(serde_yaml::from_str::<Pod>(yaml).unwrap());
        let running = pod(
            "metadata: {name: web, namespace: default}\nspec:\n  nodeName: kind-worker\n  containers:\n  - {name: web, image: nginx, ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 53, hostPort: 5353, protocol: UDP, hostIP: 127.0.0.1}, {containerPort: 443}]}\nstatus: {phase: Running, podIP: 10.244.1.7}\n",
        );
        let elsewhere = pod(
            "metadata: {name: other, namespace: default}\nspec:\n  nodeName: kind-worker2\n  containers: [{name: web, image: nginx, ports: [{containerPort: 80, hostPort: 8081}]}]\nstatus: {phase: Running, podIP: 10.244.2.7}\n",
        );
        let pending = pod(
            "metadata: {name: late, namespace: default}\nspec:\n  nodeName: kind-worker\n  containers: [{name: web, image: nginx, ports: [{containerPort: 80, hostPort: 8082}]}]\nstatus: {phase: Pending}\n",
        );
        let f =
            host_ports(&[running, elsewhere, pending], Here { ip: Ipv4Addr::new(172, 18, 0, 3), node: "kind-worker" });
        let got: Vec<String> =
            f.iter().map(|f| format!("{} {}:{} -> {:?}:{}", f.kind, f.ip, f.port, f.backends, f.target_port)).collect();
        assert_eq!(got, ["HostPort 127.0.0.1:5353 -> [10.244.1.7]:53", "HostPort 172.18.0.3:8080 -> [10.244.1.7]:80"]);
        assert_eq!(f[0].proto, "udp");
    }

    #[test]
    fn a_service_without_endpoints_has_no_backends() {
        let unnamed = svc(
            "metadata: {name: web, namespace: x}\nspec: {clusterIP: 10.96.0.31, ports: [{port: 80, targetPort: 8080}]}\n",
        );
        let sl = slice(
            "metadata: {name: web-x, namespace: x, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{name: '', port: 8080}]\nendpoints: [{addresses: [10.244.1.9]}]\n",
        );
        assert_eq!(
            frontends(&[unnamed], &[sl], Here { ip: Ipv4Addr::new(172, 18, 0, 2), node: "kind-worker" })[0].backends,
            [Ipv4Addr::new(10, 244, 1, 9)]
        );
        let s = svc("metadata: {name: db, namespace: x}\nspec: {clusterIP: 10.96.0.30, ports: [{port: 5432}]}\n");
        let f = frontends(&[s], &[], Here { ip: Ipv4Addr::new(172, 18, 0, 2), node: "kind-worker" });
        assert_eq!(f.len(), 1);
        assert!(f[0].backends.is_empty() && f[0].target_port == 5432);
        assert!(nft_script(&f).contains("ip daddr 10.96.0.30 tcp dport 5432 reject"));
    }

    #[test]
    fn plans_take_address_podcidr_and_role_from_the_nodes() {
        let n: Node = serde_yaml::from_str("metadata: {name: kind-worker, labels: {}}\nspec: {podCIDR: 10.244.2.0/24}\nstatus: {addresses: [{type: InternalIP, address: 172.18.0.3}]}\n").unwrap();
        let bare: Node = serde_yaml::from_str("metadata: {name: kind-worker2}\n").unwrap();
        let p = plans(&[Arc::new(n), Arc::new(bare)]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].router_ip, Ipv4Addr::new(10, 244, 2, 224));
        assert_eq!(p[0].role, Role::Worker);
    }

    #[test]
    fn flags() {
        assert_eq!(parse(&["--config-dir=/x".into()]).unwrap().config_dir, PathBuf::from("/x"));
        assert!(matches!(parse(&["--nope".into()]), Err(CiliumError::Usage(_))));
    }
}
