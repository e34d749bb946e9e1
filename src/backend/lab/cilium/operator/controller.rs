//! LB IPAM over the real API: reflectors keep every `CiliumLoadBalancerIPPool` and Service; on
//! any change (and every 10 s) the leader plans from them all (`lbipam::plan`) and patches the
//! statuses that differ — `.status.loadBalancer.ingress` and `cilium.io/IPAMRequestSatisfied` on
//! Services, the conflict and count conditions on pools. Each patch carries the resourceVersion
//! it was planned from, so a write over a newer object fails (409) and is planned again once the
//! watch delivers it.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::chrono::Utc;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::lbipam::{self, Plan, Pool, PoolPlan, Svc, SvcPlan, Verdict};
use super::release::Release;

const FIELD_MANAGER: &str = "cilium-operator-lb-ipam";

pub fn pool_resource(release: &Release) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(super::crds::GROUP, release.ip_pool_version(), "CiliumLoadBalancerIPPool"),
        "ciliumloadbalancerippools",
    )
}

fn first<'a>(map: Option<&'a BTreeMap<String, String>>, keys: &[&str]) -> Option<&'a String> {
    keys.iter().find_map(|k| map.and_then(|m| m.get(*k))).filter(|v| !v.trim().is_empty())
}

fn created(meta: &kube::api::ObjectMeta) -> String {
    meta.creation_timestamp.as_ref().map(|t| t.0.to_rfc3339()).unwrap_or_default()
}

pub fn svc_view(s: &Service) -> Svc {
    let spec = s.spec.clone().unwrap_or_default();
    let ann = s.metadata.annotations.as_ref();
    let mut labels = s.labels().clone();
    labels.insert("io.kubernetes.service.namespace".into(), s.namespace().unwrap_or_default());
    labels.insert("io.kubernetes.service.name".into(), s.name_any());
    let mut requested: Vec<u32> = Vec::new();
    let mut ask = |text: &str| {
        match text.trim().parse::<std::net::Ipv4Addr>() {
            Ok(ip) if !requested.contains(&u32::from(ip)) => requested.push(u32::from(ip)),
            Ok(_) => {}
            // IPv6 addresses are not the lab's; anything else is a user's typo, as Cilium logs it.
            Err(_) if text.contains(':') => {}
            Err(_) => eprintln!(
                "service {}/{}: unable to parse requested IP {text:?}",
                s.namespace().unwrap_or_default(),
                s.name_any()
            ),
        }
    };
    if let Some(ip) = spec.load_balancer_ip.as_deref().filter(|i| !i.is_empty()) {
        ask(ip);
    }
    if let Some(list) = first(ann, lbipam::ANNOTATION_IPS) {
        list.split(',').for_each(&mut ask);
    }
    let status = s.status.clone().unwrap_or_default();
    Svc {
        namespace: s.namespace().unwrap_or_default(),
        name: s.name_any(),
        created: created(&s.metadata),
        responsible: spec.type_.as_deref() == Some("LoadBalancer")
            && spec.load_balancer_class.as_deref().is_none_or(|c| lbipam::CLASSES.contains(&c)),
        labels,
        requested,
        sharing_key: first(ann, lbipam::ANNOTATION_SHARING_KEY).cloned(),
        cross_namespace: first(ann, lbipam::ANNOTATION_CROSS_NAMESPACE)
            .map(|v| v.split(',').map(|n| n.trim().to_string()).collect())
            .unwrap_or_default(),
        ports: spec
            .ports
            .unwrap_or_default()
            .iter()
            .map(|p| (p.port, p.protocol.clone().unwrap_or_else(|| "TCP".into())))
            .collect(),
        local_traffic: spec.external_traffic_policy.as_deref() == Some("Local"),
        selector: spec.selector.unwrap_or_default(),
        ingress: status
            .load_balancer
            .and_then(|l| l.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip)
            .collect(),
        has_condition: status.conditions.unwrap_or_default().iter().any(|c| c.type_ == lbipam::SVC_CONDITION),
    }
}

pub fn pool_view(p: &DynamicObject, release: &Release) -> Pool {
    let spec = p.data.get("spec").cloned().unwrap_or(Value::Null);
    Pool::from_object(
        &p.name_any(),
        &created(&p.metadata),
        &spec,
        release.allow_first_last_default(),
        release.reads_cidrs(),
    )
}

/// `conditions` with `want` set as `meta.SetStatusCondition` sets it: the transition time moves
/// only when the status changes. Returns whether anything changed.
fn set_condition(conditions: &mut Vec<Condition>, want: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == want.type_) {
        Some(c) => {
            let same = c.status == want.status
                && c.reason == want.reason
                && c.message == want.message
                && c.observed_generation == want.observed_generation;
            if c.status != want.status {
                c.last_transition_time = want.last_transition_time;
            }
            c.status = want.status;
            c.reason = want.reason;
            c.message = want.message;
            c.observed_generation = want.observed_generation;
            !same
        }
        None => {
            conditions.push(want);
            true
        }
    }
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, generation: Option<i64>) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(Utc::now()),
    }
}

fn conditions_of(status: Option<&Value>) -> Vec<Condition> {
    status.and_then(|s| s.get("conditions")).and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default()
}

/// The status patch a pool needs, if any.
pub fn pool_patch(obj: &DynamicObject, plan: &PoolPlan) -> Option<Value> {
    let mut conds = conditions_of(obj.data.get("status"));
    let generation = obj.metadata.generation;
    let mut changed = false;
    let ours =
        [lbipam::POOL_CONFLICT, lbipam::IPS_TOTAL, lbipam::IPS_AVAILABLE, lbipam::IPS_USED, lbipam::POOL_INVALID];
    match plan {
        PoolPlan::Invalid(why) => {
            let before = conds.len();
            conds.retain(|c| c.type_ == lbipam::POOL_INVALID || !ours.contains(&c.type_.as_str()));
            changed |= conds.len() != before;
            changed |=
                set_condition(&mut conds, condition(lbipam::POOL_INVALID, "True", "invalid_spec", why, generation));
        }
        PoolPlan::Usable { conflict, total, available, used } => {
            let before = conds.len();
            conds.retain(|c| c.type_ != lbipam::POOL_INVALID);
            changed |= conds.len() != before;
            let c = match conflict {
                Some(why) => condition(lbipam::POOL_CONFLICT, "True", "cidr_overlap", why, generation),
                None => condition(lbipam::POOL_CONFLICT, "False", "resolved", "", generation),
            };
            changed |= set_condition(&mut conds, c);
            for (t, n) in [(lbipam::IPS_TOTAL, total), (lbipam::IPS_AVAILABLE, available), (lbipam::IPS_USED, used)] {
                changed |= set_condition(&mut conds, condition(t, "Unknown", "noreason", &n.to_string(), generation));
            }
        }
    }
    changed.then(|| {
        json!({
            "metadata": { "resourceVersion": obj.metadata.resource_version },
            "status": { "conditions": conds },
        })
    })
}

/// The status patch a Service needs, if any.
pub fn svc_patch(obj: &Service, plan: &SvcPlan) -> Option<Value> {
    let status = obj.status.clone().unwrap_or_default();
    let have: Vec<String> =
        status.load_balancer.and_then(|l| l.ingress).unwrap_or_default().into_iter().filter_map(|i| i.ip).collect();
    let mut conds = status.conditions.unwrap_or_default();
    let generation = obj.metadata.generation;
    let changed_conditions = match &plan.verdict {
        None => {
            let before = conds.len();
            conds.retain(|c| c.type_ != lbipam::SVC_CONDITION);
            conds.len() != before
        }
        Some(Verdict { satisfied, reason, message }) => set_condition(
            &mut conds,
            condition(lbipam::SVC_CONDITION, if *satisfied { "True" } else { "False" }, reason, message, generation),
        ),
    };
    if have == plan.ingress && !changed_conditions {
        return None;
    }
    let ingress: Value =
        if plan.ingress.is_empty() { Value::Null } else { plan.ingress.iter().map(|ip| json!({ "ip": ip })).collect() };
    Some(json!({
        "metadata": { "resourceVersion": obj.metadata.resource_version },
        "status": {
            "loadBalancer": { "ingress": ingress },
            "conditions": if conds.is_empty() { Value::Null } else { json!(conds) },
        },
    }))
}

/// Run LB IPAM until the process ends; writes only while `leader` says so.
pub async fn run(client: Client, release: Release, mut leader: watch::Receiver<bool>) {
    let ar = pool_resource(&release);
    let pools_api = Api::<DynamicObject>::all_with(client.clone(), &ar);
    let pool_writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
    let pool_reader = pool_writer.as_reader();
    let pool_stream = reflector(pool_writer, watcher(pools_api.clone(), watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let (svc_reader, svc_writer) = reflector::store::<Service>();
    let svc_stream = reflector(svc_writer, watcher(Api::<Service>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    futures_util::pin_mut!(pool_stream, svc_stream);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    loop {
        tokio::select! {
            ev = pool_stream.next() => match ev {
                None => return,
                Some(Err(e)) => eprintln!("LB IPAM: watching pools: {e}"),
                Some(Ok(_)) => {}
            },
            ev = svc_stream.next() => match ev {
                None => return,
                Some(Err(e)) => eprintln!("LB IPAM: watching services: {e}"),
                Some(Ok(_)) => {}
            },
            _ = leader.changed() => {}
            _ = tick.tick() => {}
        }
        // Planning from a partial view would take addresses away: wait for both first lists.
        if !*leader.borrow() || pool_reader.wait_until_ready().now_or_never().is_none() {
            continue;
        }
        if svc_reader.wait_until_ready().now_or_never().is_none() {
            continue;
        }
        let pool_objs = pool_reader.state();
        let svc_objs = svc_reader.state();
        let plan: Plan = lbipam::plan(
            &pool_objs.iter().map(|p| pool_view(p, &release)).collect::<Vec<_>>(),
            &svc_objs.iter().map(|s| svc_view(s)).collect::<Vec<_>>(),
        );
        for (obj, p) in pool_objs.iter().zip(&plan.pools) {
            if let Some(patch) = pool_patch(obj, p)
                && let Err(e) = pools_api.patch_status(&obj.name_any(), &params, &Patch::Merge(&patch)).await
            {
                report("pool", &obj.name_any(), e);
            }
        }
        for (obj, p) in svc_objs.iter().zip(&plan.services) {
            let Some(p) = p else { continue };
            if let Some(patch) = svc_patch(obj, p) {
                let api = Api::<Service>::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
                if let Err(e) = api.patch_status(&obj.name_any(), &params, &Patch::Merge(&patch)).await {
                    report("service", &format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()), e);
                }
            }
        }
    }
}

fn report(kind: &str, name: &str, e: kube::Error) {
    match e {
        // Planned from an older object than the API has: the watch brings the newer one.
        kube::Error::Api(ae) if ae.code == 409 => {}
        kube::Error::Api(ae) if ae.code == 404 => {}
        e => eprintln!("LB IPAM: updating {kind} {name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(yaml: &str) -> Service {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn services_read_as_lb_ipam_sees_them() {
        let s = service(
            "metadata:\n  name: web\n  namespace: shop\n  labels: {color: blue}\n  annotations:\n    io.cilium/lb-ipam-ips: \"10.0.0.7, 10.0.0.8,bogus\"\n    lbipam.cilium.io/sharing-key: k\nspec:\n  type: LoadBalancer\n  loadBalancerIP: 10.0.0.7\n  ports: [{port: 80}]\n",
        );
        let v = svc_view(&s);
        assert!(v.responsible);
        assert_eq!(v.requested.len(), 2, "{:?}", v.requested);
        assert_eq!(v.sharing_key.as_deref(), Some("k"));
        assert_eq!(v.labels["io.kubernetes.service.namespace"], "shop");
        assert_eq!(v.ports, [(80, "TCP".to_string())]);
        let other = service("metadata: {name: x}\nspec: {type: LoadBalancer, loadBalancerClass: example.com/lb}\n");
        assert!(!svc_view(&other).responsible);
        assert!(!svc_view(&service("metadata: {name: x}\nspec: {type: ClusterIP}\n")).responsible);
    }

    #[test]
    fn patches_only_what_differs_and_keep_transition_times() {
        let mut s = service(
            "metadata: {name: web, namespace: default, resourceVersion: '7', generation: 1}\nspec: {type: LoadBalancer}\n",
        );
        let plan = SvcPlan {
            ingress: vec!["10.0.0.1".into()],
            verdict: Some(Verdict { satisfied: true, reason: "satisfied".into(), message: String::new() }),
        };
        let patch = svc_patch(&s, &plan).expect("a new address is written");
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        assert_eq!(patch["status"]["loadBalancer"]["ingress"], json!([{ "ip": "10.0.0.1" }]));
        assert_eq!(patch["status"]["conditions"][0]["type"], lbipam::SVC_CONDITION);
        s.status = Some(serde_json::from_value(patch["status"].clone()).unwrap());
        assert_eq!(svc_patch(&s, &plan), None, "written already: nothing to do");
        let gone = svc_patch(&s, &SvcPlan { ingress: vec![], verdict: None }).unwrap();
        assert_eq!(gone["status"]["loadBalancer"]["ingress"], Value::Null);
        assert_eq!(gone["status"]["conditions"], Value::Null);

        let mut pool: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "cilium.io/v2alpha1", "kind": "CiliumLoadBalancerIPPool",
            "metadata": { "name": "p", "resourceVersion": "3", "generation": 1 }, "spec": {}
        }))
        .unwrap();
        let plan = PoolPlan::Usable { conflict: None, total: 254, available: 253, used: 1 };
        let patch = pool_patch(&pool, &plan).unwrap();
        let types: Vec<&str> =
            patch["status"]["conditions"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(types, [lbipam::POOL_CONFLICT, lbipam::IPS_TOTAL, lbipam::IPS_AVAILABLE, lbipam::IPS_USED]);
        assert_eq!(patch["status"]["conditions"][2]["message"], "253");
        pool.data["status"] = patch["status"].clone();
        assert_eq!(pool_patch(&pool, &plan), None);
        let invalid = pool_patch(&pool, &PoolPlan::Invalid("spec.blocks[0]: bad".into())).unwrap();
        let conds = invalid["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0]["message"], "spec.blocks[0]: bad");
    }
}
