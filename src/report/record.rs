//! The run record (`--record`, default `target/tutor/last-run.json`): what the last run did,
//! block by block. The book reads it back with the same types, so every field is
//! (de)serialisable and optional fields default when absent.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::runner::Status;

/// The run record: the latest run of every tutorial that ran with this record path, merged
/// run after run (see [`merge`]). The top-level `backend`/`started_at`/`duration_ms` describe
/// the latest run that wrote the file; each tutorial carries its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Format version (2 since records are kept per tutorial; absent in older files).
    #[serde(default)]
    pub version: u32,
    /// The `--backend` flag, else the backend all tutorials agreed on, else `mixed`.
    pub backend: String,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    /// The tutor that ran it (`CARGO_PKG_VERSION`); the book shows it with each chapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tutor_version: Option<String>,
    /// Per tutorial (by stem, sorted by path): its latest complete run, or its latest partial
    /// run when it never ran completely. This is what the book shows.
    pub tutorials: Vec<TutorialRecord>,
    /// Partial runs (`--step`, `--from`/`--to`) newer than the complete run kept in `tutorials`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partial: Vec<TutorialRecord>,
}

/// Current [`RunRecord::version`].
pub const VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TutorialRecord {
    pub path: String,
    pub stem: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub backend: Option<String>,
    /// When this tutorial's run started (RFC 3339); older records only have the run's.
    #[serde(default)]
    pub started_at: Option<String>,
    /// `None` for a complete run; for a partial one, which steps it ran (`steps 3-4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
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
    /// Ran only to set up a later step (`--step N` runs 1..N-1 first).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub setup: bool,
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
    /// How many times the block ran (more than one with `retry=`).
    #[serde(default)]
    pub tries: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot write the run record {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("cannot read the run record {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the run record {path} is not valid: {source} (remove it to start a new one)")]
    Parse { path: String, source: serde_json::Error },
}

impl RunRecord {
    /// A record of no run.
    pub fn empty() -> RunRecord {
        RunRecord {
            version: VERSION,
            backend: String::new(),
            started_at: String::new(),
            duration_ms: 0,
            tutor_version: None,
            tutorials: Vec::new(),
            partial: Vec::new(),
        }
    }

    /// Replace the file at `path` with this record, atomically (a reader sees the old file or
    /// the new one, never half of one).
    pub fn write(&self, path: &Path) -> Result<(), RecordError> {
        let err = |source| RecordError::Write { path: path.display().to_string(), source };
        let parent = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(p) => {
                std::fs::create_dir_all(p).map_err(err)?;
                p.to_path_buf()
            }
            None => std::path::PathBuf::from("."),
        };
        let json = serde_json::to_string_pretty(self).expect("the run record always serialises");
        let mut tmp = tempfile::Builder::new().prefix(".last-run").tempfile_in(&parent).map_err(err)?;
        std::io::Write::write_all(&mut tmp, (json + "\n").as_bytes()).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }

    pub fn read(path: &Path) -> Result<RunRecord, RecordError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| RecordError::Read { path: path.display().to_string(), source })?;
        serde_json::from_str(&text).map_err(|source| RecordError::Parse { path: path.display().to_string(), source })
    }

    /// Fold the tutorials of a newer run (`new`) into this record: a complete run replaces
    /// whatever the tutorial had; a partial run replaces a partial one, and is kept beside a
    /// complete one (in `partial`) without replacing it.
    pub fn merge(&mut self, new: RunRecord) {
        self.version = VERSION;
        self.backend = new.backend;
        self.started_at = new.started_at.clone();
        self.duration_ms = new.duration_ms;
        self.tutor_version = new.tutor_version;
        for mut t in new.tutorials {
            t.started_at.get_or_insert_with(|| new.started_at.clone());
            let kept = self.tutorials.iter().position(|k| k.stem == t.stem);
            self.partial.retain(|p| p.stem != t.stem);
            match (kept, t.partial.is_some()) {
                (Some(i), true) if self.tutorials[i].partial.is_none() => self.partial.push(t),
                (Some(i), _) => self.tutorials[i] = t,
                (None, _) => self.tutorials.push(t),
            }
        }
        self.tutorials.sort_by(|a, b| a.path.cmp(&b.path));
        self.partial.sort_by(|a, b| a.path.cmp(&b.path));
    }
}

/// Merge `new` into the record at `path` under an exclusive lock (a `flock` on its folder), so
/// that runs that finish at the same time all end up in it.
pub fn merge_into(path: &Path, new: RunRecord) -> Result<(), RecordError> {
    let err = |source| RecordError::Write { path: path.display().to_string(), source };
    let parent = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p,
        None => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(err)?;
    // The lock is a `flock` on the record's folder: no lock file to leave behind.
    let lock = std::fs::File::open(parent).map_err(err)?;
    lock.lock().map_err(err)?;
    let empty = std::fs::metadata(path).is_ok_and(|m| m.len() == 0);
    let mut record = match RunRecord::read(path) {
        Ok(r) => r,
        // No record yet (or an empty file made for it): start one.
        Err(RecordError::Parse { .. }) if empty => RunRecord::empty(),
        Err(RecordError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => RunRecord::empty(),
        Err(e) => return Err(e),
    };
    record.merge(new);
    let written = record.write(path);
    let _ = lock.unlock();
    written
}

/// The record of a run, from its results.
pub fn from_results(
    results: &[crate::runner::TutorialResult],
    backend: &str,
    started_at: std::time::SystemTime,
    took: std::time::Duration,
) -> RunRecord {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let started = humantime::format_rfc3339_seconds(started_at).to_string();
    RunRecord {
        version: VERSION,
        backend: backend.to_string(),
        started_at: started.clone(),
        duration_ms: ms(took),
        tutor_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        partial: Vec::new(),
        tutorials: results
            .iter()
            .map(|t| TutorialRecord {
                path: t.path.display().to_string(),
                stem: t.stem.clone(),
                title: t.title.clone(),
                backend: Some(t.backend.to_string()),
                started_at: Some(started.clone()),
                partial: t.partial.clone(),
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
                        setup: s.setup,
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
                                tries: b.tries,
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
            version: VERSION,
            backend: "host".into(),
            started_at: "2026-11-26T10:00:00Z".into(),
            duration_ms: 12,
            tutor_version: Some("0.1.0".into()),
            partial: Vec::new(),
            tutorials: vec![TutorialRecord {
                path: "t.md".into(),
                stem: "t".into(),
                title: Some("T".into()),
                backend: Some("host".into()),
                started_at: None,
                partial: None,
                status: Status::Failed,
                duration_ms: 10,
                error: None,
                steps: vec![StepRecord {
                    number: 1,
                    title: "One".into(),
                    duration_ms: 9,
                    setup: false,
                    blocks: vec![BlockRecord {
                        id: "one-1".into(),
                        line: 5,
                        target: "host".into(),
                        status: Status::Failed,
                        duration_ms: 3,
                        output: "hi\n".into(),
                        diff: Some("-a\n+b\n".into()),
                        reason: Some("output does not match".into()),
                        tries: 1,
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

    fn run(at: &str, tutorials: &[(&str, Option<&str>, Status)]) -> RunRecord {
        RunRecord {
            version: VERSION,
            backend: "host".into(),
            started_at: at.into(),
            duration_ms: 1,
            tutor_version: None,
            partial: Vec::new(),
            tutorials: tutorials
                .iter()
                .map(|(stem, partial, status)| TutorialRecord {
                    path: format!("tutorials/{stem}.md"),
                    stem: stem.to_string(),
                    title: None,
                    backend: Some("host".into()),
                    started_at: None,
                    partial: partial.map(str::to_string),
                    status: *status,
                    duration_ms: 1,
                    error: None,
                    steps: Vec::new(),
                })
                .collect(),
        }
    }

    fn shown(r: &RunRecord) -> Vec<(String, Option<String>, String)> {
        r.tutorials.iter().map(|t| (t.stem.clone(), t.partial.clone(), t.started_at.clone().unwrap())).collect()
    }

    #[test]
    fn merge_keeps_every_tutorial_and_complete_runs_win() {
        let mut rec = run("t0", &[]);
        rec.merge(run("t1", &[("b", None, Status::Passed), ("a", None, Status::Passed)]));
        rec.merge(run("t2", &[("a", Some("step 3"), Status::Failed)]));
        // The partial run does not replace a's complete run, and b is still there.
        assert_eq!(shown(&rec), vec![("a".into(), None, "t1".into()), ("b".into(), None, "t1".into())]);
        assert_eq!(rec.partial.len(), 1);
        assert_eq!(rec.partial[0].partial.as_deref(), Some("step 3"));
        assert_eq!(rec.started_at, "t2");
        // A new complete run replaces it and drops the stale partial one.
        rec.merge(run("t3", &[("a", None, Status::Failed)]));
        assert_eq!(shown(&rec)[0], ("a".into(), None, "t3".into()));
        assert!(rec.partial.is_empty());
        // A tutorial that only ever ran partly is shown with its partial run.
        rec.merge(run("t4", &[("c", Some("steps 1-2"), Status::Passed)]));
        assert_eq!(shown(&rec)[2], ("c".into(), Some("steps 1-2".into()), "t4".into()));
        rec.merge(run("t5", &[("c", Some("step 2"), Status::Passed)]));
        assert_eq!(shown(&rec)[2], ("c".into(), Some("step 2".into()), "t5".into()));
    }

    #[test]
    fn concurrent_merges_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r/last-run.json");
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let stem = format!("t{i}");
                    merge_into(&path, run("now", &[(&stem, None, Status::Passed)])).unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let rec = RunRecord::read(&path).unwrap();
        assert_eq!(rec.tutorials.len(), 8, "{:?}", shown(&rec));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".last-run"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn an_empty_file_is_a_new_record() {
        let file = tempfile::NamedTempFile::new().unwrap();
        merge_into(file.path(), run("y", &[("u", None, Status::Passed)])).unwrap();
        assert_eq!(RunRecord::read(file.path()).unwrap().tutorials.len(), 1);
    }

    #[test]
    fn an_old_record_without_the_new_fields_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(
            &path,
            r#"{"backend":"lab","started_at":"x","duration_ms":1,"tutorials":[{"path":"t.md","stem":"t","status":"passed","duration_ms":1,"steps":[]}]}"#,
        )
        .unwrap();
        merge_into(&path, run("y", &[("u", None, Status::Passed)])).unwrap();
        let rec = RunRecord::read(&path).unwrap();
        assert_eq!(rec.version, VERSION);
        assert_eq!(rec.tutorials.iter().map(|t| t.stem.as_str()).collect::<Vec<_>>(), ["t", "u"]);
    }
}
