//! The run record's shape as `tutor run` writes it (`target/tutor/last-run.json`).
//! Stand-in until the runner's `crate::report::record` lands on this branch: same names and
//! fields, so switching is a one-line `use`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Error,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub backend: String,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    pub tutorials: Vec<TutorialRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TutorialRecord {
    pub path: String,
    pub stem: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub backend: Option<String>,
    pub status: Status,
    pub duration_ms: u64,
    #[serde(default)]
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub number: usize,
    pub title: String,
    pub duration_ms: u64,
    pub blocks: Vec<BlockRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockRecord {
    pub id: String,
    pub line: usize,
    pub target: String,
    pub status: Status,
    pub duration_ms: u64,
    #[serde(default)]
    pub output: String,
    #[serde(default)]
    pub diff: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}
