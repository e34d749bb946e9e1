//! What the lab must never do: touch the machine's root namespace, collide with another lab,
//! or leave anything behind when its supervisor is killed.

use std::process::Command;

use crate::lab::support::{Lab, netns_in_use, tutor};

crate::tests![
    root_namespace_untouched_and_nothing_left(Lab, K8s, Alone),
    two_labs_at_once_do_not_collide(Lab, K8s),
    sigkill_leaves_nothing_that_gc_does_not_clean(Lab, K8s, Alone),
    exec_errors(Lab, K8s),
    sigterm_tears_the_lab_down(Lab, K8s),
    preflight_errors_are_usage_errors(Lab),
    host_tmp_and_run_are_the_labs_own(Lab, K8s),
    a_tutor_built_under_tmp_still_serves_the_shims(Lab, K8s)
];

fn root_state() -> String {
    let sh =
        |c: &str| String::from_utf8_lossy(&Command::new("sh").arg("-c").arg(c).output().unwrap().stdout).into_owned();
    // Counters change with unrelated traffic; the rules do not.
    let ipt = sh("iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'");
    format!(
        "{}{}{}{}{}",
        sh("ip -o link | sed 's/ state [A-Z]*//'"),
        sh("ip route"),
        sh("nft list ruleset"),
        ipt,
        sh("ip netns list")
    )
}

fn root_namespace_untouched_and_nothing_left() {
    let before = root_state();
    let inodes;
    {
        let lab = Lab::article("root");
        lab.sh(
            "host",
            "kubectl exec tiefighter -- curl -s -XPOST deathstar.default.svc.cluster.local/v1/request-landing",
        )
        .ok();
        let mut all = lab.netns_inodes();
        assert!(all.len() >= 5, "host, router, 3 nodes: {all:?}");
        all.extend(["tiefighter", "xwing"].map(|p| lab.pod_netns(p)));
        inodes = all;
    }
    assert_eq!(before, root_state());
    assert!(!netns_in_use(&inodes), "a lab namespace is still in use");
}

fn two_labs_at_once_do_not_collide() {
    let a = Lab::up("twoa", Some("kind-config.yaml"));
    let b = Lab::up("twob", Some("kind-config.yaml"));
    for lab in [&a, &b] {
        let o = lab.sh("kind-worker", "ip -br addr show eth0").ok();
        assert!(o.contains("172.18.0.3/16"), "{o}");
        lab.sh("kind-worker", "bash -c '</dev/tcp/172.18.0.2/1' 2>&1 | grep -q refused").ok();
    }
    let list = tutor(&["lab", "list"], &a.cwd).ok();
    assert!(list.contains(&a.name) && list.contains(&b.name), "{list}");
    // Same name twice is refused.
    let dup = tutor(&["lab", "up", "--name", &a.name], &a.cwd);
    assert_eq!(dup.code, 2, "{}", dup.stderr);
    assert!(dup.stderr.contains("already up"), "{}", dup.stderr);
    drop(a);
    b.sh("kind-worker", "bash -c '</dev/tcp/172.18.0.2/1' 2>&1 | grep -q refused").ok();
}

fn sigkill_leaves_nothing_that_gc_does_not_clean() {
    let lab = Lab::article("kill");
    // A block's leftover process inside a pod keeps that namespace alive...
    let mut sleeper = Command::new(crate::lab::support::TUTOR)
        .args(["lab", "exec", &lab.name, "pod/xwing", "--", "sleep", "600"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pod = lab.pod_netns("xwing");
    let mut inodes = lab.netns_inodes();
    inodes.push(pod);
    let pid = lab.pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let list = tutor(&["lab", "list"], &lab.cwd).ok();
    assert!(!list.contains(&lab.name), "{list}");
    assert!(std::path::Path::new(&format!("/run/tutor/labs/{}", lab.name)).exists());
    assert!(netns_in_use(&[pod]), "the sleeper still holds its pod namespace");
    let gc = tutor(&["lab", "gc"], &lab.cwd).ok();
    assert!(gc.contains(&format!("removed lab entry {}", lab.name)), "{gc}");
    assert!(!std::path::Path::new(&format!("/run/tutor/labs/{}", lab.name)).exists());
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!netns_in_use(&inodes), "gc must end what was left inside the lab's namespaces");
    let _ = sleeper.wait();
}

fn exec_errors() {
    let lab = Lab::up("exec", Some("kind-config.yaml"));
    let o = tutor(&["lab", "exec", &lab.name, "kind-worker9", "--", "true"], &lab.cwd);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("no node `kind-worker9`"), "{}", o.stderr);
    let o = tutor(&["lab", "exec", "no-such-lab", "host", "--", "true"], &lab.cwd);
    assert_eq!(o.code, 2);
    assert_eq!(lab.sh("kind-worker", "exit 7").code, 7);
}

fn sigterm_tears_the_lab_down() {
    let lab = Lab::article("term");
    let (pid, inodes) = (lab.pid(), lab.netns_inodes());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        !std::path::Path::new(&format!("/run/tutor/labs/{}", lab.name)).exists(),
        "SIGTERM left the registry entry"
    );
    // The lab's processes are killed with it; on a loaded machine (the whole suite running
    // beside it) the last ones take a moment to be gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while netns_in_use(&inodes) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let holders = super::support::netns_holders(&inodes);
    assert!(holders.is_empty(), "processes still hold the lab's network namespaces: {holders:?}");
}

fn preflight_errors_are_usage_errors() {
    // Without ip/nft/nsenter on PATH.
    let o = Command::new(crate::lab::support::TUTOR)
        .args(["lab", "up", "--name", "nopath"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the lab needs ip, nft, nsenter, iptables-restore on PATH"), "{err}");
    // Not root.
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            crate::lab::support::TUTOR,
            "lab",
            "up",
            "--name",
            "noroot",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the lab needs root"), "{err}");
    assert!(
        !std::path::Path::new("/run/tutor/labs/nopath").exists()
            && !std::path::Path::new("/run/tutor/labs/noroot").exists()
    );
}

/// A lab-run block writes in the lab host's /tmp and /run, never the machine's; the work
/// directory, the shims and a manifest the tutorial put in its /tmp still work.
fn host_tmp_and_run_are_the_labs_own() {
    let probes = ["/tmp/tutor-host-files-probe", "/run/tutor-host-files-probe", "/tmp/tutor-host-files-pod.yaml"];
    for p in probes {
        let _ = std::fs::remove_file(p);
    }
    crate::lab::support::run_fixture_tutorial("host-files.md");
    let leaked: Vec<&str> = probes.into_iter().filter(|p| std::path::Path::new(p).exists()).collect();
    assert!(leaked.is_empty(), "written on the machine: {leaked:?}");
}

/// A tutor executable under the machine's /tmp (a clone built there, as CI's is) stays visible
/// to the lab host behind its own /tmp: the shims, links to it, still run.
fn a_tutor_built_under_tmp_still_serves_the_shims() {
    let dir = tempfile::Builder::new().prefix("tutor-exe").tempdir_in("/tmp").unwrap();
    let exe = dir.path().join("tutor");
    std::fs::copy(crate::lab::support::TUTOR, &exe).unwrap();
    let name = format!("t{}-tmpexe", std::process::id());
    let run = |args: &[&str]| Command::new(&exe).args(args).current_dir("/").env_remove("TUTOR_BIN").output().unwrap();
    let up = run(&["lab", "up", "--name", &name]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let o = run(&[
        "lab",
        "exec",
        &name,
        "host",
        "--",
        "bash",
        "-c",
        "p=$(command -v tutor); echo \"$p\"; case $p in /run/tutor/labs/*) tutor --version;; *) exit 3;; esac",
    ]);
    run(&["lab", "down", &name]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.lines().nth(1).is_some_and(|l| l.starts_with("tutor ")),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
