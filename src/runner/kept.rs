//! Kept environments (docs/architecture.md, "Resume"): what a `tutor run --keep` leaves so that
//! `tutor run --env NAME` can go on in the same environment, as a notebook would: the
//! environment's name and backend, the work directory (which holds each target's shell state
//! file, `.tutor/state/<target>.sh`), the values captured with `[..NAME..]` so far, and the step
//! to go on from. One JSON file per environment in the `envs/` folder beside the run record.
//!
//! A kept environment is also somewhere to look around: [`shell`] builds the bash that `tutor
//! shell` and `tutor lab exec` start on a target, beginning with that target's saved state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::{BackendKind, Target};
use crate::runner::script::quote;

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

/// Read a kept environment from its file (the lab names its kept run's file).
pub fn read_file(path: &Path) -> Result<KeptEnv, KeptError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeptError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|source| KeptError::Corrupt { path: path.to_path_buf(), source })
}

/// Forget `name` (its environment is gone).
pub fn remove(dir: &Path, name: &str) {
    let _ = std::fs::remove_file(file(dir, name));
}

/// Names are the runs' short ids: no path separators.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What a shell in a kept environment runs (`tutor shell`, `tutor lab exec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellRun {
    /// An interactive shell (stdin is a terminal and no command was given).
    Interactive,
    /// The script on stdin (no command, and stdin is no terminal).
    Stdin,
    /// One argument: a command line for the shell; several: a command (maybe one of the
    /// tutorial's functions) and its arguments.
    Command(Vec<String>),
}

impl ShellRun {
    /// From the words after `--`: none is a shell, interactive when stdin is a terminal.
    pub fn of(command: Vec<String>) -> ShellRun {
        use std::io::IsTerminal;
        match command.is_empty() {
            false => ShellRun::Command(command),
            true if std::io::stdin().is_terminal() => ShellRun::Interactive,
            true => ShellRun::Stdin,
        }
    }
}

/// A shell to start on a target: its argv (bash and its arguments), the variables to add to its
/// environment, and whether it starts from the target's saved state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The kept run left a shell state for the target (it ran a block there).
    pub restored: bool,
}

/// The bash that runs `run` on `target`, starting, when `kept` is given, with the state the kept
/// run's shell of `target` saved (variables exported or not, functions, aliases, options, traps,
/// working directory; see `Kernel::save_state`) and the run's captured values. An interactive
/// one's prompt names the environment and the target.
///
/// The state is loaded by a small script written beside the state file (`<target>.rc`), so it
/// reaches the shell wherever the target's work directory is seen: bash's `--rcfile` for an
/// interactive shell, `BASH_ENV` for a script on stdin, sourced first for a command.
pub fn shell(kept: Option<&KeptEnv>, target: &Target, run: &ShellRun) -> Result<Shell, KeptError> {
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let Some(k) = kept else {
        // A lab that no kept run left: a plain shell, or the command as it is.
        let argv = match run {
            ShellRun::Interactive => words(&["bash"]),
            ShellRun::Stdin => words(&["bash", "--noprofile", "--norc", "-s"]),
            ShellRun::Command(c) if c.len() == 1 => words(&["bash", "--noprofile", "--norc", "-c", &c[0]]),
            ShellRun::Command(c) => c.clone(),
        };
        return Ok(Shell { argv, env: Vec::new(), restored: false });
    };
    let state = PathBuf::from(crate::backend::local_state_path(&k.workdir, target));
    let restored = state.is_file();
    let loader = state.with_extension("rc");
    let mut text = String::from("unset BASH_ENV\n");
    if restored {
        // Read-only variables bash set itself cannot be set again: those errors are not shown.
        text.push_str(&format!(". {} 2>/dev/null\n", quote(&state.display().to_string())));
    }
    text.push_str("unset -f __tutor_save __tutor_options 2>/dev/null\n");
    text.push_str("unset __tutor_h __tutor_s __tutor_rc __tutor_state\n");
    text.push_str(&super::kernel::assignments(&k.captures));
    // The terminal's own size, not the fixed one blocks run with.
    let prompt = quote(&format!("[{} {target} \\W]\\$ ", k.name));
    text.push_str(&format!("case $- in *i*) unset COLUMNS LINES; PS1={prompt} ;; esac\n"));
    write_atomic(&loader, &text)?;
    let loader = loader.display().to_string();
    let source = format!(". {}\n", quote(&loader));
    let (argv, env) = match run {
        ShellRun::Interactive => (words(&["bash", "--noprofile", "--rcfile", &loader, "-i"]), Vec::new()),
        ShellRun::Stdin => {
            (words(&["bash", "--noprofile", "--norc", "-s"]), vec![("BASH_ENV".to_string(), loader.clone())])
        }
        ShellRun::Command(c) if c.len() == 1 => {
            (words(&["bash", "--noprofile", "--norc", "-c", &format!("{source}{}", c[0])]), Vec::new())
        }
        ShellRun::Command(c) => {
            let mut argv = words(&["bash", "--noprofile", "--norc", "-c", &format!("{source}\"$@\""), "bash"]);
            argv.extend(c.iter().cloned());
            (argv, Vec::new())
        }
    };
    Ok(Shell { argv, env, restored })
}

/// Write `text` to `path` through a file of this process renamed over it: shells started at
/// the same time never read half a file.
fn write_atomic(path: &Path, text: &str) -> Result<(), KeptError> {
    let io = |source| KeptError::Io { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("rc.{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
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
