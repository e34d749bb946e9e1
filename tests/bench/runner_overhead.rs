//! Per-block overhead of tutor: a tutorial of 200 one-command console blocks through `tutor run`
//! (host backend) against the same 200 commands and outputs as a cram test (`cram` 0.7 from PyPI,
//! installed by `.ci/install`), the two taking turns in the same run; also the same commands in
//! one `bash` script and as 200 separate `bash -c` processes (the floor for one process per
//! block). Goal: tutor / cram <= 1.0.
//!
//! `cargo bench --bench runner_overhead` (release), or quicker with the debug binary:
//! `cargo test --bench runner_overhead`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{ms, row, take_turns, time};

const BLOCKS: usize = 200;
const ROUNDS: usize = 5;

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
    let mut t_run = || time(tutor(&tutorial), 0);
    let mut b_run = || time(bash(&script), 0);
    let mut c_run = || time(cram(), 0);
    let mut p_run = per_process;
    let medians = if cram_found {
        take_turns(ROUNDS, &mut [&mut t_run, &mut b_run, &mut p_run, &mut c_run])
    } else {
        take_turns(ROUNDS, &mut [&mut t_run, &mut b_run, &mut p_run])
    };
    let (t, b, p) = (medians[0], medians[1], medians[2]);
    let per = |d: Duration| ms(d) / BLOCKS as f64;
    println!("runner_overhead: {BLOCKS} one-command blocks, median of {ROUNDS} rounds taking turns");
    match medians.get(3) {
        Some(&c) => {
            let ratio = ms(t) / ms(c);
            let goal = if ratio <= 1.0 { "met" } else { "NOT met" };
            println!("{}  ({:.2} ms/block; goal <= 1.0: {goal})", row("tutor run (host backend)", t, Some(c)), per(t));
            println!("{}  ({:.2} ms/block)", row("cram, same commands (baseline)", c, None), per(c));
        }
        None => {
            println!("{}  ({:.2} ms/block)", row("tutor run (host backend)", t, None), per(t));
            println!("  cram not installed (bash .ci/install installs it): no ratio");
        }
    }
    println!("{}", row("one bash script", b, None));
    println!("{}  ({:.2} ms/block)", row(&format!("{BLOCKS} x bash -c (process floor)"), p, None), per(p));
    println!("  tutor overhead per block over the bash script  {:.2} ms", (ms(t) - ms(b)) / BLOCKS as f64);
}
