//! Pre-flight: everything the kind and kube backends need is checked before anything is
//! created, and every missing piece is reported at once with how to get it, because a user on a
//! fresh machine would otherwise fix one thing per run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;

use super::config::KubeconfigError;
use crate::backend::{BackendError, BackendKind};

/// Where the checks look: captured from the process environment by default, injectable so
/// tests can describe a machine without touching global state.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// `PATH` to search for the binaries.
    pub path: Option<OsString>,
    /// `DOCKER_HOST` (unset: the default socket).
    pub docker_host: Option<String>,
    /// `KUBECONFIG` (unset: `~/.kube/config`); the kube backend's contexts come from here.
    pub kubeconfig: Option<OsString>,
}

impl Probe {
    /// The process environment; PATH gets the tools tutor built appended
    /// ([`super::own_build::tool_dirs`]).
    pub fn from_env() -> Self {
        Probe {
            path: super::own_build::path_with_tools(std::env::var_os("PATH").as_deref()),
            docker_host: std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()),
            kubeconfig: std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()),
        }
    }

    /// The user's kubeconfig, merged from every `KUBECONFIG` file as kubectl does.
    pub fn load_kubeconfig(&self) -> Result<kube::config::Kubeconfig, KubeconfigError> {
        use kube::config::Kubeconfig;
        let paths: Vec<PathBuf> = match &self.kubeconfig {
            Some(list) => std::env::split_paths(list).filter(|p| !p.as_os_str().is_empty()).collect(),
            None => std::env::home_dir().map(|h| h.join(".kube").join("config")).into_iter().collect(),
        };
        if paths.is_empty() {
            return Err(KubeconfigError::Missing);
        }
        paths.iter().try_fold(Kubeconfig::default(), |merged, p| {
            let one = Kubeconfig::read_from(p).map_err(|source| KubeconfigError::Read { path: p.clone(), source })?;
            merged.merge(one).map_err(|source| KubeconfigError::Merge { path: p.clone(), source })
        })
    }
}

/// A command-line tool a backend drives, and how to get it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub install: &'static str,
}

pub const KIND: Tool = Tool {
    name: "kind",
    install: "https://kind.sigs.k8s.io/docs/user/quick-start/#installation \
              (e.g. `go install sigs.k8s.io/kind@latest`, the release binary in /usr/local/bin, or \
              `bash k8s/kind-node.sh` in tutor's repository, which tutor finds by itself)",
};
pub const KUBECTL: Tool = Tool { name: "kubectl", install: "https://kubernetes.io/docs/tasks/tools/#kubectl" };
/// kind drives Docker through its CLI, and tutorials use `docker exec` on nodes.
pub const DOCKER: Tool = Tool {
    name: "docker",
    install: "https://docs.docker.com/engine/install/ (the `docker` CLI comes with Docker Engine)",
};
pub const HELM: Tool = Tool {
    name: "helm",
    install: "https://helm.sh/docs/intro/install/ \
              (e.g. `curl -fsSL https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-3 | bash`)",
};

/// What a successful pre-flight found.
#[derive(Debug, Clone)]
pub struct Found {
    /// Absolute paths of the tools, by name.
    pub tools: Vec<(&'static str, PathBuf)>,
    /// A connected Docker client (kind backend only).
    pub docker: Option<Docker>,
}

impl Found {
    pub fn tool(&self, name: &str) -> Option<&Path> {
        self.tools.iter().find(|(n, _)| *n == name).map(|(_, p)| p.as_path())
    }
}

/// The tools each backend needs, and whether it needs a Docker engine.
pub fn requirements(kind: BackendKind) -> (&'static [Tool], bool) {
    match kind {
        BackendKind::Kind => (&[KIND, DOCKER, KUBECTL, HELM], true),
        _ => (&[KUBECTL, HELM], false),
    }
}

/// What the checks that need no network found.
struct Local {
    tools: Vec<(&'static str, PathBuf)>,
    problems: Vec<String>,
    /// The engine is needed and its socket looks usable: worth a ping.
    ping: bool,
}

/// Every problem that needs no network to see: missing tools, a Docker socket that does not
/// exist or that the user may not use.
fn local_problems(kind: BackendKind, probe: &Probe) -> Local {
    let (tools, needs_docker) = requirements(kind);
    let mut problems = Vec::new();
    let mut found = Vec::new();
    for tool in tools {
        match find_in_path(tool.name, probe.path.as_deref()) {
            Some(p) => found.push((tool.name, p)),
            None => problems.push(format!("`{}` is not on PATH: install it, see {}", tool.name, tool.install)),
        }
    }
    let mut ping = needs_docker;
    if needs_docker && let Err(p) = docker_socket(probe.docker_host.as_deref()) {
        problems.push(p.to_string());
        ping = false;
    }
    Local { tools: found, problems, ping }
}

fn failure(kind: BackendKind, problems: Vec<String>) -> BackendError {
    let mut message = String::from("this machine cannot run it yet (nothing was created):");
    for p in problems {
        message.push_str("\n  - ");
        message.push_str(&p);
    }
    BackendError::Preflight { backend: kind, message }
}

/// The checks that need no network, for when the backend is built (so that a machine without
/// kind or Docker is reported with the other input errors, before any tutorial starts).
pub fn check_local(kind: BackendKind, probe: &Probe) -> Result<(), BackendError> {
    let local = local_problems(kind, probe);
    if local.problems.is_empty() { Ok(()) } else { Err(failure(kind, local.problems)) }
}

/// Run every check for `kind`, the engine's answer included; on failure one
/// [`BackendError::Preflight`] lists all problems.
pub async fn check(kind: BackendKind, probe: &Probe) -> Result<Found, BackendError> {
    let Local { tools, mut problems, ping } = local_problems(kind, probe);
    let mut docker = None;
    if ping {
        match connect_docker(probe.docker_host.as_deref()).await {
            Ok(d) => docker = Some(d),
            Err(p) => problems.push(p.to_string()),
        }
    }
    if problems.is_empty() { Ok(Found { tools, docker }) } else { Err(failure(kind, problems)) }
}

/// The first executable `name` on `path`.
pub fn find_in_path(name: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

const INSTALL_DOCKER: &str = "install Docker Engine (https://docs.docker.com/engine/install/) and start it \
                              (`sudo systemctl enable --now docker`)";

/// How long the engine gets to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// What can be said about the engine without talking to it: a supported `DOCKER_HOST`, and for
/// a Unix socket that it exists and that this user may use it.
pub fn docker_socket(docker_host: Option<&str>) -> Result<(), DockerError> {
    let host = docker_host.unwrap_or(DEFAULT_DOCKER_HOST);
    if let Some(path) = host.strip_prefix("unix://") {
        if !Path::new(path).exists() {
            return Err(DockerError::NoSocket { path: path.into() });
        }
        if nix::unistd::access(path, nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK).is_err() {
            return Err(DockerError::NoPermission { host: host.into() });
        }
        Ok(())
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Ok(())
    } else {
        Err(DockerError::UnsupportedHost { host: host.into() })
    }
}

/// Connect to the engine `DOCKER_HOST` names (default: the local socket) and ping it; the error
/// says which of "not installed", "not running" and "no permission" it is.
pub async fn connect_docker(docker_host: Option<&str>) -> Result<Docker, DockerError> {
    docker_socket(docker_host)?;
    let host = docker_host.unwrap_or(DEFAULT_DOCKER_HOST);
    let docker = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, 120, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(host, 120, bollard::API_DEFAULT_VERSION)
    }
    .map_err(|source| DockerError::Connect { host: host.into(), source })?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(explain_docker_error(host, e)),
        Err(_) => Err(DockerError::Timeout { host: host.into() }),
    }
}

/// Why the Docker engine cannot be used, each with the advice that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("no Docker engine: the socket {path} does not exist: {INSTALL_DOCKER}")]
    NoSocket { path: String },
    #[error(
        "no permission to use the Docker engine at {host}: add your user to the `docker` group \
         (`sudo usermod -aG docker $USER`, then log in again) or run as root"
    )]
    NoPermission { host: String },
    #[error(
        "the Docker engine at {host} is not answering (connection refused): start it \
         (`sudo systemctl start docker`) or {INSTALL_DOCKER}"
    )]
    Refused { host: String },
    /// Any other failure to answer; the message names the I/O error underneath when there is one.
    #[error("the Docker engine at {host} is not answering ({}): {INSTALL_DOCKER}", innermost_io(source))]
    NotAnswering { host: String, source: bollard::errors::Error },
    #[error("DOCKER_HOST={host} is not supported by tutor (use unix:///path/to/docker.sock or tcp://host:port)")]
    UnsupportedHost { host: String },
    #[error("cannot use the Docker engine at {host}: {source}")]
    Connect { host: String, source: bollard::errors::Error },
    #[error(
        "the Docker engine at {host} did not answer within {}s: check that dockerd is healthy (`docker info`)",
        PING_TIMEOUT.as_secs()
    )]
    Timeout { host: String },
}

/// The I/O error under `err`, if any.
fn io_under(err: &bollard::errors::Error) -> Option<&std::io::Error> {
    if let bollard::errors::Error::IOError { err } = err {
        return Some(err);
    }
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = e.source();
    }
    None
}

/// The I/O error under `err` as text, or `err` itself when there is none.
fn innermost_io(err: &bollard::errors::Error) -> String {
    io_under(err).map_or_else(|| err.to_string(), ToString::to_string)
}

/// Turn a failed ping into advice, from the I/O error underneath if there is one.
pub fn explain_docker_error(host: &str, err: bollard::errors::Error) -> DockerError {
    let host = host.to_string();
    match io_under(&err).map(std::io::Error::kind) {
        Some(std::io::ErrorKind::PermissionDenied) => DockerError::NoPermission { host },
        Some(std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound) => DockerError::Refused { host },
        _ => DockerError::NotAnswering { host, source: err },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn exe(dir: &Path, name: &str, mode: u32) {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn finds_only_executables_in_path_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        exe(a.path(), "kind", 0o644);
        exe(b.path(), "kind", 0o755);
        exe(a.path(), "helm", 0o755);
        exe(b.path(), "helm", 0o755);
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(find_in_path("kind", Some(&path)).unwrap(), b.path().join("kind"));
        assert_eq!(find_in_path("helm", Some(&path)).unwrap(), a.path().join("helm"));
        assert_eq!(find_in_path("kubectl", Some(&path)), None);
        assert_eq!(find_in_path("kind", None), None);
    }

    #[test]
    fn permission_denied_is_explained() {
        let io = |kind| bollard::errors::Error::from(std::io::Error::from(kind));
        let e = explain_docker_error("unix:///var/run/docker.sock", io(std::io::ErrorKind::PermissionDenied));
        let msg = e.to_string();
        assert!(matches!(e, DockerError::NoPermission { .. }), "{e:?}");
        assert!(msg.contains("no permission") && msg.contains("docker` group"), "{msg}");
        let e = explain_docker_error("unix:///x", io(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(e, DockerError::Refused { .. }), "{e:?}");
        assert!(e.to_string().contains("not answering (connection refused)"));
        // Any other I/O error is named in the message and kept as the source.
        let e = explain_docker_error("unix:///x", io(std::io::ErrorKind::TimedOut));
        assert!(e.to_string().contains("is not answering (timed out)"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[tokio::test]
    async fn every_problem_is_listed_at_once() {
        let empty = tempfile::tempdir().unwrap();
        let probe = Probe {
            path: Some(empty.path().as_os_str().to_owned()),
            docker_host: Some(format!("unix://{}/docker.sock", empty.path().display())),
            kubeconfig: None,
        };
        let err = check(BackendKind::Kind, &probe).await.unwrap_err();
        assert!(err.is_usage());
        let msg = err.to_string();
        for needle in [
            "`kind` is not on PATH",
            "`docker` is not on PATH",
            "`kubectl` is not on PATH",
            "`helm` is not on PATH",
            "does not exist",
            "docs.docker.com",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
        }
        assert!(msg.starts_with("kind backend: pre-flight failed"), "{msg}");
    }

    #[test]
    fn local_checks_need_no_engine_but_see_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        for t in ["kind", "docker", "kubectl", "helm"] {
            exe(dir.path(), t, 0o755);
        }
        let sock = dir.path().join("docker.sock");
        let probe = |host: &Path| Probe {
            path: Some(dir.path().as_os_str().to_owned()),
            docker_host: Some(format!("unix://{}", host.display())),
            kubeconfig: None,
        };
        let err = check_local(BackendKind::Kind, &probe(&sock)).unwrap_err().to_string();
        assert!(err.contains("does not exist") && !err.contains("PATH"), "{err}");
        // A socket file nobody listens on passes the local checks; only `check` pings.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        check_local(BackendKind::Kind, &probe(&sock)).unwrap();
    }

    #[tokio::test]
    async fn kube_backend_needs_no_docker() {
        let dir = tempfile::tempdir().unwrap();
        exe(dir.path(), "kubectl", 0o755);
        exe(dir.path(), "helm", 0o755);
        let probe = Probe {
            path: Some(dir.path().as_os_str().to_owned()),
            docker_host: Some("unix:///nonexistent/docker.sock".into()),
            kubeconfig: None,
        };
        let found = check(BackendKind::Kube, &probe).await.unwrap();
        assert!(found.docker.is_none());
        assert_eq!(found.tool("kubectl").unwrap(), dir.path().join("kubectl"));
    }

    #[tokio::test]
    async fn unsupported_docker_host_scheme() {
        let e = connect_docker(Some("ssh://me@box")).await.unwrap_err();
        assert!(matches!(e, DockerError::UnsupportedHost { .. }), "{e:?}");
        assert!(e.to_string().contains("not supported"), "{e}");
    }
}
