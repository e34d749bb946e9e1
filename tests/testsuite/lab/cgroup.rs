//! Each lab in its own cgroup v2 (docs/architecture.md, "Containment by cgroup"): a process a
//! block starts and that leaves everything the lab knows — its session (`setsid`), its network
//! namespace (`unshare -n`), a pod or a cluster deleted since — still ends with the lab, on
//! `lab down` and on `lab gc` after a SIGKILLed supervisor.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::lab::support::{Lab, tutor};
use crate::prelude::alive;
use tutor::backend::cgroup::Cgroup;

crate::tests![
    escaped_processes_end_with_the_lab(Lab, K8s, Cgroup2),
    gc_ends_the_cgroup_of_a_killed_supervisor(Lab, K8s, Cgroup2, Alone),
    daemons_started_by_blocks_neither_hang_nor_outlive_the_run(Lab, K8s, Cgroup2)
];

fn cgroup_of(lab: &Lab) -> PathBuf {
    Cgroup::lab(&lab.name).expect("cgroup v2").path().to_path_buf()
}

/// Pids of the processes of the cgroup at `dir` whose argv is `sleep <arg>`.
fn sleeps_in(dir: &std::path::Path, args: &[&str]) -> Vec<i32> {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    procs
        .lines()
        .filter_map(|l| l.parse::<i32>().ok())
        .filter(|p| {
            let argv = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            args.iter().any(|a| argv == format!("sleep\0{a}\0").as_bytes())
        })
        .collect()
}

fn wait_gone(pids: &[i32], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) {
        assert!(
            Instant::now() < deadline,
            "{what}: {:?} still alive",
            pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn escaped_processes_end_with_the_lab() {
    let lab = Lab::article("cgesc");
    let cg = cgroup_of(&lab);
    assert!(std::fs::read_to_string(format!("/proc/{}/cgroup", lab.pid())).unwrap().contains("/tutor/labs/"));
    // On a node: a daemon in the node's namespaces and one in a network namespace of its own.
    // (Their output goes elsewhere: `lab exec`'s caller reads its pipe to the end.)
    lab.sh("kind-worker", "exec >/dev/null 2>&1; setsid -f sleep 3031; unshare -n setsid -f sleep 3032").ok();
    // In a pod (entered through the exec API) that is then deleted: the daemon is left in
    // namespaces the lab no longer knows, unless the pod's deletion ended it.
    lab.sh("pod/tiefighter", "setsid -f sleep 3033 >/dev/null 2>&1").ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sleeps = sleeps_in(&cg, &["3031", "3032", "3033"]);
    while sleeps.len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        sleeps = sleeps_in(&cg, &["3031", "3032", "3033"]);
    }
    assert_eq!(sleeps.len(), 3, "the daemons are not in the lab's cgroup {}", cg.display());
    lab.sh("host", "kubectl delete pod tiefighter --grace-period=1").ok();
    // The cluster deleted too: the node's namespaces are no longer the lab's.
    lab.sh("host", "kind delete cluster").ok();
    assert!(sleeps_in(&cg, &["3031", "3032"]).len() == 2, "the nodes' daemons left the lab's cgroup");
    let started = Instant::now();
    let down = tutor(&["lab", "down", &lab.name], &lab.cwd).ok();
    eprintln!("lab down with 3 escaped daemons: {} ms", started.elapsed().as_millis());
    assert!(down.contains("is down"), "{down}");
    wait_gone(&sleeps, "escaped daemons after lab down");
    assert!(!cg.exists(), "lab down left cgroup {}", cg.display());
}

fn gc_ends_the_cgroup_of_a_killed_supervisor() {
    let lab = Lab::up("cggc", Some("kind-config.yaml"));
    let cg = cgroup_of(&lab);
    lab.sh("kind-worker", "exec >/dev/null 2>&1; setsid -f sleep 3035; unshare -n setsid -f sleep 3036").ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sleeps = sleeps_in(&cg, &["3035", "3036"]);
    while sleeps.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        sleeps = sleeps_in(&cg, &["3035", "3036"]);
    }
    assert_eq!(sleeps.len(), 2, "{}", cg.display());
    // A cgroup no registry entry owns (a lab whose entry went another way) is swept too.
    let orphan = Cgroup::lab(&format!("t{}-cgorphan", std::process::id())).unwrap();
    orphan.create().unwrap();
    let mut cmd = std::process::Command::new("setsid");
    cmd.args(["-f", "sleep", "3037"]);
    orphan.place(&mut cmd).unwrap();
    assert!(cmd.status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut orphaned = sleeps_in(orphan.path(), &["3037"]);
    while orphaned.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        orphaned = sleeps_in(orphan.path(), &["3037"]);
    }
    assert_eq!(orphaned.len(), 1);

    let pid = lab.pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_gone(&[pid], "the supervisor");
    // Nothing ended the daemons: only the cgroup holds them now.
    assert!(sleeps.iter().all(|&p| alive(p)));
    let gc = tutor(&["lab", "gc"], &lab.cwd).ok();
    assert!(gc.contains(&format!("removed cgroup labs/{} (", lab.name)), "{gc}");
    assert!(
        gc.contains(&format!(
            "removed cgroup labs/{} (1 process killed)",
            orphan.path().file_name().unwrap().to_string_lossy()
        )),
        "{gc}"
    );
    assert!(gc.contains(&format!("removed lab entry {}", lab.name)), "{gc}");
    wait_gone(&sleeps, "daemons after gc");
    wait_gone(&orphaned, "the orphan cgroup's process after gc");
    assert!(!cg.exists() && !orphan.exists(), "gc left a cgroup");
    let left: Vec<String> = std::fs::read_dir(cg.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("t{}-", std::process::id())))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Processes whose argv is `sleep <arg>`, anywhere.
fn sleeps(arg: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default() == format!("sleep\0{arg}\0").as_bytes()
        })
        .filter(|&p| alive(p))
        .collect()
}

/// `kubectl exec POD -- setsid -f sleep N` and `setsid -f` on a node (issue 17, item 0): the
/// blocks end when their commands do, well within their 20 s time-out, and the daemons end with
/// the run's lab.
fn daemons_started_by_blocks_neither_hang_nor_outlive_the_run() {
    let started = Instant::now();
    let out = crate::lab::support::run_fixture_tutorial("daemons.md");
    assert!(out.contains("3 passed"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(120), "took {:?}:\n{out}", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(sleeps("3051").is_empty() && sleeps("3052").is_empty()) {
        assert!(Instant::now() < deadline, "daemons outlived the run: {:?} {:?}", sleeps("3051"), sleeps("3052"));
        std::thread::sleep(Duration::from_millis(20));
    }
}
