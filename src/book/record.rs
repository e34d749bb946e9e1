//! The last run record (`tutor run` writes it, the book only reads it), indexed for lookups by
//! tutorial stem and block id: block ids are stable across edits, line numbers are not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::BookError;
use crate::report::record::{BlockRecord, RunRecord, StepRecord, TutorialRecord};

/// Where `tutor run` writes the record unless told otherwise (relative to the book root).
pub const DEFAULT_RECORD: &str = "target/tutor/last-run.json";

/// The record, or `None` when there has been no run yet (the book still builds: "not run").
pub fn load(path: &Path) -> Result<Option<RunRecord>, BookError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(BookError::Io { path: path.to_path_buf(), source }),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| BookError::Record {
        path: path.to_path_buf(),
        line: e.line(),
        message: e.to_string(),
    })
}

/// What the book needs from one run: when and where, and each block's result.
pub struct RunIndex<'r> {
    pub record: &'r RunRecord,
    pub path: PathBuf,
    tutorials: HashMap<&'r str, TutorialRun<'r>>,
}

/// One tutorial's results.
pub struct TutorialRun<'r> {
    pub tutorial: &'r TutorialRecord,
    blocks: HashMap<&'r str, &'r BlockRecord>,
    steps: HashMap<&'r str, &'r StepRecord>,
}

impl<'r> RunIndex<'r> {
    pub fn new(record: &'r RunRecord, path: PathBuf) -> RunIndex<'r> {
        let tutorials = record
            .tutorials
            .iter()
            .map(|t| {
                let blocks = t.steps.iter().flat_map(|s| &s.blocks).map(|b| (b.id.as_str(), b)).collect();
                let steps = t.steps.iter().flat_map(|s| s.blocks.iter().map(move |b| (b.id.as_str(), s))).collect();
                (t.stem.as_str(), TutorialRun { tutorial: t, blocks, steps })
            })
            .collect();
        RunIndex { record, path, tutorials }
    }

    /// Snapshots are named by stem, so stems are unique within a project: match on it rather
    /// than on the path, which is relative to wherever `tutor run` was started.
    pub fn tutorial(&self, stem: &str) -> Option<&TutorialRun<'r>> {
        self.tutorials.get(stem)
    }
}

impl<'r> TutorialRun<'r> {
    pub fn block(&self, id: &str) -> Option<&'r BlockRecord> {
        self.blocks.get(id).copied()
    }

    /// The recorded step that ran block `id` (its duration is the step's duration).
    pub fn step_of(&self, id: &str) -> Option<&'r StepRecord> {
        self.steps.get(id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::testing::record_with;
    use crate::runner::Status;

    #[test]
    fn missing_file_means_no_run() {
        let d = tempfile::tempdir().unwrap();
        assert!(load(&d.path().join("none.json")).unwrap().is_none());
    }

    #[test]
    fn broken_record_names_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.json");
        std::fs::write(&p, "{\n  \"backend\": 3\n}\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2: the run record is not valid", p.display())), "{e}");
    }

    #[test]
    fn finds_blocks_by_stem_and_id() {
        let rec = record_with("t", &[("a-1", Status::Passed, "out\n"), ("a-2", Status::Failed, "x\n")]);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.json");
        std::fs::write(&p, serde_json::to_string(&rec).unwrap()).unwrap();
        let rec = load(&p).unwrap().unwrap();
        let index = RunIndex::new(&rec, p);
        let t = index.tutorial("t").unwrap();
        assert_eq!(t.block("a-2").unwrap().status, Status::Failed);
        assert_eq!(t.step_of("a-1").unwrap().number, 1);
        assert!(t.block("zz").is_none());
        assert!(index.tutorial("other").is_none());
    }
}
