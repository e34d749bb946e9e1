//! `tutor lab up` + Cilium + the four http-sw-app pods + `tutor lab down`, 3 nodes, measured
//! end to end through the CLI (what a tutorial run pays per tutorial). Target: under 2 s
//! (kind takes about a minute). Baseline in the same run: the bare kernel work of a comparable
//! topology done with `ip netns` by hand (8 named namespaces, 7 veth pairs, then deletion).
//!
//! Run: `cargo bench --bench lab_up_down` (as root).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const TARGET: Duration = Duration::from_secs(2);

fn run(cmd: &mut Command) {
    let o = cmd.output().expect("spawn");
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn lab_once(tutor: &str, fixtures: &Path, name: &str) -> Duration {
    let t = Instant::now();
    run(Command::new(tutor).args(["lab", "up", "--config", "kind-config.yaml", "--name", name]).current_dir(fixtures));
    run(Command::new(tutor)
        .args(["lab", "exec", name, "host", "--", "sh", "-c"])
        .arg("helm install -n kube-system cilium cilium/cilium -f cilium-medium.yaml >/dev/null && kubectl apply -f http-sw-app.yaml >/dev/null && kubectl wait --for=condition=Ready pods --all >/dev/null")
        .current_dir(fixtures));
    run(Command::new(tutor).args(["lab", "down", name]).current_dir(fixtures));
    t.elapsed()
}

fn shell_baseline(tag: &str) -> Duration {
    let script = format!(
        "set -e; p=tutor-bench{tag}
         for i in 0 1 2 3 4 5 6 7; do ip netns add $p-$i; done
         ip -n $p-0 link add br0 type bridge
         for i in 1 2 3 4 5 6 7; do ip -n $p-0 link add v$i type veth peer name eth0 netns $p-$i; ip -n $p-$i link set eth0 up; done
         for i in 0 1 2 3 4 5 6 7; do ip netns del $p-$i; done"
    );
    let t = Instant::now();
    run(Command::new("sh").arg("-c").arg(script));
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("lab_up_down: skipped (needs root)");
        return;
    }
    let tutor = env!("CARGO_BIN_EXE_tutor");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lab");
    let pid = std::process::id();
    let lab: Vec<Duration> = (0..RUNS).map(|i| lab_once(tutor, &fixtures, &format!("bench{pid}-{i}"))).collect();
    let base: Vec<Duration> = (0..RUNS).map(|i| shell_baseline(&format!("{pid}{i}"))).collect();
    let (l, b) = (median(lab), median(base));
    println!("lab up + cilium + 4 pods + down (3 nodes), median of {RUNS}: {:.1} ms", l.as_secs_f64() * 1e3);
    println!("baseline: 8 netns + 7 veth by hand with ip, median of {RUNS}:   {:.1} ms", b.as_secs_f64() * 1e3);
    println!("ratio lab / baseline: {:.2}", l.as_secs_f64() / b.as_secs_f64());
    println!(
        "ratio lab / target (2 s): {:.3}  {}",
        l.as_secs_f64() / TARGET.as_secs_f64(),
        if l < TARGET { "OK" } else { "TOO SLOW" }
    );
}
