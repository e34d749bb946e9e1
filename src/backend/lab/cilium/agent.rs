//! `cilium-agent` on a lab node: the container of the `cilium` DaemonSet's pod (host network, so
//! it runs in its node's network namespace). Like the real agent it reads its options from
//! `--config-dir`, talks to the API server named by `KUBERNETES_SERVICE_HOST` with its
//! service-account token, and programs its node from what it watches — the Nodes, Services and
//! EndpointSlices, and the `cilium-config` ConfigMap — with the lab's datapath code:
//!
//! - `cilium_host`/`cilium_net` with the router address, the route to the node's own podCIDR
//!   through it and, with `auto-direct-node-routes`, a route to every other node's podCIDR via
//!   that node's InternalIP (`datapath.rs`);
//! - masquerade: Cilium's `CILIUM_POST_nat` chain (`masquerade.rs`);
//! - with `kube-proxy-replacement`, the Services' ClusterIPs, NodePorts, external and
//!   load-balancer addresses translated to their ready endpoints (`services.rs`);
//! - the CNI configuration `05-cilium.conflist` once the node is programmed (what turns the node
//!   `Ready`), and `/healthz` on 127.0.0.1:9879 for the pod's probes.
//!
//! One difference from the real agent, said where it shows: an edit of `cilium-config` (a
//! `helm upgrade`) takes effect at once, without restarting the agents.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::CiliumError;
use super::config::AgentConfig;
use crate::backend::lab::config::Role;
use crate::backend::lab::sandbox::{Mounts, NetNs, NsThread};
use crate::backend::lab::services::{Frontend, nft_script};
use crate::backend::lab::topology::{Cidr, NodePlan, ROUTER_OCTET, docker_mac};
use crate::backend::lab::values::CiliumValues;
use crate::backend::lab::{datapath, masquerade};

/// Where the agent writes the CNI configuration (the DaemonSet mounts the node's
/// `/etc/cni/net.d` there).
const CNI_DIR: &str = "/host/etc/cni/net.d";
pub const CNI_CONF: &str = "05-cilium.conflist";
const HEALTH: &str = "127.0.0.1:9879";

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
    let events = futures_util::stream::select_all([
        node_events.boxed(),
        service_events.boxed(),
        slice_events.boxed(),
        config_events.boxed(),
    ]);
    futures_util::pin_mut!(events);

    let ns = Arc::new(NsThread::with_net("cilium-agent", None, Mounts::default(), NetNs::Shared)?);
    let mut applied = Applied::default();
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut reported: Option<String> = None;
    loop {
        tokio::select! {
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
        let observed = Observed { config, nodes: nodes.state(), services: services.state(), slices: slices.state() };
        let (me, ns2, before) = (node.clone(), ns.clone(), applied.clone());
        let r = tokio::task::spawn_blocking(move || {
            let mut a = before;
            reconcile(&ns2, &me, &observed, &mut a).map(|()| a)
        })
        .await;
        match r {
            Ok(Ok(a)) => {
                applied = a;
                ready.store(applied.cni, Ordering::SeqCst);
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

/// The Services' frontends and their ready endpoints, as the kube-proxy replacement serves
/// them on node `me` (ClusterIPs, this node's NodePorts, external and load-balancer addresses).
pub fn frontends(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>], me: Ipv4Addr) -> Vec<Frontend> {
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
        let mut addresses = vec![];
        if let Some(status) = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()) {
            addresses.extend(status.ingress.iter().flatten().filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()));
        }
        addresses.extend(spec.external_ips.iter().flatten().filter_map(|ip| ip.parse::<Ipv4Addr>().ok()));
        for port in spec.ports.iter().flatten() {
            let proto = port.protocol.as_deref().unwrap_or("TCP").to_lowercase();
            // The endpoints' port for this service port (matched by name).
            let mut target = None;
            let mut backends = Vec::new();
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
                    backends.extend(e.addresses.iter().filter_map(|a| a.parse::<Ipv4Addr>().ok()));
                }
            }
            backends.sort();
            backends.dedup();
            let target_port = target.unwrap_or(port.port as u16);
            let mut add = |ip: Ipv4Addr, port_no: u16| {
                out.push(Frontend { ip, proto: proto.clone(), port: port_no, target_port, backends: backends.clone() })
            };
            add(cluster_ip, port.port as u16);
            for a in &addresses {
                add(*a, port.port as u16);
            }
            if let Some(np) = port.node_port {
                add(me, np as u16);
            }
        }
    }
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

fn has_link(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn reconcile(ns: &NsThread, me: &str, o: &Observed, a: &mut Applied) -> Result<(), CiliumError> {
    let values = o.config.datapath()?;
    let all = plans(&o.nodes);
    let Some(mine) = all.iter().find(|p| p.name == me).cloned() else {
        // Not registered yet, or no podCIDR from the node IPAM controller yet.
        return Ok(());
    };
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
    let masq = (all.clone(), values.clone());
    if a.masquerade.as_ref() != Some(&masq) {
        masquerade::sync(ns, &mine, &all, &values)?;
        a.masquerade = Some(masq);
    }
    if values.kube_proxy_replacement {
        let script = nft_script(&frontends(&o.services, &o.slices, mine.ip));
        if a.services.as_ref() != Some(&script) {
            ns.command(&["nft", "-f", "-"], &script)?;
            a.services = Some(script);
        }
    }
    if !a.cni {
        write_cni(Path::new(CNI_DIR))?;
        a.cni = true;
    }
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
        let f = frontends(&[s], &[sl], Ipv4Addr::new(172, 18, 0, 3));
        let addrs: Vec<String> = f.iter().map(|f| format!("{}:{}", f.ip, f.port)).collect();
        assert_eq!(addrs, ["10.96.0.20:80", "172.18.250.1:80", "198.51.100.7:80", "172.18.0.3:30080"]);
        assert!(f.iter().all(|f| f.target_port == 8080 && f.proto == "tcp"));
        assert_eq!(f[0].backends, [Ipv4Addr::new(10, 244, 1, 5), Ipv4Addr::new(10, 244, 2, 7)]);
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
            frontends(&[unnamed], &[sl], Ipv4Addr::new(172, 18, 0, 2))[0].backends,
            [Ipv4Addr::new(10, 244, 1, 9)]
        );
        let s = svc("metadata: {name: db, namespace: x}\nspec: {clusterIP: 10.96.0.30, ports: [{port: 5432}]}\n");
        let f = frontends(&[s], &[], Ipv4Addr::new(172, 18, 0, 2));
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
