//! The run's kind cluster as Docker sees it (its node containers, by kind's labels), the
//! Kubernetes API's readiness, the tutorial-name aliases inside the nodes, and deletion.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::docker_exec;
use super::naming::NameMap;
use crate::backend::BackendError;

/// Labels kind puts on node containers.
const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
const ROLE_LABEL: &str = "io.x-k8s.kind.role";

/// One node container of the run's cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    /// Container (and Kubernetes node) name, e.g. `tutor-r1-worker`.
    pub name: String,
    /// `control-plane`, `worker` or `external-load-balancer`.
    pub role: String,
    /// Address on the kind Docker network.
    pub ip: String,
}

/// The node containers of cluster `name`, sorted by name (empty when it does not exist).
pub async fn nodes(docker: &Docker, name: &str) -> Result<Vec<Node>, BackendError> {
    let filters = HashMap::from([("label", vec![format!("{CLUSTER_LABEL}={name}")])]);
    let opts = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
    let list = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| BackendError::Other(format!("listing the containers of cluster `{name}`: {e}")))?;
    let mut nodes: Vec<Node> = list
        .into_iter()
        .filter_map(|c| {
            let labels = c.labels.unwrap_or_default();
            if labels.get(CLUSTER_LABEL).map(String::as_str) != Some(name) {
                return None;
            }
            let cname = c.names?.first()?.trim_start_matches('/').to_string();
            let networks = c.network_settings.and_then(|n| n.networks).unwrap_or_default();
            // kind's own network first; a cluster put on another network by
            // KIND_EXPERIMENTAL_DOCKER_NETWORK has exactly one.
            let ip = networks
                .get("kind")
                .or_else(|| networks.values().next())
                .and_then(|e| e.ip_address.clone())
                .unwrap_or_default();
            Some(Node { name: cname, role: labels.get(ROLE_LABEL).cloned().unwrap_or_default(), ip })
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

/// A Kubernetes client for the kubeconfig file the run's blocks use.
pub async fn client(kubeconfig: &Path, context: Option<&str>) -> Result<kube::Client, BackendError> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .map_err(|e| BackendError::Other(format!("reading {}: {e}", kubeconfig.display())))?;
    let opts = KubeConfigOptions { context: context.map(str::to_string), ..Default::default() };
    let config = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .map_err(|e| BackendError::Other(format!("kubeconfig {}: {e}", kubeconfig.display())))?;
    kube::Client::try_from(config).map_err(|e| BackendError::Other(format!("Kubernetes client: {e}")))
}

/// How long one `/readyz` request may take.
const READYZ_TIMEOUT: Duration = Duration::from_secs(5);

/// The API server did not become ready in time; `last` is its last answer.
#[derive(Debug, thiserror::Error)]
#[error("the API server is not ready after {}s: {last}", within.as_secs())]
pub struct NotReady {
    pub within: Duration,
    pub last: Readyz,
}

/// What one `/readyz` poll got instead of `ok`.
#[derive(Debug, thiserror::Error)]
pub enum Readyz {
    #[error("/readyz said {0:?}")]
    Said(String),
    #[error(transparent)]
    Failed(Box<kube::Error>),
    #[error("/readyz did not answer within {}s", READYZ_TIMEOUT.as_secs())]
    NoAnswer,
}

/// Poll the API server's `/readyz` until it says `ok` or `within` passes; the last error is
/// returned when it never does.
pub async fn wait_apiserver(client: &kube::Client, within: Duration) -> Result<(), NotReady> {
    let until = Instant::now() + within;
    loop {
        let req = http::Request::get("/readyz").body(Vec::new()).expect("static request");
        let last = match tokio::time::timeout(READYZ_TIMEOUT, client.request_text(req)).await {
            Ok(Ok(text)) if text.trim() == "ok" => return Ok(()),
            Ok(Ok(text)) => Readyz::Said(text.trim().to_string()),
            Ok(Err(e)) => Readyz::Failed(Box::new(e)),
            Err(_) => Readyz::NoAnswer,
        };
        if Instant::now() >= until {
            return Err(NotReady { within, last });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `/etc/hosts` lines that let the tutorial's node names (`kind-control-plane`, used e.g. as
/// Cilium's `k8sServiceHost` in Helm values that tutor does not rewrite) resolve inside the
/// nodes and in their host-network pods.
pub fn hosts_lines(nodes: &[Node], names: &NameMap) -> String {
    nodes
        .iter()
        .filter(|n| !n.ip.is_empty())
        .map(|n| (n, names.node_alias(&n.name)))
        .filter(|(n, alias)| *alias != n.name)
        .map(|(n, alias)| format!("{} {alias} # tutor alias\n", n.ip))
        .collect()
}

/// Add the aliases to every node's hosts file (`/etc/hosts`), once.
pub async fn add_aliases(
    docker: &Docker,
    nodes: &[Node],
    names: &NameMap,
    hosts_file: &str,
) -> Result<(), BackendError> {
    let lines = hosts_lines(nodes, names);
    if lines.is_empty() {
        return Ok(());
    }
    let (q, file) = (super::remote::sh_quote(&lines), super::remote::sh_quote(hosts_file));
    let script = format!("grep -q '# tutor alias' {file} || printf '%s' {q} >> {file}");
    for node in nodes.iter().filter(|n| n.role != "external-load-balancer") {
        let deadline = super::remote::Deadline::new(Duration::from_secs(30));
        let o = docker_exec::exec(docker, &node.name, &script, &[], deadline).await?;
        if o.exit != Some(0) {
            return Err(BackendError::Other(format!("adding host aliases in {}: {}", node.name, o.output.trim())));
        }
    }
    Ok(())
}

/// `kind delete cluster --name NAME`: removes the node containers and the cluster's entry from
/// the run's kubeconfig. Idempotent (kind succeeds when there is nothing to delete).
pub async fn delete(kind_bin: &Path, name: &str, kubeconfig: &Path) -> Result<(), BackendError> {
    let mut cmd = tokio::process::Command::new(kind_bin);
    cmd.args(["delete", "cluster", "--name", name]).env("KUBECONFIG", kubeconfig).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .map_err(|_| BackendError::Other(format!("`kind delete cluster --name {name}` did not finish in 180s")))?
        .map_err(|source| BackendError::Io { context: format!("running {}", kind_bin.display()), source })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BackendError::Other(format!(
            "`kind delete cluster --name {name}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake_docker::FakeDocker;
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;

    fn container(name: &str, cluster: &str, role: &str, ip: &str) -> serde_json::Value {
        serde_json::json!({
            "Id": name, "Names": [format!("/{name}")],
            "Labels": {CLUSTER_LABEL: cluster, ROLE_LABEL: role},
            "NetworkSettings": {"Networks": {"kind": {"IPAddress": ip}}}
        })
    }

    #[tokio::test]
    async fn nodes_come_from_kinds_labels() {
        let fake = FakeDocker::start().await;
        fake.set_containers(serde_json::json!([
            container("tutor-r1-worker", "tutor-r1", "worker", "172.18.0.3"),
            container("tutor-r1-control-plane", "tutor-r1", "control-plane", "172.18.0.2"),
            // A server that ignored the filter must not leak other clusters in.
            container("kind-worker", "kind", "worker", "172.18.0.9"),
        ]));
        let nodes = nodes(&fake.client(), "tutor-r1").await.unwrap();
        assert_eq!(
            nodes,
            [
                Node { name: "tutor-r1-control-plane".into(), role: "control-plane".into(), ip: "172.18.0.2".into() },
                Node { name: "tutor-r1-worker".into(), role: "worker".into(), ip: "172.18.0.3".into() },
            ]
        );
    }

    #[test]
    fn hosts_lines_alias_the_tutorials_names() {
        let nodes = vec![
            Node { name: "tutor-r1-control-plane".into(), role: "control-plane".into(), ip: "172.18.0.2".into() },
            Node { name: "tutor-r1-worker".into(), role: "worker".into(), ip: "172.18.0.3".into() },
        ];
        let mut names = NameMap::new("kind", "tutor-r1");
        names.set_nodes(nodes.iter().map(|n| n.name.as_str()));
        assert_eq!(
            hosts_lines(&nodes, &names),
            "172.18.0.2 kind-control-plane # tutor alias\n172.18.0.3 kind-worker # tutor alias\n"
        );
        assert_eq!(hosts_lines(&nodes, &NameMap::new("tutor-r1", "tutor-r1")), "");
    }

    #[tokio::test]
    async fn aliases_are_added_in_every_node_once() {
        let fake = FakeDocker::start().await;
        let nodes = vec![
            Node { name: "tutor-r1-control-plane".into(), role: "control-plane".into(), ip: "172.18.0.2".into() },
            Node { name: "tutor-r1-worker".into(), role: "worker".into(), ip: "172.18.0.3".into() },
        ];
        let mut names = NameMap::new("kind", "tutor-r1");
        names.set_nodes(nodes.iter().map(|n| n.name.as_str()));
        // The fake engine runs execs on this machine: give it a scratch hosts file.
        let hosts = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(hosts.path(), "127.0.0.1 localhost\n").unwrap();
        let path = hosts.path().display().to_string();
        add_aliases(&fake.client(), &nodes, &names, &path).await.unwrap();
        add_aliases(&fake.client(), &nodes, &names, &path).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(hosts.path()).unwrap(),
            format!("127.0.0.1 localhost\n{}", hosts_lines(&nodes, &names))
        );
        let execs = fake.execs();
        assert_eq!(
            execs.iter().map(|e| e.container.as_str()).collect::<Vec<_>>(),
            ["tutor-r1-control-plane", "tutor-r1-worker", "tutor-r1-control-plane", "tutor-r1-worker"]
        );
    }

    fn respond(send: tower_test::mock::SendResponse<Response<Body>>, status: u16, body: &str) {
        send.send_response(Response::builder().status(status).body(Body::from(body.as_bytes().to_vec())).unwrap());
    }

    #[tokio::test]
    async fn apiserver_wait_polls_readyz_until_ok() {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(svc, "default");
        let server = tokio::spawn(async move {
            for answer in [(500, "[-]etcd failed"), (200, "ok")] {
                let (req, send) = handle.next_request().await.unwrap();
                assert_eq!(req.uri().path(), "/readyz");
                respond(send, answer.0, answer.1);
            }
        });
        wait_apiserver(&client, Duration::from_secs(10)).await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn apiserver_wait_gives_up_with_the_last_error() {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(svc, "default");
        tokio::spawn(async move {
            while let Some((_, send)) = handle.next_request().await {
                respond(
                    send,
                    503,
                    "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"not yet\",\"reason\":\"ServiceUnavailable\",\"code\":503}",
                );
            }
        });
        let err = wait_apiserver(&client, Duration::from_millis(600)).await.unwrap_err();
        assert!(matches!(err.last, Readyz::Failed(_)), "{err:?}");
        let err = err.to_string();
        assert!(err.contains("not ready") && err.contains("not yet"), "{err}");
    }
}
