//! One namespace set (network + mount + UTS) per lab target, owned by a thread of the lab's
//! supervisor process.
//!
//! The thread unshares its namespaces and stays parked on a job queue. Nothing is bind-mounted
//! under /run/netns: the namespaces live exactly as long as the supervisor's threads (and the
//! processes started inside them), so a killed supervisor cannot leave a namespace behind.
//! Other processes enter a target through `/proc/<pid>/task/<tid>/ns/*`; commands started *from*
//! the thread inherit its namespaces, which is how the supervisor configures them.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use super::LabError;

type Job = Box<dyn FnOnce() + Send>;

/// The lab host's directories that are its own (a private tmpfs each, see [`Mounts::private`]).
pub const HOST_PRIVATE: [&str; 2] = ["/tmp", "/run"];

/// Files bind-mounted over their namesakes inside the target's mount namespace.
#[derive(Debug, Clone, Default)]
pub struct Mounts {
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Directories that get a private, empty tmpfs (a pod's /run and /tmp).
    pub tmpfs: Vec<PathBuf>,
    /// A root filesystem of the target's own (pods of the real-API lab), see [`Rootfs`].
    pub rootfs: Option<Rootfs>,
}

/// Directories of a target that get a private, empty tmpfs over the machine's, whose originals
/// stay reachable so that paths under them can be bound back ([`Sharer`]): the lab host's /tmp
/// and /run. Made before [`Mounts::binds`] (their sources may be shared paths).
#[derive(Debug, Clone, Default)]
pub struct Private {
    pub dirs: Vec<PathBuf>,
    /// Paths under `dirs` bound back from the machine at once.
    pub share: Vec<PathBuf>,
}

/// A pod's root filesystem, as a container runtime gives it one: an overlay whose lower layer
/// is the node's root filesystem and whose upper layer is a tmpfs of the pod's own, so the pod
/// sees the node's programs and writes nowhere but in its own memory. The node's other mounts
/// (kernel filesystems, bind mounts) are carried over; `binds`, `tmpfs` and `volumes` are made
/// inside the new root. See docs/architecture.md, "Pod filesystems".
#[derive(Debug, Clone, Default)]
pub struct Rootfs {
    /// A directory of the agent's where the pod's tmpfs (upper layer, merged view) is mounted,
    /// in the pod's mount namespace only.
    pub dir: PathBuf,
    /// Directories of the node's that the pod sees as they are (the image programs).
    pub keep: Vec<PathBuf>,
    /// Symbolic links written into the pod's own layer (an image's files): link → target.
    pub links: Vec<(PathBuf, PathBuf)>,
    /// Volumes: a directory or file of the node's mounted at a path of the pod's.
    pub volumes: Vec<VolumeMount>,
}

/// One volume mount of a pod (`volumeMounts[]`, its source resolved on the node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
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
    covered: Arc<Vec<Covered>>,
}

/// A directory of the target's covered by a private tmpfs ([`Mounts::private`]), and a
/// descriptor of the machine's original it covers (held by the supervisor, so the original
/// stays reachable from inside the target's mount namespace).
struct Covered {
    dir: PathBuf,
    original: OwnedFd,
}

/// Binds machine paths back into a target's private directories, from any thread (see
/// [`NsThread::sharer`]).
#[derive(Clone)]
pub struct Sharer {
    jobs: mpsc::Sender<Job>,
    covered: Arc<Vec<Covered>>,
}

impl Sharer {
    /// Make the machine's `path` visible at the same path inside the target, when a private
    /// directory of the target covers it (a no-op otherwise, and when it is visible already).
    pub fn share(&self, path: &Path) -> Result<(), LabError> {
        if !self.covered.iter().any(|c| path.starts_with(&c.dir)) {
            return Ok(());
        }
        let (covered, path) = (self.covered.clone(), path.to_path_buf());
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(share_in(&covered, &path));
            }))
            .map_err(|_| LabError::NsThreadGone)?;
        rx.recv().map_err(|_| LabError::NsJobPanicked)?
    }
}

impl NsThread {
    /// Start the thread, unshare, set up mounts and hostname.
    pub fn new(label: &str, hostname: Option<&str>, mounts: Mounts) -> Result<NsThread, LabError> {
        NsThread::with_net(label, hostname, mounts, NetNs::New)
    }

    /// As `new`, choosing whether the network namespace is new or the caller's.
    pub fn with_net(label: &str, hostname: Option<&str>, mounts: Mounts, net: NetNs) -> Result<NsThread, LabError> {
        NsThread::start(label, hostname, mounts, net, Private::default())
    }

    /// As `new`, with directories of the target's own (the lab host's /tmp and /run).
    pub fn with_private(label: &str, mounts: Mounts, private: Private) -> Result<NsThread, LabError> {
        NsThread::start(label, None, mounts, NetNs::New, private)
    }

    fn start(
        label: &str,
        hostname: Option<&str>,
        mounts: Mounts,
        net: NetNs,
        private: Private,
    ) -> Result<NsThread, LabError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(i32, Vec<Covered>), LabError>>();
        let (jobs, rx) = mpsc::channel::<Job>();
        let hostname = hostname.map(str::to_string);
        std::thread::Builder::new()
            .name(format!("ns-{label}"))
            .spawn(move || {
                let setup = enter_new(hostname.as_deref(), &mounts, net, &private);
                let ok = setup.is_ok();
                let _ = ready_tx.send(setup.map(|covered| (nix::unistd::gettid().as_raw(), covered)));
                if !ok {
                    return;
                }
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .map_err(|source| LabError::Io { what: "starting a namespace thread".into(), source })?;
        let (tid, covered) = ready_rx
            .recv()
            .map_err(|_| LabError::NsThreadDied)?
            .map_err(|e| LabError::Namespaces { target: label.to_string(), source: Box::new(e) })?;
        Ok(NsThread { tid, jobs, covered: Arc::new(covered) })
    }

    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// What binds machine paths back into this target's private directories.
    pub fn sharer(&self) -> Sharer {
        Sharer { jobs: self.jobs.clone(), covered: self.covered.clone() }
    }

    /// Run `f` on the thread (inside the namespaces) and wait for its result.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R, LabError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| LabError::NsThreadGone)?;
        rx.recv().map_err(|_| LabError::NsJobPanicked)
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

fn enter_new(hostname: Option<&str>, mounts: &Mounts, net: NetNs, private: &Private) -> Result<Vec<Covered>, LabError> {
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
    if let Some(rootfs) = &mounts.rootfs {
        return enter_rootfs(hostname, mounts, rootfs, net).map(|()| vec![]);
    }
    let covered = cover(&private.dirs)?;
    for path in &private.share {
        share_in(&covered, path)?;
    }
    for (src, dst) in &mounts.binds {
        if !covered.is_empty() {
            // A destination reached through a symbolic link into a private directory (an
            // /etc/resolv.conf of systemd-resolved's) has no file there yet.
            ensure_mountpoint(&follow_links(dst), src.is_dir())?;
        }
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
    Ok(covered)
}

/// Cover each of `dirs` with a private tmpfs (the original's permissions), keeping a descriptor
/// of the original.
fn cover(dirs: &[PathBuf]) -> Result<Vec<Covered>, LabError> {
    use std::os::unix::fs::OpenOptionsExt;
    dirs.iter()
        .map(|dir| {
            let io = |source| LabError::Io { what: format!("opening {}", dir.display()), source };
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(dir)
                .map_err(io)?;
            let mode = file.metadata().map_err(io)?.mode() & 0o7777;
            let options = format!("mode={mode:o}");
            mount(
                Some("tmpfs"),
                dir.as_path(),
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(options.as_str()),
            )
            .map_err(|source| LabError::Sys {
                what: format!("mounting a private tmpfs on {}", dir.display()),
                source,
            })?;
            Ok(Covered { dir: dir.clone(), original: file.into() })
        })
        .collect()
}

/// On the target's thread: bind the machine's `path` (reached through the descriptor of the
/// private directory covering it) on the same path inside, unless it is there already.
fn share_in(covered: &[Covered], path: &Path) -> Result<(), LabError> {
    let Some(c) = covered.iter().find(|c| path.starts_with(&c.dir) && path != c.dir) else { return Ok(()) };
    let rel = path.strip_prefix(&c.dir).unwrap_or(path);
    if !rel.components().all(|p| matches!(p, Component::Normal(_))) {
        return Err(LabError::Input(format!("cannot share {}: not a normal absolute path", path.display())));
    }
    let source = PathBuf::from(format!("/proc/thread-self/fd/{}", c.original.as_raw_fd())).join(rel);
    let meta = std::fs::metadata(&source).map_err(|e| LabError::io(path, e))?;
    if std::fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino())) {
        return Ok(());
    }
    ensure_mountpoint(path, meta.is_dir())?;
    mount(Some(source.as_path()), path, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(
        |source| LabError::Sys { what: format!("binding the machine's {} into the target", path.display()), source },
    )
}

/// The rest of `enter_new` for a target with a root filesystem of its own (see [`Rootfs`]):
/// after the unshare, the overlay, `pivot_root` into it, the node's mounts carried over from
/// the old root, then the target's own mounts, and the old root detached.
fn enter_rootfs(hostname: Option<&str>, mounts: &Mounts, rootfs: &Rootfs, net: NetNs) -> Result<(), LabError> {
    let sys = |what: String| move |source| LabError::Sys { what, source };
    let io = |what: String| move |source| LabError::Io { what, source };
    // The node's own mounts, as this namespace sees them before anything changes.
    let inherited = top_level_mounts().map_err(io("reading /proc/self/mountinfo".into()))?;
    let dir = &rootfs.dir;
    std::fs::create_dir_all(dir).map_err(io(dir.display().to_string()))?;
    mount(Some("tmpfs"), dir.as_path(), Some("tmpfs"), MsFlags::MS_NODEV, Some("mode=0755"))
        .map_err(sys(format!("mounting the pod's tmpfs on {}", dir.display())))?;
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir(d).map_err(io(d.display().to_string()))?;
    }
    let options = format!("lowerdir=/,upperdir={},workdir={}", upper.display(), work.display());
    mount(Some("overlay"), merged.as_path(), Some("overlay"), MsFlags::empty(), Some(options.as_str()))
        .map_err(sys(format!("mounting the pod's root filesystem (overlay {options})")))?;
    let old = Path::new("/.oldroot");
    std::fs::create_dir(merged.join(".oldroot")).map_err(io("creating /.oldroot in the pod's root".into()))?;
    nix::unistd::pivot_root(merged.as_path(), &merged.join(".oldroot")).map_err(sys("pivot_root".into()))?;
    std::env::set_current_dir("/").map_err(io("chdir /".into()))?;
    let from_old = |p: &Path| old.join(p.strip_prefix("/").unwrap_or(p));
    let rbind = |src: &Path, dst: &Path| -> Result<(), LabError> {
        ensure_mountpoint(dst, src.is_dir())?;
        mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(sys(format!(
            "bind-mounting {} on {}",
            src.display(),
            dst.display()
        )))
    };
    // Kernel filesystems: the node's devices and processes; a sysfs of the pod's own network.
    rbind(&old.join("dev"), Path::new("/dev"))?;
    let _ = mount(Some("shm"), "/dev/shm", Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=1777"));
    rbind(&old.join("proc"), Path::new("/proc"))?;
    if net == NetNs::New {
        mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>)
            .map_err(sys("mounting sysfs".into()))?;
        let _ = mount(Some("bpffs"), "/sys/fs/bpf", Some("bpf"), MsFlags::empty(), None::<&str>);
    } else {
        rbind(&old.join("sys"), Path::new("/sys"))?;
    }
    // The node's other mounts (a CA bundle bound over the system one, other filesystems), but
    // not what the pod gets of its own.
    let own: Vec<&Path> = mounts.tmpfs.iter().map(PathBuf::as_path).chain([Path::new("/")]).collect();
    for m in &inherited {
        let skip = [Path::new("/proc"), Path::new("/sys"), Path::new("/dev")].iter().any(|k| m.starts_with(k))
            || own.contains(&m.as_path())
            || mounts.binds.iter().any(|(_, d)| d == m);
        if skip {
            continue;
        }
        if dir.starts_with(m) {
            // The filesystem that holds the pod's own directory: its files, but not its
            // submounts (the pod's root would show inside itself).
            let src = from_old(m);
            ensure_mountpoint(m, true)?;
            mount(Some(src.as_path()), m.as_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(sys(format!("bind-mounting {} on {}", src.display(), m.display())))?;
        } else {
            rbind(&from_old(m), m)?;
        }
    }
    for d in &mounts.tmpfs {
        ensure_mountpoint(d, true)?;
        mount(Some("tmpfs"), d.as_path(), Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=1777"))
            .map_err(sys(format!("mounting a tmpfs on {}", d.display())))?;
    }
    for k in rootfs.keep.iter().filter(|k| from_old(k).exists()) {
        rbind(&from_old(k), k)?;
    }
    for (src, dst) in &mounts.binds {
        rbind(&from_old(src), dst)?;
    }
    for (link, target) in &rootfs.links {
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent.display().to_string()))?;
        }
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(target, link).map_err(io(link.display().to_string()))?;
    }
    for v in &rootfs.volumes {
        rbind(&from_old(&v.source), &v.target)?;
        if v.read_only {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC;
            mount(None::<&str>, v.target.as_path(), None::<&str>, flags, None::<&str>)
                .map_err(sys(format!("making {} read-only", v.target.display())))?;
        }
    }
    umount2(old, MntFlags::MNT_DETACH).map_err(sys("detaching the old root".into()))?;
    let _ = std::fs::remove_dir(old);
    if let Some(h) = hostname {
        // SAFETY: pointer and length of a live byte slice.
        if unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) } != 0 {
            return Err(LabError::Io { what: "sethostname".into(), source: std::io::Error::last_os_error() });
        }
    }
    Ok(())
}

/// Make `path` something a mount can go on: the directory (or empty file) is created in the
/// new root when missing. Paths resolve inside the new root (its symbolic links included).
fn ensure_mountpoint(path: &Path, dir: bool) -> Result<(), LabError> {
    let io = |source| LabError::Io { what: format!("creating the mount point {}", path.display()), source };
    if path.exists() {
        return Ok(());
    }
    if dir {
        return std::fs::create_dir_all(path).map_err(io);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map(|_| ()).map_err(io)
}

/// Where `path` leads through symbolic links, when it is one (up to 8 levels; dangling allowed).
fn follow_links(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    for _ in 0..8 {
        let Ok(target) = std::fs::read_link(&path) else { break };
        path = path.parent().unwrap_or(Path::new("/")).join(target);
    }
    path
}

/// Mount points whose parent is the root mount, from `/proc/self/mountinfo` (their own
/// submounts come along with a recursive bind).
fn top_level_mounts() -> std::io::Result<Vec<PathBuf>> {
    Ok(top_level(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

fn top_level(text: &str) -> Vec<PathBuf> {
    let rows: Vec<(&str, &str, String)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (id, parent, _, _, point) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            Some((id, parent, unescape_mountinfo(point)))
        })
        .collect();
    // The root mount is the last one mounted on "/" (the one on top).
    let Some(root) = rows.iter().rev().find(|r| r.2 == "/").map(|r| r.0) else { return vec![] };
    let mut out: Vec<PathBuf> =
        rows.iter().filter(|r| r.1 == root && r.2 != "/").map(|r| PathBuf::from(&r.2)).collect();
    out.dedup();
    out
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// Where a lab node sees the bpf filesystem all the lab's nodes share (under its own
/// `/sys/fs/bpf`, so a host-network pod that mounts the node's `/sys/fs/bpf` sees it too).
pub const SHARED_BPFFS: &str = "/sys/fs/bpf/tutor-lab";

/// One bpf filesystem for all the nodes of a lab, as the nodes of a kind cluster share one
/// kernel. The bundled XDP load balancer pins the maps its instances share there (its
/// connection table: a reply leaving through another node than the balancing one is translated
/// back there). The filesystem is mounted in a thread's private mount namespace and cloned into
/// each node's (`open_tree` + `move_mount`): it is nowhere in the machine's mounts, and it ends,
/// with everything pinned in it, when the last node namespace goes.
pub struct SharedBpffs {
    thread: NsThread,
}

impl SharedBpffs {
    pub fn new(lab: &str) -> Result<SharedBpffs, LabError> {
        // A new network namespace comes with a bpffs of its own on /sys/fs/bpf (see `enter_new`).
        let thread = NsThread::new(&format!("{lab}-bpffs"), None, Mounts::default())?;
        let statfs = thread.run(|| nix::sys::statfs::statfs("/sys/fs/bpf").map(|s| s.filesystem_type()))?;
        if statfs.ok() != Some(nix::sys::statfs::BPF_FS_MAGIC) {
            return Err(LabError::Io {
                what: "mounting the lab's bpf filesystem".into(),
                source: std::io::Error::other("no bpf filesystem on /sys/fs/bpf"),
            });
        }
        Ok(SharedBpffs { thread })
    }

    /// Mount the shared filesystem on [`SHARED_BPFFS`] in `node`'s mount namespace.
    pub fn attach(&self, node: &NsThread) -> Result<(), LabError> {
        let clone = self.thread.run(|| open_tree(Path::new("/sys/fs/bpf")))??;
        node.run(move || {
            std::fs::create_dir_all(SHARED_BPFFS)
                .map_err(|source| LabError::Io { what: format!("creating {SHARED_BPFFS}"), source })?;
            move_mount(&clone, Path::new(SHARED_BPFFS))
        })?
    }
}

/// `open_tree(OPEN_TREE_CLONE)`: a detached copy of the mount at `path`.
fn open_tree(path: &Path) -> Result<OwnedFd, LabError> {
    use std::os::fd::FromRawFd;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in the path");
    // SAFETY: a valid C string; the returned descriptor is owned below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(LabError::Sys { what: format!("open_tree {}", path.display()), source: nix::errno::Errno::last() });
    }
    // SAFETY: a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `move_mount`: attach the detached mount `tree` on `target` (in the caller's namespace).
fn move_mount(tree: &OwnedFd, target: &Path) -> Result<(), LabError> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let empty = c"";
    let c = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()).expect("no NUL in the path");
    // SAFETY: valid descriptor and C strings for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r != 0 {
        return Err(LabError::Sys {
            what: format!("move_mount on {}", target.display()),
            source: nix::errno::Errno::last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_mounts_are_the_root_mounts_children() {
        let text = "\
22 1 254:0 / / rw - ext4 /dev/vda rw
23 22 0:5 / /dev rw - devtmpfs udev rw
24 23 0:6 / /dev/pts rw - devpts devpts rw
30 22 0:30 / /mnt/with\\040space rw - tmpfs tmpfs rw
31 22 254:0 /etc/lab/ca.crt /etc/ssl/certs/ca-certificates.crt rw - ext4 /dev/vda rw
";
        let got = top_level(text);
        let want: Vec<PathBuf> =
            ["/dev", "/mnt/with space", "/etc/ssl/certs/ca-certificates.crt"].iter().map(PathBuf::from).collect();
        assert_eq!(got, want);
    }
}
