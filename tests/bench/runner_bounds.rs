//! Bounded costs of `tutor run` (host backend), each against a baseline measured in the same run:
//! - a 100k-line output that mismatches (every 1000th line differs) reported with its diff,
//!   against `diff` on the same two texts (similar's deadline keeps the diff bounded);
//! - a 5 MB tutorial (2,000 console blocks of 2.5 KB expected output each) run to its verdict,
//!   against `cat`-ing the same outputs from one bash script.
//!
//! `cargo bench --bench runner_bounds`, or with the debug binary: `cargo test --bench runner_bounds`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 3;

fn time(mut cmd: Command, want: i32) -> Duration {
    let start = Instant::now();
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().expect("the command runs");
    let took = start.elapsed();
    assert_eq!(status.code(), Some(want), "{cmd:?}");
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
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let record = d.join("record.json");
    let tutor = |md: &std::path::Path, want: i32| {
        let (md, record) = (md.to_path_buf(), record.clone());
        move || {
            let mut c = Command::new(env!("CARGO_BIN_EXE_tutor"));
            c.arg("run").arg(&md).arg("--record").arg(&record).env("CI", "1").env("TUTOR_NO_PENDING", "true");
            time(c, want)
        }
    };

    // A 100k-line mismatch.
    let lines = 100_000;
    let mut expected = String::new();
    for i in 1..=lines {
        if i % 1000 == 0 {
            expected.push_str(&format!("changed-{i}\n"));
        } else {
            expected.push_str(&format!("{i}\n"));
        }
    }
    let big = d.join("mismatch.md");
    std::fs::write(
        &big,
        format!("---\nbackend: host\n---\n\n# M\n\n## Big\n\n```console\n$ seq {lines}\n{expected}```\n"),
    )
    .unwrap();
    let (exp_file, act_file) = (d.join("expected.txt"), d.join("actual.txt"));
    std::fs::write(&exp_file, &expected).unwrap();
    let out = Command::new("seq").arg(lines.to_string()).output().unwrap();
    std::fs::write(&act_file, out.stdout).unwrap();
    let mismatch = tutor(&big, 1);
    let diff = || {
        let mut c = Command::new("diff");
        c.arg(&exp_file).arg(&act_file);
        time(c, 1)
    };

    // A 5 MB tutorial.
    let blocks = 2_000;
    let chunk: String = (0..50).map(|i| format!("line {i:02} {}\n", "x".repeat(40))).collect();
    std::fs::write(d.join("chunk.txt"), &chunk).unwrap();
    let mut md = String::from("---\nbackend: host\n---\n\n# Big\n\n## Blocks\n\n");
    let mut sh = String::new();
    for _ in 0..blocks {
        md.push_str(&format!("```console\n$ cat {}\n{chunk}```\n\n", d.join("chunk.txt").display()));
        sh.push_str(&format!("cat {}\n", d.join("chunk.txt").display()));
    }
    let five = d.join("five.md");
    std::fs::write(&five, &md).unwrap();
    let script = d.join("five.sh");
    std::fs::write(&script, sh).unwrap();
    let large = tutor(&five, 0);
    let bash = || {
        let mut c = Command::new("bash");
        c.arg(&script);
        time(c, 0)
    };

    mismatch();
    large();
    let (mut m, mut df, mut l, mut b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        m.push(mismatch());
        df.push(diff());
        l.push(large());
        b.push(bash());
    }
    let (m, df, l, b) = (median(m), median(df), median(l), median(b));
    println!("runner_bounds: median of {ROUNDS} rounds taking turns");
    println!("  100k-line mismatch, tutor run to its diff  {:>9.1} ms  (goal: well under 1 s)", ms(m));
    println!("  diff(1) on the same texts (baseline)       {:>9.1} ms  ratio {:.1}", ms(df), ms(m) / ms(df));
    println!(
        "  {:.1} MB tutorial, {blocks} blocks, tutor run     {:>9.1} ms  (goal: seconds)",
        md.len() as f64 / 1e6,
        ms(l)
    );
    println!("  the same commands in one bash script       {:>9.1} ms  ratio {:.1}", ms(b), ms(l) / ms(b));
}
