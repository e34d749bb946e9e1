//! A pod's status as the kubelet reports it, computed from what the agent observed of the
//! pod's sandbox and container processes. Pure: the rules (phase, conditions, container
//! states) are tested without a cluster.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP,
    Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::{DateTime, Utc};

/// One observed state of a container.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting { reason: String, message: Option<String> },
    Running { started: DateTime<Utc> },
    Terminated { exit_code: i32, signal: Option<i32>, reason: String, started: DateTime<Utc>, finished: DateTime<Utc> },
}

/// What the agent knows of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub name: String,
    /// The image as the spec names it, and the reference it resolved to.
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: State,
    /// The previous run's end (`lastState.terminated`).
    pub last: Option<State>,
    pub restarts: i32,
    /// Readiness (probe result, or running without a probe).
    pub ready: bool,
}

impl Record {
    pub fn waiting(name: &str, image: &str, reason: &str) -> Record {
        Record {
            name: name.into(),
            image: image.into(),
            image_id: String::new(),
            container_id: None,
            state: State::Waiting { reason: reason.into(), message: None },
            last: None,
            restarts: 0,
            ready: false,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }
}

/// The sandbox's part of the status.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    pub ready: bool,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Option<Ipv4Addr>,
    pub start_time: Option<DateTime<Utc>>,
}

fn k8s_state(s: &State) -> ContainerState {
    match s {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
            ..Default::default()
        },
        State::Running { started } => ContainerState {
            running: Some(ContainerStateRunning { started_at: Some(Time(*started)) }),
            ..Default::default()
        },
        State::Terminated { exit_code, signal, reason, started, finished } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                signal: *signal,
                reason: Some(reason.clone()),
                started_at: Some(Time(*started)),
                finished_at: Some(Time(*finished)),
                container_id: None,
                message: None,
            }),
            ..Default::default()
        },
    }
}

/// The container status the API shows for `r`.
pub fn container_status(r: &Record) -> ContainerStatus {
    let mut last = r.last.as_ref().map(k8s_state).unwrap_or_default();
    if let Some(t) = last.terminated.as_mut() {
        t.container_id = r.container_id.clone();
    }
    let mut state = k8s_state(&r.state);
    if let Some(t) = state.terminated.as_mut() {
        t.container_id = r.container_id.clone();
    }
    ContainerStatus {
        name: r.name.clone(),
        image: r.image.clone(),
        image_id: r.image_id.clone(),
        container_id: r.container_id.clone(),
        ready: r.ready,
        restart_count: r.restarts,
        started: Some(r.is_running()),
        state: Some(state),
        last_state: Some(last),
        ..Default::default()
    }
}

/// The pod phase from its containers, by the kubelet's rules.
pub fn phase(restart_policy: &str, records: &[Record]) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for r in records {
        match &r.state {
            State::Running { .. } => running += 1,
            State::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            // A container waiting to be restarted has run: it counts as stopped.
            State::Waiting { .. } if r.last.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if records.is_empty() || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    match restart_policy {
        "Always" => "Running",
        "OnFailure" if stopped == succeeded => "Succeeded",
        "OnFailure" => "Running",
        _ if stopped == succeeded => "Succeeded",
        _ => "Failed",
    }
}

/// An init container that ran to a successful end.
fn init_done(r: &Record) -> bool {
    matches!(r.state, State::Terminated { exit_code: 0, .. })
}

/// The phase while init containers are not all done: Pending, or Failed when one failed and
/// the pod never restarts. `None` once they are done (the containers decide).
fn init_phase(restart_policy: &str, inits: &[Record]) -> Option<&'static str> {
    if inits.iter().all(init_done) {
        return None;
    }
    let failed = inits.iter().any(|r| matches!(r.state, State::Terminated { exit_code, .. } if exit_code != 0));
    Some(if failed && restart_policy == "Never" { "Failed" } else { "Pending" })
}

fn condition(
    old: &[PodCondition],
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: DateTime<Utc>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    // The transition time moves only when the status changes.
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: Some(since),
        reason: if ok { None } else { reason.map(str::to_string) },
        message: if ok { None } else { message },
        ..Default::default()
    }
}

/// The whole status the agent reports for `pod`.
pub fn pod_status(pod: &Pod, sandbox: &Sandbox, inits: &[Record], records: &[Record], now: DateTime<Utc>) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let old_conditions = old.conditions.clone().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let incomplete: Vec<&str> = inits.iter().filter(|r| !init_done(r)).map(|r| r.name.as_str()).collect();
    let pod_phase = init_phase(policy, inits).unwrap_or_else(|| phase(policy, records));
    let terminal = matches!(pod_phase, "Succeeded" | "Failed");
    let unready: Vec<&str> = records.iter().filter(|r| !r.ready).map(|r| r.name.as_str()).collect();
    let all_ready = unready.is_empty() && !records.is_empty();
    let unready_msg = Some(format!("containers with unready status: [{}]", unready.join(" ")));
    let ready_reason = if terminal { "PodCompleted" } else { "ContainersNotReady" };
    let mut conditions = vec![
        condition(&old_conditions, "PodReadyToStartContainers", sandbox.ready && !terminal, None, None, now),
        condition(
            &old_conditions,
            "Initialized",
            incomplete.is_empty(),
            Some("ContainersNotInitialized"),
            Some(format!("containers with incomplete status: [{}]", incomplete.join(" "))),
            now,
        ),
        condition(&old_conditions, "Ready", all_ready, Some(ready_reason), unready_msg.clone(), now),
        condition(&old_conditions, "ContainersReady", all_ready, Some(ready_reason), unready_msg, now),
    ];
    // The scheduler's condition stays as it wrote it.
    conditions.extend(old_conditions.iter().filter(|c| c.type_ == "PodScheduled").cloned());
    let pod_ip = sandbox.pod_ip.map(|ip| ip.to_string());
    let host_ip = sandbox.host_ip.map(|ip| ip.to_string());
    PodStatus {
        phase: Some(pod_phase.into()),
        conditions: Some(conditions),
        host_ip: host_ip.clone(),
        host_ips: host_ip.map(|ip| vec![HostIP { ip }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: sandbox.start_time.map(Time),
        container_statuses: Some(records.iter().map(container_status).collect()),
        init_container_statuses: (!inits.is_empty()).then(|| inits.iter().map(container_status).collect()),
        qos_class: old.qos_class,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn running(name: &str) -> Record {
        Record { state: State::Running { started: t(0) }, ready: true, ..Record::waiting(name, "nginx", "") }
    }

    fn exited(name: &str, code: i32) -> Record {
        Record {
            state: State::Terminated {
                exit_code: code,
                signal: None,
                reason: "Completed".into(),
                started: t(0),
                finished: t(1),
            },
            ..Record::waiting(name, "busybox", "")
        }
    }

    #[test]
    fn phases() {
        assert_eq!(phase("Always", &[]), "Pending");
        assert_eq!(phase("Always", &[Record::waiting("a", "x", "ContainerCreating")]), "Pending");
        assert_eq!(phase("Always", &[running("a"), Record::waiting("b", "x", "ErrImagePull")]), "Pending");
        assert_eq!(phase("Always", &[running("a"), exited("b", 1)]), "Running");
        assert_eq!(phase("Never", &[exited("a", 0), exited("b", 0)]), "Succeeded");
        assert_eq!(phase("Never", &[exited("a", 0), exited("b", 2)]), "Failed");
        assert_eq!(phase("OnFailure", &[exited("a", 0)]), "Succeeded");
        assert_eq!(phase("OnFailure", &[exited("a", 3)]), "Running");
        assert_eq!(phase("Always", &[exited("a", 0)]), "Running");
        // Waiting to be restarted after a crash: stopped, not pending.
        let mut crash = Record::waiting("a", "x", "CrashLoopBackOff");
        crash.last = Some(exited("a", 1).state);
        assert_eq!(phase("Always", &[crash]), "Running");
    }

    #[test]
    fn conditions_and_ips() {
        let pod: Pod = serde_yaml::from_str(
            "metadata: {name: p}\nspec: {containers: []}\nstatus:\n  qosClass: BestEffort\n  conditions:\n  - {type: PodScheduled, status: \"True\"}\n  - {type: Ready, status: \"False\", lastTransitionTime: \"2023-11-14T22:13:20Z\"}\n",
        )
        .unwrap();
        let sb = Sandbox {
            ready: true,
            pod_ip: Some(Ipv4Addr::new(10, 244, 1, 2)),
            host_ip: Some(Ipv4Addr::new(172, 18, 0, 3)),
            start_time: Some(t(0)),
        };
        let st = pod_status(&pod, &sb, &[], &[running("a"), Record::waiting("b", "x", "ContainerCreating")], t(50));
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        assert_eq!(st.pod_ip.as_deref(), Some("10.244.1.2"));
        assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));
        let c = st.conditions.unwrap();
        let ready = c.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.message.as_deref(), Some("containers with unready status: [b]"));
        // Unchanged status keeps its transition time.
        assert_eq!(ready.last_transition_time, Some(Time(t(0))));
        assert!(c.iter().any(|c| c.type_ == "PodScheduled" && c.status == "True"));
        let st = pod_status(&pod, &sb, &[], &[running("a")], t(60));
        let ready = st.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.last_transition_time), ("True", Some(Time(t(60)))));
    }

    #[test]
    fn init_containers_hold_the_pod_back() {
        let pod: Pod = serde_yaml::from_str("metadata: {name: p}\nspec: {containers: []}\n").unwrap();
        let sb = Sandbox { ready: true, ..Default::default() };
        let waiting = [Record::waiting("app", "x", "PodInitializing")];
        let st = pod_status(&pod, &sb, &[exited("a", 0), running("b")], &waiting, t(1));
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        let init = st.conditions.unwrap().into_iter().find(|c| c.type_ == "Initialized").unwrap();
        assert_eq!(init.status, "False");
        assert_eq!(init.message.as_deref(), Some("containers with incomplete status: [b]"));
        assert_eq!(st.init_container_statuses.unwrap().len(), 2);
        let never: Pod =
            serde_yaml::from_str("metadata: {name: p}\nspec: {restartPolicy: Never, containers: []}\n").unwrap();
        let st = pod_status(&never, &sb, &[exited("a", 1)], &waiting, t(1));
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        let st = pod_status(&pod, &sb, &[exited("a", 1)], &waiting, t(1));
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        let st = pod_status(&pod, &sb, &[exited("a", 0)], &[running("app")], t(1));
        assert_eq!(st.phase.as_deref(), Some("Running"));
        let init = st.conditions.unwrap().into_iter().find(|c| c.type_ == "Initialized").unwrap();
        assert_eq!(init.status, "True");
    }

    #[test]
    fn container_status_shape() {
        let mut r = running("web");
        r.restarts = 2;
        r.container_id = Some("tutor://abc".into());
        r.last = Some(exited("web", 137).state);
        let s = container_status(&r);
        assert_eq!(s.restart_count, 2);
        assert!(s.state.unwrap().running.is_some());
        let last = s.last_state.unwrap().terminated.unwrap();
        assert_eq!((last.exit_code, last.container_id.as_deref()), (137, Some("tutor://abc")));
    }
}
