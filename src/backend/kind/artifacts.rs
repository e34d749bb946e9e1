//! Debugging artifacts saved when a run fails, under `<workdir>/artifacts/`: what a user would
//! otherwise have to gather by hand before the cluster is gone (`kubectl get pods -A -o wide`,
//! `kubectl describe` of every pod that is not ready, events, nodes, and `kind export logs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

/// Each command gets this long; a hung API server must not hold the teardown forever.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// What to collect from, and where to.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    /// `kind` binary and cluster name (kind backend only).
    pub kind: Option<(PathBuf, String)>,
}

/// A pod is ready when its `Ready` condition is true; finished pods (Succeeded) are fine too.
pub fn is_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    if status.and_then(|s| s.phase.as_deref()) == Some("Succeeded") {
        return true;
    }
    status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `(namespace, name)` of every pod that is not ready, in all namespaces.
pub async fn not_ready_pods(client: &kube::Client) -> Result<Vec<(String, String)>, kube::Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    let list = pods.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|p| !is_ready(p))
        .map(|p| (p.metadata.namespace.clone().unwrap_or_default(), p.metadata.name.clone().unwrap_or_default()))
        .collect())
}

/// Run `program args…` with the run's kubeconfig, its output (both streams) into `file`.
async fn run_to_file(program: &Path, args: &[&str], kubeconfig: &Path, file: &Path) -> Result<(), CollectError> {
    let shown = format!("{} {}", program.file_name().unwrap_or_default().to_string_lossy(), args.join(" "));
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).env("KUBECONFIG", kubeconfig).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(source)) => return Err(CollectError::Run { command: shown, source }),
        Err(_) => return Err(CollectError::NoAnswer { command: shown }),
    };
    let mut text = out.stdout;
    text.extend_from_slice(&out.stderr);
    std::fs::write(file, &text).map_err(|source| CollectError::Write { path: file.to_path_buf(), source })?;
    if out.status.success() { Ok(()) } else { Err(CollectError::Exit { command: shown, code: out.status.code() }) }
}

/// Why one artifact could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{command}: {source}")]
    Run { command: String, source: std::io::Error },
    #[error("{command}: no answer within {}s", COMMAND_TIMEOUT.as_secs())]
    NoAnswer { command: String },
    #[error("writing {}: {source}", path.display())]
    Write { path: std::path::PathBuf, source: std::io::Error },
    #[error("{command}: exit {code:?}")]
    Exit { command: String, code: Option<i32> },
}

/// Collect everything that can be collected; returns the problems met (also written to
/// `errors.txt`), so a broken cluster still yields what it can.
pub async fn collect(plan: &Plan, client: Option<&kube::Client>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = std::fs::create_dir_all(plan.dir.join("describe")) {
        return vec![format!("creating {}: {e}", plan.dir.display())];
    }
    let k = |args: &'static [&'static str], file: &'static str| (args, file);
    for (args, file) in [
        k(&["get", "pods", "-A", "-o", "wide"], "pods.txt"),
        k(&["get", "nodes", "-o", "wide"], "nodes.txt"),
        k(&["get", "events", "-A", "--sort-by=.lastTimestamp"], "events.txt"),
    ] {
        if let Err(e) = run_to_file(&plan.kubectl, args, &plan.kubeconfig, &plan.dir.join(file)).await {
            problems.push(e.to_string());
        }
    }
    match client {
        Some(client) => match not_ready_pods(client).await {
            Ok(pods) => {
                for (ns, name) in pods {
                    let file = plan.dir.join("describe").join(format!("{ns}_{name}.txt"));
                    let args = ["describe", "pod", "-n", ns.as_str(), name.as_str()];
                    if let Err(e) = run_to_file(&plan.kubectl, &args, &plan.kubeconfig, &file).await {
                        problems.push(e.to_string());
                    }
                }
            }
            Err(e) => problems.push(format!("listing pods: {e}")),
        },
        None => problems.push("no Kubernetes client (kubeconfig missing?): pods not described".into()),
    }
    if let Some((kind, cluster)) = &plan.kind {
        let logs = plan.dir.join("kind-logs");
        let logs_arg = logs.display().to_string();
        let args = ["export", "logs", logs_arg.as_str(), "--name", cluster.as_str()];
        if let Err(e) = run_to_file(kind, &args, &plan.kubeconfig, &plan.dir.join("kind-export.txt")).await {
            problems.push(e.to_string());
        }
    }
    if !problems.is_empty() {
        let _ = std::fs::write(plan.dir.join("errors.txt"), problems.join("\n") + "\n");
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::kind::shims::write_exe;
    use http::{Request, Response};
    use kube::client::Body;

    fn pod(ns: &str, name: &str, phase: &str, ready: Option<&str>) -> serde_json::Value {
        let conditions: Vec<_> = ready.map(|r| serde_json::json!({"type": "Ready", "status": r})).into_iter().collect();
        serde_json::json!({
            "metadata": {"namespace": ns, "name": name},
            "status": {"phase": phase, "conditions": conditions}
        })
    }

    fn pod_list() -> String {
        serde_json::json!({
            "kind": "PodList", "apiVersion": "v1", "metadata": {},
            "items": [
                pod("kube-system", "coredns-1", "Pending", Some("False")),
                pod("kube-system", "cilium-abcde", "Running", Some("True")),
                pod("default", "job-x", "Succeeded", None),
                pod("default", "web", "Running", None),
            ]
        })
        .to_string()
    }

    fn mock_pods() -> kube::Client {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                assert_eq!(req.uri().path(), "/api/v1/pods");
                send.send_response(Response::builder().body(Body::from(pod_list().into_bytes())).unwrap());
            }
        });
        kube::Client::new(svc, "default")
    }

    #[tokio::test]
    async fn not_ready_pods_are_found_in_all_namespaces() {
        let pods = not_ready_pods(&mock_pods()).await.unwrap();
        assert_eq!(pods, [("kube-system".into(), "coredns-1".into()), ("default".into(), "web".into())]);
    }

    /// A stand-in for kubectl/kind that prints its arguments and the KUBECONFIG it got.
    fn fake_tool(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        write_exe(&p, &format!("#!/bin/sh\necho \"{name} $* (KUBECONFIG=$KUBECONFIG)\"\n")).unwrap();
        p
    }

    #[tokio::test]
    async fn collect_writes_every_artifact() {
        let tools = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let plan = Plan {
            dir: out.path().join("artifacts"),
            kubeconfig: "/run/kubeconfig".into(),
            kubectl: fake_tool(tools.path(), "kubectl"),
            kind: Some((fake_tool(tools.path(), "kind"), "tutor-r1".into())),
        };
        let problems = collect(&plan, Some(&mock_pods())).await;
        assert!(problems.is_empty(), "{problems:?}");
        let read = |f: &str| std::fs::read_to_string(plan.dir.join(f)).unwrap();
        assert_eq!(read("pods.txt"), "kubectl get pods -A -o wide (KUBECONFIG=/run/kubeconfig)\n");
        assert_eq!(
            read("describe/kube-system_coredns-1.txt"),
            "kubectl describe pod -n kube-system coredns-1 (KUBECONFIG=/run/kubeconfig)\n"
        );
        assert!(plan.dir.join("describe/default_web.txt").exists());
        assert!(!plan.dir.join("describe/kube-system_cilium-abcde.txt").exists());
        assert!(
            read("kind-export.txt")
                .starts_with(&format!("kind export logs {}/kind-logs --name tutor-r1", plan.dir.display()))
        );
        assert!(!plan.dir.join("errors.txt").exists());
    }

    #[tokio::test]
    async fn failures_are_recorded_not_fatal() {
        let tools = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let kubectl = tools.path().join("kubectl");
        write_exe(&kubectl, "#!/bin/sh\necho 'The connection to the server was refused' >&2; exit 1\n").unwrap();
        let plan = Plan { dir: out.path().join("a"), kubeconfig: "/k".into(), kubectl, kind: None };
        let problems = collect(&plan, None).await;
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(std::fs::read_to_string(plan.dir.join("pods.txt")).unwrap().contains("refused"));
        assert!(std::fs::read_to_string(plan.dir.join("errors.txt")).unwrap().contains("no Kubernetes client"));
    }
}
