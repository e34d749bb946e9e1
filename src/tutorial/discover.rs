//! Which files `tutor run PATHS…` and `tutor check PATHS…` mean.

use std::path::{Path, PathBuf};

use super::error::TutorialError;

/// Markdown files named by `paths`: files as given, folders searched recursively (sorted, so
/// runs are reproducible). `SUMMARY.md` is the book's table of contents, not a tutorial.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, TutorialError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| TutorialError::Path { path: path.clone(), message: format!("cannot open: {e}") })?;
        if meta.is_dir() {
            let before = out.len();
            walk(path, &mut out)?;
            if out.len() == before {
                return Err(TutorialError::Path {
                    path: path.clone(),
                    message: "no Markdown tutorials (*.md) in this folder".into(),
                });
            }
        } else if is_markdown(path) {
            out.push(path.clone());
        } else {
            return Err(TutorialError::Path {
                path: path.clone(),
                message: "not a Markdown file (.md) or a folder of them".into(),
            });
        }
    }
    Ok(out)
}

fn is_markdown(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "md")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TutorialError> {
    let io = |e| TutorialError::Io { path: dir.to_path_buf(), source: e };
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_markdown(&p) && p.file_name().is_some_and(|n| n != "SUMMARY.md") {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_markdown_recursively_sorted() {
        let d = tempfile::tempdir().unwrap();
        for f in ["b.md", "a.md", "SUMMARY.md", "notes.txt", "sub/c.md"] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let found = discover(&[d.path().to_path_buf()]).unwrap();
        let names: Vec<_> = found.iter().map(|p| p.strip_prefix(d.path()).unwrap().display().to_string()).collect();
        assert_eq!(names, ["a.md", "b.md", "sub/c.md"]);
        let err = discover(&[d.path().join("notes.txt")]).unwrap_err().to_string();
        assert!(err.ends_with("notes.txt: not a Markdown file (.md) or a folder of them"), "{err}");
        assert!(discover(&[d.path().join("missing.md")]).unwrap_err().to_string().contains("cannot open"));
    }
}
