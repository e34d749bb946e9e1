//! `--format json`: one JSON object per line on stdout: a `block` record as each block
//! finishes, an `error` record per input error, and a closing `summary` record.

use serde::{Deserialize, Serialize};

use super::diff;
use crate::runner::{BlockResult, Counts, Event, Reporter, Status, TutorialResult};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockLine {
    /// Always `block`.
    #[serde(rename = "type")]
    pub kind: String,
    pub tutorial: String,
    pub step: usize,
    pub id: String,
    pub line: usize,
    pub target: String,
    pub status: Status,
    pub duration_ms: u64,
    pub tries: u32,
    /// Ran only to set up the selected step.
    #[serde(default)]
    pub setup: bool,
    /// The expectation, when the output did not match it.
    pub expected: Option<String>,
    /// The actual output (normalised against the expectation), when it did not match.
    pub actual: Option<String>,
    pub diff: Option<String>,
    pub reason: Option<String>,
    /// Everything the block printed.
    pub output: String,
}

impl BlockLine {
    pub fn new(tutorial: &std::path::Path, step: usize, setup: bool, b: &BlockResult) -> BlockLine {
        BlockLine {
            kind: "block".into(),
            tutorial: tutorial.display().to_string(),
            step,
            id: b.id.clone(),
            line: b.line,
            target: b.target.clone(),
            status: b.status,
            duration_ms: b.duration.as_millis() as u64,
            tries: b.tries,
            setup,
            expected: b.mismatch.as_ref().map(|m| m.expected.clone()),
            actual: b.mismatch.as_ref().map(|m| m.actual.clone()),
            diff: b.mismatch.as_ref().map(|m| diff::unified(m, false)),
            reason: b.reason.clone(),
            output: b.output.clone(),
        }
    }
}

/// An input error (`file:line: message`), with file and line split out when present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorLine {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub message: String,
}

impl ErrorLine {
    pub fn new(text: &str) -> ErrorLine {
        let (file, line) = split_location(text);
        ErrorLine { kind: "error".into(), file, line, message: text.to_string() }
    }
}

/// `path:12: …` → (`path`, 12); `path: …` → (`path`, none) when `path` names a file.
fn split_location(text: &str) -> (Option<String>, Option<usize>) {
    let mut parts = text.splitn(3, ':');
    let (Some(file), Some(second)) = (parts.next(), parts.next()) else { return (None, None) };
    if let Ok(line) = second.trim().parse::<usize>()
        && parts.next().is_some()
    {
        return (Some(file.to_string()), Some(line));
    }
    let looks_like_file = !file.contains(' ') && (file.ends_with(".md") || std::path::Path::new(file).exists());
    (looks_like_file.then(|| file.to_string()), None)
}

/// One failing block in the closing summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub tutorial: String,
    pub line: usize,
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryLine {
    /// Always `summary`.
    #[serde(rename = "type")]
    pub kind: String,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub skipped: usize,
    pub duration_ms: u64,
    /// `pass`, `fail`, `usage` or `interrupted`, as the exit status says.
    pub outcome: String,
    pub failures: Vec<Failure>,
}

/// The failing blocks of a run (and tutorials that failed outside any block), in run order.
pub fn failures(results: &[TutorialResult]) -> Vec<Failure> {
    let mut out = Vec::new();
    for t in results {
        for s in &t.steps {
            for b in s.blocks.iter().filter(|b| matches!(b.status, Status::Failed | Status::Error)) {
                let mut reason = b.reason.clone().unwrap_or_else(|| b.status.to_string());
                if s.setup {
                    reason = format!("{reason} (set-up step {})", s.number);
                }
                out.push(Failure { tutorial: t.path.display().to_string(), line: b.line, id: b.id.clone(), reason });
            }
        }
        for e in &t.errors {
            out.push(Failure { tutorial: t.path.display().to_string(), line: 0, id: String::new(), reason: e.clone() });
        }
    }
    out
}

impl SummaryLine {
    pub fn new(results: &[TutorialResult], took: std::time::Duration, outcome: &str) -> SummaryLine {
        let c = Counts::of(results);
        SummaryLine {
            kind: "summary".into(),
            passed: c.passed,
            failed: c.failed,
            errors: c.errors,
            skipped: c.skipped,
            duration_ms: took.as_millis() as u64,
            outcome: outcome.into(),
            failures: failures(results),
        }
    }
}

/// Print one record as a line on stdout.
pub fn print<T: Serialize>(record: &T) {
    println!("{}", serde_json::to_string(record).expect("a JSON record always serialises"));
}

/// Prints each finished block as a JSON line on stdout.
pub struct JsonLines;

impl Reporter for JsonLines {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::BlockFinished { tutorial, step, result } => {
                print(&BlockLine::new(&tutorial.path, step.number, false, result));
            }
            Event::SetupFinished { tutorial, steps } => {
                for s in *steps {
                    for b in &s.blocks {
                        print(&BlockLine::new(&tutorial.path, s.number, true, b));
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_locations_are_split_out() {
        assert_eq!(split_location("t.md:12: bad"), (Some("t.md".into()), Some(12)));
        assert_eq!(split_location("t.md: no steps"), (Some("t.md".into()), None));
        assert_eq!(split_location("no Markdown tutorials found in x"), (None, None));
        assert_eq!(split_location("something: else"), (None, None));
    }
}
