//! The backend as a whole, without a cluster: fake `kind`/`kubectl`/`helm` binaries, the fake
//! Docker engine (execs run on this machine) and a fake API server on loopback.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fake_docker::FakeDocker;
use super::fake_kube::FakeApiServer;
use super::*;

fn write_exe(path: &Path, text: &str) {
    shims::write_exe(path, text).unwrap();
}

struct Machine {
    _dir: tempfile::TempDir,
    tools: PathBuf,
    work: PathBuf,
    calls: PathBuf,
    hosts: PathBuf,
    artifacts: PathBuf,
    docker: FakeDocker,
    api: FakeApiServer,
}

/// A machine with kind, kubectl and helm (fakes that log their calls) and a Docker engine. The
/// fake `kind create cluster` "creates" containers named after `--name` and a kubeconfig
/// pointing at the fake API server; `kind delete cluster` removes them.
async fn machine() -> Machine {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let calls = dir.path().join("calls.log");
    let containers = dir.path().join("containers.json");
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let api = FakeApiServer::start().await;
    let port = api.port;
    let docker = FakeDocker::start().await;
    docker.containers_from(&containers);
    let node = |n: &str, role: &str, ip: &str| {
        format!(
            r#"{{"Id":"$name-{n}","Names":["/$name-{n}"],"Labels":{{"io.x-k8s.kind.cluster":"$name","io.x-k8s.kind.role":"{role}"}},"NetworkSettings":{{"Networks":{{"kind":{{"IPAddress":"{ip}"}}}}}}}}"#
        )
    };
    let list = format!(
        "[{},{}]",
        node("control-plane", "control-plane", "172.18.0.2"),
        node("worker", "worker", "172.18.0.3")
    );
    write_exe(
        &tools.join("kind"),
        &format!(
            r#"#!/bin/bash
echo "kind $*" >> {calls}
name=kind; args=("$@")
for ((i=0; i<$#; i++)); do [[ ${{args[i]}} == --name ]] && name=${{args[i+1]}}; done
case "$1 $2" in
  "create cluster")
    echo "Creating cluster \"$name\" ..."
    cat > "$KUBECONFIG" <<EOK
apiVersion: v1
kind: Config
current-context: kind-$name
clusters: [{{name: kind-$name, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: kind-$name, user: {{token: t}}}}]
contexts: [{{name: kind-$name, context: {{cluster: kind-$name, user: kind-$name}}}}]
EOK
    cat > {containers} <<EOC
{list}
EOC
    echo "Set kubectl context to \"kind-$name\"" ;;
  "delete cluster") rm -f {containers}; echo "Deleting cluster \"$name\" ..." ;;
esac
"#,
            calls = calls.display(),
            containers = containers.display(),
        ),
    );
    for tool in ["kubectl", "helm", "docker"] {
        write_exe(
            &tools.join(tool),
            &format!(
                "#!/bin/sh\necho \"{tool} $* KUBECONFIG=$KUBECONFIG\" >> {}\necho {tool}-output\n",
                calls.display()
            ),
        );
    }
    Machine { tools, work, calls, hosts, docker, api, artifacts: dir.path().join("artifacts"), _dir: dir }
}

impl Machine {
    fn backend(&self, mode: Mode) -> KindBackend {
        let path = format!("{}:/usr/bin:/bin", self.tools.display());
        let mut b = KindBackend::new(
            mode,
            Probe {
                path: Some(path.into()),
                docker_host: Some(self.docker.host()),
                kubeconfig: Some(self.work.parent().unwrap().join("user-kubeconfig").into()),
            },
        );
        b.hosts_file = self.hosts.display().to_string();
        b.load_images = false;
        b.artifacts_root = self.artifacts.clone();
        b
    }

    fn ctx(&self, keep: bool) -> UpContext {
        UpContext {
            workdir: self.work.clone(),
            run_name: "r1".into(),
            keep,
            kubernetes: None,
            offline: Vec::new(),
            images: vec![],
        }
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls).unwrap_or_default().lines().map(String::from).collect()
    }
}

async fn run(b: &KindBackend, target: &str, script: &str) -> Observation {
    let target: Target = target.parse().unwrap();
    b.exec(ExecRequest { target: &target, script, timeout: Duration::from_secs(30), env: &[] }).await.unwrap()
}

#[tokio::test]
async fn a_whole_kind_run_without_a_cluster() {
    let m = machine().await;
    std::fs::write(m.work.join("kind-config.yaml"), "kind: Cluster\nnodes:\n- role: control-plane\n- role: worker\n")
        .unwrap();
    let mut b = m.backend(Mode::Kind);
    b.up(&m.ctx(false)).await.unwrap();

    // The tutorial's own command creates the run's cluster; the output reads as the tutorial's.
    let o = run(&b, "host", "kind create cluster --config kind-config.yaml").await;
    assert_eq!(o.exit, Some(0), "{}", o.output);
    assert_eq!(o.output, "Creating cluster \"kind\" ...\nSet kubectl context to \"kind-kind\"\n");
    assert_eq!(m.calls(), ["kind create cluster --config kind-config.yaml --name tutor-r1"]);

    // Host blocks see the run's kubeconfig and the shims.
    let o = run(&b, "host", "kubectl get nodes; command -v tutor-ready; echo $TUTOR_CLUSTER $HELM_CONFIG_HOME").await;
    let kubeconfig = m.work.join(".tutor/kind/kubeconfig");
    assert!(m.calls()[1].ends_with(&format!("KUBECONFIG={}", kubeconfig.display())), "{:?}", m.calls());
    assert_eq!(
        o.output,
        format!(
            "kubectl-output\n{}\nkind {}\n",
            m.work.join(".tutor/kind/bin/tutor-ready").display(),
            m.work.join(".tutor/kind/helm/config").display()
        )
    );

    // Node targets by the tutorial's names reach the real containers.
    let o = run(&b, "kind-worker", "echo on $0; exit 4").await;
    assert_eq!(o.exit, Some(4));
    assert_eq!(m.docker.execs().last().unwrap().container, "tutor-r1-worker");
    // Pod targets go through the Kubernetes exec API of the cluster kind created.
    let o = run(&b, "ns/kube-system/pod/coredns-1", "echo from $0 pod; exit 0").await;
    assert_eq!((o.output.as_str(), o.exit), ("from bash pod\n", Some(0)));
    assert_eq!(m.api.execs.lock().unwrap()[0].1, "coredns-1");
    // Scripts naming nodes are rewritten; outputs naming them are rewritten back.
    let o = run(&b, "host", "echo docker exec kind-control-plane; echo tutor-r1-worker").await;
    assert_eq!(o.output, "docker exec kind-control-plane\nkind-worker\n");

    // The aliases went into every node's hosts file (the fake engine shares this one).
    let hosts = std::fs::read_to_string(&m.hosts).unwrap();
    assert!(hosts.contains("172.18.0.2 kind-control-plane") && hosts.contains("172.18.0.3 kind-worker"), "{hosts}");

    let facts = b.facts();
    assert_eq!(facts["cluster"], "tutor-r1");
    assert_eq!(facts["run_name"], "r1");
    // Every fact `tutor check` knows is provided.
    for name in crate::template::FACT_NAMES {
        assert!(!facts[name].is_null(), "missing fact {name}: {facts}");
    }
    assert_eq!(facts["nodes"]["kind-worker"]["ip"], "172.18.0.3");
    assert_eq!(facts["nodes"]["kind-worker"]["container"], "tutor-r1-worker");
    assert!(b.state_path(&"kind-worker".parse().unwrap()).starts_with("/tmp/tutor-state-tutor-r1"));

    let err = b
        .exec(ExecRequest {
            target: &"kind-worker7".parse().unwrap(),
            script: "true",
            timeout: Duration::from_secs(5),
            env: &[],
        })
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::UnknownTarget { .. }), "{err}");

    // A block failed (exit 4): artifacts are saved, then the cluster is deleted.
    b.down().await.unwrap();
    let calls = m.calls();
    assert!(calls.iter().any(|c| c.starts_with("kubectl get pods -A -o wide")), "{calls:?}");
    let export = format!("kind export logs {}/tutor-r1/kind-logs --name tutor-r1", m.artifacts.display());
    assert!(calls.iter().any(|c| c.starts_with(&export)), "{calls:?}");
    assert_eq!(calls.last().unwrap(), "kind delete cluster --name tutor-r1");
    assert!(m.artifacts.join("tutor-r1/pods.txt").exists());
    assert!(!m.work.join("artifacts").exists());
    // Safe to call again.
    b.down().await.unwrap();
}

#[tokio::test]
async fn keep_leaves_the_cluster_and_success_saves_nothing() {
    let m = machine().await;
    let mut b = m.backend(Mode::Kind);
    b.up(&m.ctx(true)).await.unwrap();
    run(&b, "host", "kind create cluster").await;
    b.down().await.unwrap();
    assert_eq!(m.calls(), ["kind create cluster --name tutor-r1"]);
    assert!(!m.artifacts.exists());
}

#[tokio::test]
async fn a_tutorial_cluster_name_is_kept_in_outputs() {
    let m = machine().await;
    std::fs::write(m.work.join("c.yaml"), "kind: Cluster\nname: demo\n").unwrap();
    let mut b = m.backend(Mode::Kind);
    b.up(&m.ctx(false)).await.unwrap();
    let o = run(&b, "host", "kind create cluster --config c.yaml").await;
    assert_eq!(o.output, "Creating cluster \"demo\" ...\nSet kubectl context to \"kind-demo\"\n");
    assert!(b.facts()["nodes"]["demo-worker"].is_object(), "{}", b.facts());
    b.down().await.unwrap();
}

#[tokio::test]
async fn node_targets_before_the_cluster_exists_are_explained() {
    let m = machine().await;
    let mut b = m.backend(Mode::Kind);
    b.up(&m.ctx(false)).await.unwrap();
    let err = b
        .exec(ExecRequest {
            target: &"kind-worker".parse().unwrap(),
            script: "true",
            timeout: Duration::from_secs(5),
            env: &[],
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist yet"), "{err}");
    b.down().await.unwrap();
    // Nothing existed; delete is still attempted (a killed `kind create` leaves half a cluster).
    assert_eq!(m.calls(), ["kind delete cluster --name tutor-r1"]);
}

#[tokio::test]
async fn an_existing_cluster_of_the_same_name_is_refused_before_anything_runs() {
    let m = machine().await;
    let mut b = m.backend(Mode::Kind);
    b.up(&m.ctx(false)).await.unwrap();
    run(&b, "host", "kind create cluster").await;
    let mut second = m.backend(Mode::Kind);
    let err = second.up(&m.ctx(false)).await.unwrap_err();
    assert!(err.is_usage() && err.to_string().contains("already exists"), "{err}");
    b.down().await.unwrap();
}

#[tokio::test]
async fn preflight_failure_creates_nothing() {
    let m = machine().await;
    let empty = tempfile::tempdir().unwrap();
    let mut b = KindBackend::new(
        Mode::Kind,
        Probe {
            path: Some(empty.path().as_os_str().to_owned()),
            docker_host: Some("unix:///nonexistent/docker.sock".into()),
            kubeconfig: None,
        },
    );
    let err = b.up(&m.ctx(false)).await.unwrap_err();
    assert!(matches!(err, BackendError::Preflight { backend: BackendKind::Kind, .. }), "{err}");
    assert!(!m.work.join(".tutor").exists());
    b.down().await.unwrap();
    assert!(m.calls().is_empty());
}

#[test]
fn kube_needs_an_explicit_context_and_kind_refuses_one() {
    let err = create(BackendKind::Kube, None).err().unwrap();
    assert!(err.is_usage() && err.to_string().contains("--context NAME"), "{err}");
    let err = create(BackendKind::Kube, Some("  ")).err().unwrap();
    assert!(err.to_string().contains("--context NAME"), "{err}");
    let err = create(BackendKind::Kind, Some("prod")).err().unwrap();
    assert!(err.is_usage() && err.to_string().contains("applies to --backend kube"), "{err}");
}

/// The user's kubeconfig for the kube tests: `lab` answers (fake API server), `dead` does not,
/// `prod` must never appear in what tutor hands to blocks.
async fn user_kubeconfig(m: &Machine) {
    let port = m.api.port;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters:\n\
         - {{name: lab, cluster: {{server: 'http://127.0.0.1:{port}'}}}}\n\
         - {{name: dead, cluster: {{server: 'http://127.0.0.1:{dead}'}}}}\n\
         - {{name: prod, cluster: {{server: 'https://prod.invalid:6443'}}}}\n\
         users:\n- {{name: u, user: {{token: t}}}}\n- {{name: prod-admin, user: {{token: secret}}}}\n\
         contexts:\n- {{name: lab, context: {{cluster: lab, user: u}}}}\n- {{name: dead, context: {{cluster: dead, user: u}}}}\n\
         - {{name: prod, context: {{cluster: prod, user: prod-admin}}}}\n"
    );
    std::fs::write(m.work.parent().unwrap().join("user-kubeconfig"), text).unwrap();
}

#[tokio::test]
async fn kube_backend_runs_on_the_named_context_only() {
    let m = machine().await;
    user_kubeconfig(&m).await;
    let mut b = m.backend(Mode::Kube { context: "lab".into() });
    // Not up: every exec is refused rather than run somewhere unexpected.
    let err = b
        .exec(ExecRequest { target: &Target::Host, script: "true", timeout: Duration::from_secs(5), env: &[] })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not up"), "{err}");

    b.up(&m.ctx(false)).await.unwrap();
    let kubeconfig = m.work.join(".tutor/kube/kubeconfig");
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains("current-context: lab") && !text.contains("prod"), "{text}");
    assert_eq!(std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777, 0o600);

    let o = run(&b, "host", "echo $TUTOR_CLUSTER kind-kind").await;
    assert_eq!(o.output, "tutor-r1 kind-kind\n", "no renaming on an existing cluster");
    let o = run(&b, "host", "kubectl get pods; kind create cluster").await;
    assert_eq!(o.exit, Some(2));
    assert!(o.output.starts_with("kubectl-output\nkind is not available on the kube backend"), "{}", o.output);
    assert_eq!(m.calls(), [format!("kubectl get pods KUBECONFIG={}", kubeconfig.display())]);

    let err = b
        .exec(ExecRequest {
            target: &"some-node".parse().unwrap(),
            script: "true",
            timeout: Duration::from_secs(5),
            env: &[],
        })
        .await
        .unwrap_err();
    assert!(err.is_usage() && err.to_string().contains("node targets need the kind backend"), "{err}");
    assert_eq!(b.facts()["context"], "lab");

    // A failed block: artifacts from the cluster, but nothing is deleted.
    b.down().await.unwrap();
    let calls = m.calls();
    assert!(calls.iter().any(|c| c.starts_with("kubectl get pods -A -o wide")), "{calls:?}");
    assert!(!calls.iter().any(|c| c.starts_with("kind ")), "{calls:?}");
}

#[tokio::test]
async fn kube_backend_preflight_checks_the_context() {
    let m = machine().await;
    user_kubeconfig(&m).await;
    let mut b = m.backend(Mode::Kube { context: "staging".into() });
    let err = b.up(&m.ctx(false)).await.unwrap_err();
    assert!(
        err.is_usage()
            && err.to_string().contains("`staging` not found")
            && err.to_string().contains("dead, lab, prod"),
        "{err}"
    );
    let mut b = m.backend(Mode::Kube { context: "dead".into() });
    b.context_wait = Duration::from_millis(300);
    let err = tokio::time::timeout(Duration::from_secs(60), b.up(&m.ctx(false))).await.unwrap().unwrap_err();
    assert!(err.is_usage() && err.to_string().contains("context `dead`: the API server is not ready"), "{err}");
}

/// Kernels on kind's node targets (Docker exec with stdin attached, on the fake engine) and pod
/// targets (Kubernetes exec): one session per target whose shell state carries from block to
/// block, the tutorial's node names in and out, a timeout killing the kernel through a second
/// exec, and the failure marking the run for artifacts.
#[tokio::test]
async fn kernels_on_node_and_pod_targets_keep_their_shell() {
    use crate::runner::Cancel;
    use crate::runner::kernel::{Kernel, remote_argv, restore_script};
    let m = machine().await;
    let mut b = m.backend(Mode::Kind);
    b.up(&m.ctx(false)).await.unwrap();
    run(&b, "host", "kind create cluster").await;
    let worker: Target = "kind-worker".parse().unwrap();
    let kernel = async |b: &KindBackend, target: &Target, init: &[u8]| {
        let shell = b.exec_shell(target, remote_argv()).await.unwrap().expect("a session");
        Kernel::start_remote(shell, init).await.unwrap().expect("bash")
    };
    async fn go(k: &mut Kernel, cmd: &str, secs: u64) -> (String, Option<i32>, bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        let frames = [(crate::runner::kernel::Mode::ErrExit, cmd.as_bytes())];
        let r = k.run(&frames, &|_, _| true, Some(deadline), &Cancel::default()).await;
        (r.runs[0].output.clone(), r.runs[0].status, r.timed_out)
    }
    let mut k = kernel(&b, &worker, b"").await;
    let execs = m.docker.execs();
    let session = execs.last().unwrap();
    assert!(session.stdin && session.stderr && session.container == "tutor-r1-worker", "{session:?}");
    assert_eq!(go(&mut k, "N=kind-worker; w() { echo \"on $N\"; }; cd /", 10).await, (String::new(), Some(0), false));
    // The script reached the node with the real name; the output comes back with the alias.
    assert_eq!(
        go(&mut k, "w; echo $N | grep -c tutor-r1-worker; pwd", 10).await,
        ("on kind-worker\n1\n/\n".to_string(), Some(0), false)
    );
    assert_eq!(m.docker.execs().len(), execs.len(), "no exec per block");
    assert!(!b.run.as_ref().unwrap().failed.load(Ordering::Relaxed));
    let began = std::time::Instant::now();
    let (out, status, timed_out) = go(&mut k, "echo busy; sleep 100", 1).await;
    assert_eq!((out.as_str(), status, timed_out), ("busy\n", None, true));
    assert!(began.elapsed() < Duration::from_secs(10), "{:?}", began.elapsed());
    assert_eq!(m.docker.execs().last().unwrap().cmd[..4], crate::backend::shell::kill_tree_argv(0)[..4]);
    assert!(b.run.as_ref().unwrap().failed.load(Ordering::Relaxed), "a timeout marks the run failed");
    let state = k.state().unwrap().to_vec();
    k.stop().await;
    let mut k = kernel(&b, &worker, &restore_script(&state)).await;
    assert_eq!(go(&mut k, "w", 10).await, ("on kind-worker\n".to_string(), Some(0), false));
    k.stop().await;

    // A pod: the Kubernetes exec API with stdin (the fake API server's "pod" is this machine).
    let pod: Target = "pod/web".parse().unwrap();
    let mut k = kernel(&b, &pod, b"").await;
    assert_eq!(go(&mut k, "P=1; cd /tmp", 10).await, (String::new(), Some(0), false));
    assert_eq!(go(&mut k, "echo $P $PWD", 10).await, ("1 /tmp\n".to_string(), Some(0), false));
    k.stop().await;
    assert_eq!(m.api.execs.lock().unwrap().len(), 2, "one session and the kill at the end");
    b.down().await.unwrap();
}
