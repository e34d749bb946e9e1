//! Ctrl-C, SIGTERM, SIGHUP and SIGQUIT: the running block is stopped, the rest skipped, reports
//! written, exit 130, no process left. SIGKILL: the next run removes the killed run's work
//! directory.

use std::time::{Duration, Instant};

use crate::prelude::{alive, fixture, read_pid, tutor};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

crate::tests![
    ctrl_c_stops_the_run_with_130,
    sigterm_stops_the_run_with_130,
    sighup_stops_the_run_with_130,
    sigquit_stops_the_run_with_130,
    the_next_run_removes_a_killed_runs_work_directory,
];

fn interrupt_with(signal: Signal) {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("w");
    let record = tmp.path().join("r.json");
    let mut child = tutor()
        .args(["run", fixture("long.md").to_str().unwrap(), "--workdir", work.to_str().unwrap()])
        .args(["--record", record.to_str().unwrap()])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pidfile = work.join("sleeper.pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
        assert!(Instant::now() < deadline, "the long block never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sleeper = read_pid(&pidfile);
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "tutor did not stop after {signal}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    assert!(!alive(sleeper), "sleep {sleeper} survived {signal}");
    let rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let steps = rec["tutorials"][0]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["blocks"][1]["status"], "error");
    assert_eq!(steps[0]["blocks"][1]["reason"], "interrupted");
    assert_eq!(steps[1]["blocks"][0]["reason"], "interrupted");
}

fn ctrl_c_stops_the_run_with_130() {
    interrupt_with(Signal::SIGINT);
}

fn sigterm_stops_the_run_with_130() {
    interrupt_with(Signal::SIGTERM);
}

fn sighup_stops_the_run_with_130() {
    interrupt_with(Signal::SIGHUP);
}

fn sigquit_stops_the_run_with_130() {
    interrupt_with(Signal::SIGQUIT);
}

/// Work directories `tutor-<stem>-*` in `tmp`.
fn workdirs(tmp: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tutor-long-"))
        .map(|e| e.path())
        .collect()
}

/// SIGKILL runs no handler: the killed run's temporary work directory stays until the next
/// `tutor run` sweeps it (the run recorded it under the runs folder).
fn the_next_run_removes_a_killed_runs_work_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let record = tmp.path().join("r.json");
    let mut child = tutor()
        .args(["run", fixture("long.md").to_str().unwrap(), "--record", record.to_str().unwrap()])
        .env("TMPDIR", tmp.path())
        .env("TUTOR_RUN_ROOT", &runs)
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pidfile = loop {
        if let Some(w) = workdirs(tmp.path()).first()
            && std::fs::read_to_string(w.join("sleeper.pid")).is_ok_and(|t| !t.trim().is_empty())
        {
            break w.join("sleeper.pid");
        }
        assert!(Instant::now() < deadline, "the long block never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let sleeper = read_pid(&pidfile);
    child.kill().unwrap();
    child.wait().unwrap();
    let left = workdirs(tmp.path());
    assert_eq!(left.len(), 1, "SIGKILL cannot clean up: the directory is still there");
    assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 1, "the work directory is recorded");
    // A later run (another tutorial, done at once) sweeps it.
    let quick = tmp.path().join("quick.md");
    std::fs::write(&quick, "---\nbackend: host\n---\n# Q\n\n## S\n\n```console\n$ echo hi\nhi\n```\n").unwrap();
    let out = tutor()
        .args(["run", quick.to_str().unwrap(), "--record", record.to_str().unwrap()])
        .env("TMPDIR", tmp.path())
        .env("TUTOR_RUN_ROOT", &runs)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let _ = kill(Pid::from_raw(sleeper), Signal::SIGKILL);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(workdirs(tmp.path()).is_empty(), "left: {:?}", workdirs(tmp.path()));
    assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 0, "records left");
}
