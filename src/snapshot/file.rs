//! The `.snap` file: a small YAML header between `---` lines (insta-style), then the expected
//! output exactly as the block printed it.
//!
//! ```text
//! ---
//! tutorial: tutorials/getting-started.md
//! id: hello-1
//! command: echo hello
//! ---
//! hello
//! ```

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub tutorial: String,
    pub id: String,
    pub command: String,
    #[serde(skip)]
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{}:{line}: broken snapshot file: {message}", path.display())]
    Corrupt { path: PathBuf, line: usize, message: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// `Ok(None)` when the file does not exist.
pub fn read(path: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SnapshotError::Io { path: path.to_path_buf(), source: e }),
    }
}

pub fn parse(path: &Path, text: &str) -> Result<Snapshot, SnapshotError> {
    let corrupt = |line: usize, message: String| SnapshotError::Corrupt { path: path.to_path_buf(), line, message };
    let rest =
        text.strip_prefix("---\n").ok_or_else(|| corrupt(1, "expected a `---` line opening the header".into()))?;
    let close = rest
        .match_indices("---\n")
        .find(|(i, _)| *i == 0 || rest.as_bytes()[i - 1] == b'\n')
        .map(|(i, _)| i)
        .or_else(|| rest.ends_with("\n---").then(|| rest.len() - 3))
        .ok_or_else(|| corrupt(1, "the header is never closed with a `---` line".into()))?;
    let header = &rest[..close];
    let body = rest[close..].strip_prefix("---").unwrap();
    let body = body.strip_prefix('\n').unwrap_or(body);
    let mut snap: Snapshot = serde_yaml::from_str(header).map_err(|e| {
        let line = e.location().map(|l| l.line() + 1).unwrap_or(2);
        corrupt(line, e.to_string())
    })?;
    snap.body = body.to_string();
    Ok(snap)
}

pub fn render(snap: &Snapshot) -> String {
    let header = serde_yaml::to_string(snap).expect("snapshot header serialises");
    format!("---\n{header}---\n{}", snap.body)
}

/// The file line of the body's first line, as [`render`] lays the file out.
pub fn body_line(snap: &Snapshot) -> usize {
    let header = serde_yaml::to_string(snap).expect("snapshot header serialises");
    header.lines().count() + 3
}

/// Write `snap` unless the file already holds exactly that. Returns whether it changed.
pub fn write(path: &Path, snap: &Snapshot) -> Result<bool, SnapshotError> {
    let io = |e| SnapshotError::Io { path: path.to_path_buf(), source: e };
    let text = render(snap);
    if std::fs::read_to_string(path).ok().as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Write then rename, so an interrupted update never leaves half a snapshot.
    let tmp = path.with_extension("snap.tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(body: &str, command: &str) -> Snapshot {
        Snapshot { tutorial: "tutorials/t.md".into(), id: "s-1".into(), command: command.into(), body: body.into() }
    }

    #[test]
    fn round_trip() {
        for (body, cmd) in
            [("hello\n", "echo hello"), ("", "true"), ("no newline", "a\nb: c\n"), ("---\nx\n", "echo '---'")]
        {
            let s = snap(body, cmd);
            let text = render(&s);
            assert_eq!(parse(Path::new("x.snap"), &text).unwrap(), Snapshot { body: body.into(), ..s });
        }
    }

    #[test]
    fn body_line_counts_the_header() {
        let s = snap("a\n", "echo a");
        let text = render(&s);
        assert_eq!(text.lines().nth(body_line(&s) - 1), Some("a"), "{text}");
        let s = snap("b\n", "echo a\necho b");
        assert_eq!(render(&s).lines().nth(body_line(&s) - 1), Some("b"));
    }

    #[test]
    fn write_reports_changes_only() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b.snap");
        assert!(write(&p, &snap("x\n", "c")).unwrap());
        assert!(!write(&p, &snap("x\n", "c")).unwrap());
        assert!(write(&p, &snap("y\n", "c")).unwrap());
        assert_eq!(read(&p).unwrap().unwrap().body, "y\n");
        assert!(read(&d.path().join("none.snap")).unwrap().is_none());
    }

    #[test]
    fn corrupt_headers_are_named() {
        let p = Path::new("s.snap");
        let e = |t: &str| parse(p, t).unwrap_err().to_string();
        assert_eq!(e("hello\n"), "s.snap:1: broken snapshot file: expected a `---` line opening the header");
        assert!(e("---\nid: x\n").contains("never closed"));
        let unknown = e("---\ntutorial: t\nid: x\ncommand: c\ncolour: red\n---\n");
        assert!(unknown.starts_with("s.snap:5: broken snapshot file: unknown field `colour`"), "{unknown}");
        assert!(e("---\ntutorial: t\n---\n").contains("missing field"));
    }
}
