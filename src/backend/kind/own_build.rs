//! What `k8s/kind-node.sh` builds for the kind backend (kind, the node image
//! `tutor/kind-node:<pin>`, the runc wrapper) and the Docker engine tutor may start: where a
//! machine without kind, kubectl, helm, Docker's daemon or a container registry gets them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::backend::lab::upstream;

/// The environment variable that lets tutor start Docker's daemon when none answers.
pub const START_DOCKERD_VAR: &str = "TUTOR_START_DOCKERD";
/// The environment variable naming the node image (empty: kind's default image).
pub const IMAGE_VAR: &str = "TUTOR_KIND_IMAGE";
/// The default socket, the only engine tutor starts.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// How long a started dockerd gets to answer.
const DOCKERD_WAIT: Duration = Duration::from_secs(60);

/// `<k8s cache>/<pin>/kind`: where `k8s/kind-node.sh` puts kind (`bin/kind`), the node's
/// programs and the runc wrapper, beside the lab's `bin/`.
pub fn kind_dir() -> PathBuf {
    let lab = upstream::bin_dir();
    lab.parent().map_or_else(|| lab.join("kind"), |p| p.join("kind"))
}

/// The node image the script builds for the pinned Kubernetes.
pub fn node_image() -> String {
    format!("tutor/kind-node:{}", upstream::kubernetes_version())
}

/// Directories of tools tutor built that exist here, searched after the user's PATH: kind
/// (`kind/bin`), kubectl and helm (the lab's `bin`).
pub fn tool_dirs() -> Vec<PathBuf> {
    [kind_dir().join("bin"), upstream::bin_dir()].into_iter().filter(|d| d.is_dir()).collect()
}

/// `path` with [`tool_dirs`] appended (the user's own tools keep precedence).
pub fn path_with_tools(path: Option<&std::ffi::OsStr>) -> Option<std::ffi::OsString> {
    let mut dirs: Vec<PathBuf> = path.map(|p| std::env::split_paths(p).collect()).unwrap_or_default();
    for d in tool_dirs() {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    if dirs.is_empty() { path.map(ToOwned::to_owned) } else { std::env::join_paths(dirs).ok() }
}

/// Whether the user lets tutor start dockerd (`TUTOR_START_DOCKERD=1`; CI sets it).
pub fn start_allowed() -> bool {
    std::env::var(START_DOCKERD_VAR).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

/// Why tutor could not start dockerd.
#[derive(Debug, thiserror::Error)]
pub enum DockerdError {
    #[error(
        "{START_DOCKERD_VAR} is set but `dockerd` is not on PATH: install Debian's docker.io (`apt-get install docker.io`)"
    )]
    Missing,
    #[error("starting {dockerd}: {source}")]
    Spawn { dockerd: String, source: std::io::Error },
    #[error("dockerd (pid {pid}) did not answer on {DEFAULT_SOCKET} within {}s; its log: {log}", DOCKERD_WAIT.as_secs())]
    NoAnswer { pid: u32, log: String },
}

fn answers(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

/// Start Docker's daemon when the user allows it, the default socket is the one in use
/// (`docker_host` unset) and nothing answers there. It keeps running after tutor exits (the
/// next runs use it); its log is `<tmp>/tutor-dockerd.log`. On a host whose capability bounding
/// set lacks capabilities that `--privileged` asks for, the runc wrapper the script installs
/// (`kind/bin/tutor-runc`) becomes the default runtime. Returns the new daemon's pid.
pub fn ensure_dockerd(docker_host: Option<&str>, path: Option<&std::ffi::OsStr>) -> Result<Option<u32>, DockerdError> {
    let socket = Path::new(DEFAULT_SOCKET);
    if docker_host.is_some_and(|h| h != format!("unix://{DEFAULT_SOCKET}")) || !start_allowed() || answers(socket) {
        return Ok(None);
    }
    let mut search = path.map(ToOwned::to_owned).unwrap_or_default();
    search.push(":/usr/sbin:/usr/bin");
    let dockerd = super::preflight::find_in_path("dockerd", Some(&search)).ok_or(DockerdError::Missing)?;
    let log_path = std::env::temp_dir().join("tutor-dockerd.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| DockerdError::Spawn { dockerd: log_path.display().to_string(), source })?;
    let mut cmd = std::process::Command::new(&dockerd);
    let runc = kind_dir().join("bin").join("tutor-runc");
    if runc.is_file() {
        cmd.arg("--add-runtime").arg(format!("tutor-runc={}", runc.display()));
        cmd.args(["--default-runtime", "tutor-runc"]);
    }
    let err =
        log.try_clone().map_err(|source| DockerdError::Spawn { dockerd: dockerd.display().to_string(), source })?;
    cmd.stdin(std::process::Stdio::null()).stdout(log).stderr(err);
    // Its own session: not killed with the terminal or the run's process group.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().map_err(|source| DockerdError::Spawn { dockerd: dockerd.display().to_string(), source })?;
    let pid = child.id();
    let start = Instant::now();
    while start.elapsed() < DOCKERD_WAIT {
        if answers(socket) {
            return Ok(Some(pid));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(DockerdError::NoAnswer { pid, log: log_path.display().to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_image_is_named_after_the_pin() {
        assert_eq!(node_image(), format!("tutor/kind-node:{}", upstream::kubernetes_version()));
        assert!(node_image().starts_with("tutor/kind-node:v1."));
    }

    #[test]
    fn tool_dirs_come_after_the_users_path() {
        let user = std::ffi::OsString::from("/opt/mine:/usr/bin");
        let joined = path_with_tools(Some(&user)).unwrap();
        let dirs: Vec<PathBuf> = std::env::split_paths(&joined).collect();
        assert_eq!(dirs[..2], [PathBuf::from("/opt/mine"), PathBuf::from("/usr/bin")]);
        assert_eq!(dirs[2..], tool_dirs()[..]);
    }

    #[test]
    fn another_docker_host_is_never_started() {
        // Whatever the environment allows, a DOCKER_HOST elsewhere is the user's engine.
        assert!(ensure_dockerd(Some("tcp://127.0.0.1:1"), None).unwrap().is_none());
    }
}
