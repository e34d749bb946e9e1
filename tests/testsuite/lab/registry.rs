//! The lab registry without races (`/run/tutor/labs/<name>/`): a name is claimed atomically, a
//! lab being created shows as "starting" and is never collected by `gc`, a taken name is refused
//! before anything is created, and `gc` removes only entries whose supervisor is dead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab::support::{TUTOR, fixtures, tutor};

crate::tests![
    concurrent_up_with_one_name_has_one_winner(Lab, K8s),
    gc_never_collects_a_lab_that_is_starting(Lab, K8s, Alone),
    a_claimed_name_is_refused_and_a_dead_claim_is_collected(Lab, K8s, Alone),
];

const ROOT: &str = "/run/tutor/labs";

/// Kernel start time of `pid` (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')').unwrap().1.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// Pids of supervisors serving lab `name`.
fn supervisors(name: &str) -> Vec<u32> {
    let wanted = format!("lab\0supervise\0--name\0{name}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let zombie = state.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
            (!zombie && String::from_utf8_lossy(&cmdline).contains(&wanted)).then_some(pid)
        })
        .collect()
}

fn wait_gone(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !supervisors(name).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two `tutor lab up --name dup` at once, three times: one wins (exit 0), the other is refused
/// with exit 2 naming the lab; the winner's lab works, the loser left no supervisor and no
/// entry, and after `down` nothing of either remains.
fn concurrent_up_with_one_name_has_one_winner() {
    let name = format!("t{}-dup", std::process::id());
    for round in 0..3 {
        let spawn = || {
            Command::new(TUTOR)
                .args(["lab", "up", "--name", &name])
                .current_dir(fixtures())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let text = |o: &std::process::Output| {
            format!(
                "exit {:?}\n{}{}",
                o.status.code(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        let mut codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap_or(-1)).collect();
        codes.sort();
        let both = format!("round {round}:\n{}\n{}", text(&outs[0]), text(&outs[1]));
        if codes != [0, 2] {
            let _ = tutor(&["lab", "down", &name], &fixtures());
            panic!("expected one winner and one refusal:\n{both}");
        }
        let loser = outs.iter().find(|o| o.status.code() == Some(2)).unwrap();
        let err = String::from_utf8_lossy(&loser.stderr);
        assert!(
            err.contains(&format!("a lab named `{name}` is already up"))
                || err.contains(&format!("a lab named `{name}` is starting")),
            "{both}"
        );
        // The winner's entry and shims are intact: its kubectl is the lab's.
        let out = tutor(&["lab", "exec", &name, "host", "--", "bash", "-c", "command -v kubectl"], &fixtures());
        let shim = out.ok();
        assert!(shim.trim().ends_with(&format!("{name}/bin/kubectl")), "{shim}\n{both}");
        wait_gone_but_one(&name, &both);
        let listed = tutor(&["lab", "list"], &fixtures()).ok();
        assert_eq!(listed.lines().filter(|l| l.starts_with(&format!("{name}\t"))).count(), 1, "{listed}");
        tutor(&["lab", "down", &name], &fixtures()).ok();
        wait_gone(&name);
        assert!(supervisors(&name).is_empty(), "a supervisor of {name} outlived `down`\n{both}");
        assert!(!Path::new(ROOT).join(&name).exists(), "entry left after down\n{both}");
    }
}

/// The loser's supervisor exits once its claim is refused.
fn wait_gone_but_one(name: &str, ctx: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while supervisors(name).len() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(supervisors(name).len(), 1, "supervisors of {name}: {:?}\n{ctx}", supervisors(name));
}

fn big_config(dir: &Path, workers: usize) -> PathBuf {
    let mut text =
        String::from("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: big\nnodes:\n  - role: control-plane\n");
    for _ in 0..workers {
        text.push_str("  - role: worker\n");
    }
    text.push_str("networking:\n  disableDefaultCNI: true\n  podSubnet: 10.100.0.0/16\n");
    let p = dir.join("big.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `tutor lab gc` over and over while a 3-node lab starts its control plane (seconds): the lab
/// is listed as starting, gc never removes it, and it comes up whole (`kubectl get nodes` lists
/// every node).
fn gc_never_collects_a_lab_that_is_starting() {
    let name = format!("t{}-slow", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let config = big_config(dir.path(), 2);
    let mut up = Command::new(TUTOR)
        .args(["lab", "up", "--name", &name, "--config"])
        .arg(&config)
        .current_dir(fixtures())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut gcs = 0;
    let mut seen_starting = false;
    let mut gc_out = String::new();
    while up.try_wait().unwrap().is_none() {
        let listed = tutor(&["lab", "list"], &fixtures()).ok();
        seen_starting |= listed.lines().any(|l| l.starts_with(&format!("{name}\t")) && l.ends_with("\tstarting"));
        gc_out.push_str(&tutor(&["lab", "gc"], &fixtures()).ok());
        gcs += 1;
    }
    let out = up.wait_with_output().unwrap();
    let up_text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let nodes = tutor(&["lab", "exec", &name, "host", "--", "kubectl", "get", "nodes"], &fixtures());
    let _ = tutor(&["lab", "down", &name], &fixtures());
    assert!(out.status.success(), "{up_text}");
    assert!(!gc_out.contains(&format!("removed lab entry {name}")), "gc collected the starting lab:\n{gc_out}");
    assert!(gcs >= 2, "the lab started too fast to test ({gcs} gc runs): make it bigger");
    eprintln!("{gcs} gc runs while the lab started");
    assert!(seen_starting, "`lab list` never showed {name} as starting ({gcs} gc runs)");
    let nodes = nodes.ok();
    assert_eq!(nodes.lines().filter(|l| l.starts_with("big-")).count(), 3, "{nodes}");
}

/// Write an entry claimed by `pid` (as a supervisor that is still starting has it).
fn fake_claim(name: &str, pid: u32, start: u64) -> PathBuf {
    let d = Path::new(ROOT).join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("claim.json"), format!("{{\"pid\":{pid},\"start_time\":{start}}}")).unwrap();
    d
}

/// An entry claimed by a live process is "starting": `lab up` with its name is refused at once
/// (exit 2, nothing created), `gc` keeps it; once that process is dead (same pid number or not,
/// the start time tells), `gc` removes it.
fn a_claimed_name_is_refused_and_a_dead_claim_is_collected() {
    let name = format!("t{}-claimed", std::process::id());
    let mut holder = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = holder.id();
    let d = fake_claim(&name, pid, start_time(pid));
    let t0 = Instant::now();
    let up = tutor(&["lab", "up", "--name", &name], &fixtures());
    let refused_in = t0.elapsed();
    let listed = tutor(&["lab", "list"], &fixtures()).ok();
    let gc = tutor(&["lab", "gc"], &fixtures()).ok();
    let kept = d.join("claim.json").exists();
    // The same pid with another start time is another process: the claim is dead.
    let stale = fake_claim(&format!("{name}-stale"), pid, start_time(pid) + 1);
    let gc2 = tutor(&["lab", "gc"], &fixtures()).ok();
    let stale_kept = stale.exists();
    let _ = holder.kill();
    let _ = holder.wait();
    let gc3 = tutor(&["lab", "gc"], &fixtures()).ok();
    let left = d.exists();
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&stale);
    assert_eq!(up.code, 2, "{}{}", up.stdout, up.stderr);
    assert!(up.stderr.contains(&format!("a lab named `{name}` is starting (supervisor pid {pid})")), "{}", up.stderr);
    assert!(refused_in < Duration::from_secs(2), "refusal took {refused_in:?}");
    assert!(listed.contains(&format!("{name}\tpid {pid}\tstarting")), "{listed}");
    assert!(kept && !gc.contains(&format!("removed lab entry {name}\n")), "{gc}");
    assert!(!stale_kept && gc2.contains(&format!("removed lab entry {name}-stale")), "{gc2}");
    assert!(!left && gc3.contains(&format!("removed lab entry {name}\n")), "{gc3}");
}
