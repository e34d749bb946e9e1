//! Leader election over a `coordination.k8s.io` Lease, with Cilium's lease name
//! (`cilium-operator-resource-lock` in the operator's namespace) and client-go's timings (15 s
//! lease, renewed every 2 s). Every replica runs; only the holder writes LB IPAM's decisions. A
//! write is a replace carrying the resourceVersion read, so two replicas racing for an expired
//! lease cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::chrono::{DateTime, Utc};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

pub const LEASE_NAME: &str = "cilium-operator-resource-lock";
const LEASE_SECONDS: i32 = 15;
const RETRY: Duration = Duration::from_secs(2);

/// What to do with the lease as read at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it: create it.
    Create,
    /// Ours, or expired: write ourselves in (a takeover counts a transition).
    Take { transition: bool },
    /// Someone else's, still valid.
    Wait,
}

pub fn decide(lease: Option<&Lease>, me: &str, now: DateTime<Utc>) -> Decision {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return if lease.is_some() { Decision::Take { transition: true } } else { Decision::Create };
    };
    if spec.holder_identity.as_deref() == Some(me) {
        return Decision::Take { transition: false };
    }
    let seconds = spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS) as i64;
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
    let expired = spec.holder_identity.as_deref().is_none_or(str::is_empty)
        || renewed.is_none_or(|r| r + chrono_seconds(seconds) < now);
    if expired { Decision::Take { transition: true } } else { Decision::Wait }
}

fn chrono_seconds(s: i64) -> k8s_openapi::chrono::TimeDelta {
    k8s_openapi::chrono::TimeDelta::seconds(s)
}

/// One round of an election: take or renew the lease `name` when it is free, expired or
/// ours (`seconds` long); whether `me` holds it after. Losing a race (409) is not holding it.
pub async fn hold(api: &Api<Lease>, name: &str, me: &str, seconds: i32) -> Result<bool, kube::Error> {
    let now = Utc::now();
    let current = api.get_opt(name).await?;
    let written = match decide(current.as_ref(), me, now) {
        Decision::Wait => return Ok(false),
        Decision::Create => {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.into()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await.map(drop)
        }
        Decision::Take { transition } => {
            let mut lease = current.expect("a lease to take exists");
            let spec = lease.spec.get_or_insert_with(Default::default);
            if transition {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                spec.acquire_time = Some(MicroTime(now));
                spec.holder_identity = Some(me.into());
            }
            spec.lease_duration_seconds = Some(seconds);
            spec.renew_time = Some(MicroTime(now));
            api.replace(name, &PostParams::default(), &lease).await.map(drop)
        }
    };
    match written {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Hold or wait for the lease forever; `leader` says whether this replica holds it.
pub async fn run(client: Client, namespace: String, me: String, leader: watch::Sender<bool>) {
    let api = Api::<Lease>::namespaced(client, &namespace);
    loop {
        // Another replica wrote first (409), or the API did not answer: not ours this round.
        let held = hold(&api, LEASE_NAME, &me, LEASE_SECONDS).await.unwrap_or_else(|e| {
            eprintln!("leader election: {e}");
            false
        });
        if held != *leader.borrow() {
            eprintln!("leader election: {me} {}", if held { "is the leader" } else { "is not the leader" });
        }
        leader.send_replace(held);
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: DateTime<Utc>) -> Lease {
        Lease {
            metadata: Default::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(renewed)),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn only_an_expired_or_own_lease_is_taken() {
        let now = Utc::now();
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(decide(Some(&lease("a", now)), "a", now), Decision::Take { transition: false });
        assert_eq!(decide(Some(&lease("b", now - chrono_seconds(5))), "a", now), Decision::Wait);
        assert_eq!(decide(Some(&lease("b", now - chrono_seconds(16))), "a", now), Decision::Take { transition: true });
        assert_eq!(decide(Some(&lease("", now)), "a", now), Decision::Take { transition: true });
    }
}
