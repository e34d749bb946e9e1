//! Pre-flight of the kind and kube backends as a user meets it: through the public API, on a
//! machine described by PATH and DOCKER_HOST (missing binaries, dead or absent Docker socket),
//! and on this very machine.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tutor::backend::kind::preflight::{self, Probe};
use tutor::backend::{self, BackendError, BackendKind, UpContext};

crate::tests![
    missing_binaries_are_named_with_how_to_install_them,
    a_dead_docker_socket_is_not_answering,
    no_docker_socket_at_all_means_install_docker,
    an_answering_engine_and_all_binaries_pass,
    kube_refuses_to_run_without_an_explicit_context,
    this_machine_gets_a_clear_preflight_error(NoDockerKind)
];

fn exe(dir: &Path, name: &str) {
    let p = dir.join(name);
    std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn tools(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for n in names {
        exe(dir.path(), n);
    }
    dir
}

fn message(err: BackendError) -> String {
    assert!(err.is_usage(), "pre-flight errors are usage errors (exit 2): {err}");
    assert!(matches!(err, BackendError::Preflight { .. }), "{err:?}");
    err.to_string()
}

/// A socket file nobody listens on: what a stopped dockerd leaves behind.
fn dead_socket(dir: &Path) -> String {
    let path = dir.join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    format!("unix://{}", path.display())
}

async fn missing_binaries_are_named_with_how_to_install_them() {
    let bin = tools(&["kubectl"]);
    let probe = Probe {
        path: Some(bin.path().as_os_str().to_owned()),
        docker_host: Some(dead_socket(bin.path())),
        kubeconfig: None,
    };
    let msg = message(preflight::check(BackendKind::Kind, &probe).await.unwrap_err());
    assert!(msg.contains("`kind` is not on PATH") && msg.contains("kind.sigs.k8s.io"), "{msg}");
    assert!(msg.contains("`helm` is not on PATH") && msg.contains("helm.sh"), "{msg}");
    assert!(!msg.contains("`kubectl` is not on PATH"), "{msg}");
    assert!(msg.contains("nothing was created"), "{msg}");
}

async fn a_dead_docker_socket_is_not_answering() {
    let bin = tools(&["kind", "docker", "kubectl", "helm"]);
    let probe = Probe {
        path: Some(bin.path().as_os_str().to_owned()),
        docker_host: Some(dead_socket(bin.path())),
        kubeconfig: None,
    };
    let msg = message(preflight::check(BackendKind::Kind, &probe).await.unwrap_err());
    assert!(msg.contains("is not answering (connection refused)") && msg.contains("systemctl start docker"), "{msg}");
    assert_eq!(msg.matches("\n  - ").count(), 1, "only Docker is wrong: {msg}");
}

async fn no_docker_socket_at_all_means_install_docker() {
    let bin = tools(&["kind", "docker", "kubectl", "helm"]);
    let probe = Probe {
        path: Some(bin.path().as_os_str().to_owned()),
        docker_host: Some(format!("unix://{}/absent.sock", bin.path().display())),
        kubeconfig: None,
    };
    let msg = message(preflight::check(BackendKind::Kind, &probe).await.unwrap_err());
    assert!(msg.contains("does not exist") && msg.contains("docs.docker.com/engine/install"), "{msg}");
}

async fn an_answering_engine_and_all_binaries_pass() {
    let bin = tools(&["kind", "docker", "kubectl", "helm"]);
    let sock = bin.path().join("docker.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    // The smallest engine: answers every request (bollard pings with GET /_ping) with OK.
    let server = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK").await;
        }
    });
    let probe = Probe {
        path: Some(bin.path().as_os_str().to_owned()),
        docker_host: Some(format!("unix://{}", sock.display())),
        kubeconfig: None,
    };
    let found = preflight::check(BackendKind::Kind, &probe).await.unwrap();
    assert!(found.docker.is_some());
    assert_eq!(found.tool("kind").unwrap(), bin.path().join("kind"));
    server.abort();
}

fn kube_refuses_to_run_without_an_explicit_context() {
    let err = backend::create(BackendKind::Kube, None).err().expect("refused");
    let msg = message(err);
    assert!(msg.contains("refusing to run without --context NAME"), "{msg}");
}

/// On a machine without kind or Docker (like the ones tutor is developed on), `up` is what the
/// user sees: one pre-flight error, nothing created. Where both exist it is ignored (`kind::cluster`
/// covers such a machine).
async fn this_machine_gets_a_clear_preflight_error() {
    let env = Probe::from_env();
    let has_kind = preflight::find_in_path("kind", env.path.as_deref()).is_some();
    let has_docker = preflight::connect_docker(env.docker_host.as_deref()).await.is_ok();
    let work = tempfile::tempdir().unwrap();
    let ctx = UpContext {
        workdir: work.path().to_path_buf(),
        run_name: "preflight".into(),
        keep: false,
        kubernetes: None,
        offline: Vec::new(),
        images: vec![],
    };
    // Missing tools and sockets are seen when the backend is built, a silent engine at `up`.
    let msg = match backend::create(BackendKind::Kind, None) {
        Err(e) => message(e),
        Ok(mut b) => {
            let e = b.up(&ctx).await.unwrap_err();
            b.down().await.unwrap();
            message(e)
        }
    };
    eprintln!("what a user sees here:\n{msg}");
    assert!(msg.starts_with("kind backend: pre-flight failed"), "{msg}");
    if !has_kind {
        assert!(msg.contains("`kind` is not on PATH"), "{msg}");
    }
    if !has_docker {
        assert!(msg.contains("Docker"), "{msg}");
    }
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0, "nothing may be created");
}
