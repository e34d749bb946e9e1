//! Running a local process for one block: its own process group (so a timeout or Ctrl-C kills
//! every child, including `sleep 1000 &`), stdout and stderr merged in one pipe (the order a
//! terminal shows), and a registry of live groups that the runner's signal handler empties.
//!
//! Host and lab backends both run blocks as local processes (the lab's only differ by entering
//! namespaces first), so they share this.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

use super::{BackendError, BgTask, Observation};

/// How long a process group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_millis(300);

fn registry() -> &'static Mutex<HashSet<i32>> {
    static LIVE: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Kill every process group started by this module that is still alive. Called on Ctrl-C and
/// SIGTERM, and at the end of a run as a last safety net.
pub fn kill_all() {
    let groups: Vec<i32> = registry().lock().unwrap().drain().collect();
    for pgid in &groups {
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGTERM);
    }
    if !groups.is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pgid in groups {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// Record a process group that [`kill_all`] must end (a group started elsewhere, e.g. a kernel).
pub fn register(pgid: i32) {
    registry().lock().unwrap().insert(pgid);
}

/// Forget a process group that has ended.
pub fn unregister(pgid: i32) {
    registry().lock().unwrap().remove(&pgid);
}

/// Stop a process group: SIGTERM, a grace period, then SIGKILL.
pub async fn stop_group(pgid: i32) {
    let pid = Pid::from_raw(pgid);
    if killpg(pid, Signal::SIGTERM).is_err() {
        registry().lock().unwrap().remove(&pgid);
        return;
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        // Signal 0 probes whether any member of the group is left.
        if killpg(pid, None).is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = killpg(pid, Signal::SIGKILL);
    registry().lock().unwrap().remove(&pgid);
}

fn io_err(context: &str) -> impl FnOnce(std::io::Error) -> BackendError + '_ {
    move |source| BackendError::Io { context: context.to_string(), source }
}

/// Prepare `cmd` the way every block process is started.
fn prepare(cmd: &mut Command) {
    cmd.process_group(0).stdin(std::process::Stdio::null()).kill_on_drop(false);
}

/// Run `cmd` to completion or until `timeout`; whatever it left running in its process group is
/// stopped when it exits, so a block never leaks a process.
pub async fn run(mut cmd: Command, timeout: Duration) -> Result<Observation, BackendError> {
    prepare(&mut cmd);
    let (mut reader, writer) = std::io::pipe().map_err(io_err("creating a pipe"))?;
    cmd.stdout(writer.try_clone().map_err(io_err("creating a pipe"))?);
    cmd.stderr(writer);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(io_err("starting the block's shell"))?;
    // Our copies of the write end went into `cmd`; drop it so EOF can arrive.
    drop(cmd);
    let pgid = child.id().map(|p| p as i32).unwrap_or_default();
    registry().lock().unwrap().insert(pgid);

    let read = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf);
        buf
    });

    let (exit, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => {
            let status = status.map_err(io_err("waiting for the block"))?;
            (status.code(), false)
        }
        Err(_) => (None, true),
    };
    // Background children of a finished block, or the whole block after a timeout.
    stop_group(pgid).await;
    if timed_out {
        let _ = child.wait().await;
    }
    let bytes = read.await.unwrap_or_default();
    Ok(Observation { output: String::from_utf8_lossy(&bytes).into_owned(), exit, timed_out, duration: start.elapsed() })
}

/// A `bg` block: runs until stopped; output goes to a temporary file so that a chatty server
/// can never block on a full pipe.
pub struct LocalBg {
    child: tokio::process::Child,
    pgid: i32,
    log: tempfile::NamedTempFile,
    start: Instant,
}

/// Start `cmd` in the background.
pub fn spawn(mut cmd: Command) -> Result<Box<dyn BgTask>, BackendError> {
    prepare(&mut cmd);
    let log = tempfile::NamedTempFile::new().map_err(io_err("creating a log file"))?;
    let out = log.reopen().map_err(io_err("opening the log file"))?;
    let err = out.try_clone().map_err(io_err("opening the log file"))?;
    cmd.stdout(out).stderr(err);
    let child = cmd.spawn().map_err(io_err("starting a background block"))?;
    let pgid = child.id().map(|p| p as i32).unwrap_or_default();
    registry().lock().unwrap().insert(pgid);
    Ok(Box::new(LocalBg { child, pgid, log, start: Instant::now() }))
}

#[async_trait]
impl BgTask for LocalBg {
    async fn stop(mut self: Box<Self>) -> Observation {
        let exited = self.child.try_wait().ok().flatten();
        stop_group(self.pgid).await;
        let status = match exited {
            Some(s) => Some(s),
            None => self.child.wait().await.ok(),
        };
        let mut output = String::new();
        let _ = std::fs::File::open(self.log.path()).and_then(|mut f| f.read_to_string(&mut output));
        Observation { output, exit: status.and_then(|s| s.code()), timed_out: false, duration: self.start.elapsed() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alive and not a zombie (a killed orphan may wait a while for init to reap it).
    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit(')').next().map(|r| !r.trim_start().starts_with('Z')).unwrap_or(false))
            .unwrap_or(false)
    }

    fn bash(script: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg("-c").arg(script);
        c
    }

    #[tokio::test]
    async fn merges_output_and_reports_exit() {
        let o = run(bash("echo out; echo err >&2; exit 3"), Duration::from_secs(10)).await.unwrap();
        assert_eq!(o.output, "out\nerr\n");
        assert_eq!(o.exit, Some(3));
        assert!(!o.timed_out);
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let marker = tempfile::NamedTempFile::new().unwrap();
        let path = marker.path().display().to_string();
        // The background child writes its pid, then the block hangs.
        let script = format!("sleep 1000 & echo $! > {path}; wait");
        let o = run(bash(&script), Duration::from_millis(300)).await.unwrap();
        assert!(o.timed_out);
        assert_eq!(o.exit, None);
        let pid: i32 = std::fs::read_to_string(&path).unwrap().trim().parse().unwrap();
        assert!(!alive(pid), "sleep {pid} survived");
    }

    #[tokio::test]
    async fn leftover_children_of_a_finished_block_are_stopped() {
        let o = run(bash("sleep 1000 & echo $!"), Duration::from_secs(10)).await.unwrap();
        let pid: i32 = o.output.trim().parse().unwrap();
        assert_eq!(o.exit, Some(0));
        assert!(!alive(pid), "sleep {pid} survived");
    }

    #[tokio::test]
    async fn background_task_is_stopped_with_its_output() {
        let bg = spawn(bash("echo started; exec sleep 1000")).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let o = bg.stop().await;
        assert_eq!(o.output, "started\n");
        assert_eq!(o.exit, None);
    }
}
