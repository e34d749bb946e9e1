//! What running a tutorial produced, block by block. Reports (human, JSON, JUnit, run record)
//! are all derived from these values.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;

/// Verdict of one block (and, aggregated, of a tutorial).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Error,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Error => "error",
            Status::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Expected and actual text of a block whose output did not match. `actual` is the matcher's
/// normalised form (pattern lines that still match are kept), so a diff shows only real changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Where the expectation lives (`tutorial.md:12` or the `.snap` path), for the diff header.
    pub source: String,
    pub expected: String,
    pub actual: String,
    /// File line (in the tutorial or the `.snap` file) of each line of `expected`; reports
    /// number diff lines with these. Lines past the end count on from the last one.
    pub expected_lines: Vec<usize>,
    /// Where each line of `actual` would land in the file if it were accepted.
    pub actual_lines: Vec<usize>,
    /// The diff of `expected` and `actual`, computed once by the first report that shows it
    /// (`report::diff`) and shared by the others (human output, JSON, JUnit, run record).
    pub diff: DiffCache,
}

/// The edit script of a [`Mismatch`], computed at most once; clones share it. Equal whatever
/// it holds (it is derived from the texts).
#[derive(Debug, Clone, Default)]
pub struct DiffCache(std::sync::Arc<std::sync::OnceLock<Vec<similar::DiffOp>>>);

impl DiffCache {
    /// The edit script, from `compute` the first time.
    pub fn get_or_init(&self, compute: impl FnOnce() -> Vec<similar::DiffOp>) -> &[similar::DiffOp] {
        self.0.get_or_init(compute)
    }

    pub fn is_computed(&self) -> bool {
        self.0.get().is_some()
    }
}

impl PartialEq for DiffCache {
    fn eq(&self, _: &DiffCache) -> bool {
        true
    }
}

impl Eq for DiffCache {}

/// The file line of line `i` (0-based) of a text whose lines are at `lines`.
pub fn file_line(lines: &[usize], i: usize) -> usize {
    match lines.last() {
        None => i + 1,
        Some(&last) => lines.get(i).copied().unwrap_or(last + i + 1 - lines.len()),
    }
}

#[derive(Debug, Clone)]
pub struct BlockResult {
    pub id: String,
    pub line: usize,
    pub target: String,
    pub status: Status,
    pub duration: Duration,
    /// What the block printed (console blocks: the transcript, prompts included).
    pub output: String,
    pub mismatch: Option<Mismatch>,
    pub reason: Option<String>,
    /// How many times the block ran (more than one with `retry=`).
    pub tries: u32,
}

impl BlockResult {
    pub fn skipped(block: &crate::tutorial::Block, reason: impl Into<String>) -> BlockResult {
        BlockResult {
            id: block.id.clone(),
            line: block.line,
            target: block.attrs.on.to_string(),
            status: Status::Skipped,
            duration: Duration::ZERO,
            output: String::new(),
            mismatch: None,
            reason: Some(reason.into()),
            tries: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepResult {
    pub number: usize,
    pub title: String,
    pub line: usize,
    pub duration: Duration,
    /// Ran only to set up the selected step (`--step N` on a fresh environment).
    pub setup: bool,
    pub blocks: Vec<BlockResult>,
}

#[derive(Debug, Clone)]
pub struct TutorialResult {
    pub path: PathBuf,
    pub stem: String,
    pub title: Option<String>,
    pub backend: BackendKind,
    pub duration: Duration,
    pub steps: Vec<StepResult>,
    /// Snapshot and Markdown files that update mode changed.
    pub updated: Vec<PathBuf>,
    /// Pending changes this run recorded for `tutor review`.
    pub pending: Vec<PathBuf>,
    /// Problems outside any block (backend up/down, work directory, internal errors).
    pub errors: Vec<String>,
    /// A backend error that means the set-up or input is wrong (exit 2 rather than 1).
    pub usage_error: bool,
    pub interrupted: bool,
    /// `--keep`: where the work directory was left.
    pub kept_workdir: Option<PathBuf>,
    /// `--keep` (or `--env`) on a backend that can resume: the environment left for `--env NAME`.
    pub kept: Option<super::kept::KeptEnv>,
    /// `None` when every step was selected; else which ones ran (`step 3`, `steps 2-4`).
    pub partial: Option<String>,
}

impl TutorialResult {
    pub fn blocks(&self) -> impl Iterator<Item = &BlockResult> {
        self.steps.iter().flat_map(|s| s.blocks.iter())
    }

    /// error > failed > passed; a tutorial where nothing ran is skipped.
    pub fn status(&self) -> Status {
        let any = |s| self.blocks().any(|b| b.status == s);
        if !self.errors.is_empty() || any(Status::Error) {
            Status::Error
        } else if any(Status::Failed) {
            Status::Failed
        } else if any(Status::Passed) {
            Status::Passed
        } else {
            Status::Skipped
        }
    }
}

/// Totals over a run, for the closing line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn of(results: &[TutorialResult]) -> Counts {
        let mut c = Counts::default();
        // Set-up steps count only when they fail: they are not what the user asked to run.
        let blocks = results.iter().flat_map(|t| t.steps.iter()).flat_map(|s| {
            s.blocks.iter().filter(move |b| !s.setup || matches!(b.status, Status::Failed | Status::Error))
        });
        for b in blocks {
            match b.status {
                Status::Passed => c.passed += 1,
                Status::Failed => c.failed += 1,
                Status::Error => c.errors += 1,
                Status::Skipped => c.skipped += 1,
            }
        }
        c
    }
}
