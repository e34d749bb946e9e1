//! Per-block overhead of tutor: a tutorial of 200 trivial console blocks through `tutor run`
//! (host backend) against the same 200 commands in one `bash` script, measured in the same run.
//! Also shown: 200 separate `bash -c` processes, the floor for one process per block.
//!
//! `cargo bench --bench runner_overhead` (release), or quicker with the debug binary:
//! `cargo test --bench runner_overhead`. Target: < 5 ms per block.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BLOCKS: usize = 200;
const ROUNDS: usize = 5;
const TARGET_MS: f64 = 5.0;

fn time(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().expect("the command runs");
    let took = start.elapsed();
    assert!(status.success(), "{cmd:?} failed: {status}");
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo test --benches` passes harness flags; a plain main ignores them.
    let dir = tempfile::tempdir().unwrap();
    let tutorial = dir.path().join("overhead.md");
    let script = dir.path().join("overhead.sh");
    let mut md = String::from("---\nbackend: host\n---\n\n# Overhead\n\n## Blocks\n\n");
    let mut sh = String::new();
    for i in 0..BLOCKS {
        md.push_str(&format!("```console\n$ echo block-{i}\nblock-{i}\n```\n\n"));
        sh.push_str(&format!("echo block-{i}\n"));
    }
    std::fs::write(&tutorial, md).unwrap();
    std::fs::write(&script, &sh).unwrap();
    let record = dir.path().join("record.json");

    let tutor = |t: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tutor"));
        c.arg("run").arg(t).arg("--record").arg(&record).env("CI", "1");
        c
    };
    let bash = |s: &Path| {
        let mut c = Command::new("bash");
        c.arg(s);
        c
    };
    let per_process = || {
        let start = Instant::now();
        for i in 0..BLOCKS {
            let out = Command::new("bash").arg("-c").arg(format!("echo block-{i}")).output().unwrap();
            assert!(out.status.success());
        }
        start.elapsed()
    };
    // Warm-up (page cache, binary loading).
    time(tutor(&tutorial));
    time(bash(&script));

    let (mut t_runs, mut b_runs, mut p_runs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        t_runs.push(time(tutor(&tutorial)));
        b_runs.push(time(bash(&script)));
        p_runs.push(per_process());
    }
    let (t, b, p) = (median(t_runs), median(b_runs), median(p_runs));
    let overhead = (ms(t) - ms(b)) / BLOCKS as f64;
    println!("runner_overhead: {BLOCKS} trivial blocks, median of {ROUNDS} rounds");
    println!("  tutor run (host backend)      {:>9.1} ms  ({:.2} ms/block)", ms(t), ms(t) / BLOCKS as f64);
    println!("  one bash script (baseline)    {:>9.1} ms", ms(b));
    println!("  {BLOCKS} x bash -c (process floor) {:>9.1} ms  ({:.2} ms/block)", ms(p), ms(p) / BLOCKS as f64);
    println!(
        "  tutor overhead per block      {overhead:>9.2} ms   (target < {TARGET_MS} ms: {})",
        if overhead < TARGET_MS { "met" } else { "NOT met" }
    );
    println!("  ratio tutor / one bash script {:>9.1}x", ms(t) / ms(b));
    println!("  ratio tutor / process floor   {:>9.2}x", ms(t) / ms(p));
}
