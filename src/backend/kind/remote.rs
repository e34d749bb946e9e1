//! Running a block inside a container (a kind node, a pod) where neither Docker nor Kubernetes
//! can kill what an exec started: the block's shell first prints its pid on a line of its own,
//! so that a timeout or the end of a `bg` block can kill that process and all its descendants
//! through a second exec. stderr is merged into stdout inside the container, which keeps the
//! order a terminal would show.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// Runs the script (`$1`) with bash where the image has it, else sh; `$0` is unused.
const RUN: &str =
    "echo \"$$\"; exec 2>&1; if command -v bash >/dev/null 2>&1; then exec bash -c \"$1\"; else exec sh -c \"$1\"; fi";

/// Kills the process `$1` and its descendants (found through /proc, which every Linux
/// container has), politely first.
const KILL: &str = "tree() { for c in $(cat /proc/\"$1\"/task/*/children 2>/dev/null); do tree \"$c\"; done; echo \"$1\"; }; \
                    pids=$(tree \"$1\"); [ -n \"$pids\" ] || exit 0; kill -TERM $pids 2>/dev/null; sleep 1; kill -KILL $pids 2>/dev/null; exit 0";

/// How long a killed block's stream gets to close, and a finished block its exit status.
pub const DRAIN: Duration = Duration::from_secs(3);

/// Single-quote `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r#"'\''"#))
}

/// The script with the block's environment exported first (Kubernetes exec has no way to pass
/// an environment, so both exec paths do it the same way).
pub fn with_env(script: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in env {
        out.push_str(&format!("export {k}={}\n", sh_quote(v)));
    }
    out.push_str(script);
    out
}

/// argv of the exec that runs a block.
pub fn run_argv(script: &str, env: &[(String, String)]) -> Vec<String> {
    vec!["sh".into(), "-c".into(), RUN.into(), "tutor".into(), with_env(script, env)]
}

/// argv of the exec that kills a block's process tree.
pub fn kill_argv(pid: u32) -> Vec<String> {
    vec!["sh".into(), "-c".into(), KILL.into(), "tutor".into(), pid.to_string()]
}

/// The output of one exec, split into the announced pid and what the block printed.
#[derive(Debug, Default)]
pub struct Collected {
    pub pid: Option<u32>,
    pub output: Vec<u8>,
    /// The stream ended by itself (as opposed to the deadline passing).
    pub finished: bool,
    /// Bytes of the first line while the pid marker is incomplete.
    header: Vec<u8>,
}

/// A pid line is short; anything longer is not our marker.
const MAX_HEADER: usize = 32;

impl Collected {
    /// Take in one chunk of the exec's output; returns the pid when this chunk completed it.
    pub fn push(&mut self, chunk: &[u8]) -> Option<u32> {
        if self.pid.is_some() || self.header.len() > MAX_HEADER {
            self.output.extend_from_slice(chunk);
            return None;
        }
        self.header.extend_from_slice(chunk);
        if let Some(nl) = self.header.iter().position(|b| *b == b'\n') {
            self.pid = std::str::from_utf8(&self.header[..nl]).ok().and_then(|s| s.trim().parse().ok());
            let rest = self.header.split_off(nl + 1);
            if self.pid.is_none() {
                // Not our marker (the shell failed before printing it): keep everything.
                self.output.append(&mut self.header);
            }
            self.output.extend_from_slice(&rest);
            self.header.clear();
            return self.pid;
        }
        if self.header.len() > MAX_HEADER {
            self.output.append(&mut self.header);
        }
        None
    }

    /// The stream is over (or abandoned): keep whatever was held back.
    pub fn end(&mut self, finished: bool) {
        self.output.append(&mut self.header);
        self.finished = finished;
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// When a remote block must stop early: its timeout, or the user's Ctrl-C. (The runner answers
/// Ctrl-C by killing the process groups of local blocks; a block in a container has to notice
/// by itself.)
pub struct Deadline {
    pub timeout: Duration,
    interrupt: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Deadline {
    /// `timeout`, or SIGINT/SIGTERM to this process.
    pub fn new(timeout: Duration) -> Self {
        Deadline { timeout, interrupt: Box::pin(interrupted()) }
    }

    /// `timeout`, or when `interrupt` resolves.
    pub fn with_interrupt(timeout: Duration, interrupt: impl Future<Output = ()> + Send + 'static) -> Self {
        Deadline { timeout, interrupt: Box::pin(interrupt) }
    }
}

/// Resolves when the process receives SIGINT or SIGTERM. Adding a listener leaves the runner's
/// own handlers in place (tokio delivers a signal to every listener).
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Finished,
    TimedOut,
    Interrupted,
}

/// Read `stream` until it ends, its timeout passes or the run is interrupted.
pub async fn collect<S, E>(stream: &mut S, deadline: Deadline) -> Result<(Collected, End), E>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut c = Collected::default();
    let read = async {
        while let Some(chunk) = stream.next().await {
            c.push(&chunk?);
        }
        Ok::<(), E>(())
    };
    let end = tokio::select! {
        r = read => {
            r?;
            End::Finished
        }
        _ = tokio::time::sleep(deadline.timeout) => End::TimedOut,
        _ = deadline.interrupt => End::Interrupted,
    };
    c.end(end == End::Finished);
    Ok((c, end))
}

/// Read a block's output until it ends; when it must stop early, `kill` the announced pid and
/// read what the dying block still prints.
pub async fn collect_or_kill<S, E>(
    stream: &mut S,
    deadline: Deadline,
    kill: impl AsyncFnOnce(u32),
) -> Result<(Collected, End), E>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let (mut c, end) = collect(stream, deadline).await?;
    if end != End::Finished {
        if let Some(pid) = c.pid {
            kill(pid).await;
        }
        drain(stream, DRAIN, &mut c.output).await;
    }
    Ok((c, end))
}

/// After a kill, read what is left for a short while (the stream closes once the killed
/// processes are gone); errors only end the drain.
pub async fn drain<S, E>(stream: &mut S, within: Duration, into: &mut Vec<u8>)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let _ = tokio::time::timeout(within, async {
        while let Some(Ok(chunk)) = stream.next().await {
            into.extend_from_slice(&chunk);
        }
    })
    .await;
}

/// A `bg` block's output, read by a task of its own until the block is stopped.
pub struct Background<T> {
    seen: Arc<Mutex<Collected>>,
    reader: tokio::task::JoinHandle<Option<T>>,
    pub began: Instant,
}

impl<T: Send + 'static> Background<T> {
    /// Read `stream` in the background; when it ends, `then` (e.g. the exit status) is awaited
    /// for up to `DRAIN`.
    pub fn start<S, E>(mut stream: S, then: impl Future<Output = Option<T>> + Send + 'static) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    {
        let seen = Arc::new(Mutex::new(Collected::default()));
        let sink = seen.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(chunk)) = stream.next().await {
                sink.lock().unwrap().push(&chunk);
            }
            sink.lock().unwrap().end(true);
            tokio::time::timeout(DRAIN, then).await.ok().flatten()
        });
        Background { seen, reader, began: Instant::now() }
    }

    /// Whether the block already ended by itself.
    pub fn ended(&self) -> bool {
        self.seen.lock().unwrap().finished
    }

    /// The block's pid, once announced (it is the first thing the wrapper prints).
    pub async fn pid(&self, within: Duration) -> Option<u32> {
        let until = Instant::now() + within;
        loop {
            {
                let c = self.seen.lock().unwrap();
                if c.pid.is_some() || c.finished || Instant::now() >= until {
                    return c.pid;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Wait (up to `DRAIN`) for the stream to end, then hand over what was read and what
    /// `then` gave.
    pub async fn finish(mut self) -> (Collected, Option<T>) {
        let then = match tokio::time::timeout(DRAIN, &mut self.reader).await {
            Ok(Ok(t)) => t,
            _ => {
                self.reader.abort();
                None
            }
        };
        let mut c = std::mem::take(&mut *self.seen.lock().unwrap());
        c.end(c.finished);
        (c, then)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn chunks(parts: &[&str]) -> impl Stream<Item = Result<Bytes, Infallible>> + Unpin {
        futures_util::stream::iter(parts.iter().map(|p| Ok(Bytes::copy_from_slice(p.as_bytes()))).collect::<Vec<_>>())
    }

    const LONG: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn pid_line_is_split_off_even_across_chunks() {
        let (c, end) = collect(&mut chunks(&["12", "34\nhel", "lo\n"]), Deadline::new(LONG)).await.unwrap();
        assert_eq!(end, End::Finished);
        assert_eq!(c.pid, Some(1234));
        assert_eq!(c.text(), "hello\n");
        assert!(c.finished);
    }

    #[tokio::test]
    async fn output_without_marker_is_kept_whole() {
        let c = collect(&mut chunks(&["sh: not found\n"]), Deadline::new(LONG)).await.unwrap().0;
        assert_eq!(c.pid, None);
        assert_eq!(c.text(), "sh: not found\n");
    }

    #[tokio::test]
    async fn deadline_stops_reading_a_stream_that_never_ends() {
        let s = chunks(&["7\nstarted\n"]).chain(futures_util::stream::pending());
        let mut s = Box::pin(s);
        let (mut c, end) = collect(&mut s, Deadline::new(Duration::from_millis(100))).await.unwrap();
        assert_eq!(end, End::TimedOut);
        assert!(!c.finished);
        assert_eq!(c.pid, Some(7));
        assert_eq!(c.text(), "started\n");
        drain(&mut s, Duration::from_millis(50), &mut c.output).await;
        assert_eq!(c.text(), "started\n");
    }

    #[tokio::test]
    async fn an_interrupt_stops_reading_before_the_timeout() {
        let s = chunks(&["9\nworking\n"]).chain(futures_util::stream::pending());
        let mut s = Box::pin(s);
        let interrupt = tokio::time::sleep(Duration::from_millis(100));
        let began = std::time::Instant::now();
        let mut killed = None;
        let (c, end) =
            collect_or_kill(&mut s, Deadline::with_interrupt(LONG, interrupt), async |pid| killed = Some(pid))
                .await
                .unwrap();
        assert_eq!(end, End::Interrupted);
        assert_eq!(killed, Some(9));
        assert_eq!(c.text(), "working\n");
        assert!(began.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn quoting_and_env() {
        assert_eq!(sh_quote("plain-1.2"), "plain-1.2");
        assert_eq!(sh_quote("it's here"), r#"'it'\''s here'"#);
        assert_eq!(sh_quote(""), "''");
        assert_eq!(with_env("echo $A", &[("A".into(), "x y".into())]), "export A='x y'\necho $A");
    }

    /// The wrapper and the killer are real shell: run them locally, as a container would.
    #[tokio::test]
    async fn wrapper_and_killer_work_in_a_real_shell() {
        let argv = run_argv("echo out; echo err >&2; exit 3", &[("V".into(), "1".into())]);
        let o = std::process::Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
        let text = String::from_utf8(o.stdout).unwrap();
        let (pid, rest) = text.split_once('\n').unwrap();
        assert!(pid.parse::<u32>().is_ok(), "{text}");
        assert_eq!(rest, "out\nerr\n");
        assert_eq!(o.status.code(), Some(3));

        // A block that hangs with a child: the killer removes both.
        let argv = run_argv("sleep 1000 & echo child $!; wait", &[]);
        let mut child =
            std::process::Command::new(&argv[0]).args(&argv[1..]).stdout(std::process::Stdio::piped()).spawn().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        use std::io::BufRead;
        out.read_line(&mut line).unwrap();
        let pid: u32 = line.trim().parse().unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
        let grandchild: u32 = line.trim().strip_prefix("child ").unwrap().parse().unwrap();
        let kill = kill_argv(pid);
        let status = std::process::Command::new(&kill[0]).args(&kill[1..]).status().unwrap();
        assert!(status.success());
        // Killed: by the signal itself, or (when the shell saw its child die of it between the
        // killer's two signals, on a loaded machine) with the shell's 128 + SIGTERM.
        let code = child.wait().unwrap().code();
        assert!(matches!(code, None | Some(143)), "block should have been killed, it exited with {code:?}");
        // The kernel delivers the kill soon, but a loaded machine may take a while.
        let gone = || {
            let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
            stat.is_empty() || stat.rsplit(')').next().unwrap().trim_start().starts_with('Z')
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !gone() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            gone(),
            "sleep survived: {}",
            std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default()
        );
    }
}
