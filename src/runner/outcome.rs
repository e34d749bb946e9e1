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
    /// Problems outside any block (backend up/down, work directory, internal errors).
    pub errors: Vec<String>,
    /// A backend error that means the set-up or input is wrong (exit 2 rather than 1).
    pub usage_error: bool,
    pub interrupted: bool,
    /// `--keep`: where the work directory was left.
    pub kept_workdir: Option<PathBuf>,
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
        for b in results.iter().flat_map(|t| t.blocks()) {
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
