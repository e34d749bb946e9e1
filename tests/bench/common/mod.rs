//! The timing scaffold of the runner benches (`runner_overhead`, `runner_bounds`): commands
//! timed whole, measurements taking turns round after round so that a busy moment of the shared
//! machine hits all of them, medians, and each figure printed with its ratio to a baseline
//! measured in the same run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One run of `cmd`, output discarded; it must exit with `want`.
pub fn time(mut cmd: Command, want: i32) -> Duration {
    let start = Instant::now();
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().expect("the command runs");
    let took = start.elapsed();
    assert_eq!(status.code(), Some(want), "{cmd:?}: {status}");
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One warm-up run of each measurement (page cache, binary loading), then `rounds` rounds in
/// which each runs once, in turns; the median of each, in the order given.
pub fn take_turns(rounds: usize, runs: &mut [&mut dyn FnMut() -> Duration]) -> Vec<Duration> {
    for run in runs.iter_mut() {
        run();
    }
    let mut times = vec![Vec::with_capacity(rounds); runs.len()];
    for _ in 0..rounds {
        for (run, t) in runs.iter_mut().zip(&mut times) {
            t.push(run());
        }
    }
    times.into_iter().map(median).collect()
}

/// `  label  123.4 ms` and, against a baseline, `  ratio 1.23`.
pub fn row(label: &str, d: Duration, baseline: Option<Duration>) -> String {
    let mut s = format!("  {label:<44} {:>9.1} ms", ms(d));
    if let Some(b) = baseline {
        s.push_str(&format!("  ratio {:.2}", ms(d) / ms(b)));
    }
    s
}
