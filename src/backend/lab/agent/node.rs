//! The agent's Node: the object it registers (kind's names, labels, taints, addresses), the
//! status it reports (Ready once a CNI configuration exists, as the kubelet's network check
//! does) and its Lease in `kube-node-lease` (the heartbeat the node lifecycle controller reads).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::chrono::{DateTime, Utc};

/// The kubelet's message while no CNI is configured (what `kubectl describe node` shows on a
/// kind cluster created with `disableDefaultCNI: true`).
pub const NO_CNI: &str = "container runtime network not ready: NetworkReady=false \
    reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized";

pub const KUBELET_PORT: i32 = 10250;

/// A `--node-labels` or `--register-with-taints` item that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("invalid node label `{0}`: empty key")]
    EmptyLabelKey(String),
    #[error("invalid taint `{0}`: expected key[=value]:Effect")]
    TaintShape(String),
    #[error("invalid taint `{0}`: effect must be NoSchedule, PreferNoSchedule or NoExecute")]
    TaintEffect(String),
}

/// Parse kubelet-style `k=v,k2=v2` labels.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, FlagError> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let k = k.trim();
            if k.is_empty() {
                return Err(FlagError::EmptyLabelKey(p.to_string()));
            }
            Ok((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Parse kubelet-style `key[=value]:Effect` taints.
pub fn parse_taints(s: &str) -> Result<Vec<Taint>, FlagError> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (kv, effect) = p.rsplit_once(':').ok_or_else(|| FlagError::TaintShape(p.to_string()))?;
            if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                return Err(FlagError::TaintEffect(p.to_string()));
            }
            let (k, v) = match kv.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (kv, None),
            };
            Ok(Taint { key: k.to_string(), value: v, effect: effect.to_string(), time_added: None })
        })
        .collect()
}

/// What the agent knows about its node and machine.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub ip: Ipv4Addr,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub kubelet_version: String,
    pub kernel: String,
    pub os_image: String,
    pub cpus: u64,
    pub memory_kib: u64,
    pub machine_id: String,
    pub boot_id: String,
}

impl NodeFacts {
    /// Facts read from this machine (kernel, OS, CPUs, memory) for node `name`.
    pub fn gather(
        name: &str,
        ip: Ipv4Addr,
        labels: BTreeMap<String, String>,
        taints: Vec<Taint>,
        version: &str,
    ) -> NodeFacts {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
            .unwrap_or_else(|| "Linux".into());
        let memory_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
            .unwrap_or(0);
        let kernel = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
        let id = |salt: &str| super::super::network::hex_id(&[name, salt, &read("/etc/machine-id")], 16).repeat(2);
        NodeFacts {
            name: name.into(),
            ip,
            labels,
            taints,
            kubelet_version: version.into(),
            kernel,
            os_image,
            cpus: std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1),
            memory_kib,
            machine_id: id("machine"),
            boot_id: id(&read("/proc/sys/kernel/random/boot_id")),
        }
    }
}

/// The labels every kubelet sets, then the configured ones (`--node-labels`).
pub fn labels(f: &NodeFacts) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = [
        ("beta.kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("kubernetes.io/os", "linux"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    l.insert("kubernetes.io/hostname".into(), f.name.clone());
    l.extend(f.labels.clone());
    l
}

/// The Node the agent registers.
pub fn node_object(f: &NodeFacts) -> Node {
    let annotations: BTreeMap<String, String> =
        [("node.alpha.kubernetes.io/ttl", "0"), ("volumes.kubernetes.io/controller-managed-attach-detach", "true")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(f.name.clone()),
            labels: Some(labels(f)),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(NodeSpec { taints: (!f.taints.is_empty()).then(|| f.taints.clone()), ..Default::default() }),
        status: None,
    }
}

fn node_condition(
    old: &[NodeCondition],
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> NodeCondition {
    let s = if status { "True" } else { "False" };
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == s)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    NodeCondition {
        type_: type_.into(),
        status: s.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(since),
    }
}

/// The node's status: conditions (Ready iff `network_ready`), addresses, capacity, info.
pub fn node_status(f: &NodeFacts, old: Option<&NodeStatus>, network_ready: bool, now: DateTime<Utc>) -> NodeStatus {
    let old = old.and_then(|s| s.conditions.clone()).unwrap_or_default();
    let q = |s: String| Quantity(s);
    let capacity: BTreeMap<String, Quantity> = [
        ("cpu".to_string(), q(f.cpus.to_string())),
        ("memory".to_string(), q(format!("{}Ki", f.memory_kib))),
        ("pods".to_string(), q("110".into())),
        ("ephemeral-storage".to_string(), q("102400Mi".into())),
        ("hugepages-1Gi".to_string(), q("0".into())),
        ("hugepages-2Mi".to_string(), q("0".into())),
    ]
    .into();
    let ready = if network_ready {
        node_condition(&old, "Ready", true, "KubeletReady", "kubelet is posting ready status", now)
    } else {
        node_condition(&old, "Ready", false, "KubeletNotReady", NO_CNI, now)
    };
    NodeStatus {
        conditions: Some(vec![
            node_condition(
                &old,
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                now,
            ),
            node_condition(
                &old,
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                now,
            ),
            node_condition(
                &old,
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                now,
            ),
            ready,
        ]),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: f.ip.to_string() },
            NodeAddress { type_: "Hostname".into(), address: f.name.clone() },
        ]),
        allocatable: Some(capacity.clone()),
        capacity: Some(capacity),
        daemon_endpoints: Some(NodeDaemonEndpoints { kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }) }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            boot_id: f.boot_id.clone(),
            container_runtime_version: concat!("tutor://", env!("CARGO_PKG_VERSION")).into(),
            kernel_version: f.kernel.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: f.kubelet_version.clone(),
            machine_id: f.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: f.os_image.clone(),
            system_uuid: f.machine_id.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A CNI is installed when its configuration directory holds a network configuration (what
/// the container runtime's CNI loader looks for).
pub fn cni_configured(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.ends_with(".conflist") || n.ends_with(".conf") || n.ends_with(".json")
            })
        })
        .unwrap_or(false)
}

/// The CNI plugin that gets the node's pods: the first plugin of the first network
/// configuration by file name (the container runtime's rule), e.g. `ptp` (kindnet) or
/// `cilium-cni`.
pub fn cni_plugin(dir: &Path) -> Option<String> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conflist" || x == "conf" || x == "json"))
        .collect();
    files.sort();
    let conf: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(files.first()?).ok()?).ok()?;
    let plugin = conf.get("plugins").and_then(|p| p.get(0)).unwrap_or(&conf);
    plugin.get("type")?.as_str().map(str::to_string)
}

/// The node's Lease (kube-node-lease/NAME), owned by its Node.
pub fn lease(node: &Node, duration_s: i32, now: DateTime<Utc>) -> Lease {
    let name = node.metadata.name.clone().unwrap_or_default();
    Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some("kube-node-lease".into()),
            owner_references: node.metadata.uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.clone(),
                    uid,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name),
            lease_duration_seconds: Some(duration_s),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts::gather(
            "kind-control-plane",
            Ipv4Addr::new(172, 18, 0, 2),
            parse_labels(
                "node-role.kubernetes.io/control-plane=,node.kubernetes.io/exclude-from-external-load-balancers=",
            )
            .unwrap(),
            parse_taints("node-role.kubernetes.io/control-plane:NoSchedule").unwrap(),
            "v1.33.1",
        )
    }

    #[test]
    fn flags_parse_like_the_kubelet() {
        assert_eq!(
            parse_labels("a=1, b=").unwrap(),
            [("a".to_string(), "1".to_string()), ("b".into(), "".into())].into()
        );
        assert_eq!(parse_labels("=x"), Err(FlagError::EmptyLabelKey("=x".into())));
        let t = parse_taints("k=v:NoExecute,x:NoSchedule").unwrap();
        assert_eq!((t[0].key.as_str(), t[0].value.as_deref(), t[0].effect.as_str()), ("k", Some("v"), "NoExecute"));
        assert_eq!((t[1].key.as_str(), t[1].value.as_deref()), ("x", None));
        assert_eq!(parse_taints("k=v:Sometimes"), Err(FlagError::TaintEffect("k=v:Sometimes".into())));
        assert!(parse_taints("k=v:Sometimes").unwrap_err().to_string().contains("effect"));
        assert_eq!(parse_taints("novalue"), Err(FlagError::TaintShape("novalue".into())));
    }

    #[test]
    fn node_object_like_kind() {
        let n = node_object(&facts());
        let l = n.metadata.labels.unwrap();
        assert_eq!(l["kubernetes.io/hostname"], "kind-control-plane");
        assert_eq!(l["node-role.kubernetes.io/control-plane"], "");
        assert_eq!(l["kubernetes.io/os"], "linux");
        let taints = n.spec.unwrap().taints.unwrap();
        assert_eq!(taints[0].key, "node-role.kubernetes.io/control-plane");
    }

    #[test]
    fn ready_follows_the_cni_and_keeps_transition_times() {
        let f = facts();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let t1 = DateTime::from_timestamp(1_700_000_010, 0).unwrap();
        let s0 = node_status(&f, None, false, t0);
        let ready = |s: &NodeStatus| s.conditions.clone().unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready(&s0).status, "False");
        assert_eq!(ready(&s0).message.as_deref(), Some(NO_CNI));
        let s1 = node_status(&f, Some(&s0), false, t1);
        assert_eq!(ready(&s1).last_transition_time, Some(Time(t0)));
        assert_eq!(ready(&s1).last_heartbeat_time, Some(Time(t1)));
        let s2 = node_status(&f, Some(&s1), true, t1);
        assert_eq!((ready(&s2).status.as_str(), ready(&s2).reason.as_deref()), ("True", Some("KubeletReady")));
        assert_eq!(ready(&s2).last_transition_time, Some(Time(t1)));
        let addrs = s2.addresses.unwrap();
        assert_eq!((addrs[0].type_.as_str(), addrs[0].address.as_str()), ("InternalIP", "172.18.0.2"));
    }

    #[test]
    fn the_first_configuration_names_the_plugin() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(cni_plugin(d.path()), None);
        std::fs::write(d.path().join("10-kindnet.conflist"), r#"{"plugins":[{"type":"ptp"},{"type":"portmap"}]}"#)
            .unwrap();
        assert_eq!(cni_plugin(d.path()).as_deref(), Some("ptp"));
        std::fs::write(d.path().join("05-cilium.conflist"), r#"{"plugins":[{"type":"cilium-cni"}]}"#).unwrap();
        assert_eq!(cni_plugin(d.path()).as_deref(), Some("cilium-cni"));
    }

    #[test]
    fn cni_dir_detection() {
        let d = tempfile::tempdir().unwrap();
        assert!(!cni_configured(d.path()));
        assert!(!cni_configured(&d.path().join("missing")));
        std::fs::write(d.path().join("README"), "").unwrap();
        assert!(!cni_configured(d.path()));
        std::fs::write(d.path().join("10-kindnet.conflist"), "{}").unwrap();
        assert!(cni_configured(d.path()));
    }
}
