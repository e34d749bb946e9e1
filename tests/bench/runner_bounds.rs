//! Bounded costs of `tutor run` (host backend), each against a baseline measured in the same run:
//! - a 100k-line output that mismatches (every 1000th line differs) reported with its diff,
//!   against `diff` on the same two texts (similar's deadline keeps the diff bounded);
//! - a 5 MB tutorial (2,000 console blocks of 2.5 KB expected output each) run to its verdict,
//!   against `cat`-ing the same outputs from one bash script.
//!
//! `cargo bench --bench runner_bounds`, or with the debug binary: `cargo test --bench runner_bounds`.

use std::process::Command;

mod common;
use common::{row, take_turns, time};

const ROUNDS: usize = 3;

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

    let (mut mismatch, mut diff, mut large, mut bash) = (mismatch, diff, large, bash);
    let t = take_turns(ROUNDS, &mut [&mut mismatch, &mut diff, &mut large, &mut bash]);
    let (m, df, l, b) = (t[0], t[1], t[2], t[3]);
    println!("runner_bounds: median of {ROUNDS} rounds taking turns");
    println!("{}  (goal: well under 1 s)", row("100k-line mismatch, tutor run to its diff", m, Some(df)));
    println!("{}", row("diff(1) on the same texts (baseline)", df, None));
    let label = format!("{:.1} MB tutorial, {blocks} blocks, tutor run", md.len() as f64 / 1e6);
    println!("{}  (goal: seconds)", row(&label, l, Some(b)));
    println!("{}", row("the same commands in one bash script", b, None));
}
