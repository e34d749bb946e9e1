//! L2 announcements (`l2announcements.enabled` + `CiliumL2AnnouncementPolicy`): for each
//! LoadBalancer address, one node among those the policies select answers ARP for it.
//!
//! Cilium elects the announcer per service with a Kubernetes lease; the lab keeps the same
//! shape: the holder stays while it remains eligible, otherwise another eligible node takes
//! over at once and sends a gratuitous ARP so that neighbours update their caches (Cilium's
//! new leader does the same). The ARP replies themselves come from the bundled XDP LB's
//! `announce` map on the holder's eth0 (see `xdp_lb`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::SystemTime;

use regex::Regex;
use serde_json::Value;

use super::LabError;
use super::store::{Labels, Service, Store, selects};

/// One `matchExpressions` term.
#[derive(Debug, Clone)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => v.is_some_and(|v| self.values.contains(v)),
            "NotIn" => v.is_none_or(|v| !self.values.contains(v)),
            "Exists" => v.is_some(),
            "DoesNotExist" => v.is_none(),
            _ => false,
        }
    }
}

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`, ANDed); empty selects all.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub match_labels: Labels,
    pub expressions: Vec<Requirement>,
}

impl Selector {
    fn parse(v: Option<&Value>, what: &str, policy: &str) -> Result<Selector, LabError> {
        let Some(v) = v else { return Ok(Selector::default()) };
        let match_labels = v
            .get("matchLabels")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
            .unwrap_or_default();
        let mut expressions = Vec::new();
        for e in v.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = e
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(policy, format!("{what}: an expression needs `key`")))?;
            let operator = e.get("operator").and_then(Value::as_str).unwrap_or("");
            if !matches!(operator, "In" | "NotIn" | "Exists" | "DoesNotExist") {
                return Err(bad(
                    policy,
                    format!("{what}: operator {operator:?} is not one of In, NotIn, Exists, DoesNotExist"),
                ));
            }
            let values = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            expressions.push(Requirement { key: key.into(), operator: operator.into(), values });
        }
        Ok(Selector { match_labels, expressions })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|r| r.matches(labels))
    }
}

fn bad(name: &str, what: String) -> LabError {
    LabError::Input(format!("error: CiliumL2AnnouncementPolicy {name}: {what}"))
}

#[derive(Debug, Clone)]
pub struct L2Policy {
    pub name: String,
    pub node_selector: Selector,
    pub service_selector: Option<Labels>,
    pub interfaces: Vec<Regex>,
    pub load_balancer_ips: bool,
    pub external_ips: bool,
    pub created: SystemTime,
}

/// The node device the lab announces on (the XDP LB's device).
pub const DEVICE: &str = "eth0";

impl L2Policy {
    pub fn from_manifest(obj: &Value, name: &str) -> Result<L2Policy, LabError> {
        let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
        let node_selector = Selector::parse(spec.get("nodeSelector"), "nodeSelector", name)?;
        let mut interfaces = Vec::new();
        for i in spec.get("interfaces").and_then(Value::as_array).into_iter().flatten() {
            let s = i.as_str().ok_or_else(|| bad(name, "interfaces must be strings".into()))?;
            interfaces.push(Regex::new(s).map_err(|e| bad(name, format!("interface regex {s:?}: {e}")))?);
        }
        let service_selector = obj
            .pointer("/spec/serviceSelector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect());
        Ok(L2Policy {
            name: name.into(),
            node_selector,
            service_selector,
            interfaces,
            load_balancer_ips: spec.get("loadBalancerIPs").and_then(Value::as_bool).unwrap_or(false),
            external_ips: spec.get("externalIPs").and_then(Value::as_bool).unwrap_or(false),
            created: SystemTime::now(),
        })
    }

    /// Whether this policy has `node` (with `labels`) announce `svc`'s LoadBalancer address.
    pub fn selects(&self, svc: &Service, labels: &Labels) -> bool {
        self.load_balancer_ips
            && self.service_selector.as_ref().is_none_or(|s| s.is_empty() || selects(s, &svc.labels))
            && self.node_selector.matches(labels)
            && (self.interfaces.is_empty() || self.interfaces.iter().any(|r| r.is_match(DEVICE)))
    }
}

/// A node's labels: kind's own plus those changed with `kubectl label node`.
pub fn node_labels(store: &Store, node: &str) -> Labels {
    let mut labels: Labels = store
        .nodes
        .iter()
        .find(|n| n.name == node)
        .and_then(|n| n.to_json(store.cni).pointer("/metadata/labels").and_then(Value::as_object).cloned())
        .map(|m| m.into_iter().filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string()))).collect())
        .unwrap_or_default();
    for (k, v) in store.node_labels.get(node).into_iter().flatten() {
        match v {
            Some(v) => labels.insert(k.clone(), v.clone()),
            None => labels.remove(k),
        };
    }
    labels
}

/// The announcing node of every announced address, given the previous holders (sticky).
pub fn elect(store: &Store, previous: &BTreeMap<Ipv4Addr, String>) -> BTreeMap<Ipv4Addr, String> {
    let mut out = BTreeMap::new();
    let nodes: Vec<(String, Labels)> =
        store.nodes.iter().map(|n| (n.name.clone(), node_labels(store, &n.name))).collect();
    for svc in &store.services {
        let Some(ip) = svc.load_balancer_ip else { continue };
        let eligible: Vec<&String> =
            nodes.iter().filter(|(_, l)| store.l2_policies.iter().any(|p| p.selects(svc, l))).map(|(n, _)| n).collect();
        if eligible.is_empty() {
            continue;
        }
        let holder = match previous.get(&ip) {
            Some(h) if eligible.contains(&h) => h.clone(),
            _ => {
                let seed = super::network::hex_id(&[&svc.namespace, &svc.name], 8);
                eligible[u32::from_str_radix(&seed, 16).unwrap_or(0) as usize % eligible.len()].clone()
            }
        };
        out.insert(ip, holder);
    }
    out
}

/// Broadcast a gratuitous ARP (a request for `ip` from `ip`) out of `DEVICE` of the network
/// namespace at `netns`, so neighbours point `ip` at `mac`.
pub fn gratuitous_arp(netns: &Path, ip: Ipv4Addr, mac: [u8; 6]) -> Result<(), LabError> {
    crate::lb::netns::in_netns(netns, || send_garp(ip, mac)).map_err(|source| LabError::Lb {
        what: format!("entering the namespace for a gratuitous ARP for {ip}"),
        source: Box::new(source),
    })?
}

fn send_garp(ip: Ipv4Addr, mac: [u8; 6]) -> Result<(), LabError> {
    let sys = |source| LabError::Io { what: format!("gratuitous ARP on {DEVICE}"), source };
    super::arp::ArpSocket::open(DEVICE).map_err(sys)?.send(&super::arp::request(mac, ip, ip)).map_err(sys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::lab::config::Role;
    use crate::backend::lab::store::NodeObj;

    const ARTICLE: &str = "apiVersion: cilium.io/v2alpha1\nkind: CiliumL2AnnouncementPolicy\nmetadata:\n  name: default\nspec:\n  nodeSelector:\n    matchExpressions:\n      - key: node-role.kubernetes.io/control-plane\n        operator: DoesNotExist\n  interfaces:\n  - ^eth[0-9]+\n  externalIPs: true\n  loadBalancerIPs: true\n";

    fn store() -> Store {
        let node = |name: &str, role, last| NodeObj {
            name: name.into(),
            role,
            ip: Ipv4Addr::new(172, 18, 0, last),
            pod_cidr: String::new(),
            created: SystemTime::now(),
        };
        let mut s = Store {
            nodes: vec![
                node("kind-control-plane", Role::ControlPlane, 2),
                node("kind-worker", Role::Worker, 3),
                node("kind-worker2", Role::Worker, 4),
            ],
            ..Default::default()
        };
        s.services.push(Service {
            namespace: "default".into(),
            name: "deathstar-lb".into(),
            labels: Labels::new(),
            type_: "LoadBalancer".into(),
            cluster_ip: Ipv4Addr::new(10, 96, 0, 20),
            ports: vec![],
            selector: Labels::new(),
            created: SystemTime::now(),
            load_balancer_ip: Some(Ipv4Addr::new(172, 18, 250, 1)),
        });
        s
    }

    fn policy(yaml: &str) -> L2Policy {
        L2Policy::from_manifest(&serde_yaml::from_str(yaml).unwrap(), "default").unwrap()
    }

    #[test]
    fn article_policy_picks_one_worker_and_fails_over() {
        let mut s = store();
        let vip = Ipv4Addr::new(172, 18, 250, 1);
        assert!(elect(&s, &BTreeMap::new()).is_empty(), "no policy: nobody announces");
        s.l2_policies.push(policy(ARTICLE));
        let first = elect(&s, &BTreeMap::new());
        let holder = first[&vip].clone();
        assert!(holder.starts_with("kind-worker"), "{holder}");
        assert_eq!(elect(&s, &first), first, "sticky");
        // The holder stops matching: the other worker takes over.
        s.node_labels
            .entry(holder.clone())
            .or_default()
            .insert("node-role.kubernetes.io/control-plane".into(), Some(String::new()));
        let next = elect(&s, &first);
        assert!(next[&vip].starts_with("kind-worker") && next[&vip] != holder, "{next:?}");
        // It matches again, but the new holder keeps the lease.
        s.node_labels.clear();
        assert_eq!(elect(&s, &next), next);
        s.nodes.retain(|n| n.name != next[&vip]);
        assert_eq!(elect(&s, &next)[&vip], holder, "node removed");
    }

    #[test]
    fn interfaces_and_address_kinds_limit_the_policy() {
        let mut s = store();
        s.l2_policies.push(policy("spec:\n  interfaces: [\"^ens[0-9]+\"]\n  loadBalancerIPs: true\n"));
        assert!(elect(&s, &BTreeMap::new()).is_empty(), "eth0 does not match");
        s.l2_policies = vec![policy("spec:\n  externalIPs: true\n")];
        assert!(elect(&s, &BTreeMap::new()).is_empty(), "loadBalancerIPs not selected");
        s.l2_policies = vec![policy(
            "spec:\n  loadBalancerIPs: true\n  nodeSelector:\n    matchLabels:\n      kubernetes.io/hostname: kind-control-plane\n",
        )];
        assert_eq!(elect(&s, &BTreeMap::new()).values().next().unwrap(), "kind-control-plane");
        let e =
            L2Policy::from_manifest(&serde_yaml::from_str("spec:\n  interfaces: [\"(\"]\n").unwrap(), "p").unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("CiliumL2AnnouncementPolicy p"), "{e}");
    }
}
