//! The node's endpoints, as Cilium keeps them: one per pod Cilium gave a network (its `lxc`
//! device on this node), plus the host endpoint (`cilium_host`). Each gets an ID (the lab takes
//! the device's ifindex: unique on the node, stable for the pod's life), its security labels
//! (the pod's labels without Kubernetes' bookkeeping ones, its namespace's labels, service
//! account, cluster and namespace, as Cilium derives them) and a security identity allocated
//! over the API as Cilium's CRD mode does (`identity-allocation-mode: crd`): a
//! `CiliumIdentity` per label set, shared by every node. The agent publishes them as the real
//! one does: a `CiliumEndpoint` per pod in the pod's namespace (owned by the pod, so the
//! garbage collector removes it with the pod) and a `CiliumNode` for its node. `cilium-dbg
//! endpoint list` prints the same list (`api.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::NodeState;
use crate::backend::lab::network::hex_id;

/// The host endpoint's identity, reserved by Cilium.
pub const HOST_IDENTITY: u64 = 1;
/// Where allocated identities start (below are Cilium's reserved ones) and end.
const FIRST_IDENTITY: u64 = 256;
const LAST_IDENTITY: u64 = 65535;

/// One endpoint of the node.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: u32,
    /// Namespace, name and uid of the pod (none for the host endpoint).
    pub pod: Option<(String, String, String)>,
    pub ipv4: Option<Ipv4Addr>,
    /// Security-relevant labels, `source:key=value`, sorted.
    pub labels: Vec<String>,
    pub identity: Option<u64>,
    pub state: &'static str,
}

/// The endpoints as last computed, for the API.
pub type Shared = Arc<Mutex<Vec<Endpoint>>>;

/// Label keys Cilium leaves out of identities (its default label filter): Kubernetes'
/// bookkeeping, which would give every pod of a Deployment its own identity.
fn relevant(key: &str) -> bool {
    let drop_prefix = ["io.kubernetes", "kubernetes.io", "k8s.io", "annotation."];
    let drop_exact = [
        "pod-template-generation",
        "pod-template-hash",
        "controller-revision-hash",
        "etcd_node",
        "statefulset.kubernetes.io/pod-name",
    ];
    !(drop_prefix.iter().any(|p| key.starts_with(p))
        || drop_exact.contains(&key)
        || key.split('/').next().is_some_and(|p| p.ends_with("beta.kubernetes.io"))
        || key.starts_with("batch.kubernetes.io/"))
}

/// A pod's security labels (`k8s:key=value`, sorted), from its labels, service account,
/// namespace and the namespace's labels.
pub fn pod_labels(pod: &Pod, ns_labels: &BTreeMap<String, String>, cluster: &str) -> Vec<String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut v: BTreeSet<String> = BTreeSet::new();
    for (k, val) in pod.metadata.labels.iter().flatten() {
        if relevant(k) {
            v.insert(format!("k8s:{k}={val}"));
        }
    }
    for (k, val) in ns_labels {
        v.insert(format!("k8s:io.cilium.k8s.namespace.labels.{k}={val}"));
    }
    let sa = pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into());
    v.insert(format!("k8s:io.cilium.k8s.policy.cluster={cluster}"));
    v.insert(format!("k8s:io.cilium.k8s.policy.serviceaccount={sa}"));
    v.insert(format!("k8s:io.kubernetes.pod.namespace={ns}"));
    v.into_iter().collect()
}

/// The host endpoint's labels: `reserved:host` and the node's relevant labels.
pub fn host_labels(node_labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut v: BTreeSet<String> = node_labels
        .iter()
        .filter(|(k, _)| relevant(k))
        .map(|(k, val)| if val.is_empty() { format!("k8s:{k}") } else { format!("k8s:{k}={val}") })
        .collect();
    v.insert("reserved:host".into());
    v.into_iter().collect()
}

/// The node's devices (name → ifindex).
fn devices() -> BTreeMap<String, u32> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir("/sys/class/net").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(i) = std::fs::read_to_string(e.path().join("ifindex")).ok().and_then(|s| s.trim().parse().ok()) {
            m.insert(name, i);
        }
    }
    m
}

/// The device the lab's CNI gives a pod in Cilium's layout (`agent/runtime.rs`).
pub fn lxc_name(uid: &str) -> String {
    format!("lxc{}", hex_id(&[uid], 12))
}

/// The node's endpoints from its pods and devices (identities not yet known).
pub fn plan(
    pods: &[Arc<Pod>],
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
    node_labels: &BTreeMap<String, String>,
    devices: &BTreeMap<String, u32>,
    cluster: &str,
) -> Vec<Endpoint> {
    let mut out = Vec::new();
    if let Some(&id) = devices.get("cilium_host") {
        out.push(Endpoint {
            id,
            pod: None,
            ipv4: None,
            labels: host_labels(node_labels),
            identity: Some(HOST_IDENTITY),
            state: "ready",
        });
    }
    for p in pods {
        let (Some(ns), Some(name), Some(uid)) = (&p.metadata.namespace, &p.metadata.name, &p.metadata.uid) else {
            continue;
        };
        if p.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false) || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        // An endpoint exists once the CNI gave the pod its device.
        let Some(&id) = devices.get(&lxc_name(uid)) else { continue };
        let ipv4 = p.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse().ok());
        let empty = BTreeMap::new();
        out.push(Endpoint {
            id,
            pod: Some((ns.clone(), name.clone(), uid.clone())),
            ipv4,
            labels: pod_labels(p, namespaces.get(ns).unwrap_or(&empty), cluster),
            identity: None,
            state: "waiting-for-identity",
        });
    }
    out.sort_by_key(|e| e.id);
    out
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "cilium.io".into(),
        version: "v2".into(),
        api_version: "cilium.io/v2".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// `security-labels` of a CiliumIdentity: `source:key` → value.
fn security_labels(labels: &[String]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// Where an identity for `labels` is first looked for: spread over the range, the same on
/// every node, then the next free one.
fn first_candidate(labels: &[String]) -> u64 {
    let h = u64::from_str_radix(&hex_id(&labels.iter().map(String::as_str).collect::<Vec<_>>(), 16), 16).unwrap_or(0);
    FIRST_IDENTITY + h % (LAST_IDENTITY - FIRST_IDENTITY + 1)
}

/// A Kubernetes label (key and value) that the API server accepts, for the identity's
/// metadata (the security labels hold them all).
fn valid_label(k: &str, v: &str) -> bool {
    let ok = |s: &str| s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let (prefix, name) = k.rsplit_once('/').unwrap_or(("", k));
    !name.is_empty() && ok(name) && prefix.len() <= 253 && (v.is_empty() || ok(v))
}

/// The identities the API server holds: security labels → number, and the numbers taken.
async fn identities_known(api: &Api<DynamicObject>) -> Result<(Known, BTreeSet<u64>), kube::Error> {
    let mut known = Known::new();
    let mut taken = BTreeSet::new();
    for o in api.list(&ListParams::default()).await?.items {
        let Some(id) = o.metadata.name.as_deref().and_then(|n| n.parse::<u64>().ok()) else { continue };
        taken.insert(id);
        known.entry(identity_labels(&o)).or_insert(id);
    }
    Ok((known, taken))
}

type Known = BTreeMap<BTreeMap<String, String>, u64>;

/// The identity of `labels`: an existing CiliumIdentity with the same security labels, or a
/// new one at the first free number from [`first_candidate`] (a number another agent took
/// meanwhile: the list is read again and the next one tried). The agent's RBAC, as Cilium's,
/// lets it list and create identities, not get them.
async fn identity(api: &Api<DynamicObject>, labels: &[String]) -> Result<u64, String> {
    let sec = security_labels(labels);
    let meta: BTreeMap<String, String> = sec
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("k8s:")?.to_string(), v.clone())))
        .filter(|(k, v)| valid_label(k, v))
        .collect();
    for _ in 0..16 {
        let (known, taken) = identities_known(api).await.map_err(|e| e.to_string())?;
        if let Some(id) = known.get(&sec) {
            return Ok(*id);
        }
        let mut id = first_candidate(labels);
        while taken.contains(&id) {
            id = if id >= LAST_IDENTITY { FIRST_IDENTITY } else { id + 1 };
        }
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumIdentity",
            "metadata": { "name": id.to_string(), "labels": meta },
            "security-labels": sec,
        }))
        .expect("a valid object");
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => return Ok(id),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(format!("creating CiliumIdentity {id}: {e}")),
        }
    }
    Err(format!("no CiliumIdentity could be allocated for {}", labels.join(",")))
}

fn identity_labels(o: &DynamicObject) -> BTreeMap<String, String> {
    o.data
        .get("security-labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default()
}

/// The CiliumEndpoint of a pod endpoint.
pub fn cep(e: &Endpoint, node_ip: Ipv4Addr) -> Option<Value> {
    let (ns, name, uid) = e.pod.as_ref()?;
    let mut addressing = json!({});
    if let Some(ip) = e.ipv4 {
        addressing["ipv4"] = json!(ip.to_string());
    }
    Some(json!({
        "apiVersion": "cilium.io/v2", "kind": "CiliumEndpoint",
        "metadata": {
            "name": name, "namespace": ns,
            "ownerReferences": [{ "apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid }],
        },
        "status": {
            "id": e.id,
            "identity": e.identity.map(|id| json!({ "id": id, "labels": e.labels })),
            "networking": { "addressing": [addressing], "node": node_ip.to_string() },
            "state": e.state,
            "encryption": {},
            "external-identifiers": { "k8s-namespace": ns, "k8s-pod-name": name, "pod-name": format!("{ns}/{name}") },
        },
    }))
}

/// The CiliumNode's spec for this node.
pub fn cilium_node_spec(ip: Ipv4Addr, router: Ipv4Addr, pod_cidr: &str) -> Value {
    json!({
        "addresses": [
            { "type": "InternalIP", "ip": ip.to_string() },
            { "type": "CiliumInternalIP", "ip": router.to_string() },
        ],
        "ipam": { "podCIDRs": [pod_cidr] },
        "encryption": {},
    })
}

/// Keeps the endpoints, identities, CiliumEndpoints and the CiliumNode of `node` up to date.
pub(super) async fn run(client: Client, node: String, cluster: String, st: Arc<Mutex<NodeState>>, shared: Shared) {
    let (pods, w) = reflector::store::<Pod>();
    let pod_events = reflector(
        w,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default().fields(&format!("spec.nodeName={node}"))),
    )
    .default_backoff()
    .touched_objects()
    .map(|r| r.map(drop));
    let (namespaces, w) = reflector::store::<Namespace>();
    let ns_events = reflector(w, watcher(Api::<Namespace>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .map(|r| r.map(drop));
    let events = futures_util::stream::select(pod_events.boxed(), ns_events.boxed());
    futures_util::pin_mut!(events);
    let identities = Api::<DynamicObject>::all_with(client.clone(), &resource("CiliumIdentity", "ciliumidentities"));
    let ceps = Api::<DynamicObject>::all_with(client.clone(), &resource("CiliumEndpoint", "ciliumendpoints"));
    let nodes = Api::<DynamicObject>::all_with(client.clone(), &resource("CiliumNode", "ciliumnodes"));
    let k8s_nodes = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone());
    let mut reported: Option<String> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(3));
    loop {
        tokio::select! {
            ev = events.next() => if ev.is_none() { return },
            _ = tick.tick() => {}
        }
        let me = st.lock().unwrap_or_else(|e| e.into_inner()).me.clone();
        let k8s_node = k8s_nodes.get(&node).await.ok();
        let node_uid = k8s_node.as_ref().and_then(|n| n.metadata.uid.clone());
        let node_labels = k8s_node.and_then(|n| n.metadata.labels).map(|l| l.into_iter().collect()).unwrap_or_default();
        let ns_labels: BTreeMap<String, BTreeMap<String, String>> = namespaces
            .state()
            .iter()
            .filter_map(|n| Some((n.metadata.name.clone()?, n.metadata.labels.clone()?.into_iter().collect())))
            .collect();
        let mut eps = plan(&pods.state(), &ns_labels, &node_labels, &devices(), &cluster);
        let r = sync(&identities, &ceps, &nodes, &mut eps, me.as_ref(), node_uid.as_deref()).await;
        // Before the operator registered the CRDs there is nothing to allocate from yet.
        match r {
            Ok(()) => reported = None,
            Err(e) => {
                let msg = e.to_string();
                if reported.as_deref() != Some(&msg) {
                    eprintln!("level=warning msg=\"endpoints: {msg}\" node={node}");
                    reported = Some(msg);
                }
            }
        }
        // Tunnel mode carries each endpoint's identity as the VNI of what it sends.
        let ids: Vec<(Ipv4Addr, u32)> =
            eps.iter().filter_map(|e| Some((e.ipv4?, u32::try_from(e.identity?).ok()?))).collect();
        if let Err(e) = st.lock().unwrap_or_else(|e| e.into_inner()).tunnel.set_identities(ids) {
            eprintln!("level=warning msg=\"endpoints: {e}\" node={node}");
        }
        *shared.lock().unwrap_or_else(|e| e.into_inner()) = eps;
    }
}

async fn sync(
    identities: &Api<DynamicObject>,
    ceps: &Api<DynamicObject>,
    nodes: &Api<DynamicObject>,
    eps: &mut [Endpoint],
    me: Option<&crate::backend::lab::topology::NodePlan>,
    node_uid: Option<&str>,
) -> Result<(), String> {
    let api_err = |what: &str| {
        let what = what.to_string();
        move |e: kube::Error| format!("{what}: {e}")
    };
    // The CiliumNode, once the node is programmed (its router address is then known), owned
    // by its Node as Cilium's is, so it goes with it.
    if let (Some(me), Some(uid)) = (me, node_uid) {
        let spec = cilium_node_spec(me.ip, me.router_ip, &me.pod_cidr.to_string());
        match nodes.get(&me.name).await {
            Ok(have) if have.data.get("spec") == Some(&spec) => {}
            Ok(mut have) => {
                have.data["spec"] = spec;
                nodes
                    .replace(&me.name, &PostParams::default(), &have)
                    .await
                    .map_err(api_err("updating the CiliumNode"))?;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                let obj: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "cilium.io/v2", "kind": "CiliumNode",
                    "metadata": {
                        "name": me.name,
                        "ownerReferences": [{ "apiVersion": "v1", "kind": "Node", "name": me.name, "uid": uid }],
                    },
                    "spec": spec,
                }))
                .expect("a valid object");
                nodes.create(&PostParams::default(), &obj).await.map_err(api_err("creating the CiliumNode"))?;
            }
            Err(e) => return Err(format!("reading the CiliumNode: {e}")),
        }
    }
    let (known, _) = identities_known(identities).await.map_err(api_err("listing CiliumIdentities"))?;
    for e in eps.iter_mut().filter(|e| e.pod.is_some()) {
        let id = match known.get(&security_labels(&e.labels)) {
            Some(id) => *id,
            None => identity(identities, &e.labels).await?,
        };
        e.identity = Some(id);
        e.state = "ready";
    }
    let Some(me) = me else { return Ok(()) };
    let mine: BTreeMap<(String, String), Value> = eps
        .iter()
        .filter_map(|e| {
            let (ns, name, _) = e.pod.as_ref()?;
            Some(((ns.clone(), name.clone()), cep(e, me.ip)?))
        })
        .collect();
    let have = ceps.list(&ListParams::default()).await.map_err(api_err("listing CiliumEndpoints"))?;
    let mut seen = BTreeSet::new();
    for c in have.items {
        let (Some(ns), Some(name)) = (c.metadata.namespace.clone(), c.metadata.name.clone()) else { continue };
        let key = (ns.clone(), name.clone());
        let api = Api::<DynamicObject>::namespaced_with(ceps.clone().into_client(), &ns, &ceps_resource());
        match mine.get(&key) {
            Some(want) => {
                seen.insert(key);
                if c.data.get("status") != want.get("status") {
                    let patch = json!({ "status": want["status"] });
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map_err(api_err("updating a CiliumEndpoint"))?;
                }
            }
            // An endpoint this node published that is gone (its pod left the node).
            None if c.data.pointer("/status/networking/node").and_then(Value::as_str) == Some(&me.ip.to_string()) => {
                match api.delete(&name, &Default::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(format!("deleting a CiliumEndpoint: {e}")),
                }
            }
            None => {}
        }
    }
    for ((ns, _), want) in mine.iter().filter(|(k, _)| !seen.contains(*k)) {
        let api = Api::<DynamicObject>::namespaced_with(ceps.clone().into_client(), ns, &ceps_resource());
        let obj: DynamicObject = serde_json::from_value(want.clone()).expect("a valid object");
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(format!("creating a CiliumEndpoint: {e}")),
        }
    }
    Ok(())
}

fn ceps_resource() -> ApiResource {
    resource("CiliumEndpoint", "ciliumendpoints")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Arc<Pod> {
        Arc::new(serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn labels_keep_what_identifies_a_pod() {
        let p = pod(
            "metadata: {name: deathstar-1, namespace: default, uid: u1, labels: {class: deathstar, org: empire, pod-template-hash: 6fb5, app.kubernetes.io/name: deathstar}}\nspec: {containers: [], serviceAccountName: sa}\n",
        );
        let ns = [("kubernetes.io/metadata.name".to_string(), "default".to_string())].into_iter().collect();
        assert_eq!(
            pod_labels(&p, &ns, "default"),
            [
                "k8s:app.kubernetes.io/name=deathstar",
                "k8s:class=deathstar",
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default",
                "k8s:io.cilium.k8s.policy.cluster=default",
                "k8s:io.cilium.k8s.policy.serviceaccount=sa",
                "k8s:io.kubernetes.pod.namespace=default",
                "k8s:org=empire",
            ]
        );
        let node = [
            ("kubernetes.io/hostname".to_string(), "kind-control-plane".to_string()),
            ("node-role.kubernetes.io/control-plane".to_string(), String::new()),
            ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
        ]
        .into_iter()
        .collect();
        assert_eq!(host_labels(&node), ["k8s:node-role.kubernetes.io/control-plane", "reserved:host"]);
    }

    #[test]
    fn endpoints_are_the_pods_with_a_device() {
        let with = pod(
            "metadata: {name: a, namespace: default, uid: u1}\nspec: {containers: []}\nstatus: {podIP: 10.244.1.7}\n",
        );
        let without = pod("metadata: {name: b, namespace: default, uid: u2}\nspec: {containers: []}\n");
        let host =
            pod("metadata: {name: c, namespace: kube-system, uid: u3}\nspec: {containers: [], hostNetwork: true}\n");
        let devices =
            [("cilium_host".to_string(), 3), (lxc_name("u1"), 12), (lxc_name("u3"), 14)].into_iter().collect();
        let eps = plan(&[with, without, host], &BTreeMap::new(), &BTreeMap::new(), &devices, "default");
        assert_eq!(eps.len(), 2);
        assert_eq!((eps[0].id, eps[0].identity, eps[0].state), (3, Some(HOST_IDENTITY), "ready"));
        assert_eq!(
            (eps[1].id, eps[1].ipv4, eps[1].state),
            (12, Some(Ipv4Addr::new(10, 244, 1, 7)), "waiting-for-identity")
        );
        let c = cep(&Endpoint { identity: Some(4242), state: "ready", ..eps[1].clone() }, Ipv4Addr::new(172, 18, 0, 3))
            .unwrap();
        assert_eq!(c["status"]["identity"]["id"], 4242);
        assert_eq!(c["status"]["networking"]["addressing"][0]["ipv4"], "10.244.1.7");
        assert_eq!(c["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert!(cep(&eps[0], Ipv4Addr::new(172, 18, 0, 3)).is_none());
    }

    #[test]
    fn identities_start_from_the_labels() {
        let a = vec!["k8s:class=deathstar".to_string()];
        assert_eq!(first_candidate(&a), first_candidate(&a.clone()));
        assert!((FIRST_IDENTITY..=LAST_IDENTITY).contains(&first_candidate(&a)));
        assert!(valid_label("io.kubernetes.pod.namespace", "default"));
        assert!(valid_label("io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name", "default"));
        assert!(!valid_label("x", &"v".repeat(64)));
    }
}
