//! `.snap` files and the matcher.
//! PLACEHOLDER (runner branch): the real module lands from `main`; only the signatures matter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::tutorial::Tutorial;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SnapshotError(pub String);
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MatchError(pub String);

pub fn snapshot_dir(tutorial: &Tutorial, override_dir: Option<&Path>) -> PathBuf {
    override_dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("snapshots")).join(&tutorial.stem)
}
pub fn snapshot_path(dir: &Path, block_id: &str) -> PathBuf {
    dir.join(format!("{block_id}.snap"))
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub tutorial: String,
    pub id: String,
    pub command: String,
    pub body: String,
}
pub fn read(path: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    match std::fs::read_to_string(path) {
        Ok(body) => Ok(Some(Snapshot { tutorial: String::new(), id: String::new(), command: String::new(), body })),
        Err(_) => Ok(None),
    }
}
pub fn write(path: &Path, snap: &Snapshot) -> Result<bool, SnapshotError> {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(path, &snap.body).map_err(|e| SnapshotError(e.to_string()))?;
    Ok(true)
}
pub struct Matcher;
impl Matcher {
    pub fn new(_redactions: &BTreeMap<String, String>) -> Result<Matcher, MatchError> {
        Ok(Matcher)
    }
    pub fn is_match(&self, expected: &str, actual: &str) -> bool {
        expected == actual
    }
    pub fn normalize(&self, _expected: &str, actual: &str) -> String {
        actual.to_string()
    }
}
