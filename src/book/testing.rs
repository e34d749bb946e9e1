//! Small books for the unit tests: a project folder with `tutorials/` and `snapshots/`, and
//! run records built in code.

use std::path::{Path, PathBuf};

use crate::report::record::{BlockRecord, RunRecord, StepRecord, TutorialRecord};
use crate::runner::Status;
use crate::snapshot::Snapshot;

pub struct Project(tempfile::TempDir);

impl Project {
    pub fn new() -> Project {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("tutorials")).unwrap();
        std::fs::create_dir_all(d.path().join("snapshots")).unwrap();
        Project(d)
    }

    pub fn root(&self) -> &Path {
        self.0.path()
    }

    pub fn tutorial_path(&self, name: &str) -> PathBuf {
        self.root().join("tutorials").join(name)
    }

    pub fn tutorial(&self, name: &str, text: &str) {
        std::fs::write(self.tutorial_path(name), text).unwrap();
    }

    pub fn snapshot(&self, stem: &str, id: &str, command: &str, body: &str) {
        let snap = Snapshot {
            tutorial: format!("tutorials/{stem}.md"),
            id: id.into(),
            command: command.into(),
            body: body.into(),
        };
        crate::snapshot::write(&self.root().join("snapshots").join(stem).join(format!("{id}.snap")), &snap).unwrap();
    }
}

/// A record of one run of tutorial `stem` on the lab, on 2026-11-26, with all blocks in one
/// step of 1.2 s.
pub fn record_with(stem: &str, blocks: &[(&str, Status, &str)]) -> RunRecord {
    let blocks = blocks
        .iter()
        .enumerate()
        .map(|(i, (id, status, output))| BlockRecord {
            id: id.to_string(),
            line: i + 1,
            target: "host".into(),
            status: *status,
            duration_ms: 100,
            output: output.to_string(),
            diff: None,
            reason: None,
            tries: 1,
        })
        .collect();
    RunRecord {
        version: crate::report::record::VERSION,
        partial: Vec::new(),
        backend: "lab".into(),
        started_at: "2026-11-26T10:00:00Z".into(),
        duration_ms: 1500,
        tutor_version: Some("0.1.0".into()),
        tutorials: vec![TutorialRecord {
            path: format!("tutorials/{stem}.md"),
            stem: stem.into(),
            title: None,
            backend: Some("lab".into()),
            started_at: None,
            partial: None,
            status: Status::Passed,
            duration_ms: 1300,
            error: None,
            steps: vec![StepRecord { number: 1, title: "All".into(), duration_ms: 1200, setup: false, blocks }],
        }],
    }
}
