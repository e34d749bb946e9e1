//! Static pods and their mirror pods. On a kind node the control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler) runs as static pods: the kubelet starts them from
//! `/etc/kubernetes/manifests` and shows each in the API as a *mirror pod*
//! (`kube-apiserver-kind-control-plane` in `kube-system`). On the lab the control plane's
//! processes are started by the lab (`controlplane`), which writes each component's manifest
//! (`<name>.json`, the Pod kubeadm would write, with the flags it really runs with) and its
//! process id (`<name>.pid`) into the node's manifest directory. The agent of that node keeps a
//! mirror pod per manifest — created again if deleted, as the kubelet does — with a status
//! observed from the process: running while it lives, with its real start time.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::chrono::{DateTime, Utc};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};

use super::status::{self, Record, Sandbox, State};

/// The annotations the kubelet puts on a mirror pod.
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
pub const SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";

#[derive(Debug, thiserror::Error)]
pub enum StaticPodError {
    #[error("reading the static pod manifest {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("static pod manifest {path} is not a Pod")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("static pod manifest {path}: {what}")]
    Invalid { path: String, what: String },
}

/// One manifest of the directory: the pod, a hash of its text, and the process running it.
#[derive(Debug, Clone)]
pub struct StaticPod {
    pub pod: Pod,
    pub hash: String,
    pub pid: Option<u32>,
}

/// A 32-hex-digit digest of the manifest (the kubelet's `config.hash` has that shape).
fn digest(text: &str) -> String {
    let part = |seed: u64| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        text.hash(&mut h);
        h.finish()
    };
    format!("{:016x}{:016x}", part(1), part(2))
}

/// The manifests of `dir` (sorted by file name); a directory that does not exist holds none.
pub fn load(dir: &Path) -> Result<Vec<StaticPod>, StaticPodError> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => {
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => return Err(StaticPodError::Read { path: dir.display().to_string(), source }),
    };
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path)
                .map_err(|source| StaticPodError::Read { path: shown.clone(), source })?;
            let pod: Pod =
                serde_json::from_str(&text).map_err(|source| StaticPodError::Parse { path: shown.clone(), source })?;
            if pod.metadata.name.as_deref().unwrap_or_default().is_empty() {
                return Err(StaticPodError::Invalid { path: shown, what: "no metadata.name".into() });
            }
            let pid = std::fs::read_to_string(path.with_extension("pid")).ok().and_then(|p| p.trim().parse().ok());
            Ok(StaticPod { pod, hash: digest(&text), pid })
        })
        .collect()
}

/// The mirror pod of `sp` on `node` (whose uid owns it).
pub fn mirror(sp: &StaticPod, node: &str, node_uid: &str, seen: DateTime<Utc>) -> Pod {
    let mut pod = sp.pod.clone();
    let name = format!("{}-{node}", pod.metadata.name.as_deref().unwrap_or_default());
    pod.metadata.name = Some(name);
    pod.metadata.namespace.get_or_insert_with(|| "default".into());
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(HASH_ANNOTATION.into(), sp.hash.clone());
    annotations.insert(super::MIRROR_ANNOTATION.into(), sp.hash.clone());
    annotations.insert(SEEN_ANNOTATION.into(), seen.to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Nanos, true));
    annotations.insert(SOURCE_ANNOTATION.into(), "file".into());
    pod.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.into(),
        uid: node_uid.into(),
        controller: Some(true),
        ..Default::default()
    }]);
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.into());
    // The kubelet lets static pods tolerate every NoExecute taint.
    spec.tolerations.get_or_insert_with(Vec::new).push(Toleration {
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        ..Default::default()
    });
    pod.status = None;
    pod
}

/// When a process started, from `/proc` (`None` when it is gone or a zombie).
pub fn process_start(pid: u32) -> Option<DateTime<Utc>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    let ticks: u64 = fields.get(19)?.parse().ok()?;
    let btime: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let millis = btime * 1000 + (ticks * 1000 / hz) as i64;
    DateTime::from_timestamp_millis(millis)
}

/// The status of a mirror pod: its containers run while the process does.
pub fn mirror_status(
    mirror: &Pod,
    node_ip: Ipv4Addr,
    started: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> k8s_openapi::api::core::v1::PodStatus {
    let containers = mirror.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
    let records: Vec<Record> = containers
        .iter()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            let state = match started {
                Some(started) => State::Running { started },
                // The process is gone and the lab does not restart it: what the kubelet
                // reports for a container it can no longer find.
                None => State::Terminated {
                    exit_code: 137,
                    signal: None,
                    reason: "ContainerStatusUnknown".into(),
                    started: now,
                    finished: now,
                },
            };
            Record {
                ready: started.is_some(),
                image_id: image.clone(),
                container_id: started.map(|_| format!("tutor://{}", c.name)),
                state,
                ..Record::waiting(&c.name, &image, "")
            }
        })
        .collect();
    let sandbox =
        Sandbox { ready: started.is_some(), pod_ip: Some(node_ip), host_ip: Some(node_ip), start_time: started };
    status::pod_status(mirror, &sandbox, &[], &records, now)
}

/// What decides whether a status must be written again.
fn summary(s: Option<&k8s_openapi::api::core::v1::PodStatus>) -> serde_json::Value {
    let Some(s) = s else { return serde_json::Value::Null };
    let containers: Vec<serde_json::Value> = s
        .container_statuses
        .iter()
        .flatten()
        .map(|c| serde_json::json!([c.name, c.ready, c.state.as_ref().map(|st| st.running.is_some())]))
        .collect();
    serde_json::json!([s.phase, s.pod_ip, containers])
}

/// Keep the mirror pods of `dir` in the API, every 3 s.
pub async fn run_for(client: Client, node: String, node_ip: Ipv4Addr, dir: PathBuf) {
    let nodes = Api::<Node>::all(client.clone());
    let mut warned = false;
    loop {
        if let Err(e) = sync(&client, &nodes, &node, node_ip, &dir).await {
            if !warned {
                let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
                eprintln!("node agent {node}: static pods: {e}{cause}");
                warned = true;
            }
        } else {
            warned = false;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Manifest(#[from] StaticPodError),
    #[error("{what}")]
    Api {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
}

fn api(what: String) -> impl FnOnce(kube::Error) -> SyncError {
    move |source| SyncError::Api { what, source: Box::new(source) }
}

async fn sync(client: &Client, nodes: &Api<Node>, node: &str, node_ip: Ipv4Addr, dir: &Path) -> Result<(), SyncError> {
    let statics = load(dir)?;
    if statics.is_empty() {
        return Ok(());
    }
    let me = nodes.get(node).await.map_err(api(format!("reading node {node}")))?;
    let uid = me.meta().uid.clone().unwrap_or_default();
    // A node may read only the pods bound to it: list those (a get of a missing pod is refused).
    let bound = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .map_err(api(format!("listing the pods of node {node}")))?;
    for sp in &statics {
        let want = mirror(sp, node, &uid, Utc::now());
        let ns = want.metadata.namespace.clone().unwrap_or_default();
        let name = want.metadata.name.clone().unwrap_or_default();
        let pods = Api::<Pod>::namespaced(client.clone(), &ns);
        let existing = bound.items.iter().find(|p| {
            p.metadata.name.as_deref() == Some(name.as_str()) && p.metadata.namespace.as_deref() == Some(ns.as_str())
        });
        let current = match existing {
            Some(p) => p.clone(),
            None => pods
                .create(&PostParams::default(), &want)
                .await
                .map_err(api(format!("creating mirror pod {ns}/{name}")))?,
        };
        let started = sp.pid.and_then(process_start);
        let status = mirror_status(&current, node_ip, started, Utc::now());
        if summary(current.status.as_ref()) != summary(Some(&status)) {
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({ "status": status })))
                .await
                .map_err(api(format!("updating mirror pod {ns}/{name}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"kube-scheduler","namespace":"kube-system",
"labels":{"component":"kube-scheduler","tier":"control-plane"}},
"spec":{"hostNetwork":true,"containers":[{"name":"kube-scheduler","image":"registry.k8s.io/kube-scheduler:v1.33.1","command":["kube-scheduler","--v=0"]}]}}"#;

    fn dir_with(pid: Option<u32>) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("kube-scheduler.json"), MANIFEST).unwrap();
        if let Some(pid) = pid {
            std::fs::write(d.path().join("kube-scheduler.pid"), format!("{pid}\n")).unwrap();
        }
        std::fs::write(d.path().join("notes.txt"), "not a manifest").unwrap();
        d
    }

    #[test]
    fn mirror_pods_are_named_after_their_node_and_owned_by_it() {
        let d = dir_with(Some(std::process::id()));
        let sp = load(d.path()).unwrap();
        assert_eq!(sp.len(), 1);
        assert_eq!(sp[0].pid, Some(std::process::id()));
        assert_eq!(sp[0].hash.len(), 32);
        let m = mirror(&sp[0], "kind-control-plane", "uid-1", Utc::now());
        assert_eq!(m.metadata.name.as_deref(), Some("kube-scheduler-kind-control-plane"));
        assert_eq!(m.metadata.namespace.as_deref(), Some("kube-system"));
        let a = m.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[super::super::MIRROR_ANNOTATION], sp[0].hash);
        assert_eq!(a[SOURCE_ANNOTATION], "file");
        let owner = &m.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Node", "kind-control-plane", "uid-1")
        );
        assert_eq!(m.spec.as_ref().unwrap().node_name.as_deref(), Some("kind-control-plane"));
    }

    #[test]
    fn a_live_process_is_a_running_ready_pod_a_dead_one_is_not() {
        let d = dir_with(Some(std::process::id()));
        let sp = &load(d.path()).unwrap()[0];
        let m = mirror(sp, "n", "u", Utc::now());
        let ip = Ipv4Addr::new(172, 18, 0, 2);
        let started = process_start(std::process::id());
        assert!(started.is_some_and(|t| t <= Utc::now()));
        let s = mirror_status(&m, ip, started, Utc::now());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("172.18.0.2"));
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert!(c.ready && c.state.as_ref().unwrap().running.is_some());

        // A child that exited and was reaped has no /proc entry.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(process_start(pid), None);
        let s = mirror_status(&m, ip, None, Utc::now());
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert!(!c.ready && c.state.as_ref().unwrap().terminated.is_some());
        assert_ne!(summary(Some(&s)), summary(Some(&mirror_status(&m, ip, started, Utc::now()))));
    }

    #[test]
    fn a_manifest_that_is_not_a_pod_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("bad.json"), "{\"kind\": 3}").unwrap();
        let err = load(d.path()).unwrap_err().to_string();
        assert!(err.contains("bad.json") && err.contains("is not a Pod"), "{err}");
        assert!(load(&d.path().join("missing")).unwrap().is_empty());
    }
}
