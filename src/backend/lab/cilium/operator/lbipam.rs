//! LB IPAM's decisions, as Cilium's operator makes them, computed from observed state alone:
//! the pools (`CiliumLoadBalancerIPPool`) and the Services, each with the status it has now.
//! [`plan`] says what every pool's and every LoadBalancer Service's status should be; the
//! controller (`super::controller`) writes what differs. Nothing is remembered between runs: an
//! address a Service holds (its `.status.loadBalancer.ingress`) is its allocation as long as it
//! is still valid, so a restarted operator, or the other replica taking over, keeps every address
//! where it is.
//!
//! The rules (Cilium's documented behaviour): a pool overlapping an older pool (or itself) is
//! conflicting and gives nothing; a disabled pool gives nothing new but its addresses stay; a
//! pool's `serviceSelector` (labels, plus `io.kubernetes.service.namespace`/`.name`) limits which
//! Services it serves; the first and last address of a CIDR larger than /31 are reserved unless
//! `allowFirstLastIPs` allows them (the default depends on the release); Services ask for
//! addresses with `spec.loadBalancerIP` or the `lbipam.cilium.io/ips` annotation (older
//! `io.cilium/lb-ipam-ips`); Services with the same `lbipam.cilium.io/sharing-key` share an
//! address while their ports do not clash; an address whose pool is deleted, or no longer covers
//! or selects its Service, is taken back and the Service gets another one if any pool has one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::backend::lab::lb_ipam::{Block, ParsedBlock, parse_block};

pub const SVC_CONDITION: &str = "cilium.io/IPAMRequestSatisfied";
pub const POOL_CONFLICT: &str = "cilium.io/PoolConflict";
pub const IPS_TOTAL: &str = "cilium.io/IPsTotal";
pub const IPS_AVAILABLE: &str = "cilium.io/IPsAvailable";
pub const IPS_USED: &str = "cilium.io/IPsUsed";
/// The lab's own condition on a pool it cannot read (Cilium only logs it and skips the pool).
pub const POOL_INVALID: &str = "cilium.io/PoolInvalid";

pub const ANNOTATION_IPS: &[&str] = &["lbipam.cilium.io/ips", "io.cilium/lb-ipam-ips"];
pub const ANNOTATION_SHARING_KEY: &[&str] = &["lbipam.cilium.io/sharing-key", "io.cilium/lb-ipam-sharing-key"];
pub const ANNOTATION_CROSS_NAMESPACE: &[&str] =
    &["lbipam.cilium.io/sharing-cross-namespace", "io.cilium/lb-ipam-sharing-cross-namespace"];
/// The load balancer classes Cilium's LB IPAM serves besides none.
pub const CLASSES: &[&str] = &["io.cilium/bgp-control-plane", "io.cilium/l2-announcer"];

/// A label selector (`matchLabels` and `matchExpressions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    labels: BTreeMap<String, String>,
    expressions: Vec<(String, Op, Vec<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Selector {
    pub fn parse(v: &Value) -> Result<Selector, String> {
        let mut s = Selector::default();
        if let Some(m) = v.get("matchLabels").and_then(Value::as_object) {
            for (k, val) in m {
                let val = val.as_str().ok_or_else(|| format!("serviceSelector.matchLabels.{k} is not a string"))?;
                s.labels.insert(k.clone(), val.to_string());
            }
        }
        for (i, e) in v.get("matchExpressions").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let key = e
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("serviceSelector.matchExpressions[{i}] has no key"))?;
            let op = match e.get("operator").and_then(Value::as_str) {
                Some("In") => Op::In,
                Some("NotIn") => Op::NotIn,
                Some("Exists") => Op::Exists,
                Some("DoesNotExist") => Op::DoesNotExist,
                other => {
                    return Err(format!(
                        "serviceSelector.matchExpressions[{i}]: operator {} is not In, NotIn, Exists or DoesNotExist",
                        other.map(|o| format!("{o:?}")).unwrap_or_else(|| "(none)".into())
                    ));
                }
            };
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect();
            if matches!(op, Op::In | Op::NotIn) && values.is_empty() {
                return Err(format!("serviceSelector.matchExpressions[{i}]: values must be non-empty for {op:?}"));
            }
            s.expressions.push((key.to_string(), op, values));
        }
        Ok(s)
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|(k, op, values)| match op {
                Op::In => labels.get(k).is_some_and(|v| values.contains(v)),
                Op::NotIn => labels.get(k).is_none_or(|v| !values.contains(v)),
                Op::Exists => labels.contains_key(k),
                Op::DoesNotExist => !labels.contains_key(k),
            })
    }
}

/// A pool as observed.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    /// RFC 3339 creation time: older pools win conflicts (then the name decides).
    pub created: String,
    /// The blocks, or what is wrong with the pool.
    pub spec: Result<PoolSpec, String>,
}

#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub blocks: Vec<ParsedBlock>,
    pub disabled: bool,
    pub selector: Option<Selector>,
}

impl Pool {
    /// Read a pool object (`spec` as the API holds it); `allow_first_last` is the release's
    /// default for `allowFirstLastIPs`, `cidrs` whether the older `spec.cidrs` is read.
    pub fn from_object(name: &str, created: &str, spec: &Value, allow_first_last: bool, cidrs: bool) -> Pool {
        let parse = || -> Result<PoolSpec, String> {
            let allow = match spec.get("allowFirstLastIPs").and_then(Value::as_str) {
                Some("Yes") => true,
                Some("No") => false,
                _ => allow_first_last,
            };
            let mut entries: Vec<&Value> = spec.get("blocks").and_then(Value::as_array).into_iter().flatten().collect();
            if cidrs {
                entries.extend(spec.get("cidrs").and_then(Value::as_array).into_iter().flatten());
            }
            let mut blocks = Vec::new();
            for (i, b) in entries.iter().enumerate() {
                match parse_block(b, allow) {
                    Ok(Some(p)) => blocks.push(p),
                    Ok(None) => {}
                    Err(e) => return Err(format!("spec.blocks[{i}]: {e}")),
                }
            }
            let selector = match spec.get("serviceSelector") {
                Some(v) if !v.is_null() => Some(Selector::parse(v)?),
                _ => None,
            };
            Ok(PoolSpec { blocks, disabled: spec.get("disabled").and_then(Value::as_bool).unwrap_or(false), selector })
        };
        Pool { name: name.to_string(), created: created.to_string(), spec: parse() }
    }
}

/// A Service as observed.
#[derive(Debug, Clone, Default)]
pub struct Svc {
    pub namespace: String,
    pub name: String,
    pub created: String,
    /// Type LoadBalancer with no class, or one of Cilium's.
    pub responsible: bool,
    /// Its labels, with `io.kubernetes.service.namespace` and `.name` added.
    pub labels: BTreeMap<String, String>,
    /// Addresses asked for (`spec.loadBalancerIP`, the annotation); unparsable ones are dropped.
    pub requested: Vec<u32>,
    pub sharing_key: Option<String>,
    pub cross_namespace: Vec<String>,
    /// (port, protocol).
    pub ports: Vec<(i32, String)>,
    pub local_traffic: bool,
    pub selector: BTreeMap<String, String>,
    /// `.status.loadBalancer.ingress[].ip`, as the Service has them now.
    pub ingress: Vec<String>,
    /// Whether it carries LB IPAM's condition already (LB IPAM has seen it).
    pub has_condition: bool,
}

impl Svc {
    /// Whether `other` may share an address with `self`, or why not.
    fn compatible(&self, other: &Svc) -> Result<(), String> {
        match (&self.sharing_key, &other.sharing_key) {
            (Some(a), Some(b)) if a == b => {}
            _ => return Err("different sharing key".into()),
        }
        if self.namespace != other.namespace {
            let allows = |s: &Svc, ns: &str| s.cross_namespace.iter().any(|n| n.trim() == "*" || n.trim() == ns);
            if !(allows(self, &other.namespace) && allows(other, &self.namespace)) {
                return Err("different namespace, not allowed to share across namespaces".into());
            }
        }
        if let Some((p, proto)) = self.ports.iter().find(|p| other.ports.contains(p)) {
            return Err(format!("same port and protocol ({p}/{proto})"));
        }
        if (self.local_traffic || other.local_traffic) && self.selector != other.selector {
            return Err("externalTrafficPolicy Local with a different selector".into());
        }
        Ok(())
    }
}

/// The condition LB IPAM gives a Service: (status, reason, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub satisfied: bool,
    pub reason: String,
    pub message: String,
}

impl Verdict {
    fn ok() -> Verdict {
        Verdict { satisfied: true, reason: "satisfied".into(), message: String::new() }
    }

    fn no(reason: &str, message: String) -> Verdict {
        Verdict { satisfied: false, reason: reason.into(), message }
    }
}

/// What a Service's status should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvcPlan {
    pub ingress: Vec<String>,
    /// `None`: LB IPAM's condition is removed (not, or no longer, its Service).
    pub verdict: Option<Verdict>,
}

/// What a pool's status should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolPlan {
    Usable { conflict: Option<String>, total: u64, available: u64, used: u64 },
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub pools: Vec<PoolPlan>,
    /// One per Service of the input (same order); `None`: LB IPAM leaves it alone.
    pub services: Vec<Option<SvcPlan>>,
}

fn range_text(b: &Block) -> String {
    let size = b.len();
    if size.is_power_of_two() && (b.first as u64).is_multiple_of(size) {
        format!("{}/{}", Ipv4Addr::from(b.first), 32 - size.trailing_zeros())
    } else {
        format!("{} - {}", Ipv4Addr::from(b.first), Ipv4Addr::from(b.last))
    }
}

/// Decide every pool's and Service's status.
pub fn plan(pools: &[Pool], svcs: &[Svc]) -> Plan {
    // Pools by age; conflicts against older pools that are not conflicting themselves.
    let mut order: Vec<usize> = (0..pools.len()).collect();
    order.sort_by(|&a, &b| (&pools[a].created, &pools[a].name).cmp(&(&pools[b].created, &pools[b].name)));
    let mut conflict: Vec<Option<String>> = vec![None; pools.len()];
    let mut settled: Vec<usize> = Vec::new();
    for &i in &order {
        let Ok(spec) = &pools[i].spec else { continue };
        let mut found = None;
        'own: for (a, x) in spec.blocks.iter().enumerate() {
            for y in &spec.blocks[a + 1..] {
                if x.range.overlaps(&y.range) {
                    found = Some((x.range, y.range, pools[i].name.clone()));
                    break 'own;
                }
            }
        }
        if found.is_none() {
            'others: for &j in &settled {
                let Ok(other) = &pools[j].spec else { continue };
                for x in &spec.blocks {
                    if let Some(y) = other.blocks.iter().find(|y| x.range.overlaps(&y.range)) {
                        found = Some((x.range, y.range, pools[j].name.clone()));
                        break 'others;
                    }
                }
            }
        }
        match found {
            Some((a, b, with)) => {
                conflict[i] = Some(format!(
                    "Pool conflicts since range '{}' overlaps range '{}' from IP Pool '{with}'",
                    range_text(&a),
                    range_text(&b)
                ))
            }
            None => settled.push(i),
        }
    }
    // The usable ranges, oldest pool first: (pool, block).
    let ranges: Vec<(usize, &ParsedBlock)> = order
        .iter()
        .filter(|&&i| conflict[i].is_none())
        .filter_map(|&i| pools[i].spec.as_ref().ok().map(|s| (i, s)))
        .flat_map(|(i, s)| s.blocks.iter().map(move |b| (i, b)))
        .collect();
    let spec = |i: usize| pools[i].spec.as_ref().expect("ranges come from readable pools");
    let selects = |i: usize, s: &Svc| spec(i).selector.as_ref().is_none_or(|sel| sel.matches(&s.labels));

    let mut svc_order: Vec<usize> = (0..svcs.len()).filter(|&i| svcs[i].responsible).collect();
    svc_order.sort_by(|&a, &b| {
        (&svcs[a].created, &svcs[a].namespace, &svcs[a].name).cmp(&(
            &svcs[b].created,
            &svcs[b].namespace,
            &svcs[b].name,
        ))
    });
    // Address → the Services holding it.
    let mut held: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    let mut mine: Vec<Vec<u32>> = vec![Vec::new(); svcs.len()];
    let shares = |held: &BTreeMap<u32, Vec<usize>>, ip: u32, s: usize| -> Result<(), String> {
        for &o in held.get(&ip).into_iter().flatten() {
            svcs[o].compatible(&svcs[s])?;
        }
        Ok(())
    };

    // Keep the addresses Services hold that are still theirs to hold.
    for &s in &svc_order {
        let svc = &svcs[s];
        for text in &svc.ingress {
            let Ok(ip) = text.parse::<Ipv4Addr>().map(u32::from) else { continue };
            let valid = ranges.iter().any(|(p, b)| b.usable.contains(ip) && selects(*p, svc))
                && (svc.requested.is_empty() || svc.requested.contains(&ip))
                && !mine[s].contains(&ip)
                && (svc.requested.is_empty() && mine[s].is_empty() || !svc.requested.is_empty())
                && shares(&held, ip, s).is_ok();
            if valid {
                held.entry(ip).or_default().push(s);
                mine[s].push(ip);
            }
        }
    }

    // Satisfy the others, oldest Service first.
    let mut verdicts: Vec<Option<Verdict>> = vec![None; svcs.len()];
    for &s in &svc_order {
        let svc = &svcs[s];
        let mut verdict = Verdict::ok();
        if !svc.requested.is_empty() {
            for &ip in &svc.requested {
                if mine[s].contains(&ip) {
                    continue;
                }
                let text = Ipv4Addr::from(ip);
                let enabled = |p: usize| !spec(p).disabled;
                let Some(_) = ranges.iter().find(|(p, b)| enabled(*p) && b.usable.contains(ip) && selects(*p, svc))
                else {
                    verdict = if ranges.iter().any(|(p, b)| enabled(*p) && b.range.contains(ip)) {
                        Verdict::no(
                            "pool_selector_mismatch",
                            format!("The pool with the CIDR containing '{text}', doesn't select this service"),
                        )
                    } else {
                        Verdict::no("no_pool", format!("No pool exists with a CIDR containing '{text}'"))
                    };
                    continue;
                };
                if held.contains_key(&ip) {
                    if svc.sharing_key.is_none() {
                        verdict = Verdict::no(
                            "already_allocated",
                            format!("The IP '{text}' is already allocated to another service"),
                        );
                        continue;
                    }
                    if let Err(why) = shares(&held, ip, s) {
                        verdict = Verdict::no(
                            "already_allocated_incompatible_service",
                            format!("The IP '{text}' is already allocated to an incompatible service. Reason: {why}"),
                        );
                        continue;
                    }
                }
                held.entry(ip).or_default().push(s);
                mine[s].push(ip);
            }
        } else if mine[s].is_empty() {
            let shared = svc.sharing_key.as_ref().and_then(|_| {
                held.iter()
                    .filter(|(_, hs)| hs.iter().all(|&o| svcs[o].compatible(svc).is_ok()))
                    .find(|(ip, _)| ranges.iter().any(|(p, b)| b.usable.contains(**ip) && selects(*p, svc)))
                    .map(|(ip, _)| *ip)
            });
            let candidates: Vec<&(usize, &ParsedBlock)> =
                ranges.iter().filter(|(p, _)| !spec(*p).disabled && selects(*p, svc)).collect();
            let fresh = || {
                candidates.iter().flat_map(|(_, b)| b.usable.first..=b.usable.last).find(|ip| !held.contains_key(ip))
            };
            match shared.or_else(fresh) {
                Some(ip) => {
                    held.entry(ip).or_default().push(s);
                    mine[s].push(ip);
                }
                None if candidates.is_empty() => {
                    verdict = Verdict::no(
                        "no_pool",
                        "There are no enabled CiliumLoadBalancerIPPools that match this service".into(),
                    )
                }
                None => {
                    verdict = Verdict::no(
                        "out_of_ips",
                        "All enabled CiliumLoadBalancerIPPools that match this service ran out of allocatable IPs"
                            .into(),
                    )
                }
            }
        }
        verdicts[s] = Some(verdict);
    }

    let dormant = pools.is_empty();
    let services = svcs
        .iter()
        .enumerate()
        .map(|(s, svc)| {
            if !svc.responsible {
                // Once ours, handed back clean: no addresses, no condition.
                return svc.has_condition.then(|| SvcPlan { ingress: vec![], verdict: None });
            }
            // With no pool at all LB IPAM sleeps: Services it never saw stay untouched.
            if dormant && !svc.has_condition && svc.ingress.is_empty() {
                return None;
            }
            Some(SvcPlan {
                ingress: mine[s].iter().map(|ip| Ipv4Addr::from(*ip).to_string()).collect(),
                verdict: verdicts[s].clone(),
            })
        })
        .collect();

    let used: BTreeSet<u32> = held.keys().copied().collect();
    let pools = pools
        .iter()
        .enumerate()
        .map(|(i, p)| match &p.spec {
            Err(e) => PoolPlan::Invalid(e.clone()),
            Ok(spec) => {
                let total: u64 = spec.blocks.iter().map(|b| b.usable.len()).sum();
                let used = if conflict[i].is_some() {
                    0
                } else {
                    used.iter().filter(|ip| spec.blocks.iter().any(|b| b.usable.contains(**ip))).count() as u64
                };
                PoolPlan::Usable { conflict: conflict[i].clone(), total, available: total - used, used }
            }
        })
        .collect();
    Plan { pools, services }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool(name: &str, created: &str, spec: Value) -> Pool {
        Pool::from_object(name, created, &spec, false, true)
    }

    fn svc(name: &str, created: &str) -> Svc {
        let mut labels = BTreeMap::new();
        labels.insert("io.kubernetes.service.namespace".into(), "default".into());
        labels.insert("io.kubernetes.service.name".into(), name.into());
        Svc {
            namespace: "default".into(),
            name: name.into(),
            created: created.into(),
            responsible: true,
            labels,
            ports: vec![(80, "TCP".into())],
            ..Default::default()
        }
    }

    fn ips(p: &Plan, s: usize) -> Vec<String> {
        p.services[s].as_ref().map(|x| x.ingress.clone()).unwrap_or_default()
    }

    fn reason(p: &Plan, s: usize) -> String {
        p.services[s].as_ref().and_then(|x| x.verdict.as_ref()).map(|v| v.reason.clone()).unwrap_or_default()
    }

    /// Feed a plan back as the observed state (what the API holds after the writes).
    fn applied(svcs: &[Svc], p: &Plan) -> Vec<Svc> {
        svcs.iter()
            .zip(&p.services)
            .map(|(s, x)| {
                let mut s = s.clone();
                if let Some(x) = x {
                    s.ingress = x.ingress.clone();
                    s.has_condition = x.verdict.is_some();
                }
                s
            })
            .collect()
    }

    const ARTICLE: &str = "172.18.250.0/24";

    #[test]
    fn first_free_address_oldest_service_first_and_counts() {
        let pools = [pool("default", "t1", json!({ "blocks": [{ "cidr": ARTICLE }] }))];
        let svcs = [svc("b", "t3"), svc("a", "t2")];
        let p = plan(&pools, &svcs);
        assert_eq!(ips(&p, 1), ["172.18.250.1"], "the first address is reserved by default before 1.16");
        assert_eq!(ips(&p, 0), ["172.18.250.2"]);
        assert_eq!(reason(&p, 0), "satisfied");
        assert_eq!(p.pools[0], PoolPlan::Usable { conflict: None, total: 254, available: 252, used: 2 });
        // Stable: the same state plans the same addresses.
        let again = plan(&pools, &applied(&svcs, &p));
        assert_eq!(again, p);
        // 1.16's default gives the first address too.
        let open = [Pool::from_object("default", "t1", &json!({ "blocks": [{ "cidr": ARTICLE }] }), true, false)];
        assert_eq!(ips(&plan(&open, &svcs), 1), ["172.18.250.0"]);
    }

    #[test]
    fn no_pool_is_dormant_and_a_deleted_pool_takes_addresses_back() {
        let svcs = [svc("a", "t1")];
        let p = plan(&[], &svcs);
        assert_eq!(p.services[0], None, "no pool: LB IPAM has not started");
        let pools = vec![
            pool("one", "t1", json!({ "blocks": [{ "start": "10.9.0.5", "stop": "10.9.0.5" }] })),
            pool("two", "t2", json!({ "blocks": [{ "cidr": "10.10.0.0/30" }] })),
        ];
        let p = plan(&pools, &svcs);
        assert_eq!(ips(&p, 0), ["10.9.0.5"]);
        let svcs = applied(&svcs, &p);
        // Pool one deleted: the address goes, one from pool two comes.
        let p = plan(&pools[1..], &svcs);
        assert_eq!(ips(&p, 0), ["10.10.0.1"]);
        // Every pool deleted: pending, with the reason.
        let p = plan(&[], &applied(&svcs, &p));
        assert_eq!(ips(&p, 0), Vec::<String>::new());
        assert_eq!(reason(&p, 0), "no_pool");
    }

    #[test]
    fn sharing_keys_share_while_ports_differ() {
        let pools = [pool("p", "t1", json!({ "blocks": [{ "start": "10.0.0.10", "stop": "10.0.0.20" }] }))];
        let mut a = svc("a", "t1");
        let mut b = svc("b", "t2");
        let mut c = svc("c", "t3");
        for s in [&mut a, &mut b, &mut c] {
            s.sharing_key = Some("k".into());
        }
        b.ports = vec![(443, "TCP".into())];
        let p = plan(&pools, &[a.clone(), b.clone(), c.clone()]);
        assert_eq!(ips(&p, 0), ["10.0.0.10"]);
        assert_eq!(ips(&p, 1), ["10.0.0.10"], "other port: shared");
        assert_eq!(ips(&p, 2), ["10.0.0.11"], "same port as a: an address of its own");
        assert_eq!(p.pools[0], PoolPlan::Usable { conflict: None, total: 11, available: 9, used: 2 });
        // A requested address held by an incompatible Service.
        let mut d = svc("d", "t4");
        d.requested = vec![u32::from(Ipv4Addr::new(10, 0, 0, 10))];
        let p = plan(&pools, &[a.clone(), d.clone()]);
        assert_eq!(reason(&p, 1), "already_allocated");
        d.sharing_key = Some("other".into());
        let p = plan(&pools, &[a, d]);
        assert_eq!(reason(&p, 1), "already_allocated_incompatible_service");
        assert!(
            p.services[1]
                .as_ref()
                .unwrap()
                .verdict
                .as_ref()
                .unwrap()
                .message
                .ends_with("Reason: different sharing key")
        );
    }

    #[test]
    fn requested_addresses_and_selectors() {
        let pools = [
            pool(
                "blue",
                "t1",
                json!({ "blocks": [{ "cidr": "20.0.10.0/24" }], "serviceSelector": { "matchLabels": { "color": "blue" } } }),
            ),
            pool("any", "t2", json!({ "blocks": [{ "cidr": "30.0.0.0/29" }] })),
        ];
        let mut s = svc("s", "t1");
        s.requested = vec![u32::from(Ipv4Addr::new(20, 0, 10, 100))];
        let p = plan(&pools, std::slice::from_ref(&s));
        assert_eq!(reason(&p, 0), "pool_selector_mismatch");
        assert!(ips(&p, 0).is_empty());
        s.labels.insert("color".into(), "blue".into());
        let p = plan(&pools, std::slice::from_ref(&s));
        assert_eq!(ips(&p, 0), ["20.0.10.100"]);
        s.requested = vec![u32::from(Ipv4Addr::new(40, 0, 0, 1))];
        assert_eq!(reason(&plan(&pools, &[s]), 0), "no_pool");
        // The namespace is a label selectors can use.
        let ns = [pool(
            "tenant",
            "t1",
            json!({ "blocks": [{ "cidr": "50.0.0.0/30" }], "serviceSelector": { "matchExpressions": [{ "key": "io.kubernetes.service.namespace", "operator": "In", "values": ["default"] }] } }),
        )];
        assert_eq!(ips(&plan(&ns, &[svc("x", "t1")]), 0), ["50.0.0.1"]);
    }

    #[test]
    fn disabled_conflicting_and_invalid_pools() {
        let blue = pool("blue", "t1", json!({ "blocks": [{ "cidr": "20.0.10.0/24" }] }));
        let red = pool("red", "t2", json!({ "blocks": [{ "cidr": "20.0.10.0/24" }] }));
        let p = plan(&[red.clone(), blue.clone()], &[svc("a", "t1")]);
        let PoolPlan::Usable { conflict: Some(why), total, .. } = &p.pools[0] else { panic!("{:?}", p.pools) };
        assert_eq!(why, "Pool conflicts since range '20.0.10.0/24' overlaps range '20.0.10.0/24' from IP Pool 'blue'");
        assert_eq!(*total, 254);
        assert!(matches!(p.pools[1], PoolPlan::Usable { conflict: None, .. }), "the older pool is not conflicting");
        // Disabled: nothing new, but what it gave stays.
        let mut off = blue.clone();
        off.spec.as_mut().unwrap().disabled = true;
        let svcs = [svc("a", "t1")];
        let p = plan(&[blue], &svcs);
        let held = applied(&svcs, &p);
        let p = plan(std::slice::from_ref(&off), &held);
        assert_eq!(ips(&p, 0), ["20.0.10.1"], "kept from the disabled pool");
        let p = plan(&[off], &[svc("b", "t2")]);
        assert_eq!(reason(&p, 0), "no_pool");
        // A pool that does not read gets a condition naming the problem; nothing crashes.
        let bad = pool("bad", "t1", json!({ "blocks": [{ "start": "10.0.0.300" }] }));
        let p = plan(&[bad], &[svc("a", "t1")]);
        assert_eq!(p.pools[0], PoolPlan::Invalid("spec.blocks[0]: bad IPv4 address \"10.0.0.300\"".into()));
        assert_eq!(reason(&p, 0), "no_pool");
        let bad = pool(
            "bad",
            "t1",
            json!({ "blocks": [{ "cidr": "10.0.0.0/24" }], "serviceSelector": { "matchExpressions": [{ "key": "a", "operator": "Is" }] } }),
        );
        let PoolPlan::Invalid(why) = &plan(&[bad], &[]).pools[0] else { panic!() };
        assert!(why.contains("operator \"Is\""), "{why}");
    }

    #[test]
    fn services_that_are_not_lb_ipams() {
        let pools = [pool("p", "t1", json!({ "blocks": [{ "cidr": "10.0.0.0/30" }] }))];
        let mut s = svc("a", "t1");
        s.responsible = false;
        assert_eq!(plan(&pools, std::slice::from_ref(&s)).services[0], None);
        s.has_condition = true;
        s.ingress = vec!["10.0.0.1".into()];
        assert_eq!(plan(&pools, &[s]).services[0], Some(SvcPlan { ingress: vec![], verdict: None }));
        // An address from outside every pool is dropped for one from a pool.
        let mut s = svc("b", "t1");
        s.ingress = vec!["1.2.3.4".into()];
        assert_eq!(ips(&plan(&pools, &[s]), 0), ["10.0.0.1"]);
    }
}
