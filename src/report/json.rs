//! `--format json`: one JSON object per block, one per line, as blocks finish.

use serde::{Deserialize, Serialize};

use super::diff;
use crate::runner::{BlockResult, Event, Reporter, Status};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockLine {
    pub tutorial: String,
    pub step: usize,
    pub id: String,
    pub line: usize,
    pub target: String,
    pub status: Status,
    pub duration_ms: u64,
    pub diff: Option<String>,
    pub reason: Option<String>,
}

impl BlockLine {
    pub fn new(tutorial: &std::path::Path, step: usize, b: &BlockResult) -> BlockLine {
        BlockLine {
            tutorial: tutorial.display().to_string(),
            step,
            id: b.id.clone(),
            line: b.line,
            target: b.target.clone(),
            status: b.status,
            duration_ms: b.duration.as_millis() as u64,
            diff: b.mismatch.as_ref().map(|m| diff::unified(m, false)),
            reason: b.reason.clone(),
        }
    }
}

/// Prints each finished block as a JSON line on stdout.
pub struct JsonLines;

impl Reporter for JsonLines {
    fn event(&self, event: &Event<'_>) {
        if let Event::BlockFinished { tutorial, step, result } = event {
            let line = BlockLine::new(&tutorial.path, step.number, result);
            println!("{}", serde_json::to_string(&line).expect("a block line always serialises"));
        }
    }
}
