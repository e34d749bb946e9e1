//! Kept environments (docs/architecture.md, "Resume"): what a `tutor run --keep` leaves so that
//! `tutor run --env NAME` can go on in the same environment, as a notebook would: the
//! environment's name and backend, the work directory (which holds each target's shell state
//! file, `.tutor/state/<target>.sh`), the values captured with `[..NAME..]` so far, and the step
//! to go on from. One JSON file per environment in the `envs/` folder beside the run record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;

/// A kept environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptEnv {
    /// The environment's name (the lab's name on the lab backend).
    pub name: String,
    pub backend: BackendKind,
    /// The tutorial the kept run ran.
    pub tutorial: PathBuf,
    /// Work directory of the run, with the targets' shell state files.
    pub workdir: PathBuf,
    /// The first step the kept run did not complete (past the last step when every one passed).
    pub next_step: usize,
    /// The tutorial's last step (when the kept run was made).
    pub last_step: usize,
    /// Values captured with `[..NAME..]`, and where each was captured (`file:line`).
    #[serde(default)]
    pub captures: BTreeMap<String, String>,
    #[serde(default)]
    pub capture_sites: BTreeMap<String, String>,
}

/// What `--env NAME` hands the runner: whose environment, and the template values to restore.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    pub name: String,
    pub captures: BTreeMap<String, String>,
    pub capture_sites: BTreeMap<String, String>,
}

impl From<&KeptEnv> for Resume {
    fn from(k: &KeptEnv) -> Resume {
        Resume { name: k.name.clone(), captures: k.captures.clone(), capture_sites: k.capture_sites.clone() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeptError {
    #[error("no kept environment `{name}` (none in {}; `tutor run --keep` keeps one)", dir.display())]
    Unknown { name: String, dir: PathBuf },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a kept environment: {source}", path.display())]
    Corrupt { path: PathBuf, source: serde_json::Error },
}

/// The folder of kept environments for the run record at `record`.
pub fn dir(record: &Path) -> PathBuf {
    record.parent().unwrap_or(Path::new(".")).join("envs")
}

fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Write `env` (replacing what an earlier run wrote for the same name). Returns the file.
pub fn write(dir: &Path, env: &KeptEnv) -> Result<PathBuf, KeptError> {
    let path = file(dir, &env.name);
    let io = |source| KeptError::Io { path: path.clone(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(env).expect("serialises") + "\n").map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

/// Read the kept environment `name`.
pub fn read(dir: &Path, name: &str) -> Result<KeptEnv, KeptError> {
    let path = file(dir, name);
    let unknown = || KeptError::Unknown { name: name.to_string(), dir: dir.to_path_buf() };
    if !valid_name(name) {
        return Err(unknown());
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(unknown());
        }
        Err(source) => return Err(KeptError::Io { path, source }),
    };
    serde_json::from_str(&text).map_err(|source| KeptError::Corrupt { path, source })
}

/// Forget `name` (its environment is gone).
pub fn remove(dir: &Path, name: &str) {
    let _ = std::fs::remove_file(file(dir, name));
}

/// Names are the runs' short ids: no path separators.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let env = KeptEnv {
            name: "a1b2c3".into(),
            backend: BackendKind::Host,
            tutorial: "t.md".into(),
            workdir: "/tmp/w".into(),
            next_step: 3,
            last_step: 4,
            captures: [("IP".to_string(), "10.0.0.1".to_string())].into(),
            capture_sites: [("IP".to_string(), "t.md:9".to_string())].into(),
        };
        let dir = dir(&d.path().join("r.json"));
        assert_eq!(write(&dir, &env).unwrap(), dir.join("a1b2c3.json"));
        assert_eq!(read(&dir, "a1b2c3").unwrap(), env);
        assert!(matches!(read(&dir, "nope"), Err(KeptError::Unknown { .. })));
        assert!(matches!(read(&dir, "../x"), Err(KeptError::Unknown { .. })));
        remove(&dir, "a1b2c3");
        assert!(matches!(read(&dir, "a1b2c3"), Err(KeptError::Unknown { .. })));
    }
}
