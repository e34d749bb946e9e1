//! `tutor run --backend kind|kube` as a user without Docker or kind meets it: one pre-flight
//! error naming what is missing, exit 2, nothing run.

use assert_cmd::Command;
use predicates::prelude::*;

crate::tests![
    kind_without_kind_docker_helm_or_engine_is_exit_2_and_says_what_to_install,
    kind_with_a_stopped_docker_engine_is_exit_2,
    kube_without_context_is_refused,
    kube_with_an_unknown_context_is_refused_before_running,
    context_with_the_kind_backend_is_a_usage_error
];

/// A tutorial whose block would leave a mark if it ever ran.
fn tutorial(dir: &std::path::Path) -> std::path::PathBuf {
    let marker = dir.join("ran");
    let path = dir.join("t.md");
    let text = format!("# T\n\n## Step\n\n```console\n$ touch {}; echo hi\nhi\n```\n", marker.display());
    std::fs::write(&path, text).unwrap();
    path
}

/// `dir/bin` with do-nothing stand-ins for `tools` (pre-flight only looks for them).
fn fake_tools(dir: &std::path::Path, tools: &[&str]) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in tools {
        std::fs::write(bin.join(tool), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(bin.join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn tutor(dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("tutor").unwrap();
    cmd.current_dir(dir).arg("run").arg("--record").arg(dir.join("record.json"));
    cmd
}

fn kind_without_kind_docker_helm_or_engine_is_exit_2_and_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let t = tutorial(dir.path());
    let empty = dir.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    // A socket file nobody answers on: a stopped Docker engine.
    let sock = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    tutor(dir.path())
        .args(["--backend", "kind"])
        .arg(&t)
        .env("PATH", &empty)
        // Nor the tools tutor builds (k8s/build.sh, k8s/kind-node.sh), which it finds after PATH.
        .env("TUTOR_K8S_CACHE", dir.path().join("no-cache"))
        .env_remove("TUTOR_K8S_BIN")
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .assert()
        .code(2)
        // Checked when the backend is built, with the other input errors, before anything runs.
        .stderr(
            predicate::str::contains("pre-flight failed")
                .and(predicate::str::contains("`kind` is not on PATH"))
                .and(predicate::str::contains("`docker` is not on PATH"))
                .and(predicate::str::contains("`kubectl` is not on PATH"))
                .and(predicate::str::contains("`helm` is not on PATH"))
                .and(predicate::str::contains("`helm` is not on PATH")),
        );
    assert!(!dir.path().join("ran").exists(), "no block may run");
}

/// With every tool present, a stopped engine is found when the run starts (the engine is only
/// asked then): still exit 2, nothing run.
fn kind_with_a_stopped_docker_engine_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let t = tutorial(dir.path());
    let bin = fake_tools(dir.path(), &["kind", "docker", "kubectl", "helm"]);
    let sock = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    tutor(dir.path())
        .args(["--backend", "kind"])
        .arg(&t)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .assert()
        .code(2)
        .stdout(predicate::str::contains("is not answering (connection refused)"));
    assert!(!dir.path().join("ran").exists(), "no block may run");
}

fn kube_without_context_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = tutorial(dir.path());
    tutor(dir.path())
        .args(["--backend", "kube"])
        .arg(&t)
        .env("KUBECONFIG", dir.path().join("none"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("refusing to run without --context NAME"));
    assert!(!dir.path().join("ran").exists());
}

fn kube_with_an_unknown_context_is_refused_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let t = tutorial(dir.path());
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: lab, context: {cluster: c, user: u}}]\n",
    )
    .unwrap();
    let bin = fake_tools(dir.path(), &["kubectl", "helm"]);
    tutor(dir.path())
        .args(["--backend", "kube", "--context", "prod"])
        .arg(&t)
        .env("KUBECONFIG", &kubeconfig)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("context `prod` not found in the kubeconfig (contexts: lab)"));
    assert!(!dir.path().join("ran").exists());
}

fn context_with_the_kind_backend_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = tutorial(dir.path());
    tutor(dir.path())
        .args(["--backend", "kind", "--context", "prod"])
        .arg(&t)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("applies to --backend kube"));
}
