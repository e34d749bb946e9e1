//! Verdicts as the reader sees them: per block, per step (aggregated) and per chapter (a tally),
//! plus the small formatting of durations and run dates that goes with them.

use crate::runner::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    Skipped,
    /// No result in the run record for this version of the block (no run yet, or the tutorial
    /// changed since).
    NotRun,
}

impl Verdict {
    pub fn of(status: Option<Status>) -> Verdict {
        match status {
            Some(Status::Passed) => Verdict::Passed,
            Some(Status::Failed | Status::Error) => Verdict::Failed,
            Some(Status::Skipped) => Verdict::Skipped,
            None => Verdict::NotRun,
        }
    }

    /// A step's verdict from its blocks': one failure fails it, a block without a result makes
    /// it "not run" (its result would be about another text), skipped only if all were.
    /// `None` for a step without commands.
    pub fn combine(blocks: impl IntoIterator<Item = Verdict>) -> Option<Verdict> {
        let all: Vec<Verdict> = blocks.into_iter().collect();
        let any = |v| all.contains(&v);
        if all.is_empty() {
            None
        } else if any(Verdict::Failed) {
            Some(Verdict::Failed)
        } else if any(Verdict::NotRun) {
            Some(Verdict::NotRun)
        } else if all.iter().all(|v| *v == Verdict::Skipped) {
            Some(Verdict::Skipped)
        } else {
            Some(Verdict::Passed)
        }
    }

    /// CSS class suffix and `data-status` value.
    pub fn class(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Skipped => "skipped",
            Verdict::NotRun => "not-run",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Passed => "✓ passed",
            Verdict::Failed => "✗ failed",
            Verdict::Skipped => "skipped",
            Verdict::NotRun => "not run",
        }
    }
}

/// Counts of a chapter's command blocks by verdict.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_run: usize,
}

impl Tally {
    pub fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Passed => self.passed += 1,
            Verdict::Failed => self.failed += 1,
            Verdict::Skipped => self.skipped += 1,
            Verdict::NotRun => self.not_run += 1,
        }
    }

    /// Blocks that ran on the backend (skipped ones did not).
    pub fn ran(&self) -> usize {
        self.passed + self.failed + self.not_run
    }

    pub fn verdict(&self) -> Verdict {
        let mut v = Vec::new();
        v.extend(std::iter::repeat_n(Verdict::Passed, self.passed));
        v.extend(std::iter::repeat_n(Verdict::Failed, self.failed));
        v.extend(std::iter::repeat_n(Verdict::Skipped, self.skipped));
        v.extend(std::iter::repeat_n(Verdict::NotRun, self.not_run));
        Verdict::combine(v).unwrap_or(Verdict::NotRun)
    }
}

/// `340 ms`, `4.2 s`, `2 min 05 s`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// An attribute's duration as written by people: `500 ms`, `60 s`, `5 min`, `90 s`.
pub fn span(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        _ if !ms.is_multiple_of(1_000) => format!("{:.1} s", ms as f64 / 1000.0),
        _ if ms <= 120_000 || !ms.is_multiple_of(60_000) => format!("{} s", ms / 1000),
        _ if ms.is_multiple_of(3_600_000) => format!("{} h", ms / 3_600_000),
        _ => format!("{} min", ms / 60_000),
    }
}

/// The day of an RFC 3339 timestamp (`2026-11-26`); anything else is shown as given.
pub fn date(started_at: &str) -> &str {
    let is_day =
        |d: &str| d.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    match started_at.get(..10) {
        Some(d) if is_day(d) => d,
        _ => started_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn step_verdicts() {
        assert_eq!(Verdict::combine([]), None);
        assert_eq!(Verdict::combine([Passed, Skipped]), Some(Passed));
        assert_eq!(Verdict::combine([Passed, Failed, NotRun]), Some(Failed));
        assert_eq!(Verdict::combine([Passed, NotRun]), Some(NotRun));
        assert_eq!(Verdict::combine([Skipped, Skipped]), Some(Skipped));
        assert_eq!(Verdict::of(Some(Status::Error)), Failed);
        assert_eq!(Verdict::of(None), NotRun);
    }

    #[test]
    fn tally() {
        let mut t = Tally::default();
        for v in [Passed, Passed, Skipped] {
            t.add(v);
        }
        assert_eq!((t.ran(), t.verdict()), (2, Passed));
        t.add(Failed);
        assert_eq!((t.ran(), t.verdict()), (3, Failed));
        assert_eq!(Tally::default().verdict(), NotRun);
    }

    #[test]
    fn durations_and_dates() {
        assert_eq!(duration(340), "340 ms");
        assert_eq!(duration(4_249), "4.2 s");
        assert_eq!(duration(125_000), "2 min 05 s");
        assert_eq!(span(60_000), "60 s");
        assert_eq!(span(300_000), "5 min");
        assert_eq!(span(250), "250 ms");
        assert_eq!(span(1_500), "1.5 s");
        assert_eq!(span(7_200_000), "2 h");
        assert_eq!(date("2026-11-26T10:00:00Z"), "2026-11-26");
        assert_eq!(date("2026-11-26T10:00:00.5+01:00"), "2026-11-26");
        assert_eq!(date("yesterday"), "yesterday");
    }
}
