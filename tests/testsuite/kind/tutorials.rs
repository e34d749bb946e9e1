//! The repository's tutorials on a real kind cluster (`tutor run --backend kind`), the same files
//! the lab runs in CI: kubernetes-basics.md passes on both with the same expectations (the
//! differential check of the lab against real Kubernetes), and native-routing.md runs its first
//! stage (a cluster without CNI and kube-proxy) for real, its Cilium stages reported as skipped.

use std::time::Instant;

use serde_json::Value;

use crate::prelude::run_in;

// Alone: a kind cluster takes both cores for a minute.
crate::tests![
    kubernetes_basics_passes_on_kind(DockerKind, Alone),
    native_routing_runs_its_first_stage_on_kind(DockerKind, Alone)
];

fn tutorial(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tutorials").join(name).display().to_string()
}

fn docker_names() -> Vec<String> {
    let out = std::process::Command::new("docker").args(["ps", "-a", "--format", "{{.Names}}"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// `tutor run --backend kind` on `name` in a scratch directory: its JSON block records and the
/// output; no node container outlives the run.
fn run_on_kind(name: &str) -> (Vec<Value>, crate::prelude::Out) {
    let tmp = tempfile::tempdir().unwrap();
    let before = docker_names();
    let began = Instant::now();
    let out = run_in(
        tmp.path(),
        &["run", "--backend", "kind", "--keep-going", "--format", "json", "--record", "r.json", &tutorial(name)],
    );
    eprintln!("{name} on kind: {:.1} s", began.elapsed().as_secs_f64());
    let left: Vec<String> =
        docker_names().into_iter().filter(|n| !before.contains(n) && n.starts_with("tutor-")).collect();
    assert!(left.is_empty(), "node containers left behind: {left:?}");
    let blocks = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "block")
        .collect();
    (blocks, out)
}

fn kubernetes_basics_passes_on_kind() {
    let (blocks, out) = run_on_kind("kubernetes-basics.md");
    for b in &blocks {
        assert_eq!(b["status"], "passed", "{}\n{out:?}", serde_json::to_string_pretty(b).unwrap());
    }
    assert!(blocks.len() >= 8, "{out:?}");
    assert_eq!(out.code, 0, "{out:?}");
}

fn native_routing_runs_its_first_stage_on_kind() {
    let (blocks, out) = run_on_kind("native-routing.md");
    // The cluster without CNI and kube-proxy, then its NotReady nodes and Pending CoreDNS.
    let first: Vec<&Value> = blocks.iter().filter(|b| b["step"] == 1).collect();
    assert_eq!(first.len(), 2, "{out:?}");
    for b in &first {
        assert_eq!(b["status"], "passed", "{}\n{out:?}", serde_json::to_string_pretty(b).unwrap());
    }
    let later: Vec<&Value> = blocks.iter().filter(|b| b["step"] != 1).collect();
    assert!(!later.is_empty(), "{out:?}");
    // From step 2 on Cilium's images are needed (blocks marked `backend=lab` say so instead).
    let needs = "the kind backend cannot run this here (needed from step 2 `Cilium in native-routing mode` on)";
    for b in &later {
        assert_eq!(b["status"], "skipped", "{b}");
        let reason = b["reason"].as_str().unwrap_or_default();
        assert!(
            (reason.starts_with(needs) && reason.contains("quay.io/cilium/cilium"))
                || reason == "only runs on the lab backend",
            "{b}"
        );
    }
    assert!(later.iter().any(|b| b["reason"].as_str().is_some_and(|r| r.starts_with(needs))), "{out:?}");
    assert_eq!(out.code, 0, "{out:?}");
}
