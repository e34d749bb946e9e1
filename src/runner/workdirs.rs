//! Records of the temporary work directories of running `tutor run`s, so that what a killed run
//! (SIGKILL: no handler runs) left is removed by the next `tutor run` or `tutor lab gc`.
//!
//! One file per work directory in the runs folder, named after the run's pid and kernel start
//! time (a reused pid is another process) and holding the directory's path. It is written right
//! after the directory is created and removed right after the directory is; `--keep` removes
//! the record and keeps the directory. Directories given with `--workdir` are the user's and are
//! never recorded.

use std::path::{Path, PathBuf};

/// `TUTOR_RUN_ROOT`, else `/run/tutor/runs` for root, else `$XDG_RUNTIME_DIR/tutor/runs`, else
/// `<temp>/tutor-runs-<uid>`.
pub fn root() -> PathBuf {
    if let Some(r) = std::env::var_os("TUTOR_RUN_ROOT") {
        return PathBuf::from(r);
    }
    let uid = nix::unistd::Uid::effective();
    if uid.is_root() {
        return PathBuf::from("/run/tutor/runs");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(x) => x.join("tutor/runs"),
        None => std::env::temp_dir().join(format!("tutor-runs-{uid}")),
    }
}

/// Field 22 of /proc/<pid>/stat (the kernel start time), `None` when gone or a zombie.
fn start_time(pid: u32) -> Option<u64> {
    crate::backend::lab::registry::start_time(pid as i32)
}

/// The record of one work directory; removed on drop (after the directory itself: keep the
/// guard alive longer than the `TempDir`).
pub struct Recorded {
    file: Option<PathBuf>,
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Record `dir` as a work directory of this run. Best effort: a runs folder that cannot be
/// written only means a killed run's directory is not swept.
pub fn record(dir: &Path) -> Recorded {
    let pid = std::process::id();
    let Some(start) = start_time(pid) else { return Recorded { file: None } };
    let Some(leaf) = dir.file_name().and_then(|n| n.to_str()) else { return Recorded { file: None } };
    let root = root();
    if std::fs::create_dir_all(&root).is_err() {
        return Recorded { file: None };
    }
    let file = root.join(format!("{pid}-{start}-{leaf}"));
    match std::fs::write(&file, dir.as_os_str().as_encoded_bytes()) {
        Ok(()) => Recorded { file: Some(file) },
        Err(_) => Recorded { file: None },
    }
}

/// The run that wrote record `name` (`<pid>-<start time>-…`) is still alive.
fn owner_alive(name: &str) -> bool {
    let mut parts = name.splitn(3, '-');
    let (Some(pid), Some(start)) = (parts.next().and_then(|p| p.parse().ok()), parts.next()) else {
        // Not a record of ours: leave it alone.
        return true;
    };
    start_time(pid).map(|t| t.to_string()).as_deref() == Some(start)
}

/// Remove the work directories of runs that are gone, and their records; the directories removed.
/// Only temporary directories tutor made (`tutor-…`, as the record names them) are removed.
pub fn sweep() -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for e in std::fs::read_dir(root()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if owner_alive(&name) {
            continue;
        }
        if let Ok(bytes) = std::fs::read(e.path()) {
            let dir = PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes));
            let ours = dir.is_absolute()
                && dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("tutor-") && name.ends_with(n));
            if ours
                && dir.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false)
                && std::fs::remove_dir_all(&dir).is_ok()
            {
                removed.push(dir);
            }
        }
        let _ = std::fs::remove_file(e.path());
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_a_live_run_is_kept_and_a_dead_one_is_not() {
        assert!(owner_alive(&format!("{}-{}-tutor-x-1", std::process::id(), start_time(std::process::id()).unwrap())));
        assert!(!owner_alive(&format!("{}-1-tutor-x-1", std::process::id())));
        // pid_max is at most 2^22.
        assert!(!owner_alive("99999999-5-tutor-x-1"));
        assert!(owner_alive("notes.txt"));
    }
}
