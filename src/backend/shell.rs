//! A shell on a target reached through an exec API (Docker exec for kind nodes, the Kubernetes
//! exec API for pods) with stdin attached and stdout and stderr kept apart: what the runner's
//! kernel runs on where it cannot start a local process (docs/architecture.md, "The runner's
//! kernels (one live shell per target)").

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use tokio::io::AsyncWrite;

/// A piece of what the exec printed, on the stream it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// The exec's stdout and stderr in the order they arrived; ends when the exec ends. An error
/// ends it too (the connection is gone).
pub type Chunks = Pin<Box<dyn Stream<Item = Result<Chunk, std::io::Error>> + Send>>;

/// What an exec API cannot do over the session itself.
#[async_trait]
pub trait ShellControl: Send + Sync {
    /// Kill process `pid` of the target and all its descendants at once (SIGKILL), through a
    /// second exec: closing an exec session does not end what it started.
    async fn kill_tree(&self, pid: u32);

    /// A command as the target must see it (the kind backend's run-specific names).
    fn to_target(&self, text: &str) -> String {
        text.to_string()
    }

    /// Output as the tutorial expects it (names back to the tutorial's).
    fn output_from_target(&self, text: String) -> String {
        text
    }

    /// A block on this shell failed or timed out (the kind backend saves failure artifacts).
    fn failed(&self) {}
}

/// A started exec session.
pub struct ExecShell {
    pub stdin: Pin<Box<dyn AsyncWrite + Send>>,
    pub output: Chunks,
    pub control: Arc<dyn ShellControl>,
    /// Whatever must live as long as the session (the websocket's task).
    pub keep: Box<dyn Send>,
}

/// Kills process `$1` and its descendants (found through /proc) with SIGKILL: the tree is
/// stopped first so that no member forks a child the second walk would miss.
const KILL_TREE: &str = "tree() { for c in $(cat /proc/\"$1\"/task/*/children 2>/dev/null); do tree \"$c\"; done; echo \"$1\"; }; \
                         pids=$(tree \"$1\"); [ -n \"$pids\" ] || exit 0; kill -STOP $pids 2>/dev/null; \
                         kill -KILL $(tree \"$1\") $pids 2>/dev/null; exit 0";

/// argv of the exec that kills a shell's process tree at once.
pub fn kill_tree_argv(pid: u32) -> Vec<String> {
    vec!["sh".into(), "-c".into(), KILL_TREE.into(), "tutor".into(), pid.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The killer is real shell: a shell with a background job and a grandchild, killed at once.
    #[test]
    fn kill_tree_kills_a_shell_and_its_descendants() {
        let mut child = std::process::Command::new("bash")
            .args(["-c", "sleep 1000 & (sleep 1000; :) & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let sub: u32 = line.trim().parse().unwrap();
        let argv = kill_tree_argv(child.id());
        let began = std::time::Instant::now();
        assert!(std::process::Command::new(&argv[0]).args(&argv[1..]).status().unwrap().success());
        assert!(began.elapsed() < Duration::from_secs(5), "at once: {:?}", began.elapsed());
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
        let gone = || {
            let stat = std::fs::read_to_string(format!("/proc/{sub}/stat")).unwrap_or_default();
            stat.is_empty() || stat.rsplit(')').next().unwrap().trim_start().starts_with('Z')
        };
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !gone() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone(), "the subshell survived");
    }
}
