//! The closing line of a run and short human forms of durations.

use std::time::Duration;

use crate::runner::Counts;

/// `N passed, N failed, N skipped` (errors count as failed and are named when present).
pub fn closing_line(c: Counts, took: Duration) -> String {
    let errors = if c.errors > 0 { format!(" ({} errored)", c.errors) } else { String::new() };
    format!("{} passed, {} failed{errors}, {} skipped in {}", c.passed, c.failed + c.errors, c.skipped, duration(took))
}

/// `12ms`, `3.4s`, `2m05s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_line_counts() {
        let c = Counts { passed: 3, failed: 1, errors: 0, skipped: 2 };
        assert_eq!(closing_line(c, Duration::from_millis(1500)), "3 passed, 1 failed, 2 skipped in 1.5s");
        let c = Counts { passed: 0, failed: 1, errors: 2, skipped: 0 };
        assert_eq!(closing_line(c, Duration::from_millis(5)), "0 passed, 3 failed (2 errored), 0 skipped in 5ms");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
    }
}
