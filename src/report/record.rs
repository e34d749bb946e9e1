//! The run record (`--record`, default `target/tutor/last-run.json`): what the last run did,
//! block by block. The book reads it back with the same types, so every field is
//! (de)serialisable and optional fields default when absent.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::runner::Status;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The `--backend` flag, else the backend all tutorials agreed on, else `mixed`.
    pub backend: String,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    /// The tutor that ran it (`CARGO_PKG_VERSION`); the book shows it with each chapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tutor_version: Option<String>,
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
    /// Why the tutorial as a whole did not run (backend failed to come up, …).
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
    /// What the block actually printed (for console blocks: the transcript with prompts).
    #[serde(default)]
    pub output: String,
    /// Plain unified diff, expected vs actual, when the output did not match.
    #[serde(default)]
    pub diff: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot write the run record {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("cannot read the run record {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the run record {path} is not valid: {source}")]
    Parse { path: String, source: serde_json::Error },
}

impl RunRecord {
    pub fn write(&self, path: &Path) -> Result<(), RecordError> {
        let err = |source| RecordError::Write { path: path.display().to_string(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let json = serde_json::to_string_pretty(self).expect("the run record always serialises");
        std::fs::write(path, json + "\n").map_err(err)
    }

    pub fn read(path: &Path) -> Result<RunRecord, RecordError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| RecordError::Read { path: path.display().to_string(), source })?;
        serde_json::from_str(&text).map_err(|source| RecordError::Parse { path: path.display().to_string(), source })
    }
}

/// The record of a run, from its results.
pub fn from_results(
    results: &[crate::runner::TutorialResult],
    backend: &str,
    started_at: std::time::SystemTime,
    took: std::time::Duration,
) -> RunRecord {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    RunRecord {
        backend: backend.to_string(),
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
        duration_ms: ms(took),
        tutor_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        tutorials: results
            .iter()
            .map(|t| TutorialRecord {
                path: t.path.display().to_string(),
                stem: t.stem.clone(),
                title: t.title.clone(),
                backend: Some(t.backend.to_string()),
                status: t.status(),
                duration_ms: ms(t.duration),
                error: (!t.errors.is_empty()).then(|| t.errors.join("; ")),
                steps: t
                    .steps
                    .iter()
                    .map(|s| StepRecord {
                        number: s.number,
                        title: s.title.clone(),
                        duration_ms: ms(s.duration),
                        blocks: s
                            .blocks
                            .iter()
                            .map(|b| BlockRecord {
                                id: b.id.clone(),
                                line: b.line,
                                target: b.target.clone(),
                                status: b.status,
                                duration_ms: ms(b.duration),
                                output: b.output.clone(),
                                diff: b.mismatch.as_ref().map(|m| super::diff::unified(m, false)),
                                reason: b.reason.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_file() {
        let rec = RunRecord {
            backend: "host".into(),
            started_at: "2026-11-26T10:00:00Z".into(),
            duration_ms: 12,
            tutor_version: Some("0.1.0".into()),
            tutorials: vec![TutorialRecord {
                path: "t.md".into(),
                stem: "t".into(),
                title: Some("T".into()),
                backend: Some("host".into()),
                status: Status::Failed,
                duration_ms: 10,
                error: None,
                steps: vec![StepRecord {
                    number: 1,
                    title: "One".into(),
                    duration_ms: 9,
                    blocks: vec![BlockRecord {
                        id: "one-1".into(),
                        line: 5,
                        target: "host".into(),
                        status: Status::Failed,
                        duration_ms: 3,
                        output: "hi\n".into(),
                        diff: Some("-a\n+b\n".into()),
                        reason: Some("output does not match".into()),
                    }],
                }],
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/last-run.json");
        rec.write(&path).unwrap();
        assert_eq!(RunRecord::read(&path).unwrap(), rec);
        let raw: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(raw["tutorials"][0]["steps"][0]["blocks"][0]["status"], "failed");
    }

    #[test]
    fn a_broken_record_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, "{").unwrap();
        let err = RunRecord::read(&path).unwrap_err().to_string();
        assert!(err.contains("r.json"), "{err}");
    }
}
