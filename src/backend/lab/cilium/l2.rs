//! L2 announcements (`enable-l2-announcements`): for each Service whose addresses a
//! `CiliumL2AnnouncementPolicy` selects this node to announce, the agents of the eligible nodes
//! compete for the Service's Lease, `cilium-l2announce-<namespace>-<name>` in the agent's
//! namespace, as Cilium's do (lease duration, renew deadline and retry period from
//! `l2-announcements-lease-duration`, `-renew-deadline`, `-retry-period`). The holder answers
//! ARP for the addresses (the XDP LB's `announce` map on `eth0`, see `lb.rs`) and sends a
//! gratuitous ARP when it takes one over; when it dies its lease runs out and another eligible
//! agent takes the addresses over. An agent that is no longer eligible releases its leases.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;

use super::config::AgentConfig;
use super::operator::lease::hold;
use crate::backend::lab::l2_announce::L2Policy;
use crate::backend::lab::store::Labels;

/// The lease of a Service's announcement.
pub fn lease_name(namespace: &str, name: &str) -> String {
    format!("cilium-l2announce-{namespace}-{name}")
}

/// A Go duration as Cilium's options hold them (`15s`, `500ms`, `1m`).
pub fn go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.')?);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// The election's timings from the agent's options (Cilium's defaults: 15 s, 2 s retry).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    pub lease: Duration,
    pub retry: Duration,
}

impl Timings {
    pub fn of(config: &AgentConfig) -> Timings {
        let get = |key: &str, default: u64| {
            config
                .get(key)
                .and_then(go_duration)
                .unwrap_or(Duration::from_secs(default))
                .max(Duration::from_millis(200))
        };
        Timings { lease: get("l2-announcements-lease-duration", 15), retry: get("l2-announcements-retry-period", 2) }
    }
}

fn labels(m: &Option<BTreeMap<String, String>>) -> Labels {
    m.clone().unwrap_or_default()
}

/// The Services this node may announce, with the addresses to announce for each.
pub fn candidates(
    policies: &[L2Policy],
    services: &[Arc<Service>],
    node_labels: &Labels,
) -> BTreeMap<(String, String), BTreeSet<Ipv4Addr>> {
    let mut out = BTreeMap::new();
    let device_ok =
        |p: &L2Policy| p.interfaces.is_empty() || p.interfaces.iter().any(|r| r.is_match(super::lb::DEVICE));
    for svc in services {
        let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) else { continue };
        let svc_labels = labels(&svc.metadata.labels);
        let mut addrs = BTreeSet::new();
        for p in policies {
            let service_ok =
                p.service_selector.as_ref().is_none_or(|s| s.iter().all(|(k, v)| svc_labels.get(k) == Some(v)));
            if !(service_ok && device_ok(p) && p.node_selector.matches(node_labels)) {
                continue;
            }
            if p.load_balancer_ips {
                let ingress =
                    svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
                addrs.extend(ingress.into_iter().flatten().filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()));
            }
            if p.external_ips {
                let external = svc.spec.as_ref().and_then(|s| s.external_ips.as_ref());
                addrs.extend(external.into_iter().flatten().filter_map(|ip| ip.parse::<Ipv4Addr>().ok()));
            }
        }
        if !addrs.is_empty() {
            out.insert((ns.clone(), name.clone()), addrs);
        }
    }
    out
}

/// What the election needs from the agent's watches.
pub struct Inputs {
    pub client: Client,
    pub namespace: String,
    pub node: String,
    pub nodes: reflector::Store<Node>,
    pub services: reflector::Store<Service>,
    pub config: Arc<Mutex<AgentConfig>>,
    /// The addresses this node holds the leases of, read by the reconciler.
    pub held: Arc<Mutex<BTreeSet<Ipv4Addr>>>,
    /// Poked when `held` changes.
    pub changed: Arc<Notify>,
}

/// Run the election forever.
pub async fn run(i: Inputs) {
    let gvk = GroupVersionKind::gvk("cilium.io", "v2alpha1", "CiliumL2AnnouncementPolicy");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "ciliuml2announcementpolicies");
    let w = reflector::store::Writer::<DynamicObject>::new(ar.clone());
    let policies = w.as_reader();
    let api = Api::<DynamicObject>::all_with(i.client.clone(), &ar);
    // The CRD may not be registered yet (the operator does it): the watch retries quietly.
    tokio::spawn(
        reflector(w, watcher(api, watcher::Config::default()))
            .default_backoff()
            .applied_objects()
            .for_each(|_| async {}),
    );
    let leases = Api::<Lease>::namespaced(i.client.clone(), &i.namespace);
    let mut mine: BTreeSet<(String, String)> = BTreeSet::new();
    let mut reported = BTreeSet::new();
    loop {
        let config = i.config.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let timings = Timings::of(&config);
        let enabled = config.l2_announcements();
        let node_labels = i
            .nodes
            .state()
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(i.node.as_str()))
            .map(|n| labels(&n.metadata.labels))
            .unwrap_or_default();
        let parsed: Vec<L2Policy> = policies
            .state()
            .iter()
            .filter_map(|p| {
                let name = p.metadata.name.clone().unwrap_or_default();
                let json = serde_json::to_value(p.as_ref()).ok()?;
                match L2Policy::from_manifest(&json, &name) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        if reported.insert(name.clone()) {
                            eprintln!("level=warning msg=\"skipping CiliumL2AnnouncementPolicy {name}: {e}\"");
                        }
                        None
                    }
                }
            })
            .collect();
        let wanted = if enabled { candidates(&parsed, &i.services.state(), &node_labels) } else { BTreeMap::new() };
        let mut held = BTreeSet::new();
        for ((ns, name), addrs) in &wanted {
            match hold(&leases, &lease_name(ns, name), &i.node, timings.lease.as_secs().max(1) as i32).await {
                Ok(true) => {
                    held.extend(addrs.iter().copied());
                    mine.insert((ns.clone(), name.clone()));
                }
                Ok(false) => {
                    mine.remove(&(ns.clone(), name.clone()));
                }
                Err(e) => eprintln!("level=warning msg=\"L2 announcement lease {}: {e}\"", lease_name(ns, name)),
            }
        }
        // Leases of Services this node may no longer announce are given up at once.
        for key in mine.clone().into_iter().filter(|k| !wanted.contains_key(k)) {
            if release(&leases, &lease_name(&key.0, &key.1), &i.node).await.is_ok() {
                mine.remove(&key);
            }
        }
        let changed = {
            let mut h = i.held.lock().unwrap_or_else(|e| e.into_inner());
            let changed = *h != held;
            *h = held;
            changed
        };
        if changed {
            i.changed.notify_one();
        }
        tokio::time::sleep(timings.retry).await;
    }
}

/// Give a lease up (client-go's release: no holder), when we hold it.
async fn release(api: &Api<Lease>, name: &str, me: &str) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(name).await? else { return Ok(()) };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(me) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    api.replace(name, &PostParams::default(), &lease).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "apiVersion: cilium.io/v2alpha1\nkind: CiliumL2AnnouncementPolicy\nmetadata: {name: default}\nspec:\n  nodeSelector:\n    matchExpressions:\n    - {key: node-role.kubernetes.io/control-plane, operator: DoesNotExist}\n  interfaces: ['^eth[0-9]+']\n  externalIPs: true\n  loadBalancerIPs: true\n";

    fn policy(yaml: &str) -> L2Policy {
        let v: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        L2Policy::from_manifest(&v, "default").unwrap()
    }

    fn svc(yaml: &str) -> Arc<Service> {
        Arc::new(serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn workers_announce_load_balancer_and_external_addresses() {
        let s = svc(
            "metadata: {name: deathstar-lb, namespace: default}\nspec: {type: LoadBalancer, externalIPs: [198.51.100.7]}\nstatus: {loadBalancer: {ingress: [{ip: 172.18.250.1}]}}\n",
        );
        let pending = svc("metadata: {name: other, namespace: default}\nspec: {type: LoadBalancer}\n");
        let worker = Labels::new();
        let cp: Labels = [("node-role.kubernetes.io/control-plane".to_string(), String::new())].into();
        let c = candidates(&[policy(POLICY)], &[s.clone(), pending], &worker);
        let addrs: Vec<String> = c[&("default".into(), "deathstar-lb".into())].iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["172.18.250.1", "198.51.100.7"]);
        assert_eq!(c.len(), 1, "a Service without an address is not announced");
        assert!(candidates(&[policy(POLICY)], std::slice::from_ref(&s), &cp).is_empty());
        let wlan = POLICY.replace("^eth[0-9]+", "^wlan0$");
        assert!(candidates(&[policy(&wlan)], std::slice::from_ref(&s), &worker).is_empty(), "no matching interface");
        let picky = POLICY
            .replace("loadBalancerIPs: true", "loadBalancerIPs: true\n  serviceSelector: {matchLabels: {color: blue}}");
        assert!(candidates(&[policy(&picky)], &[s], &worker).is_empty());
    }

    #[test]
    fn timings_and_names() {
        assert_eq!(go_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(go_duration("soon"), None);
        let c = AgentConfig::from_map([("l2-announcements-lease-duration".to_string(), "3s".to_string())].into());
        assert_eq!(Timings::of(&c), Timings { lease: Duration::from_secs(3), retry: Duration::from_secs(2) });
        assert_eq!(lease_name("default", "deathstar-lb"), "cilium-l2announce-default-deathstar-lb");
    }
}
