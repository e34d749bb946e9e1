//! Killing `tutor run` of a lab tutorial at several points — SIGKILL, SIGHUP, SIGQUIT — then
//! running the next command (`tutor lab gc`): no process of the run, no work directory, no
//! registry entry and no namespace of its lab remain; SIGHUP and SIGQUIT end the run like
//! Ctrl-C (exit 130, run record written).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::lab::support::{TUTOR, fixtures, netns_in_use, tutor};

crate::tests![killed_runs_leave_nothing(Lab, K8s, Alone)];

#[derive(Debug, Clone, Copy)]
enum Point {
    /// While the lab is being brought up (its supervisor exists).
    Up,
    /// While a block runs on a node, after it started a `setsid` daemon.
    Block,
}

/// Processes whose command line contains `needle` (NUL-separated argv).
fn processes(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let zombie = stat.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
            (!zombie && String::from_utf8_lossy(&cmdline).contains(needle)).then_some(pid)
        })
        .collect()
}

/// Registry entries whose `lab.json` names `owner` as the run that owns the lab.
fn entries_owned_by(owner: u32) -> Vec<PathBuf> {
    std::fs::read_dir("/run/tutor/labs")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("lab.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|v| v["owner"].as_i64() == Some(owner as i64))
        })
        .map(|e| e.path())
        .collect()
}

fn netns_of(entry: &Path) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(entry.join("lab.json")).unwrap()).unwrap();
    v["netns_inodes"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap()).collect()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill_at(signal: Signal, point: Point) {
    let ctx = format!("{signal} at {point:?}");
    let tmp = tempfile::tempdir().unwrap();
    let mark = tmp.path().join("block-started");
    let record = tmp.path().join("record.json");
    let mut run = Command::new(TUTOR)
        .args(["run", "killpoints.md", "--record"])
        .arg(&record)
        .env("TMPDIR", tmp.path())
        .env("TUTOR_KILL_MARK", &mark)
        .env("NO_COLOR", "1")
        .current_dir(fixtures())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = run.id();
    let owner_arg = format!("--owner\0{pid}\0");
    let mut inodes = Vec::new();
    match point {
        Point::Up => wait_until(&format!("the supervisor ({ctx})"), Duration::from_secs(30), || {
            !processes(&owner_arg).is_empty()
        }),
        Point::Block => {
            wait_until(&format!("the block ({ctx})"), Duration::from_secs(60), || mark.exists());
            let entries = entries_owned_by(pid);
            assert_eq!(entries.len(), 1, "{ctx}: {entries:?}");
            inodes = netns_of(&entries[0]);
            assert!(!processes("sleep\x003113\0").is_empty(), "{ctx}: the daemon is not running");
        }
    }
    kill(Pid::from_raw(pid as i32), signal).unwrap();
    let mut status = None;
    wait_until(&format!("tutor to exit ({ctx})"), Duration::from_secs(30), || {
        status = run.try_wait().unwrap();
        status.is_some()
    });
    let status = status.unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(run.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    if signal != Signal::SIGKILL {
        assert_eq!(status.code(), Some(130), "{ctx}:\n{stdout}");
        assert!(stdout.contains("interrupted"), "{ctx}:\n{stdout}");
        let rec = std::fs::read_to_string(&record).unwrap_or_else(|e| panic!("{ctx}: no run record: {e}"));
        assert!(rec.contains("killpoints"), "{ctx}: {rec}");
    }
    // The next command.
    let gc = tutor(&["lab", "gc"], &fixtures()).ok();
    // The supervisor tears the lab down as soon as its owner is gone; give a loaded machine time.
    wait_until(&format!("the supervisor to go ({ctx})\n{gc}"), Duration::from_secs(15), || {
        processes(&owner_arg).is_empty()
    });
    wait_until(&format!("the lab's processes to go ({ctx})"), Duration::from_secs(15), || {
        processes("sleep\x003113\0").is_empty() && processes("sleep\x003114\0").is_empty()
    });
    wait_until(&format!("the lab's namespaces to go ({ctx})"), Duration::from_secs(15), || !netns_in_use(&inodes));
    assert!(entries_owned_by(pid).is_empty(), "{ctx}: registry entry left");
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tutor-"))
        .collect();
    assert!(left.is_empty(), "{ctx}: work directories left: {left:?}\n{gc}");
}

fn killed_runs_leave_nothing() {
    for point in [Point::Up, Point::Block] {
        for signal in [Signal::SIGKILL, Signal::SIGHUP, Signal::SIGQUIT] {
            kill_at(signal, point);
        }
    }
}
