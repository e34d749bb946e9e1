//! `cilium status`: what the cilium CLI collects from the cluster and how it prints it. The
//! collection is the real CLI's (cilium-cli's `status/k8s.go`): the DaemonSets `cilium` and
//! `cilium-envoy`, the Deployments `cilium-operator`, `hubble-relay`, `hubble-ui` and
//! `clustermesh-apiserver` (desired, ready, available, unavailable from their `.status`), their
//! pods by label (phase and image counts), the cluster's pods against its CiliumEndpoints, the
//! `cilium-config` ConfigMap's `config.cilium.io` annotations, the Helm release's chart version,
//! and in every running agent pod `cilium-dbg status -o json` and `cilium-dbg endpoint list -o
//! json`. The judgement (errors, warnings, ready) and the layout are pure functions of that.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Pod;

use crate::backend::lab::cilium::tabwriter;

pub const RED: &str = "\u{1b}[31m";
pub const YELLOW: &str = "\u{1b}[33m";
pub const BLUE: &str = "\u{1b}[34m";
pub const GREEN: &str = "\u{1b}[32m";
pub const MAGENTA: &str = "\u{1b}[35m";
pub const CYAN: &str = "\u{1b}[36m";
pub const RESET: &str = "\u{1b}[0m";

pub const AGENT: &str = "cilium";
pub const AGENT_SELECTOR: &str = "k8s-app=cilium";
pub const AGENT_CONTAINER: &str = "cilium-agent";
pub const ENVOY: &str = "cilium-envoy";
pub const ENVOY_SELECTOR: &str = "name=cilium-envoy";
pub const OPERATOR: &str = "cilium-operator";
pub const OPERATOR_SELECTOR: &str = "io.cilium/app=operator";
pub const RELAY: &str = "hubble-relay";
pub const RELAY_SELECTOR: &str = "app.kubernetes.io/name=hubble-relay";
pub const HUBBLE_UI: &str = "hubble-ui";
pub const HUBBLE_UI_SELECTOR: &str = "k8s-app=hubble-ui";
pub const CLUSTERMESH: &str = "clustermesh-apiserver";
pub const CLUSTERMESH_SELECTOR: &str = "k8s-app=clustermesh-apiserver";
/// Annotations of `cilium-config` that carry configuration errors.
pub const CONFIG_PREFIX: &str = "config.cilium.io";
/// How long `--wait` waits unless `--wait-duration` says otherwise, and how often it looks.
pub const WAIT_DURATION: Duration = Duration::from_secs(300);
pub const RETRY: Duration = Duration::from_secs(2);

/// Desired, ready, available and unavailable pods of a DaemonSet or a Deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodStateCount {
    pub kind: &'static str,
    pub desired: i32,
    pub ready: i32,
    pub available: i32,
    pub unavailable: i32,
}

#[derive(Debug, Default, Clone)]
pub struct ErrorCount {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub disabled: bool,
}

/// Everything `cilium status` prints, and what decides whether it waits on.
#[derive(Debug, Default)]
pub struct Status {
    pub pod_state: BTreeMap<String, PodStateCount>,
    /// Component → pod phase → pods.
    pub phase_count: BTreeMap<String, BTreeMap<String, usize>>,
    /// Component → image → containers.
    pub image_count: BTreeMap<String, BTreeMap<String, usize>>,
    /// Pods not on the host network, Running or Pending; and the CiliumEndpoints.
    pub pods_all: usize,
    pub pods_by_cilium: usize,
    /// Component → pod (or the component itself) → errors and warnings.
    pub errors: BTreeMap<String, BTreeMap<String, ErrorCount>>,
    pub collection_errors: Vec<String>,
    pub helm_chart_version: String,
    pub config_errors: Vec<String>,
    /// An agent container is crash-looping: waiting longer cannot help.
    pub agent_crashed: bool,
}

impl Status {
    fn entry(&mut self, component: &str, pod: &str) -> &mut ErrorCount {
        self.errors.entry(component.to_string()).or_default().entry(pod.to_string()).or_default()
    }

    pub fn error(&mut self, component: &str, pod: &str, e: impl Into<String>) {
        self.entry(component, pod).errors.push(e.into());
    }

    pub fn warning(&mut self, component: &str, pod: &str, w: impl Into<String>) {
        self.entry(component, pod).warnings.push(w.into());
    }

    pub fn set_disabled(&mut self, component: &str) {
        self.entry(component, component).disabled = true;
    }

    fn total(&self, f: impl Fn(&ErrorCount) -> usize) -> usize {
        self.errors.values().flat_map(BTreeMap::values).map(f).sum()
    }

    /// No errors and (unless they are ignored) no warnings: what `--wait` waits for.
    pub fn ready(&self, ignore_warnings: bool) -> bool {
        self.total(|c| c.errors.len()) == 0 && (ignore_warnings || self.total(|c| c.warnings.len()) == 0)
    }

    /// A DaemonSet's counts and what they say (`None`: there is none).
    pub fn daemonset(&mut self, name: &str, ds: &DaemonSet) {
        let st = ds.status.clone().unwrap_or_default();
        let count = PodStateCount {
            kind: "DaemonSet",
            desired: st.desired_number_scheduled,
            ready: st.number_ready,
            available: st.number_available.unwrap_or(0),
            unavailable: st.number_unavailable.unwrap_or(0),
        };
        let not_ready = count.desired - count.ready;
        if not_ready > 0 {
            self.error(name, name, format!("{not_ready} pods of DaemonSet {name} are not ready"));
        }
        if count.unavailable - not_ready > 0 {
            let n = count.unavailable - not_ready;
            self.warning(name, name, format!("{n} pods of DaemonSet {name} are not available"));
        }
        if ds.metadata.generation != st.observed_generation {
            self.error(name, name, format!("daemonset {name} is updated but rollout has not started"));
        }
        let updated = st.updated_number_scheduled.unwrap_or(0);
        if updated < count.desired {
            self.error(
                name,
                name,
                format!("daemonset {name} is rolling out - {updated} out of {} pods updated", count.desired),
            );
        }
        self.pod_state.insert(name.to_string(), count);
    }

    pub fn deployment(&mut self, name: &str, d: &Deployment) {
        let st = d.status.clone().unwrap_or_default();
        let count = PodStateCount {
            kind: "Deployment",
            desired: st.replicas.unwrap_or(0),
            ready: st.ready_replicas.unwrap_or(0),
            available: st.available_replicas.unwrap_or(0),
            unavailable: st.unavailable_replicas.unwrap_or(0),
        };
        let not_ready = count.desired - count.ready;
        if not_ready > 0 {
            self.error(name, name, format!("{not_ready} pods of Deployment {name} are not ready"));
        }
        if count.unavailable - not_ready > 0 {
            let n = count.unavailable - not_ready;
            self.warning(name, name, format!("{n} pods of Deployment {name} are not available"));
        }
        if d.metadata.generation != st.observed_generation {
            self.error(name, name, format!("deployment {name} is updated but rollout has not started"));
        }
        let updated = st.updated_replicas.unwrap_or(0);
        if updated < count.desired {
            self.error(
                name,
                name,
                format!("deployment {name} is rolling out - {updated} out of {} pods updated", count.desired),
            );
        }
        self.pod_state.insert(name.to_string(), count);
    }

    /// A component's pods: phases, images, and what a pending or failed pod says.
    pub fn pods(&mut self, name: &str, pods: &[Pod]) {
        let mut phases: BTreeMap<String, usize> = BTreeMap::new();
        let mut images: BTreeMap<String, usize> = BTreeMap::new();
        for p in pods {
            let pod = p.metadata.name.clone().unwrap_or_default();
            let st = p.status.clone().unwrap_or_default();
            let phase = st.phase.clone().unwrap_or_default();
            *phases.entry(phase.clone()).or_default() += 1;
            match phase.as_str() {
                "Pending" => self.warning(name, &pod, "pod is pending"),
                "Failed" if !superseded(st.reason.as_deref().unwrap_or("")) => self.error(
                    name,
                    &pod,
                    format!(
                        "pod has failed: {} - {}",
                        st.reason.as_deref().unwrap_or(""),
                        st.message.as_deref().unwrap_or("")
                    ),
                ),
                _ => {}
            }
            for c in p.spec.iter().flat_map(|s| &s.containers) {
                *images.entry(c.image.clone().unwrap_or_default()).or_default() += 1;
            }
        }
        self.phase_count.insert(name.to_string(), phases);
        self.image_count.insert(name.to_string(), images);
    }

    /// An agent pod whose container is not running: why, as the CLI says it.
    pub fn agent_not_running(&mut self, pod: &Pod) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let cs = agent_container(pod);
        let mut desc = "is not running".to_string();
        let mut last = format!("try 'kubectl -n {ns} logs -c {AGENT_CONTAINER} {name}'");
        if let Some(cs) = cs {
            if cs.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref())
                == Some("CrashLoopBackOff")
            {
                desc = "is in CrashLoopBackOff".into();
                self.agent_crashed = true;
            }
            if let Some(t) = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
                desc = format!("{desc}, exited with code {}", t.exit_code);
                if let Some(m) = t.message.as_deref().filter(|m| !m.trim().is_empty()) {
                    last = m.trim().to_string();
                }
            }
        }
        self.error(AGENT, &name, format!("container {AGENT_CONTAINER} {desc}: {last}"));
    }

    /// What a running agent answered to `cilium-dbg status -o json` and `endpoint list -o json`.
    pub fn agent_answers(
        &mut self,
        pod: &str,
        status: Result<serde_json::Value, String>,
        endpoints: Result<serde_json::Value, String>,
    ) {
        match status {
            Err(e) => self.error(AGENT, pod, format!("unable to retrieve cilium status: {e}")),
            Ok(r) => {
                for (key, subsystem) in [("cilium", "Cilium"), ("kubernetes", "Kubernetes"), ("kvstore", "Kvstore")] {
                    let Some(s) = r.get(key) else { continue };
                    let state = s.get("state").and_then(|v| v.as_str()).unwrap_or("").to_lowercase();
                    let msg = s.get("msg").and_then(|v| v.as_str()).unwrap_or("");
                    match state.as_str() {
                        "warning" => self.warning(AGENT, pod, format!("{subsystem}: {msg}")),
                        "failure" => self.error(AGENT, pod, format!("{subsystem}: {msg}")),
                        _ => {}
                    }
                }
            }
        }
        match endpoints {
            Err(e) => self.error(AGENT, pod, format!("unable to retrieve cilium endpoint information: {e}")),
            Ok(eps) => {
                let not_ready = eps
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| e.pointer("/status/state").and_then(|s| s.as_str()).is_some_and(|s| s != "ready"))
                    .count();
                if not_ready > 0 {
                    self.warning(AGENT, pod, format!("{not_ready} endpoints are not ready"));
                }
            }
        }
    }

    /// The pods the cluster runs outside the host network, and how many Cilium manages.
    pub fn pod_count(&mut self, all: &[Pod], endpoints: usize) {
        self.pods_all = all
            .iter()
            .filter(|p| !p.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false))
            .filter(|p| matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Running") | Some("Pending")))
            .count();
        self.pods_by_cilium = endpoints;
    }

    /// `cilium status`'s summary: the logo with each component's state, then the counts.
    pub fn format(&self) -> String {
        let mut t = String::new();
        t += &format!("{YELLOW}    /¯¯\\\n");
        t += &format!("{CYAN} /¯¯{YELLOW}\\__/{GREEN}¯¯\\{RESET}\tCilium:\t{}\n", self.summary(AGENT));
        t += &format!("{CYAN} \\__{RED}/¯¯\\{GREEN}__/{RESET}\tOperator:\t{}\n", self.summary(OPERATOR));
        let envoy = self.summary(ENVOY).replacen("disabled", "disabled (using embedded mode)", 1);
        t += &format!("{GREEN} /¯¯{RED}\\__/{MAGENTA}¯¯\\{RESET}\tEnvoy DaemonSet:\t{envoy}\n");
        t += &format!("{GREEN} \\__{BLUE}/¯¯\\{MAGENTA}__/{RESET}\tHubble Relay:\t{}\n", self.summary(RELAY));
        // Three blues: the cell then counts as many characters as the lines above.
        t += &format!("{BLUE}{BLUE}{BLUE}    \\__/{RESET}\tClusterMesh:\t{}\n", self.summary(CLUSTERMESH));
        t += "\n";
        for (name, c) in &self.pod_state {
            t += &format!("{}\t{name}\t{}\n", c.kind, c.format());
        }
        let mut header = "Containers:";
        for (name, phases) in &self.phase_count {
            t += &format!("{header}\t{name}\t{}\n", format_phases(phases));
            header = "";
        }
        t += &format!("Cluster Pods:\t{}/{} managed by Cilium\n", self.pods_by_cilium, self.pods_all);
        t += &format!("Helm chart version:\t{}\n", self.helm_chart_version);
        let mut header = "Image versions";
        for (name, images) in &self.image_count {
            for (image, n) in images {
                t += &format!("{header}\t{name}\t{image}: {n}\n");
                header = "";
            }
        }
        for (header, pick) in [("Errors:", true), ("Warnings:", false)] {
            let mut header = header;
            for (component, pods) in &self.errors {
                for (pod, c) in pods {
                    for e in if pick { &c.errors } else { &c.warnings } {
                        t += &format!("{header}\t{component}\t{pod}\t{e}\n");
                        header = "";
                    }
                }
            }
        }
        let mut header = "Configuration:";
        for msg in &self.config_errors {
            for line in msg.split('\n') {
                t += &format!("{header}\t \t{line}\n");
                header = "";
            }
        }
        tabwriter::render(&t)
    }

    fn summary(&self, name: &str) -> String {
        let mut parts = Vec::new();
        if let Some(pods) = self.errors.get(name) {
            let errors: usize = pods.values().map(|c| c.errors.len()).sum();
            let warnings: usize = pods.values().map(|c| c.warnings.len()).sum();
            if errors > 0 {
                parts.push(format!("{RED}{errors} errors{RESET}"));
            }
            if warnings > 0 {
                parts.push(format!("{YELLOW}{warnings} warnings{RESET}"));
            }
            if pods.values().any(|c| c.disabled) {
                parts.push(format!("{CYAN}disabled{RESET}"));
            }
        }
        if parts.is_empty() { format!("{GREEN}OK{RESET}") } else { parts.join(", ") }
    }
}

impl PodStateCount {
    fn format(&self) -> String {
        let mut items = Vec::new();
        let colour = if self.ready < self.desired { YELLOW } else { GREEN };
        if self.desired > 0 {
            items.push(format!("Desired: {}", self.desired));
        }
        if self.ready > 0 {
            items.push(format!("Ready: {colour}{}/{}{RESET}", self.ready, self.desired));
        }
        if self.available > 0 {
            items.push(format!("Available: {colour}{}/{}{RESET}", self.available, self.desired));
        }
        if self.unavailable > 0 {
            items.push(format!("Unavailable: {RED}{}/{}{RESET}", self.unavailable, self.desired));
        }
        items.join(", ")
    }
}

fn format_phases(phases: &BTreeMap<String, usize>) -> String {
    phases
        .iter()
        .map(|(phase, n)| {
            let colour = match phase.as_str() {
                "Failed" | "Unknown" => RED,
                "Running" | "Pending" | "Succeeded" => GREEN,
                _ => "",
            };
            format!("{phase}: {colour}{n}{RESET}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A failed pod rejected or evicted before it ran: its controller replaced it already.
fn superseded(reason: &str) -> bool {
    matches!(
        reason,
        "TaintToleration"
            | "NodeAffinity"
            | "NodeLost"
            | "Evicted"
            | "Shutdown"
            | "Preempting"
            | "UnexpectedAdmissionError"
    )
}

pub fn agent_container(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.iter().find(|c| c.name == AGENT_CONTAINER)
}

/// The agent container of a Running pod is running: `cilium-dbg` can be asked.
pub fn agent_running(pod: &Pod) -> bool {
    agent_container(pod).and_then(|c| c.state.as_ref()).is_some_and(|s| s.running.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
        serde_yaml::from_str(s).unwrap()
    }

    fn ready_cluster() -> Status {
        let mut s = Status::default();
        s.daemonset(
            AGENT,
            &yaml("metadata: {name: cilium, generation: 1}\nstatus: {desiredNumberScheduled: 3, currentNumberScheduled: 3, numberMisscheduled: 0, numberReady: 3, numberAvailable: 3, updatedNumberScheduled: 3, observedGeneration: 1}\n"),
        );
        s.deployment(
            OPERATOR,
            &yaml("metadata: {name: cilium-operator, generation: 1}\nstatus: {replicas: 2, readyReplicas: 2, availableReplicas: 2, updatedReplicas: 2, observedGeneration: 1}\n"),
        );
        s.set_disabled(ENVOY);
        s.set_disabled(RELAY);
        s.set_disabled(CLUSTERMESH);
        let agent: Pod = yaml(
            "metadata: {name: cilium-abcde}\nspec: {containers: [{name: cilium-agent, image: 'quay.io/cilium/cilium:v1.15.1'}]}\nstatus: {phase: Running}\n",
        );
        s.pods(AGENT, &[agent.clone(), agent.clone(), agent]);
        let op: Pod = yaml(
            "metadata: {name: cilium-operator-x}\nspec: {containers: [{name: cilium-operator, image: 'quay.io/cilium/operator-generic:v1.15.1'}]}\nstatus: {phase: Running}\n",
        );
        s.pods(OPERATOR, &[op.clone(), op]);
        s.pods(RELAY, &[]);
        s.pods(CLUSTERMESH, &[]);
        s.pods_all = 4;
        s.pods_by_cilium = 4;
        s.helm_chart_version = "1.15.1".into();
        s
    }

    #[test]
    fn the_summary_is_laid_out_as_the_cli_does() {
        let s = ready_cluster();
        assert!(s.ready(false));
        let text = tabwriter::strip_colours(&s.format());
        let want = "    /¯¯\\
 /¯¯\\__/¯¯\\    Cilium:             OK
 \\__/¯¯\\__/    Operator:           OK
 /¯¯\\__/¯¯\\    Envoy DaemonSet:    disabled (using embedded mode)
 \\__/¯¯\\__/    Hubble Relay:       disabled
    \\__/       ClusterMesh:        disabled

DaemonSet              cilium                   Desired: 3, Ready: 3/3, Available: 3/3
Deployment             cilium-operator          Desired: 2, Ready: 2/2, Available: 2/2
Containers:            cilium                   Running: 3
                       cilium-operator          Running: 2
                       clustermesh-apiserver    \n                       hubble-relay             \nCluster Pods:          4/4 managed by Cilium
Helm chart version:    1.15.1
Image versions         cilium             quay.io/cilium/cilium:v1.15.1: 3
                       cilium-operator    quay.io/cilium/operator-generic:v1.15.1: 2
";
        assert_eq!(text, want);
    }

    #[test]
    fn a_daemonset_not_ready_is_an_error_and_not_ready() {
        let mut s = ready_cluster();
        s.daemonset(
            AGENT,
            &yaml("metadata: {name: cilium, generation: 2}\nstatus: {desiredNumberScheduled: 3, currentNumberScheduled: 3, numberMisscheduled: 0, numberReady: 2, numberAvailable: 2, numberUnavailable: 1, updatedNumberScheduled: 3, observedGeneration: 2}\n"),
        );
        assert!(!s.ready(true));
        let text = tabwriter::strip_colours(&s.format());
        assert!(text.contains(" /¯¯\\__/¯¯\\    Cilium:             1 errors\n"), "{text}");
        assert!(text.contains("DaemonSet              cilium                   Desired: 3, Ready: 2/3, Available: 2/3, Unavailable: 1/3\n"), "{text}");
        assert!(
            text.contains(
                "Errors:                cilium             cilium    1 pods of DaemonSet cilium are not ready\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn agents_answers_and_pods() {
        let mut s = Status::default();
        s.agent_answers(
            "cilium-x",
            Ok(serde_json::json!({"cilium": {"state": "Failure", "msg": "no route"}, "kubernetes": {"state": "Ok"}})),
            Ok(serde_json::json!([{"status": {"state": "ready"}}, {"status": {"state": "waiting-for-identity"}}])),
        );
        assert_eq!(s.errors[AGENT]["cilium-x"].errors, ["Cilium: no route"]);
        assert_eq!(s.errors[AGENT]["cilium-x"].warnings, ["1 endpoints are not ready"]);
        s.agent_answers("cilium-y", Err("exit 1".into()), Ok(serde_json::json!([])));
        assert_eq!(s.errors[AGENT]["cilium-y"].errors, ["unable to retrieve cilium status: exit 1"]);
        let crashed: Pod = yaml(
            "metadata: {name: cilium-z, namespace: kube-system}\nstatus:\n  phase: Running\n  containerStatuses:\n  - {name: cilium-agent, image: x, imageID: '', ready: false, restartCount: 3, state: {waiting: {reason: CrashLoopBackOff}}, lastState: {terminated: {exitCode: 1, message: 'level=fatal'}}}\n",
        );
        assert!(!agent_running(&crashed));
        s.agent_not_running(&crashed);
        assert!(s.agent_crashed);
        assert_eq!(
            s.errors[AGENT]["cilium-z"].errors,
            ["container cilium-agent is in CrashLoopBackOff, exited with code 1: level=fatal"]
        );
        let pods: Vec<Pod> = vec![
            yaml("metadata: {name: a}\nspec: {containers: []}\nstatus: {phase: Running}\n"),
            yaml("metadata: {name: b}\nspec: {containers: [], hostNetwork: true}\nstatus: {phase: Running}\n"),
            yaml("metadata: {name: c}\nspec: {containers: []}\nstatus: {phase: Succeeded}\n"),
            yaml("metadata: {name: d}\nspec: {containers: []}\nstatus: {phase: Pending}\n"),
        ];
        s.pod_count(&pods, 1);
        assert_eq!((s.pods_by_cilium, s.pods_all), (1, 2));
    }
}
