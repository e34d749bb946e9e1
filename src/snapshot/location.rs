//! Where a tutorial's snapshots live: `<root>/snapshots/<tutorial stem>/<block id>.snap`, with
//! `<root>` the nearest ancestor of the tutorial that has a `snapshots/` folder (so
//! `tutorials/x.md` in a project uses the project's `snapshots/`, and a fixture folder can carry
//! its own).

use std::path::{Path, PathBuf};

use crate::tutorial::Tutorial;

pub fn snapshot_dir(tutorial: &Tutorial, override_dir: Option<&Path>) -> PathBuf {
    if let Some(dir) = override_dir {
        return dir.join(&tutorial.stem);
    }
    let abs = std::path::absolute(&tutorial.path).unwrap_or_else(|_| tutorial.path.clone());
    let start = abs.parent().unwrap_or(Path::new("."));
    let root = start.ancestors().find(|dir| dir.join("snapshots").is_dir()).unwrap_or(start);
    root.join("snapshots").join(&tutorial.stem)
}

pub fn snapshot_path(dir: &Path, block_id: &str) -> PathBuf {
    dir.join(format!("{block_id}.snap"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_snapshots_folder_wins() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("snapshots")).unwrap();
        std::fs::create_dir_all(d.path().join("tutorials/deep")).unwrap();
        let t = crate::tutorial::parse_str(&d.path().join("tutorials/deep/x.md"), "").unwrap();
        assert_eq!(snapshot_dir(&t, None), d.path().join("snapshots/x"));
        assert_eq!(snapshot_dir(&t, Some(Path::new("/o"))), Path::new("/o/x"));
        assert_eq!(snapshot_path(Path::new("/s/x"), "a-1"), Path::new("/s/x/a-1.snap"));
    }
}
