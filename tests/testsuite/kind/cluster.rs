//! The kind backend on a real cluster. Needs Docker, kind, kubectl and helm, and the kindest/node
//! and busybox images (pulled on GitHub's runners; here the node image `k8s/kind-node.sh` builds,
//! which carries a busybox:1.36). Reported as ignored where kind or an answering Docker engine is
//! missing; where both exist (this project's CI starts Debian's dockerd), plain `cargo test` runs
//! them (the GitHub workflow `.github/workflows/tutorials.yml` does too).

use std::time::Duration;

use futures_util::FutureExt;

use tutor::backend::{self, Backend, BackendKind, ExecRequest, Observation, Target, UpContext};

// Alone: a kind cluster takes both cores for a minute, which the suite's timing-sensitive tests
// would feel.
crate::tests![
    a_cluster_is_created_used_and_deleted(DockerKind, Alone),
    keep_leaves_the_cluster_for_the_user(DockerKind, Alone)
];

const CONFIG: &str =
    "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n  - role: worker\n";

async fn exec(b: &dyn Backend, target: &str, script: &str, timeout: Duration) -> Observation {
    let target: Target = target.parse().unwrap();
    b.exec(ExecRequest { target: &target, script, timeout, env: &[] }).await.unwrap()
}

fn docker_names() -> String {
    let out = std::process::Command::new("docker").args(["ps", "-a", "--format", "{{.Names}}"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn a_cluster_is_created_used_and_deleted() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("kind-config.yaml"), CONFIG).unwrap();
    let run_name = format!("it-{}", std::process::id());
    let cluster = format!("tutor-{run_name}");
    let mut b = backend::create(BackendKind::Kind, None).unwrap();
    b.up(&UpContext {
        workdir: work.path().to_path_buf(),
        run_name,
        keep: false,
        kubernetes: None,
        offline: Vec::new(),
        images: vec![],
    })
    .await
    .unwrap();
    let long = Duration::from_secs(600);

    // Tear down even when an assertion fails, then report the failure.
    let result = std::panic::AssertUnwindSafe(async {
        let o = exec(b.as_ref(), "host", "kind create cluster --config kind-config.yaml", long).await;
        assert_eq!(o.exit, Some(0), "{}", o.output);
        assert!(o.output.contains("Creating cluster \"kind\""), "{}", o.output);
        assert!(docker_names().contains(&format!("{cluster}-worker")));

        // Node target by the tutorial's name, exit code through the Docker API. (Scripts are
        // rewritten to the real names, so look at the aliases in the file, not through them.)
        let o = exec(b.as_ref(), "kind-worker", "hostname; grep -c '# tutor alias' /etc/hosts; exit 3", long).await;
        assert_eq!((o.output.as_str(), o.exit), ("kind-worker\n2\n", Some(3)));

        // A node block that hangs is killed at its timeout, children included.
        let o = exec(b.as_ref(), "kind-worker", "sleep 600 & echo started; wait", Duration::from_secs(3)).await;
        assert!(o.timed_out && o.output == "started\n", "{o:?}");
        let o = exec(b.as_ref(), "kind-worker", "pgrep -fx 'sleep 600' || echo none", long).await;
        assert_eq!(o.output, "none\n");

        // Host kubectl reaches the run's cluster; node names read as the tutorial's.
        let o = exec(b.as_ref(), "host", "kubectl get nodes -o name", long).await;
        assert_eq!(o.output, "node/kind-control-plane\nnode/kind-worker\n");

        // Pod target through the Kubernetes exec API (kind's default CNI runs pods).
        let o = exec(
            b.as_ref(),
            "host",
            "kubectl run box --image=busybox:1.36 --restart=Never -- sleep 3600 >/dev/null && tutor-ready pods default run=box",
            long,
        )
        .await;
        assert_eq!(o.output, "ready: pods in default (run=box)\n", "{o:?}");
        let o = exec(b.as_ref(), "pod/box", "echo hi; echo err >&2; exit 5", long).await;
        assert_eq!((o.output.as_str(), o.exit), ("hi\nerr\n", Some(5)));
        let o = exec(b.as_ref(), "pod/box", "echo slow; sleep 600", Duration::from_secs(3)).await;
        assert!(o.timed_out && o.output == "slow\n", "{o:?}");
    })
    .catch_unwind()
    .await;
    b.down().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(!docker_names().contains(&cluster), "the cluster must be gone");
    // A block failed on purpose (exit 3 and 5): artifacts were saved (cargo runs tests in the
    // package root, so the default root is ./target/tutor/artifacts).
    let artifacts = std::path::Path::new("target/tutor/artifacts").join(&cluster);
    assert!(artifacts.join("pods.txt").exists());
    assert!(artifacts.join("kind-logs").is_dir());
}

async fn keep_leaves_the_cluster_for_the_user() {
    let work = tempfile::tempdir().unwrap();
    let run_name = format!("keep-{}", std::process::id());
    let cluster = format!("tutor-{run_name}");
    let mut b = backend::create(BackendKind::Kind, None).unwrap();
    b.up(&UpContext {
        workdir: work.path().to_path_buf(),
        run_name,
        keep: true,
        kubernetes: None,
        offline: Vec::new(),
        images: vec![],
    })
    .await
    .unwrap();
    let o = exec(b.as_ref(), "host", "kind create cluster", Duration::from_secs(600)).await;
    assert_eq!(o.exit, Some(0), "{}", o.output);
    b.down().await.unwrap();
    assert!(docker_names().contains(&format!("{cluster}-control-plane")));
    // The kind the backend used: the user's, or the one k8s/kind-node.sh built.
    let env = tutor::backend::kind::preflight::Probe::from_env();
    let kind = tutor::backend::kind::preflight::find_in_path("kind", env.path.as_deref()).unwrap();
    let status = std::process::Command::new(kind).args(["delete", "cluster", "--name", &cluster]).status().unwrap();
    assert!(status.success());
}
