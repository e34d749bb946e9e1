//! The lab's Kubernetes objects: what `kubectl` reads and writes. Kept as plain structs and
//! rendered to the API's JSON shape on demand (`-o yaml`, `-o jsonpath`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::config::Role;

pub type Labels = BTreeMap<String, String>;

/// What a pod runs (the lab has no container runtime: each image maps to a built-in app).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum App {
    /// `docker.io/cilium/starwars`: HTTP, `POST /v1/request-landing` → `Ship landed`.
    Deathstar { port: u16 },
    /// CoreDNS stand-in.
    CoreDns,
    /// Anything else: a process that sleeps (the pod's namespace is what matters).
    Sleeper,
}

#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub node: String,
    pub host_network: bool,
    /// Needs the CNI to be Running (false for host-network static pods).
    pub needs_cni: bool,
    pub app: App,
    pub containers: Vec<Container>,
    /// `Deployment/NAME` or `DaemonSet/NAME` that owns it.
    pub owner: Option<String>,
    pub created: SystemTime,
    pub ip: Option<Ipv4Addr>,
    pub running: bool,
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub replicas: u32,
    /// The pod template (`spec.template`) as written in the manifest.
    pub template: Value,
    pub created: SystemTime,
    /// Bumped by `kubectl rollout restart`: new pod names.
    pub generation: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target_port: u16,
    pub protocol: String,
    pub node_port: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub type_: String,
    pub cluster_ip: Ipv4Addr,
    pub ports: Vec<ServicePort>,
    pub selector: Labels,
    pub created: SystemTime,
    /// `type: LoadBalancer`: the address LB IPAM gave it (`status.loadBalancer.ingress`).
    pub load_balancer_ip: Option<Ipv4Addr>,
}

#[derive(Debug, Clone)]
pub struct ConfigMap {
    pub namespace: String,
    pub name: String,
    pub data: BTreeMap<String, String>,
    pub created: SystemTime,
}

#[derive(Debug, Clone)]
pub struct NodeObj {
    pub name: String,
    pub role: Role,
    pub ip: Ipv4Addr,
    pub pod_cidr: String,
    pub created: SystemTime,
}

#[derive(Debug, Default)]
pub struct Store {
    pub nodes: Vec<NodeObj>,
    pub pods: Vec<Pod>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub configmaps: Vec<ConfigMap>,
    /// DaemonSets by namespace/name (only their names matter: pods carry the rest).
    pub daemonsets: Vec<(String, String)>,
    /// Whether a CNI is installed (nodes Ready, pods get networks).
    pub cni: bool,
    /// `CiliumLoadBalancerIPPool`s, in creation order (see `lb_ipam`).
    pub ip_pools: Vec<super::lb_ipam::IpPool>,
    /// `CiliumL2AnnouncementPolicy`s (see `l2_announce`).
    pub l2_policies: Vec<super::l2_announce::L2Policy>,
    /// Labels set with `kubectl label node` (value `None`: removed).
    pub node_labels: BTreeMap<String, BTreeMap<String, Option<String>>>,
}

pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil-from-days (Howard Hinnant).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// kubectl's AGE column.
pub fn age(t: SystemTime) -> String {
    let s = t.elapsed().unwrap_or_default().as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60),
        600..10800 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

fn meta(namespace: Option<&str>, name: &str, labels: &Labels, created: SystemTime) -> Value {
    let mut m = json!({ "name": name, "creationTimestamp": rfc3339(created) });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    if !labels.is_empty() {
        m["labels"] = json!(labels);
    }
    m
}

impl NodeObj {
    pub fn ready(&self, cni: bool) -> bool {
        cni
    }

    pub fn to_json(&self, cni: bool) -> Value {
        let mut labels = Labels::new();
        labels.insert("kubernetes.io/hostname".into(), self.name.clone());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        if self.role == Role::ControlPlane {
            labels.insert("node-role.kubernetes.io/control-plane".into(), String::new());
        }
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": meta(None, &self.name, &labels, self.created),
            "spec": { "podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr] },
            "status": {
                "addresses": [
                    { "type": "InternalIP", "address": self.ip.to_string() },
                    { "type": "Hostname", "address": self.name }
                ],
                "conditions": [{ "type": "Ready", "status": if self.ready(cni) { "True" } else { "False" } }],
                "nodeInfo": { "kubeletVersion": KUBE_VERSION, "osImage": "Debian GNU/Linux 12 (bookworm)",
                              "kernelVersion": kernel(), "containerRuntimeVersion": "containerd://1.7.13" }
            }
        })
    }
}

pub const KUBE_VERSION: &str = "v1.29.2";

pub fn kernel() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}

impl Pod {
    pub fn phase(&self) -> &'static str {
        if self.running { "Running" } else { "Pending" }
    }

    pub fn to_json(&self) -> Value {
        let containers: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                let mut v = json!({ "name": c.name, "image": c.image });
                if !c.ports.is_empty() {
                    v["ports"] = json!(
                        c.ports.iter().map(|p| json!({"containerPort": p, "protocol": "TCP"})).collect::<Vec<_>>()
                    );
                }
                v
            })
            .collect();
        let mut status = json!({ "phase": self.phase() });
        if let Some(ip) = self.ip {
            status["podIP"] = json!(ip.to_string());
            status["podIPs"] = json!([{ "ip": ip.to_string() }]);
        }
        let mut m = meta(Some(&self.namespace), &self.name, &self.labels, self.created);
        if let Some(owner) = &self.owner {
            let (kind, name) = owner.split_once('/').unwrap_or(("", owner));
            m["ownerReferences"] = json!([{ "kind": kind, "name": name }]);
        }
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": m,
            "spec": { "nodeName": self.node, "hostNetwork": self.host_network, "containers": containers },
            "status": status
        })
    }
}

impl Service {
    pub fn to_json(&self) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|p| {
                let mut v = json!({ "port": p.port, "protocol": p.protocol, "targetPort": p.target_port });
                if let Some(n) = &p.name {
                    v["name"] = json!(n);
                }
                if let Some(np) = p.node_port {
                    v["nodePort"] = json!(np);
                }
                v
            })
            .collect();
        let mut spec = json!({
            "type": self.type_, "clusterIP": self.cluster_ip.to_string(),
            "clusterIPs": [self.cluster_ip.to_string()], "ports": ports, "sessionAffinity": "None"
        });
        if !self.selector.is_empty() {
            spec["selector"] = json!(self.selector);
        }
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": meta(Some(&self.namespace), &self.name, &self.labels, self.created),
            "spec": spec,
            "status": { "loadBalancer": match self.load_balancer_ip {
                Some(ip) => json!({ "ingress": [{ "ip": ip.to_string(), "ipMode": "VIP" }] }),
                None => json!({}),
            } }
        })
    }
}

impl ConfigMap {
    pub fn to_json(&self) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta(Some(&self.namespace), &self.name, &Labels::new(), self.created),
            "data": self.data
        })
    }
}

pub fn selects(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl Store {
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| p.namespace == namespace && p.name == name)
    }

    pub fn configmap(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.configmaps.iter().find(|c| c.namespace == namespace && c.name == name)
    }

    /// Ready endpoints of a service: (pod IP, target port).
    pub fn endpoints(&self, svc: &Service) -> Vec<(Ipv4Addr, u16)> {
        let mut eps = Vec::new();
        for pod in
            self.pods.iter().filter(|p| p.namespace == svc.namespace && p.running && selects(&svc.selector, &p.labels))
        {
            if let Some(ip) = pod.ip {
                for port in &svc.ports {
                    eps.push((ip, port.target_port));
                }
            }
        }
        eps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_ages() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(age(SystemTime::now()), "0s");
        assert_eq!(age(SystemTime::now() - std::time::Duration::from_secs(190)), "3m10s");
    }

    #[test]
    fn selector_matching() {
        let sel: Labels = [("org".to_string(), "empire".to_string())].into();
        let mut l = sel.clone();
        l.insert("class".into(), "deathstar".into());
        assert!(selects(&sel, &l));
        assert!(!selects(&Labels::new(), &l));
        assert!(!selects(&l, &sel));
    }
}
