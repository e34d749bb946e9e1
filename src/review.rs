//! Pending changes, insta's model (docs/architecture.md, "Review"): a run whose block does not
//! match its expectation records the new expectation beside the old one instead of replacing
//! it — `<id>.snap.new` next to an `sh` block's `<id>.snap`, `<id>.console.new` (a pending copy
//! of a console block's body) in the same folder. `tutor review` shows each as a diff and
//! accepts it (the `.snap.new` replaces the `.snap`; the block's body is rewritten in the
//! Markdown, every other byte of the file untouched) or rejects it (the pending file is removed).

use std::path::{Path, PathBuf};

use crate::runner::Mismatch;
use crate::snapshot::{self, Snapshot};
use crate::tutorial::{self, BlockKind, Tutorial};

/// Suffix of a pending `.snap` (`<id>.snap.new`).
pub const SNAP_NEW: &str = "snap.new";
/// Suffix of a pending console body (`<id>.console.new`).
pub const CONSOLE_NEW: &str = "console.new";

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: broken pending file: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error(transparent)]
    Tutorial(#[from] tutorial::TutorialError),
    #[error(
        "{}: block `{id}` changed since the run that recorded this pending change (run again to get a new one)",
        path.display()
    )]
    Stale { path: PathBuf, id: String },
    #[error("{}: no block `{id}` any more (the pending change is stale; reject it)", path.display())]
    NoBlock { path: PathBuf, id: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReviewError + '_ {
    move |source| ReviewError::Io { path: path.to_path_buf(), source }
}

/// Header of a pending console body: which block, and the body it replaces (so that accepting
/// never overwrites an edit made since the run).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsoleHeader {
    tutorial: String,
    id: String,
    line: usize,
    old: String,
}

pub fn snap_new_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.{SNAP_NEW}"))
}

pub fn console_new_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.{CONSOLE_NEW}"))
}

/// Write `<id>.snap.new`. Returns its path.
pub fn write_snapshot(dir: &Path, snap: &Snapshot) -> Result<PathBuf, ReviewError> {
    let path = snap_new_path(dir, &snap.id);
    write_atomic(&path, &snapshot::render(snap))?;
    Ok(path)
}

/// Write `<id>.console.new` for the console block `id` of `t` (its current body `old`).
pub fn write_console(
    dir: &Path,
    t: &Tutorial,
    id: &str,
    line: usize,
    old: &str,
    new: &str,
) -> Result<PathBuf, ReviewError> {
    let path = console_new_path(dir, id);
    let header =
        ConsoleHeader { tutorial: t.path.display().to_string(), id: id.to_string(), line, old: old.to_string() };
    let yaml = serde_yaml::to_string(&header).expect("the header serialises");
    write_atomic(&path, &format!("---\n{yaml}---\n{new}"))?;
    Ok(path)
}

/// Remove the pending files of block `id` (it matched, or its change was just accepted).
pub fn clear(dir: &Path, id: &str) {
    let _ = std::fs::remove_file(snap_new_path(dir, id));
    let _ = std::fs::remove_file(console_new_path(dir, id));
}

fn write_atomic(path: &Path, text: &str) -> Result<(), ReviewError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(path))?;
    }
    let tmp = path.with_extension("new.tmp");
    std::fs::write(&tmp, text).map_err(io(path))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// One pending change, read back for review.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The pending file.
    pub path: PathBuf,
    /// The tutorial it belongs to.
    pub tutorial: PathBuf,
    pub id: String,
    pub kind: PendingKind,
    /// The current expectation and the proposed one.
    pub old: String,
    pub new: String,
    /// File line of the first expectation line (in the `.snap` or the tutorial).
    pub first_line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingKind {
    /// Replaces (or creates) `<id>.snap`.
    Snapshot { snap: PathBuf },
    /// Rewrites the console block's body in the tutorial.
    Console,
}

impl Pending {
    /// Where the change would land, for messages: `snapshots/t/x.snap` or `t.md:12`.
    pub fn target(&self) -> String {
        match &self.kind {
            PendingKind::Snapshot { snap } => snap.display().to_string(),
            PendingKind::Console => format!("{}:{}", self.tutorial.display(), self.first_line),
        }
    }

    /// The change as a diff whose line numbers are the file's.
    pub fn mismatch(&self) -> Mismatch {
        let lines = |text: &str| (self.first_line..self.first_line + text.lines().count()).collect();
        Mismatch {
            source: self.target(),
            expected: self.old.trim_end_matches('\n').to_string(),
            actual: self.new.trim_end_matches('\n').to_string(),
            expected_lines: lines(&self.old),
            actual_lines: lines(&self.new),
            diff: Default::default(),
        }
    }
}

/// Every pending change of tutorial `t` (whose snapshots are in `dir`), sorted by file name.
pub fn find(t: &Tutorial, dir: &Path) -> Result<Vec<Pending>, ReviewError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(id) = name.strip_suffix(&format!(".{SNAP_NEW}")) {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let new = snapshot::parse(&path, &text)?;
            let snap = snapshot::snapshot_path(dir, id);
            let old = snapshot::read(&snap)?;
            out.push(Pending {
                tutorial: t.path.clone(),
                id: id.to_string(),
                old: old.as_ref().map(|o| o.body.clone()).unwrap_or_default(),
                first_line: old.as_ref().map(snapshot::body_line).unwrap_or_else(|| snapshot::body_line(&new)),
                new: new.body,
                kind: PendingKind::Snapshot { snap },
                path,
            });
        } else if let Some(id) = name.strip_suffix(&format!(".{CONSOLE_NEW}")) {
            let (header, new) = read_console(&path)?;
            let first_line =
                t.steps.iter().flat_map(|s| &s.blocks).find(|b| b.id == id).map(|b| b.body_line).unwrap_or(header.line);
            out.push(Pending {
                tutorial: t.path.clone(),
                id: id.to_string(),
                old: header.old,
                new,
                first_line,
                kind: PendingKind::Console,
                path,
            });
        }
    }
    Ok(out)
}

fn read_console(path: &Path) -> Result<(ConsoleHeader, String), ReviewError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let corrupt = |message: String| ReviewError::Corrupt { path: path.to_path_buf(), message };
    let rest = text.strip_prefix("---\n").ok_or_else(|| corrupt("expected a `---` line opening the header".into()))?;
    let close = rest
        .match_indices("---\n")
        .find(|(i, _)| *i == 0 || rest.as_bytes()[i - 1] == b'\n')
        .map(|(i, _)| i)
        .ok_or_else(|| corrupt("the header is never closed with a `---` line".into()))?;
    let header: ConsoleHeader = serde_yaml::from_str(&rest[..close]).map_err(|e| corrupt(e.to_string()))?;
    Ok((header, rest[close + 4..].to_string()))
}

/// Accept `p`: the new expectation replaces the old one; the pending file goes.
pub fn accept(p: &Pending) -> Result<(), ReviewError> {
    match &p.kind {
        PendingKind::Snapshot { snap } => {
            std::fs::rename(&p.path, snap).map_err(io(snap))?;
        }
        PendingKind::Console => {
            let source = std::fs::read_to_string(&p.tutorial).map_err(io(&p.tutorial))?;
            let t = tutorial::parse_str(&p.tutorial, &source)?;
            let block = t
                .steps
                .iter()
                .flat_map(|s| &s.blocks)
                .find(|b| b.id == p.id && matches!(b.kind, BlockKind::Console(_)))
                .ok_or_else(|| ReviewError::NoBlock { path: p.tutorial.clone(), id: p.id.clone() })?;
            if block.body != p.old {
                return Err(ReviewError::Stale { path: p.tutorial.clone(), id: p.id.clone() });
            }
            let body = crate::runner::in_container(&source, &block.body_span, &p.new);
            let new = crate::runner::update_apply(&source, vec![(block.body_span.clone(), body)]);
            write_atomic(&p.tutorial, &new)?;
            std::fs::remove_file(&p.path).map_err(io(&p.path))?;
        }
    }
    Ok(())
}

/// Reject `p`: the pending file goes, the expectation stays.
pub fn reject(p: &Pending) -> Result<(), ReviewError> {
    std::fs::remove_file(&p.path).map_err(io(&p.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tutorial(dir: &Path, text: &str) -> Tutorial {
        let path = dir.join("t.md");
        std::fs::write(&path, text).unwrap();
        tutorial::parse_file(&path).unwrap()
    }

    #[test]
    fn a_console_change_is_found_accepted_and_leaves_the_rest_of_the_file_alone() {
        let d = tempfile::tempdir().unwrap();
        let src =
            "# T\n\nprose  with  spaces \n\n## S\n\n- item\n\n  ```console {id=c}\n  $ echo a\n  old\n  ```\n\ntail\n";
        let t = tutorial(d.path(), src);
        let b = &t.steps[0].blocks[0];
        let snaps = d.path().join("snapshots/t");
        write_console(&snaps, &t, "c", b.body_line, &b.body, "$ echo a\nnew\n").unwrap();
        let found = find(&t, &snaps).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].first_line, found[0].old.as_str()), (10, "$ echo a\nold\n"));
        assert!(crate::report::diff::unified(&found[0].mismatch(), false).contains("  11      │-old"));
        accept(&found[0]).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("t.md")).unwrap(), src.replace("  old\n", "  new\n"));
        assert!(find(&t, &snaps).unwrap().is_empty());
    }

    #[test]
    fn a_console_change_is_refused_once_the_block_was_edited() {
        let d = tempfile::tempdir().unwrap();
        let t = tutorial(d.path(), "# T\n\n```console {id=c}\n$ echo a\nold\n```\n");
        let b = &t.steps[0].blocks[0];
        let snaps = d.path().join("s");
        write_console(&snaps, &t, "c", b.body_line, &b.body, "$ echo a\nnew\n").unwrap();
        std::fs::write(d.path().join("t.md"), "# T\n\n```console {id=c}\n$ echo b\nold\n```\n").unwrap();
        let p = &find(&t, &snaps).unwrap()[0];
        assert!(matches!(accept(p), Err(ReviewError::Stale { .. })));
        reject(p).unwrap();
        assert!(find(&t, &snaps).unwrap().is_empty());
    }

    #[test]
    fn a_snapshot_change_replaces_the_snap() {
        let d = tempfile::tempdir().unwrap();
        let t = tutorial(d.path(), "# T\n\n```sh {id=s}\necho b\n```\n");
        let dir = d.path().join("s");
        let snap = |body: &str| Snapshot {
            tutorial: "t.md".into(),
            id: "s".into(),
            command: "echo b".into(),
            body: body.into(),
        };
        snapshot::write(&snapshot::snapshot_path(&dir, "s"), &snap("a\n")).unwrap();
        write_snapshot(&dir, &snap("b\n")).unwrap();
        let p = &find(&t, &dir).unwrap()[0];
        assert_eq!((p.old.as_str(), p.new.as_str()), ("a\n", "b\n"));
        accept(p).unwrap();
        assert_eq!(snapshot::read(&snapshot::snapshot_path(&dir, "s")).unwrap().unwrap().body, "b\n");
        assert!(!snap_new_path(&dir, "s").exists());
    }
}
