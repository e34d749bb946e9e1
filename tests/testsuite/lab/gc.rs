//! `tutor lab gc` also sweeps root-namespace objects carrying tutor's prefix that no live lab
//! owns (the lab itself never creates any; older runs or other tools might have).

use std::process::Command;

crate::tests![gc_removes_orphaned_prefixed_netns(Lab, Alone)];

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
