//! One namespace set (network + mount + UTS) per lab target, owned by a thread of the lab's
//! supervisor process.
//!
//! The thread unshares its namespaces and stays parked on a job queue. Nothing is bind-mounted
//! under /run/netns: the namespaces live exactly as long as the supervisor's threads (and the
//! processes started inside them), so a killed supervisor cannot leave a namespace behind.
//! Other processes enter a target through `/proc/<pid>/task/<tid>/ns/*`; commands started *from*
//! the thread inherit its namespaces, which is how the supervisor configures them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use super::LabError;

type Job = Box<dyn FnOnce() + Send>;

/// Files bind-mounted over their namesakes inside the target's mount namespace.
#[derive(Debug, Clone, Default)]
pub struct Mounts {
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Directories that get a private, empty tmpfs (a pod's /run and /tmp).
    pub tmpfs: Vec<PathBuf>,
}

/// Which namespaces a target thread gets of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetNs {
    /// A new network namespace (nodes, pods).
    New,
    /// The creating thread's (host-network pods: own mounts, the node's network).
    Shared,
}

pub struct NsThread {
    tid: i32,
    jobs: mpsc::Sender<Job>,
}

impl NsThread {
    /// Start the thread, unshare, set up mounts and hostname.
    pub fn new(label: &str, hostname: Option<&str>, mounts: Mounts) -> Result<NsThread, LabError> {
        NsThread::with_net(label, hostname, mounts, NetNs::New)
    }

    /// As `new`, choosing whether the network namespace is new or the caller's.
    pub fn with_net(label: &str, hostname: Option<&str>, mounts: Mounts, net: NetNs) -> Result<NsThread, LabError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<i32, LabError>>();
        let (jobs, rx) = mpsc::channel::<Job>();
        let hostname = hostname.map(str::to_string);
        std::thread::Builder::new()
            .name(format!("ns-{label}"))
            .spawn(move || {
                let setup = enter_new(hostname.as_deref(), &mounts, net);
                let ok = setup.is_ok();
                let _ = ready_tx.send(setup.map(|_| nix::unistd::gettid().as_raw()));
                if !ok {
                    return;
                }
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .map_err(|source| LabError::Io { what: "starting a namespace thread".into(), source })?;
        let tid = ready_rx
            .recv()
            .map_err(|_| LabError::System("namespace thread died".into()))?
            .map_err(|e| LabError::Namespaces { target: label.to_string(), source: Box::new(e) })?;
        Ok(NsThread { tid, jobs })
    }

    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// Run `f` on the thread (inside the namespaces) and wait for its result.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R, LabError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| LabError::System("namespace thread is gone".into()))?;
        rx.recv().map_err(|_| LabError::System("namespace job panicked".into()))
    }

    /// Run a command inside the namespaces, feeding `stdin`; error with its stderr on failure.
    pub fn command(&self, argv: &[&str], stdin: &str) -> Result<String, LabError> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let input = stdin.to_string();
        self.run(move || run_command(&argv, &input))?
    }

    /// `ip -batch -`: many changes for the price of one process.
    pub fn ip(&self, lines: &[String]) -> Result<(), LabError> {
        if lines.is_empty() {
            return Ok(());
        }
        self.command(&["ip", "-batch", "-"], &(lines.join("\n") + "\n")).map(|_| ())
    }

    /// Write a per-namespace sysctl (`net.ipv4.ip_forward` → /proc/sys/net/ipv4/ip_forward).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), LabError> {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        let value = value.to_string();
        self.run(move || {
            std::fs::write(&path, value).map_err(|source| LabError::Io { what: path.display().to_string(), source })
        })?
    }
}

pub fn run_command(argv: &[String], stdin: &str) -> Result<String, LabError> {
    use std::io::Write;
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Io { what: format!("cannot run {}", argv[0]), source })?;
    let mut pipe = child.stdin.take().expect("piped stdin");
    let _ = pipe.write_all(stdin.as_bytes());
    drop(pipe);
    let out = child.wait_with_output().map_err(|source| LabError::Io { what: argv[0].clone(), source })?;
    if !out.status.success() {
        return Err(LabError::CommandFailed {
            command: argv.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            input: (!stdin.is_empty()).then(|| stdin.to_string()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn enter_new(hostname: Option<&str>, mounts: &Mounts, net: NetNs) -> Result<(), LabError> {
    let sys = |what: String| move |source| LabError::Sys { what, source };
    let mut flags = CloneFlags::CLONE_NEWNS;
    if net == NetNs::New {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if hostname.is_some() {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    unshare(flags).map_err(sys("unshare".into()))?;
    // Private first, so that nothing done below propagates back to the machine's mounts.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(sys("making / private".into()))?;
    // A sysfs of this network namespace (what `ip netns exec` does), and a bpffs of our own so
    // that nothing the lab pins can land in the machine's /sys/fs/bpf.
    if net == NetNs::New {
        umount2("/sys", MntFlags::MNT_DETACH).map_err(sys("unmounting /sys".into()))?;
        mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>)
            .map_err(sys("mounting sysfs".into()))?;
        let _ = mount(Some("bpffs"), "/sys/fs/bpf", Some("bpf"), MsFlags::empty(), None::<&str>);
    }
    for (src, dst) in &mounts.binds {
        mount(Some(src.as_path()), dst.as_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(sys(format!("bind-mounting {} on {}", src.display(), dst.display())))?;
    }
    // After the binds: their sources may live under these directories.
    for dir in &mounts.tmpfs {
        mount(Some("tmpfs"), dir.as_path(), Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=1777"))
            .map_err(sys(format!("mounting a tmpfs on {}", dir.display())))?;
    }
    if let Some(h) = hostname {
        // SAFETY: pointer and length of a live byte slice.
        if unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) } != 0 {
            return Err(LabError::Io { what: "sethostname".into(), source: std::io::Error::last_os_error() });
        }
    }
    // `lo` comes up with each target's first `ip -batch` (one process fewer per namespace).
    Ok(())
}

/// The namespace files of a target thread, for `nsenter` from another process.
pub fn ns_paths(pid: i32, tid: i32) -> [(String, PathBuf); 3] {
    let base = PathBuf::from(format!("/proc/{pid}/task/{tid}/ns"));
    [("--net".into(), base.join("net")), ("--mount".into(), base.join("mnt")), ("--uts".into(), base.join("uts"))]
}

/// `nsenter` arguments that enter a target and start in `workdir`.
pub fn nsenter_args(pid: i32, tid: i32, workdir: &Path) -> Vec<String> {
    let mut args: Vec<String> = ns_paths(pid, tid).iter().map(|(flag, p)| format!("{flag}={}", p.display())).collect();
    args.push(format!("--wd={}", workdir.display()));
    args.push("--".into());
    args
}
