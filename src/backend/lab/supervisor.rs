//! The lab's supervisor: the one process that owns every namespace of a lab (as threads, see
//! `sandbox`), answers the control socket (shims, `lab down`) and tears the lab down when told
//! to, or when its owner (the `tutor run` that started it) exits.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::LabError;
use super::config::Cluster;
use super::protocol::{self, Request, Response};
use super::registry;
use super::shims;
use super::state::Lab;
use crate::backend::cgroup::Cgroup;

pub struct Options {
    pub name: String,
    /// Tear down when this process exits.
    pub owner: Option<i32>,
    /// Create a cluster from this kind config right away (`tutor lab up --config`).
    pub config: Option<PathBuf>,
    /// The tutor binary (the shims link to it).
    pub exe: PathBuf,
}

/// Build the lab, call `ready` (with the error if building failed), then serve until `down`.
/// Returns only on failure to start.
pub fn serve(opts: Options, ready: impl FnOnce(Result<registry::LabInfo, &LabError>)) -> Result<(), LabError> {
    let lab = match build(&opts) {
        Ok(lab) => lab,
        Err(e) => {
            uncontain(&opts.name);
            // Only an entry this process claimed: a name clash must not remove the other lab's.
            registry::release_mine(&opts.name);
            ready(Err(&e));
            return Err(e);
        }
    };
    let socket = registry::socket(&opts.name);
    let listener = match UnixListener::bind(&socket) {
        Ok(l) => l,
        Err(source) => {
            let _ = std::fs::remove_dir_all(&lab.dir);
            let err = LabError::Io { what: format!("control socket {}", socket.display()), source };
            ready(Err(&err));
            return Err(err);
        }
    };
    let info = lab.info();
    ready(Ok(info));
    let sharer = lab.host.sharer();
    let lab = Arc::new(Mutex::new(lab));
    if let Some(owner) = opts.owner {
        let lab = lab.clone();
        std::thread::spawn(move || {
            wait_for_exit(owner);
            teardown(&lab.lock().unwrap_or_else(|e| e.into_inner()));
        });
    }
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let lab = lab.clone();
        let sharer = sharer.clone();
        std::thread::spawn(move || {
            let req = match protocol::read_request(&conn) {
                Ok(r) => r,
                Err(e) => {
                    protocol::write_response(
                        &conn,
                        &Response::Error { message: format!("bad request: {}", e.report()), usage: true },
                    );
                    return;
                }
            };
            if let Request::Down = req {
                let guard = lab.lock().unwrap_or_else(|e| e.into_inner());
                protocol::write_response(&conn, &Response::Done);
                drop(conn);
                teardown(&guard);
            }
            if let Request::Share { path } = &req {
                let resp = sharer.share(path).map_or_else(|e| Response::from_error(&e), |()| Response::Done);
                protocol::write_response(&conn, &resp);
                return;
            }
            let resp = handle(&lab, req);
            protocol::write_response(&conn, &resp);
        });
    }
    Ok(())
}

fn build(opts: &Options) -> Result<Lab, LabError> {
    let mut lab = Lab::new(&opts.name, opts.owner, &opts.exe)?;
    if let Some(cfg) = &opts.config {
        let cluster = Cluster::load(cfg)?;
        lab.create_cluster(cluster, None)?;
    }
    lab.publish()?;
    Ok(lab)
}

fn handle(lab: &Mutex<Lab>, req: Request) -> Response {
    let mut lab = lab.lock().unwrap_or_else(|e| e.into_inner());
    match req {
        Request::Info => Response::Info(lab.info()),
        Request::Down | Request::Share { .. } => Response::Done,
        Request::Serve { files } => {
            lab.outside.serve(files);
            Response::Done
        }
        Request::Shim { tool, args, cwd } => {
            let resp = shims::dispatch(&mut lab, &tool, &args, &cwd);
            let _ = lab.publish();
            resp
        }
    }
}

/// The cgroup this supervisor was in before it entered its lab's (set once, by [`contain`]).
static ORIGINAL_CGROUP: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Put this supervisor (and so every process it will start: node agents, the control plane,
/// commands run in targets) in lab `name`'s own cgroup (docs/architecture.md, "Containment by
/// cgroup"). Called right after the name is claimed, before anything is started: `gc` takes a
/// lab cgroup without a registry entry for an orphan. Where cgroup v2 is unavailable the lab
/// runs without (its processes are ended by namespace, as before; `tutor lab up` says so).
pub fn contain(name: &str) -> Result<(), LabError> {
    let Some(cg) = Cgroup::lab(name) else { return Ok(()) };
    let io = |what: &str, source| LabError::Io { what: format!("{what} {}", cg.path().display()), source };
    let original = Cgroup::current().ok_or_else(|| LabError::Io {
        what: "reading /proc/self/cgroup".into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    cg.create().map_err(|e| io("creating cgroup", e))?;
    let _ = ORIGINAL_CGROUP.set(original);
    cg.enter().map_err(|e| io("entering cgroup", e))
}

/// Leave lab `name`'s cgroup, kill everything still in it and remove it; how many processes
/// were killed.
fn uncontain(name: &str) -> usize {
    let (Some(cg), Some(original)) = (Cgroup::lab(name), ORIGINAL_CGROUP.get()) else { return 0 };
    if let Err(e) = cg.leave(original) {
        // Killing the cgroup would kill this process too: leave it to `stop`/`gc`.
        eprintln!("leaving cgroup {}: {e}", cg.path().display());
        return 0;
    }
    match cg.remove() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("removing cgroup {}: {e}", cg.path().display());
            0
        }
    }
}

/// Kill everything in the lab's cgroup (blocks' leftovers, daemons in namespaces the lab no
/// longer knows, node agents, the control plane) and whatever still runs inside the lab's
/// namespaces, remove the registry entry and exit: the namespaces die with this process's
/// threads.
fn teardown(lab: &Lab) -> ! {
    uncontain(&lab.name);
    kill_inside(&lab.netns_inodes());
    registry::remove_own(&lab.dir);
    std::process::exit(0)
}

/// SIGKILL every process (other than this one) whose network namespace is one of `inodes`;
/// how many there were.
pub fn kill_inside(inodes: &[u64]) -> usize {
    use std::os::unix::fs::MetadataExt;
    let me = std::process::id();
    let mut found = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == me {
            continue;
        }
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            && inodes.contains(&m.ino())
        {
            found += 1;
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
    }
    found
}

/// Block until process `pid` exits (pidfd + poll; no polling loop).
fn wait_for_exit(pid: i32) {
    // SAFETY: plain syscalls on integers we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return;
    }
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r > 0 || (r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted) {
            break;
        }
    }
    // SAFETY: closing the fd we opened.
    unsafe { libc::close(fd) };
}
