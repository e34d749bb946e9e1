//! The per-run `bin/` directory put first on PATH in host blocks: the `kind` wrapper (kind
//! backend) or refusal (kube backend), and `tutor-ready`.

use std::path::{Path, PathBuf};

use super::remote::sh_quote;
use crate::backend::BackendError;

const KIND_WRAPPER: &str = include_str!("assets/kind-wrapper.sh");
const KIND_REFUSE: &str = include_str!("assets/kind-refuse.sh");
const TUTOR_READY: &str = include_str!("assets/tutor-ready.sh");

/// What the `kind` command in host blocks does.
pub enum KindShim<'a> {
    /// Forward to the real kind, on the run's cluster; `state` receives what the tutorial asked;
    /// `image` is the node image `create cluster` gets when the tutorial names none.
    Wrap { real: &'a Path, cluster: &'a str, state: &'a Path, image: Option<&'a str> },
    /// Refuse (kube backend).
    Refuse,
}

/// Write an executable script. The file that gets executed is written by `install(1)`, not by
/// this process: a child forked by another thread here at the wrong moment would inherit a
/// write descriptor to it, and executing it would fail with "Text file busy" until that child
/// execs.
pub(crate) fn write_exe(path: &Path, text: &str) -> Result<(), BackendError> {
    let io = |source| BackendError::Io { context: format!("writing {}", path.display()), source };
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    std::fs::write(&part, text).map_err(io)?;
    let status = std::process::Command::new("install").arg("-m").arg("0755").arg(&part).arg(path).status();
    let _ = std::fs::remove_file(&part);
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(io(std::io::Error::other(format!("install(1) exited with {s}")))),
        Err(e) => Err(io(e)),
    }
}

/// Create `dir` with the shims; returns it.
pub fn install(dir: &Path, kind: KindShim<'_>) -> Result<PathBuf, BackendError> {
    std::fs::create_dir_all(dir)
        .map_err(|source| BackendError::Io { context: format!("creating {}", dir.display()), source })?;
    let kind_text = match kind {
        KindShim::Wrap { real, cluster, state, image } => KIND_WRAPPER
            .replace("@REAL_KIND@", &sh_quote(&real.display().to_string()))
            .replace("@IMAGE@", &sh_quote(image.unwrap_or("")))
            .replace("@CLUSTER@", &sh_quote(cluster))
            .replace("@STATE_DIR@", &sh_quote(&state.display().to_string())),
        KindShim::Refuse => KIND_REFUSE.to_string(),
    };
    write_exe(&dir.join("kind"), &kind_text)?;
    write_exe(&dir.join("tutor-ready"), TUTOR_READY)?;
    Ok(dir.to_path_buf())
}

/// What the tutorial's `kind create cluster` asked for, as the wrapper recorded it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Requested {
    /// `--name` given by the tutorial.
    pub name: Option<String>,
    /// Absolute path of `--config`.
    pub config: Option<PathBuf>,
}

pub fn requested(state: &Path) -> Requested {
    let read =
        |f: &str| std::fs::read_to_string(state.join(f)).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    Requested { name: read("requested-name"), config: read("config-path").map(PathBuf::from) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    struct Setup {
        _dir: tempfile::TempDir,
        bin: PathBuf,
        state: PathBuf,
        log: PathBuf,
        cwd: PathBuf,
    }

    /// A wrapper in front of a fake real `kind` that logs its argv, one call per line.
    fn setup() -> Setup {
        setup_with(None)
    }

    fn setup_with(image: Option<&str>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real-kind");
        let log = dir.path().join("calls.log");
        write_exe(&real, &format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display())).unwrap();
        let state = dir.path().join("state");
        let bin =
            install(&dir.path().join("bin"), KindShim::Wrap { real: &real, cluster: "tutor-r1", state: &state, image })
                .unwrap();
        let cwd = dir.path().join("work");
        std::fs::create_dir_all(&cwd).unwrap();
        Setup { bin, state, log, cwd, _dir: dir }
    }

    fn kind(s: &Setup, args: &[&str]) -> std::process::Output {
        Command::new(s.bin.join("kind")).args(args).current_dir(&s.cwd).output().unwrap()
    }

    fn calls(s: &Setup) -> Vec<String> {
        std::fs::read_to_string(&s.log).unwrap_or_default().lines().map(String::from).collect()
    }

    #[test]
    fn create_uses_the_runs_cluster_and_records_the_request() {
        let s = setup();
        assert!(kind(&s, &["create", "cluster", "--config", "kind-config.yaml"]).status.success());
        assert_eq!(calls(&s), ["create cluster --config kind-config.yaml --name tutor-r1"]);
        assert_eq!(requested(&s.state), Requested { name: None, config: Some(s.cwd.join("kind-config.yaml")) });

        assert!(kind(&s, &["create", "cluster", "--name=demo", "--config=c.yaml", "--wait", "60s"]).status.success());
        assert_eq!(calls(&s)[1], "create cluster --config=c.yaml --wait 60s --name tutor-r1");
        assert_eq!(requested(&s.state), Requested { name: Some("demo".into()), config: Some(s.cwd.join("c.yaml")) });
    }

    #[test]
    fn create_gets_the_chosen_node_image_unless_the_tutorial_names_one() {
        let s = setup_with(Some("tutor/kind-node:v1.33.1"));
        assert!(kind(&s, &["create", "cluster"]).status.success());
        assert!(kind(&s, &["create", "cluster", "--image=kindest/node:v1.30.0"]).status.success());
        assert!(kind(&s, &["get", "nodes"]).status.success());
        assert_eq!(
            calls(&s),
            [
                "create cluster --image tutor/kind-node:v1.33.1 --name tutor-r1",
                "create cluster --image=kindest/node:v1.30.0 --name tutor-r1",
                "get nodes --name tutor-r1"
            ]
        );
    }

    #[test]
    fn other_cluster_commands_are_redirected() {
        let s = setup();
        for args in [
            &["delete", "cluster"][..],
            &["delete", "cluster", "--name", "kind"],
            &["get", "nodes"],
            &["export", "logs", "/tmp/x"],
            &["load", "docker-image", "img:1"],
        ] {
            assert!(kind(&s, args).status.success());
        }
        kind(&s, &["delete", "clusters", "--all"]);
        kind(&s, &["get", "clusters"]);
        kind(&s, &["version"]);
        assert_eq!(
            calls(&s),
            [
                "delete cluster --name tutor-r1",
                "delete cluster --name tutor-r1",
                "get nodes --name tutor-r1",
                "export logs /tmp/x --name tutor-r1",
                "load docker-image img:1 --name tutor-r1",
                "delete cluster --name tutor-r1",
                "get clusters",
                "version",
            ]
        );
    }

    #[test]
    fn kube_backend_refuses_kind() {
        let dir = tempfile::tempdir().unwrap();
        let bin = install(dir.path(), KindShim::Refuse).unwrap();
        let out = Command::new(bin.join("kind")).args(["create", "cluster"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("backend=kind"));
    }

    /// tutor-ready against a fake kubectl that logs its calls and answers like a healthy cluster.
    #[test]
    fn tutor_ready_drives_kubectl() {
        let dir = tempfile::tempdir().unwrap();
        let bin = install(&dir.path().join("bin"), KindShim::Refuse).unwrap();
        let log = dir.path().join("kubectl.log");
        write_exe(
            &bin.join("kubectl"),
            &format!(
                "#!/bin/sh\necho \"$*\" >> {}\ncase \"$*\" in *readyz*) echo ok;; \"get pods\"*) echo pod/cilium-x;; esac\n",
                log.display()
            ),
        )
        .unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let run = |args: &[&str]| Command::new(bin.join("tutor-ready")).args(args).env("PATH", &path).output().unwrap();
        let out = run(&["pods", "kube-system", "k8s-app=cilium"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ready: pods in kube-system (k8s-app=cilium)\n");
        let out = run(&["apiserver"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ready: apiserver\n");
        let out = run(&["rollout", "kube-system", "deployment/coredns"]);
        assert!(out.status.success());
        let calls = std::fs::read_to_string(&log).unwrap();
        assert!(calls.contains("get pods -n kube-system -l k8s-app=cilium -o name"), "{calls}");
        assert!(
            calls.contains("wait --for=condition=Ready pods -n kube-system -l k8s-app=cilium --timeout="),
            "{calls}"
        );
        assert!(calls.contains("rollout status -n kube-system deployment/coredns --timeout="), "{calls}");
        let out = run(&["bogus"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("tutor-ready pods NAMESPACE"));
    }

    #[test]
    fn tutor_ready_fails_with_kubectls_words() {
        let dir = tempfile::tempdir().unwrap();
        let bin = install(dir.path(), KindShim::Refuse).unwrap();
        write_exe(
            &bin.join("kubectl"),
            "#!/bin/sh\necho 'error: timed out waiting for the condition on nodes/x' >&2; exit 1\n",
        )
        .unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let out = Command::new(bin.join("tutor-ready"))
            .arg("nodes")
            .env("PATH", &path)
            .env("TUTOR_READY_TIMEOUT", "2")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("nodes not ready after 2s") && err.contains("timed out waiting"), "{err}");
    }
}
