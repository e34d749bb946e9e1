//! Helpers shared by every area of the suite: the built `tutor` on fixture tutorials, process
//! checks, async tests.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn tutor() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tutor"));
    cmd.env_remove("CI").env("NO_COLOR", "1").env("CLICOLOR", "0");
    cmd
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Run `tutor ARGS` in `cwd`.
pub fn run_in(cwd: &Path, args: &[&str]) -> Out {
    let out = tutor().args(args).current_dir(cwd).output().expect("tutor runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Alive and not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|r| !r.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

pub fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().parse().unwrap()
}

/// Copy a directory tree (fixtures that a test modifies).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Runs an async test body on a current-thread runtime (what `#[tokio::test]` does).
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(f)
}

/// `tutor ARGS` (one shell-quoted string) in a pseudo-terminal made by util-linux `script`, in
/// `cwd`: the test types into the terminal through the child's stdin and reads the terminal's
/// output (echo included, `\r\n` line ends) from its stdout.
pub fn in_terminal(args: &str, cwd: &Path) -> std::process::Child {
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_tutor"));
    Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env_remove("TUTOR_NO_PENDING")
        .env("TERM", "dumb")
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs")
}
