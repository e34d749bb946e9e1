//! Containment by cgroup v2 (docs/architecture.md, "The lab", "Containment by cgroup"): each lab
//! and each host-backend run gets a cgroup of its own under `<cgroup2 mount>/tutor/`, every
//! process it starts goes in it, and ending it kills the whole cgroup (`cgroup.kill`) — a
//! process that left its session and its process group (`setsid -f`), double-forked, or sits in
//! namespaces the lab no longer knows cannot leave a cgroup, so it cannot outlive its lab.
//!
//! Layout: `tutor/labs/<lab name>` (the lab's supervisor and everything it or a block starts)
//! and `tutor/runs/<pid>-<start time>-<n>` (a host-backend run's shells). Only root creates them;
//! elsewhere the functions say why containment is unavailable and callers fall back to process
//! groups and namespaces.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where tutor mounts a private cgroup2 hierarchy when the machine mounts none.
const PRIVATE_MOUNT: &str = "/run/tutor/cgroup2";

/// How long ending a cgroup waits for its last process to be gone (a large process takes
/// milliseconds to exit after SIGKILL; a loaded machine more).
const KILL_WAIT: Duration = Duration::from_secs(10);

/// `<cgroup2 mount>/tutor`, created if needed, or why there is none (evaluated once).
pub fn base() -> Result<&'static Path, &'static str> {
    static BASE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BASE.get_or_init(find_base).as_ref().map(PathBuf::as_path).map_err(String::as_str)
}

fn find_base() -> Result<PathBuf, String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("cgroup containment needs root".into());
    }
    let mount = match cgroup2_mount() {
        Some(m) => m,
        None => {
            mount_private().map_err(|e| format!("no cgroup v2 hierarchy is mounted and mounting one failed: {e}"))?
        }
    };
    let base = mount.join("tutor");
    for sub in ["labs", "runs"] {
        let d = base.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| format!("cannot create cgroup {}: {e}", d.display()))?;
    }
    Ok(base)
}

/// The first cgroup2 mount of this mount namespace (`/proc/self/mountinfo`: the fifth field
/// is the mount point, the one after ` - ` the file system type).
fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        (right.split(' ').next()? == "cgroup2").then(|| PathBuf::from(unescape(point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = b[i + 1..i + 4].iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mount_private() -> io::Result<PathBuf> {
    let p = PathBuf::from(PRIVATE_MOUNT);
    std::fs::create_dir_all(&p)?;
    nix::mount::mount(Some("cgroup2"), &p, Some("cgroup2"), nix::mount::MsFlags::empty(), None::<&str>)
        .map_err(io::Error::from)?;
    Ok(p)
}

/// This process's cgroup v2, as a path below the hierarchy's root (`0::<path>`).
fn own_cgroup() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(PathBuf::from(rel.trim_start_matches('/')))
}

/// One cgroup of tutor's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// Lab `name`'s cgroup (it may not exist); `None` where containment is unavailable.
    pub fn lab(name: &str) -> Option<Cgroup> {
        Some(Cgroup { path: base().ok()?.join("labs").join(name) })
    }

    /// A new cgroup for a host-backend run of this process, or why there is none.
    pub fn new_run() -> Result<Cgroup, String> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let base = base()?;
        let pid = std::process::id();
        let start = crate::backend::lab::registry::start_time(pid as i32).unwrap_or_default();
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cg = Cgroup { path: base.join("runs").join(format!("{pid}-{start}-{n}")) };
        cg.create().map_err(|e| format!("cannot create cgroup {}: {e}", cg.path.display()))?;
        Ok(cg)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.path.join("cgroup.procs").exists()
    }

    /// Create it; one left by a dead owner under the same name is emptied and reused.
    pub fn create(&self) -> io::Result<()> {
        match std::fs::create_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => self.kill().map(|_| ()),
            Err(e) => Err(e),
        }
    }

    /// Move this whole process (every thread) into the cgroup.
    pub fn enter(&self) -> io::Result<()> {
        std::fs::write(self.path.join("cgroup.procs"), std::process::id().to_string())
    }

    /// Move this process back to the cgroup it was in before `enter` (`from`, as
    /// [`Cgroup::current`] returned it), so that killing this cgroup spares it.
    pub fn leave(&self, from: &Path) -> io::Result<()> {
        let root = base().ok().and_then(Path::parent).ok_or_else(|| io::Error::other("no cgroup v2 hierarchy"))?;
        std::fs::write(root.join(from).join("cgroup.procs"), std::process::id().to_string())
    }

    /// This process's cgroup, relative to the hierarchy's root (for [`Cgroup::leave`]).
    pub fn current() -> Option<PathBuf> {
        own_cgroup()
    }

    /// Start `cmd`'s process in this cgroup: the child writes itself into `cgroup.procs`
    /// between fork and exec (the descriptor is opened here, before the fork). A child that
    /// cannot join fails to start rather than run uncontained.
    pub fn place(&self, cmd: &mut std::process::Command) -> io::Result<()> {
        use std::os::unix::process::CommandExt;
        let fd: OwnedFd = std::fs::OpenOptions::new().write(true).open(self.path.join("cgroup.procs"))?.into();
        // SAFETY: write(2) on an open descriptor is async-signal-safe; nothing is allocated.
        unsafe {
            cmd.pre_exec(move || {
                // "0": the writing process itself.
                if libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) == 1 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
        Ok(())
    }

    /// Every process in the cgroup and its descendants.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        walk(&self.path, &mut |d| {
            if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        });
        pids
    }

    fn populated(&self) -> bool {
        match std::fs::read_to_string(self.path.join("cgroup.events")) {
            Ok(text) => text.lines().any(|l| l == "populated 1"),
            Err(_) => false,
        }
    }

    /// SIGKILL every process in the cgroup and its descendants and wait until they are gone;
    /// how many there were. `cgroup.kill` (Linux ≥ 5.14) kills them all at once, forks racing
    /// it included; older kernels get a SIGKILL per process until none is left.
    pub fn kill(&self) -> io::Result<usize> {
        let found = self.pids().len();
        if found == 0 && !self.populated() {
            return Ok(0);
        }
        let kill_file = self.path.join("cgroup.kill");
        let has_kill = kill_file.exists();
        let deadline = Instant::now() + KILL_WAIT;
        loop {
            if has_kill {
                std::fs::OpenOptions::new().write(true).open(&kill_file)?.write_all(b"1")?;
            } else {
                for pid in self.pids() {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
            let again = Instant::now() + Duration::from_millis(500);
            while self.populated() && Instant::now() < again.min(deadline) {
                std::thread::sleep(Duration::from_millis(1));
            }
            if !self.populated() {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("processes {:?} of cgroup {} outlived SIGKILL", self.pids(), self.path.display()),
                ));
            }
        }
    }

    /// Kill everything in it, then remove it (children first); how many processes were killed.
    /// A cgroup that does not exist is not an error.
    pub fn remove(&self) -> io::Result<usize> {
        if !self.path.exists() {
            return Ok(0);
        }
        let killed = self.kill()?;
        let mut dirs = Vec::new();
        walk(&self.path, &mut |d| dirs.push(d.to_path_buf()));
        // Deepest first.
        for d in dirs.iter().rev() {
            match std::fs::remove_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", d.display()))),
            }
        }
        Ok(killed)
    }
}

/// `dir` and every cgroup below it, parents before children.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    f(dir);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), f);
        }
    }
}

/// The cgroups of `kind` (`labs`, `runs`) by name.
pub fn list(kind: &str) -> Vec<(String, Cgroup)> {
    let Ok(base) = base() else { return Vec::new() };
    let mut out: Vec<(String, Cgroup)> = std::fs::read_dir(base.join(kind))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), Cgroup { path: e.path() }))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// How `gc` names a removed cgroup: `labs/x (2 processes killed)`.
pub fn removed(name: &str, killed: usize) -> String {
    format!("{name} ({killed} process{} killed)", if killed == 1 { "" } else { "es" })
}

/// Remove the cgroups of host-backend runs whose process is gone (a SIGKILLed `tutor run`),
/// killing the daemons its blocks left; the names removed.
pub fn sweep_runs() -> Vec<String> {
    let mut removed = Vec::new();
    for (name, cg) in list("runs") {
        let mut parts = name.splitn(3, '-');
        let (Some(pid), Some(start)) = (parts.next().and_then(|p| p.parse::<i32>().ok()), parts.next()) else {
            continue;
        };
        let alive = crate::backend::lab::registry::start_time(pid).map(|t| t.to_string()).as_deref() == Some(start);
        if !alive && let Ok(n) = cg.remove() {
            removed.push(self::removed(&format!("runs/{name}"), n));
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/mnt/x\"), r"/mnt/x\");
    }

    /// A process started in a cgroup that escapes its session is still killed with it.
    #[test]
    fn a_setsid_daemon_dies_with_its_cgroup() {
        if base().is_err() {
            eprintln!("skipped: {}", base().unwrap_err());
            return;
        }
        let cg = Cgroup { path: base().unwrap().join("runs").join(format!("unit-{}", std::process::id())) };
        cg.create().unwrap();
        // Removed even when an assertion fails.
        struct Cleanup(Cgroup);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = self.0.remove();
            }
        }
        let cg = Cleanup(cg);
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "setsid -f sleep 3017; setsid -f sh -c 'sleep 3018 & exec sleep 3019'"]);
        cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        cg.0.place(&mut cmd).unwrap();
        assert!(cmd.status().unwrap().success());
        let sleeping = || {
            cg.0.pids()
                .into_iter()
                .filter(|p| {
                    std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default().starts_with(b"sleep\x00301")
                })
                .collect::<Vec<_>>()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while sleeping().len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let pids = sleeping();
        assert_eq!(pids.len(), 3, "{:?}", cg.0.pids());
        assert_eq!(cg.0.remove().unwrap(), 3);
        assert!(!cg.0.path.exists());
        for p in pids {
            assert!(crate::backend::lab::registry::start_time(p).is_none(), "{p} survived");
        }
    }
}
