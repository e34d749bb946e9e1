//! `kubectl apply|delete -f`: Kubernetes manifests into the lab's store, and the pods they
//! imply (Deployments' replicas, scheduled round-robin over the workers).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

use super::LabError;
use super::config::Role;
use super::network::hex_id;
use super::state::{ClusterRt, suffix};
use super::store::{App, ConfigMap, Container, Deployment, Labels, Pod, Service, ServicePort};

/// Manifests the lab knows by URL (it has no internet): Cilium's demo app.
const KNOWN_URLS: &[(&str, &str)] =
    &[("/cilium/cilium/HEAD/examples/minikube/http-sw-app.yaml", include_str!("manifests/http-sw-app.yaml"))];

/// Parse a (multi-document) manifest file, or a URL (`fetched`: what the outside world serves
/// for it, else a known one), into JSON objects.
pub fn load(path: &Path, shown: &str, fetched: Option<&Vec<u8>>) -> Result<Vec<Value>, LabError> {
    let text = if let Some(body) = fetched {
        String::from_utf8_lossy(body).into_owned()
    } else if shown.starts_with("https://") || shown.starts_with("http://") {
        KNOWN_URLS
            .iter()
            .find(|(suffix, _)| shown.ends_with(suffix))
            .map(|(_, text)| text.to_string())
            .ok_or_else(|| {
                LabError::Unsupported(format!(
                    "fetching {shown} is not supported on the lab backend (no internet): declare it in the tutorial's front matter (`offline:` `{shown}: FILE`), or mark the block backend=kind"
                ))
            })?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| LabError::Input(format!("error: the path \"{shown}\" does not exist ({e})")))?
    };
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).map_err(|e| {
            let at = e.location().map(|l| format!(":{}", l.line())).unwrap_or_default();
            LabError::Input(format!("error: {shown}{at}: {e}"))
        })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

fn labels(v: &Value) -> Labels {
    v.as_object()
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_str)
}

/// kubectl's `kind/name` for messages (`deployment.apps/deathstar`).
pub fn resource_name(kind: &str) -> &'static str {
    match kind {
        "Pod" => "pod",
        "Service" => "service",
        "Deployment" => "deployment.apps",
        "ConfigMap" => "configmap",
        "DaemonSet" => "daemonset.apps",
        "Namespace" => "namespace",
        "Node" => "node",
        "CiliumLoadBalancerIPPool" => "ciliumloadbalancerippool.cilium.io",
        "CiliumL2AnnouncementPolicy" => "ciliuml2announcementpolicy.cilium.io",
        _ => "object",
    }
}

fn containers(spec: &Value) -> Vec<Container> {
    spec.get("containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| Container {
                    name: c.get("name").and_then(Value::as_str).unwrap_or("app").into(),
                    image: c.get("image").and_then(Value::as_str).unwrap_or("").into(),
                    ports: c
                        .get("ports")
                        .and_then(Value::as_array)
                        .map(|ps| {
                            ps.iter()
                                .filter_map(|p| p.get("containerPort").and_then(Value::as_u64))
                                .map(|p| p as u16)
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Which built-in app stands in for a pod's image.
fn app_for(cs: &[Container]) -> App {
    for c in cs {
        if c.image.contains("cilium/starwars") {
            return App::Deathstar { port: c.ports.first().copied().unwrap_or(80) };
        }
        if c.image.contains("coredns") {
            return App::CoreDns;
        }
    }
    App::Sleeper
}

impl ClusterRt {
    /// Nodes pods are scheduled on: workers, or the control plane when there are none.
    fn schedulable(&self) -> Vec<String> {
        let workers: Vec<String> =
            self.nodes.iter().filter(|n| n.plan.role == Role::Worker).map(|n| n.plan.name.clone()).collect();
        if workers.is_empty() { vec![self.nodes[0].plan.name.clone()] } else { workers }
    }

    fn next_node(&mut self) -> String {
        let nodes = self.schedulable();
        let n = nodes[self.scheduled % nodes.len()].clone();
        self.scheduled += 1;
        n
    }

    fn pod_from_template(&mut self, namespace: &str, name: String, tmpl: &Value, owner: Option<String>) -> Pod {
        let spec = tmpl.get("spec").cloned().unwrap_or(Value::Null);
        let cs = containers(&spec);
        let host_network = spec.get("hostNetwork").and_then(Value::as_bool).unwrap_or(false);
        let node = match spec.get("nodeName").and_then(Value::as_str) {
            Some(n) if self.node(n).is_some() => n.to_string(),
            _ => self.next_node(),
        };
        let ip = if host_network { self.node(&node).map(|n| n.plan.ip) } else { None };
        Pod {
            namespace: namespace.into(),
            name,
            labels: labels(tmpl.pointer("/metadata/labels").unwrap_or(&Value::Null)),
            node,
            host_network,
            needs_cni: !host_network,
            app: app_for(&cs),
            containers: cs,
            owner,
            created: SystemTime::now(),
            ip,
            running: host_network,
        }
    }

    /// Apply one object; returns kubectl's line (`pod/tiefighter created`).
    pub fn apply(&mut self, obj: &Value, default_ns: &str, dir: &Path) -> Result<String, LabError> {
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| LabError::Input("error: object has no kind".into()))?;
        let name = str_at(obj, &["metadata", "name"])
            .ok_or_else(|| LabError::Input(format!("error: {kind} has no metadata.name")))?
            .to_string();
        let ns = str_at(obj, &["metadata", "namespace"]).unwrap_or(default_ns).to_string();
        let shown = format!("{}/{name}", resource_name(kind));
        let now = SystemTime::now();
        let verb = match kind {
            "Namespace" => "created",
            "Pod" => {
                if self.store.pod(&ns, &name).is_some() {
                    "unchanged"
                } else {
                    let pod = self.pod_from_template(&ns, name.clone(), obj, None);
                    self.store.pods.push(pod);
                    "created"
                }
            }
            "Deployment" => {
                let replicas = obj.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as u32;
                let template = obj.pointer("/spec/template").cloned().unwrap_or(Value::Null);
                match self.store.deployments.iter().position(|d| d.namespace == ns && d.name == name) {
                    Some(i)
                        if self.store.deployments[i].replicas == replicas
                            && self.store.deployments[i].template == template =>
                    {
                        "unchanged"
                    }
                    Some(i) => {
                        self.store.deployments[i].replicas = replicas;
                        self.store.deployments[i].template = template;
                        self.roll(&ns, &name);
                        "configured"
                    }
                    None => {
                        self.store.deployments.push(Deployment {
                            namespace: ns.clone(),
                            name: name.clone(),
                            labels: labels(obj.pointer("/metadata/labels").unwrap_or(&Value::Null)),
                            replicas,
                            template,
                            created: now,
                            generation: 0,
                        });
                        self.roll(&ns, &name);
                        "created"
                    }
                }
            }
            "Service" => {
                let svc = self.service_from(obj, &ns, &name)?;
                match self.store.services.iter().position(|s| s.namespace == ns && s.name == name) {
                    Some(i)
                        if self.store.services[i].ports == svc.ports
                            && self.store.services[i].selector == svc.selector
                            && self.store.services[i].labels == svc.labels =>
                    {
                        "unchanged"
                    }
                    Some(i) => {
                        let old = &mut self.store.services[i];
                        old.ports = svc.ports;
                        old.type_ = svc.type_;
                        old.selector = svc.selector;
                        old.labels = svc.labels;
                        "configured"
                    }
                    None => {
                        self.store.services.push(svc);
                        "created"
                    }
                }
            }
            "ConfigMap" => {
                let data: BTreeMap<String, String> = obj
                    .get("data")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                match self.store.configmaps.iter_mut().find(|c| c.namespace == ns && c.name == name) {
                    Some(c) if c.data == data => "unchanged",
                    Some(c) => {
                        c.data = data;
                        "configured"
                    }
                    None => {
                        self.store.configmaps.push(ConfigMap {
                            namespace: ns.clone(),
                            name: name.clone(),
                            data,
                            created: now,
                        });
                        "created"
                    }
                }
            }
            "CiliumLoadBalancerIPPool" | "CiliumL2AnnouncementPolicy" => self.apply_lb_object(kind, obj, &name)?,
            other => {
                return Err(LabError::Unsupported(format!(
                    "kind {other} is not supported on the lab backend: mark the block backend=kind"
                )));
            }
        };
        // Services are synced once per kubectl command by the caller, not per object.
        self.reconcile(dir)?;
        Ok(format!("{shown} {verb}"))
    }

    fn service_from(&self, obj: &Value, ns: &str, name: &str) -> Result<Service, LabError> {
        let type_ = str_at(obj, &["spec", "type"]).unwrap_or("ClusterIP").to_string();
        if !matches!(type_.as_str(), "ClusterIP" | "LoadBalancer") {
            return Err(LabError::Unsupported(format!(
                "Service type {type_} is not supported on the lab backend yet: mark the block backend=kind"
            )));
        }
        let mut ports = Vec::new();
        for p in obj.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
            let port = p
                .get("port")
                .and_then(Value::as_u64)
                .ok_or_else(|| LabError::Input(format!("error: service {name}: a port needs `port`")))?
                as u16;
            ports.push(ServicePort {
                name: p.get("name").and_then(Value::as_str).map(str::to_string),
                port,
                target_port: p.get("targetPort").and_then(Value::as_u64).map(|t| t as u16).unwrap_or(port),
                protocol: p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string(),
                node_port: (type_ == "LoadBalancer").then(|| super::lb_ipam::node_port(&self.store, ns, name, port)),
            });
        }
        let cluster_ip = match str_at(obj, &["spec", "clusterIP"]) {
            Some(ip) => {
                ip.parse().map_err(|_| LabError::Input(format!("error: service {name}: bad clusterIP {ip}")))?
            }
            None => self.allocate_cluster_ip(ns, name),
        };
        Ok(Service {
            namespace: ns.into(),
            name: name.into(),
            labels: labels(obj.pointer("/metadata/labels").unwrap_or(&Value::Null)),
            type_,
            cluster_ip,
            ports,
            selector: labels(obj.pointer("/spec/selector").unwrap_or(&Value::Null)),
            created: SystemTime::now(),
            load_balancer_ip: None,
        })
    }

    /// A stable pseudo-random address in the service subnet (the API server picks at random).
    pub fn allocate_cluster_ip(&self, ns: &str, name: &str) -> Ipv4Addr {
        let subnet = self.plan.service_subnet;
        let size = subnet.size().min(1 << 16) as u32;
        let mut h = u32::from_str_radix(&hex_id(&[ns, name], 8), 16).unwrap_or(0);
        loop {
            let ip = subnet.nth(h % (size - 20) + 16);
            if !self.store.services.iter().any(|s| s.cluster_ip == ip) {
                return ip;
            }
            h = h.wrapping_add(1);
        }
    }

    /// Replace a Deployment's pods with a fresh set (new names, like a rollout).
    pub fn roll(&mut self, ns: &str, name: &str) {
        let Some(d) = self.store.deployments.iter_mut().find(|d| d.namespace == ns && d.name == name) else { return };
        d.generation += 1;
        let (replicas, template, generation) = (d.replicas, d.template.clone(), d.generation);
        let owner = format!("Deployment/{name}");
        let old: Vec<String> = self
            .store
            .pods
            .iter()
            .filter(|p| p.namespace == ns && p.owner.as_deref() == Some(&owner))
            .map(|p| p.name.clone())
            .collect();
        for p in old {
            self.delete_pod(ns, &p);
        }
        let rs = hex_id(&[ns, name, &generation.to_string()], 10);
        for _ in 0..replicas {
            let pod = self.pod_from_template(ns, format!("{name}-{rs}-{}", suffix(5)), &template, Some(owner.clone()));
            self.store.pods.push(pod);
        }
    }

    /// `kubectl delete`; returns kubectl's line, or `None` when there is no such object.
    pub fn delete(&mut self, kind: &str, ns: &str, name: &str) -> Result<Option<String>, LabError> {
        let found = match kind {
            "Pod" => {
                let exists = self.store.pod(ns, name).is_some();
                self.delete_pod(ns, name);
                exists
            }
            "Deployment" => {
                let before = self.store.deployments.len();
                self.store.deployments.retain(|d| !(d.namespace == ns && d.name == name));
                let owner = format!("Deployment/{name}");
                let pods: Vec<String> = self
                    .store
                    .pods
                    .iter()
                    .filter(|p| p.namespace == ns && p.owner.as_deref() == Some(&owner))
                    .map(|p| p.name.clone())
                    .collect();
                for p in pods {
                    self.delete_pod(ns, &p);
                }
                before != self.store.deployments.len()
            }
            "Service" => {
                let before = self.store.services.len();
                self.store.services.retain(|s| !(s.namespace == ns && s.name == name));
                before != self.store.services.len()
            }
            "ConfigMap" => {
                let before = self.store.configmaps.len();
                self.store.configmaps.retain(|c| !(c.namespace == ns && c.name == name));
                before != self.store.configmaps.len()
            }
            "Namespace" => true,
            "CiliumLoadBalancerIPPool" | "CiliumL2AnnouncementPolicy" | "Node" => self.delete_lb_object(kind, name),
            other => {
                return Err(LabError::Unsupported(format!(
                    "kind {other} is not supported on the lab backend: mark the block backend=kind"
                )));
            }
        };
        Ok(found.then(|| format!("{} \"{name}\" deleted", resource_name(kind))))
    }

    /// Pods from a template with `containers` (used for seeding system Deployments).
    pub fn seed_deployment(&mut self, ns: &str, name: &str, replicas: u32, labels: Labels, image: &str) {
        let template = serde_json::json!({
            "metadata": { "labels": labels },
            "spec": { "containers": [{ "name": name, "image": image }] }
        });
        self.store.deployments.push(Deployment {
            namespace: ns.into(),
            name: name.into(),
            labels: labels.clone(),
            replicas,
            template,
            created: SystemTime::now(),
            generation: 0,
        });
    }
}
