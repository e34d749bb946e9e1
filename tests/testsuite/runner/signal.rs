//! Ctrl-C and SIGTERM: the running block is stopped, the rest skipped, reports written, exit 130,
//! no process left.

use std::time::{Duration, Instant};

use crate::prelude::{alive, fixture, read_pid, tutor};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

crate::tests![ctrl_c_stops_the_run_with_130, sigterm_stops_the_run_with_130];

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
