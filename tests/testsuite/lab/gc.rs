//! `tutor lab gc` also sweeps root-namespace objects carrying tutor's prefix that no live lab
//! owns (the lab itself never creates any; older runs or other tools might have), and the
//! `lbpps-<pid>-*` namespaces of packet-rate benchmarks whose process is gone.

use std::process::Command;

crate::tests![gc_removes_orphaned_prefixed_netns(Lab, Alone), gc_removes_namespaces_of_killed_benchmarks(Lab, Alone)];

fn gc_removes_orphaned_prefixed_netns() {
    let name = format!("tutor-gcprobe{}-x", std::process::id());
    assert!(Command::new("ip").args(["netns", "add", &name]).status().unwrap().success());
    let out = crate::lab::support::tutor(&["lab", "gc"], &crate::lab::support::fixtures()).ok();
    let listed =
        String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    if listed.contains(&name) {
        let _ = Command::new("ip").args(["netns", "delete", &name]).status();
        panic!("gc left {name}:\n{out}");
    }
    assert!(out.contains(&format!("removed netns {name}")), "{out}");
}

fn netns_list() -> String {
    String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned()
}

/// A killed `tutor lb bench --traffic` leaves `lbpps-<pid>-*`: gc deletes those whose pid is
/// gone and keeps those of a live process (a benchmark still running).
fn gc_removes_namespaces_of_killed_benchmarks() {
    // pid_max is at most 2^22: this pid never exists.
    let dead = "lbpps-2147483646-gen".to_string();
    let live = format!("lbpps-{}-gen", std::process::id());
    for n in [&dead, &live] {
        assert!(Command::new("ip").args(["netns", "add", n]).status().unwrap().success());
    }
    let out = crate::lab::support::tutor(&["lab", "gc"], &crate::lab::support::fixtures()).ok();
    let listed = netns_list();
    let _ = Command::new("ip").args(["netns", "delete", &live]).status();
    if listed.contains(&dead) {
        let _ = Command::new("ip").args(["netns", "delete", &dead]).status();
        panic!("gc left {dead}:\n{out}");
    }
    assert!(out.contains(&format!("removed netns {dead}")), "{out}");
    assert!(listed.contains(&live), "gc deleted a live benchmark's namespace:\n{out}");
}
