//! Per-block overhead of tutor: a tutorial of 200 one-command console blocks through `tutor run`
//! (host backend) against the same 200 commands and outputs as a cram test (`cram` 0.7 from PyPI,
//! installed by `.ci/install`), the two taking turns in the same run; also the same commands in
//! one `bash` script and as 200 separate `bash -c` processes (the floor for one process per
//! block). Goal: tutor / cram <= 1.0.
//!
//! `cargo bench --bench runner_overhead` (release), or quicker with the debug binary:
//! `cargo test --bench runner_overhead`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BLOCKS: usize = 200;
const ROUNDS: usize = 5;

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
    let mut t = String::from("One-command blocks:\n\n");
    for i in 0..BLOCKS {
        md.push_str(&format!("```console\n$ echo block-{i}\nblock-{i}\n```\n\n"));
        sh.push_str(&format!("echo block-{i}\n"));
        t.push_str(&format!("  $ echo block-{i}\n  block-{i}\n"));
    }
    std::fs::write(&tutorial, md).unwrap();
    std::fs::write(&script, &sh).unwrap();
    let cram_test = dir.path().join("overhead.t");
    std::fs::write(&cram_test, t).unwrap();
    let cram_found = Command::new("cram").arg("--version").output().is_ok_and(|o| o.status.success());
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
    let cram = || {
        let mut c = Command::new("cram");
        // cram runs in a temporary directory of its own; -q: no progress dots.
        c.arg("-q").arg(&cram_test);
        c
    };
    // Warm-up (page cache, binary loading).
    time(tutor(&tutorial));
    time(bash(&script));
    if cram_found {
        time(cram());
    }

    let (mut t_runs, mut c_runs, mut b_runs, mut p_runs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        // Taking turns, so that a busy moment of the shared machine hits both.
        t_runs.push(time(tutor(&tutorial)));
        if cram_found {
            c_runs.push(time(cram()));
        }
        b_runs.push(time(bash(&script)));
        p_runs.push(per_process());
    }
    let (t, b, p) = (median(t_runs), median(b_runs), median(p_runs));
    let per = |d: Duration| ms(d) / BLOCKS as f64;
    println!("runner_overhead: {BLOCKS} one-command blocks, median of {ROUNDS} rounds taking turns");
    println!("  tutor run (host backend)      {:>9.1} ms  ({:.2} ms/block)", ms(t), per(t));
    if cram_found {
        let c = median(c_runs);
        println!("  cram (same commands)          {:>9.1} ms  ({:.2} ms/block)", ms(c), per(c));
        let ratio = ms(t) / ms(c);
        println!(
            "  ratio tutor / cram            {ratio:>9.2}   (goal <= 1.0: {})",
            if ratio <= 1.0 { "met" } else { "NOT met" }
        );
    } else {
        println!("  cram                          not installed (bash .ci/install installs it): no ratio");
    }
    println!("  one bash script (baseline)    {:>9.1} ms", ms(b));
    println!("  {BLOCKS} x bash -c (process floor) {:>9.1} ms  ({:.2} ms/block)", ms(p), per(p));
    println!("  tutor overhead per block      {:>9.2} ms over the bash script", (ms(t) - ms(b)) / BLOCKS as f64);
}
