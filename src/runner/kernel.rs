//! The notebook kernel: one long-lived bash per target for the whole tutorial, as in one terminal.
//!
//! The kernel starts from a small fixed boot script (argv) and is then fed through its stdin,
//! never argv, one *frame* per command: a header line (`c` plain, `e` with `set -e`, `q` quiet:
//! the runner's own commands, output discarded; `s`: send the state, no command), the command
//! text and a NUL byte. Each command runs with stdin from `/dev/null` and its stdout and stderr on
//! the kernel's stdout (one pipe, the order a terminal shows). The kernel answers on its own
//! stderr, a channel the command cannot reach (bash keeps the original descriptor aside,
//! close-on-exec, while the command runs with `2>&1`): one line `status N` per command frame.
//! So output can never forge a status, and the runner knows a command ended when its status
//! arrives, not when every holder of the output pipe (a daemon the command started) closes it:
//! everything the command wrote before exiting is already in the pipe and is drained without
//! waiting.
//!
//! State lives in the shell itself: variables, functions, aliases, the working directory,
//! `set -o`/`shopt` options, traps, background jobs. After each block the runner sends an `s`
//! frame and the kernel answers on the control channel with its state (`declare -p`,
//! `declare -f`, `alias -p`, `trap -p`, `umask -p`, the `set -o` and `shopt` options and the
//! working directory, with builtins only), after the block's last status, so the runner judges
//! the block meanwhile. The runner keeps the last complete state in memory; nothing is written to
//! disk per block (on ext4, truncating and rewriting a file every block cost a writeback of
//! about 3 ms each: most of a block's time). A kernel that is restarted (after a time-out, or
//! after `exit` or a `set -e` failure ended it) is fed that state first, so it starts with the
//! state from before the block that ended the last one: background jobs and open file
//! descriptors are what a restart loses. [`Kernel::save_state`] writes the same text to a file
//! where the kernel runs (for `bg` blocks, which are separate shells, and to resume later).
//!
//! Output that a background job of the kernel prints belongs to the command of this kernel that
//! is running when it arrives; what arrives while no command runs (between blocks, or during the
//! runner's quiet frames) goes to the next command of this kernel, as in cram, where it lands in
//! the next command's output.
//!
//! On targets no local process reaches (kind nodes, pods) the kernel is one exec session with
//! stdin ([`Kernel::start_remote`], docs/architecture.md, "Kernels over exec sessions"): the same
//! frames, plus a per-frame marker that orders stdout and stderr, and a second exec that kills it.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use std::sync::Arc;

use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use super::cancel::Cancel;
use super::script::{CommandRun, quote};
use crate::backend::shell::{Chunk, Chunks, ExecShell, ShellControl};
use crate::backend::{BackendError, process};

/// The boot script: helpers and the frame loop.
const BOOT: &str = r#"shopt -s expand_aliases
__tutor_save() {
  declare -p; declare -f; alias -p; trap -p; umask -p
  printf '__tutor_options %q %q\ncd -- %q\n' "$SHELLOPTS" "$BASHOPTS" "$PWD"
}
__tutor_options() {
  local o
  for o in ${SHELLOPTS//:/ }; do case :$1: in *:$o:*) ;; *) set +o "$o" ;; esac; done
  for o in ${1//:/ }; do set -o "$o"; done
  for o in ${BASHOPTS//:/ }; do case :$2: in *:$o:*) ;; *) shopt -u "$o" ;; esac; done
  for o in ${2//:/ }; do shopt -s "$o"; done
}
#pid
while IFS= read -r __tutor_h && IFS= read -r -d '' __tutor_s; do
  case $__tutor_h in
    s) { printf 'state\n'; __tutor_save; printf '\0'; } >&2 2>/dev/null; continue ;;
    e) set -e; eval "$__tutor_s" </dev/null 2>&1; __tutor_rc=$?; set +e ;;
    q) eval "$__tutor_s" </dev/null >/dev/null 2>&1; __tutor_rc=$? ;;
    *) eval "$__tutor_s" </dev/null 2>&1; __tutor_rc=$? ;;
  esac
  __tutor_s=
  #sync
  printf 'status %d\n' "$__tutor_rc" >&2
done
"#;

/// On an exec stream the kernel says its pid first (for the second exec that kills it) and,
/// after each command, copies the frame's marker line from stdin to stdout (see
/// [`Kernel::start_remote`]).
const REMOTE_PID: &str = "printf 'pid %d\\n' \"$$\" >&2\n";
const REMOTE_SYNC: &str = "IFS= read -r __tutor_n; printf %s \"$__tutor_n\"; __tutor_n=\n";

/// What an exec session runs: the block environment (as `backend::block_env` sets it for local
/// kernels), then bash with the boot script, and when bash has ended, however it ended, `exit N`
/// on stderr. Images without bash answer `nobash`.
const REMOTE_WRAPPER: &str = "export COLUMNS=80 LINES=24 LC_ALL=C.UTF-8 TZ=UTC; unset NO_COLOR; \
    command -v bash >/dev/null 2>&1 || { echo nobash >&2; exit 127; }; \
    bash --noprofile --norc -c \"$1\" bash; echo \"exit $?\" >&2";

/// argv of the exec session that runs a remote kernel.
pub fn remote_argv() -> Vec<String> {
    let boot = BOOT.replace("#pid\n", REMOTE_PID).replace("#sync\n", REMOTE_SYNC);
    vec!["sh".into(), "-c".into(), REMOTE_WRAPPER.into(), "tutor".into(), boot]
}

/// How long a remote kernel gets to start (the exec is already connected), and a killed or
/// ended one to deliver what it printed last.
const REMOTE_START: Duration = Duration::from_secs(60);
const REMOTE_DRAIN: Duration = Duration::from_secs(1);

/// How a frame runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As typed at a prompt.
    Plain,
    /// With `set -e` (sh/bash blocks): the first failing command ends the kernel.
    ErrExit,
    /// The runner's own command (restore, captures, saves): its output is discarded, and what a
    /// background job prints meanwhile is kept for the next command.
    Quiet,
}

/// What one block did in a kernel.
#[derive(Debug, Default)]
pub struct KernelRun {
    /// One per frame sent; frames after the one that ended the block have `status: None`.
    pub runs: Vec<CommandRun>,
    pub timed_out: bool,
    pub interrupted: bool,
    /// The kernel ended during the block (`exit`, a `set -e` failure, a signal): how.
    pub died: Option<String>,
}

pub struct Kernel {
    io: Io,
    /// Bytes read from the control channel that do not form a whole line (or state) yet.
    ctl_buf: Vec<u8>,
    /// The last complete state the kernel sent (see the module documentation).
    state: Option<Vec<u8>>,
    /// Names of the functions and aliases in that state (a command calling one may change it).
    defined: HashSet<Vec<u8>>,
    /// How many states the kernel sent.
    states_sent: usize,
    /// Output of background jobs that arrived while no command of a block ran: the next
    /// command's.
    pending: Vec<u8>,
}

/// How the kernel is reached.
enum Io {
    /// A local process (host, lab targets): pipes, a process group to kill.
    Local(Box<Local>),
    /// An exec session on a remote target (kind nodes, pods).
    Remote(Remote),
}

struct Local {
    child: tokio::process::Child,
    pgid: i32,
    stdin: tokio::process::ChildStdin,
    out: pipe::Receiver,
    ctl: pipe::Receiver,
}

struct Remote {
    stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    output: Chunks,
    control: Arc<dyn ShellControl>,
    _keep: Box<dyn Send>,
    /// The kernel's pid where it runs (its first line on stderr).
    pid: Option<u32>,
    /// `exit N`: the wrapper saw bash end.
    exited: Option<i32>,
    /// The exec session ended.
    closed: bool,
    /// The image has no bash.
    no_bash: bool,
}

fn io_err(context: &'static str) -> impl FnOnce(std::io::Error) -> BackendError {
    move |source| BackendError::Io { context: context.to_string(), source }
}

fn receiver(fd: std::io::PipeReader) -> std::io::Result<pipe::Receiver> {
    pipe::Receiver::from_owned_fd(OwnedFd::from(fd))
}

/// Whether a frame's status lets the block go on: `(index, status)`.
pub type GoOn<'a> = &'a (dyn Fn(usize, i32) -> bool + Sync);

impl Kernel {
    /// Start a kernel from `cmd` (a command that runs `bash` on the target; the boot script
    /// is appended), then run `init` quietly (restore a state, set captures).
    pub async fn start(mut cmd: std::process::Command, init: &[u8]) -> Result<Kernel, BackendError> {
        cmd.args(["--noprofile", "--norc", "-c", BOOT, "bash"]);
        let (out_r, out_w) = std::io::pipe().map_err(io_err("creating a pipe"))?;
        let (ctl_r, ctl_w) = std::io::pipe().map_err(io_err("creating a pipe"))?;
        cmd.stdin(Stdio::piped()).stdout(out_w).stderr(ctl_w);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.process_group(0).kill_on_drop(false);
        let mut child = cmd.spawn().map_err(io_err("starting the target's shell"))?;
        // The write ends went to the child; ours must close for EOF to mean the kernel is gone.
        drop(cmd);
        let pgid = child.id().map(|p| p as i32).unwrap_or_default();
        process::register(pgid);
        let stdin = child.stdin.take().expect("piped");
        let local = Local {
            child,
            pgid,
            stdin,
            out: receiver(out_r).map_err(io_err("reading the shell's output"))?,
            ctl: receiver(ctl_r).map_err(io_err("reading the shell's status"))?,
        };
        Kernel::with_io(Io::Local(Box::new(local)), init).await
    }

    /// Start a kernel on an exec session that runs [`remote_argv`]. The exec's stdout and
    /// stderr travel separately (Docker and the kubelet copy each with its own goroutine), so a
    /// status on stderr may overtake the last output of its command on stdout: each frame ends
    /// with a fresh random marker line after its NUL, which the kernel reads from stdin only once
    /// the command has ended and copies to stdout; a command is over when both its status and
    /// its marker arrived, and what stdout carries after the marker is the next command's. The
    /// command cannot print the marker by accident: it is not in any variable while the command
    /// runs, only unread in the kernel's stdin. `None`: the target has no bash (blocks there run
    /// through `Backend::exec`).
    pub async fn start_remote(shell: ExecShell, init: &[u8]) -> Result<Option<Kernel>, BackendError> {
        let remote = Remote {
            stdin: shell.stdin,
            output: shell.output,
            control: shell.control,
            _keep: shell.keep,
            pid: None,
            exited: None,
            closed: false,
            no_bash: false,
        };
        let mut k = Kernel::new(Io::Remote(remote));
        let started = tokio::time::timeout(REMOTE_START, async {
            loop {
                k.status_line();
                let r = k.remote();
                if r.pid.is_some() || r.no_bash || r.closed || r.exited.is_some() {
                    return;
                }
                match r.output.next().await {
                    Some(Ok(Chunk::Stderr(b))) => k.ctl_buf.extend_from_slice(&b),
                    Some(Ok(Chunk::Stdout(b))) => k.pending.extend_from_slice(&b),
                    None | Some(Err(_)) => r.closed = true,
                }
            }
        })
        .await;
        let r = k.remote();
        if r.no_bash {
            return Ok(None);
        }
        if started.is_err() || r.pid.is_none() {
            let how = match r.exited {
                Some(code) => describe_exit(code),
                None if r.closed => "the exec session ended".to_string(),
                None => format!("no answer within {} s", REMOTE_START.as_secs()),
            };
            let seen = String::from_utf8_lossy(&k.ctl_buf).trim().to_string();
            k.stop().await;
            let seen = if seen.is_empty() { String::new() } else { format!(": {seen}") };
            return Err(BackendError::Other(format!("the target's shell did not start ({how}){seen}")));
        }
        k.pending.clear();
        Kernel::init(k, init).await.map(Some)
    }

    fn new(io: Io) -> Kernel {
        Kernel { io, ctl_buf: Vec::new(), state: None, defined: HashSet::new(), states_sent: 0, pending: Vec::new() }
    }

    async fn with_io(io: Io, init: &[u8]) -> Result<Kernel, BackendError> {
        Kernel::init(Kernel::new(io), init).await
    }

    async fn init(mut k: Kernel, init: &[u8]) -> Result<Kernel, BackendError> {
        if !init.is_empty() {
            let r = k.run(&[(Mode::Quiet, init)], &|_, _| true, None, &Cancel::default()).await;
            if let Some(how) = r.died {
                k.stop().await;
                return Err(BackendError::Other(format!("the target's shell did not start: {how}")));
            }
        }
        Ok(k)
    }

    fn remote(&mut self) -> &mut Remote {
        match &mut self.io {
            Io::Remote(r) => r,
            Io::Local(_) => unreachable!("a remote kernel"),
        }
    }

    /// Whether the kernel process is still there.
    pub fn alive(&mut self) -> bool {
        match &mut self.io {
            Io::Local(l) => matches!(l.child.try_wait(), Ok(None)),
            Io::Remote(r) => {
                // Take in what arrived since the last block (background output, the state, the
                // wrapper's `exit N`).
                while let Some(chunk) = r.output.next().now_or_never() {
                    match chunk {
                        Some(Ok(Chunk::Stderr(b))) => self.ctl_buf.extend_from_slice(&b),
                        Some(Ok(Chunk::Stdout(b))) => self.pending.extend_from_slice(&b),
                        None | Some(Err(_)) => {
                            r.closed = true;
                            break;
                        }
                    }
                }
                while self.status_line().is_some() {}
                let r = self.remote();
                r.exited.is_none() && !r.closed
            }
        }
    }

    /// The last state the kernel sent (after its latest block that ended normally), as text
    /// that recreates it when run in a new kernel. `None` before the first block.
    pub fn state(&self) -> Option<&[u8]> {
        self.state.as_deref()
    }

    /// Run `frames` one after the other until one's status does not `go_on`, the deadline
    /// passes, `cancel` fires or the kernel ends. Then, unless the kernel died or was killed,
    /// ask for its state (it arrives while the runner judges the block).
    pub async fn run(
        &mut self,
        frames: &[(Mode, &[u8])],
        go_on: GoOn<'_>,
        deadline: Option<Instant>,
        cancel: &Cancel,
    ) -> KernelRun {
        let mut result = KernelRun::default();
        for (i, (mode, text)) in frames.iter().enumerate() {
            let (mut output, status) = match self.io {
                Io::Local(_) => self.one(*mode, text, deadline, cancel, &mut result).await,
                Io::Remote(_) => self.one_remote(*mode, text, deadline, cancel, &mut result).await,
            };
            if *mode == Mode::Quiet {
                self.pending.append(&mut output);
            }
            let status = status.ok();
            let mut shown = crate::snapshot::display(&output);
            if let Io::Remote(r) = &self.io {
                shown = r.control.output_from_target(shown);
            }
            result.runs.push(CommandRun { output: shown, status });
            let stop = match status {
                Some(s) => result.died.is_some() || !go_on(i, s),
                None => true,
            };
            if stop {
                break;
            }
        }
        while result.runs.len() < frames.len() {
            result.runs.push(CommandRun { output: String::new(), status: None });
        }
        let changes_state = frames.iter().any(|(mode, text)| *mode == Mode::Quiet || !keeps_state(text, &self.defined));
        if changes_state && result.died.is_none() && !result.timed_out && !result.interrupted {
            // Not waited for: the state follows the block's last status on the control channel.
            let stdin: &mut (dyn tokio::io::AsyncWrite + Send + Unpin) = match &mut self.io {
                Io::Local(l) => &mut l.stdin,
                Io::Remote(r) => &mut r.stdin,
            };
            if stdin.write_all(b"s\n\0").await.is_ok() {
                let _ = stdin.flush().await;
            }
        }
        if let Io::Remote(r) = &self.io {
            let failed = frames
                .iter()
                .zip(&result.runs)
                .any(|((mode, _), run)| *mode != Mode::Quiet && run.status.is_some_and(|s| s != 0));
            if failed || result.died.is_some() || result.timed_out || result.interrupted {
                r.control.failed();
            }
        }
        result
    }

    /// Send one frame and wait for its status. `Err(())`: no status (time-out, interrupt); a
    /// kernel that ended gives its exit status (128 + signal when killed) and sets `died`.
    async fn one(
        &mut self,
        mode: Mode,
        text: &[u8],
        deadline: Option<Instant>,
        cancel: &Cancel,
        result: &mut KernelRun,
    ) -> (Vec<u8>, Result<i32, ()>) {
        // A command's output starts with what background jobs printed while none ran; a quiet
        // frame's own output goes to /dev/null, so what arrives during one is theirs too.
        let mut output = std::mem::take(&mut self.pending);
        let mut frame = Vec::with_capacity(text.len() + 8);
        frame.push(match mode {
            Mode::Plain => b'c',
            Mode::ErrExit => b'e',
            Mode::Quiet => b'q',
        });
        frame.push(b'\n');
        // A NUL ends the frame: bash strings cannot hold one, so no text can contain it.
        frame.extend(text.iter().copied().filter(|&b| b != 0));
        frame.extend_from_slice(b"\n\0");
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        // Write and read at once: a big frame must not block on a command that prints a lot.
        let mut written = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let mut ctl_chunk = [0u8; 4096];
        let mut ctl_open = true;
        loop {
            if let Some(status) = self.status_line() {
                self.drain(&mut output);
                return (output, Ok(status));
            }
            if !ctl_open {
                // The kernel ended: whatever it printed is in the pipe.
                let code = self.exit_code().await;
                self.drain(&mut output);
                result.died = Some(describe_exit(code));
                return (output, Ok(code));
            }
            let Io::Local(l) = &mut self.io else { unreachable!("a local kernel") };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    result.interrupted = true;
                    self.kill().await;
                    self.drain(&mut output);
                    return (output, Err(()));
                }
                _ = &mut sleep => {
                    result.timed_out = true;
                    self.kill().await;
                    self.drain(&mut output);
                    return (output, Err(()));
                }
                r = l.ctl.read(&mut ctl_chunk) => match r {
                    Ok(0) | Err(_) => ctl_open = false,
                    Ok(n) => self.ctl_buf.extend_from_slice(&ctl_chunk[..n]),
                },
                r = l.out.read(&mut buf) => {
                    if let Ok(n) = r && n > 0 {
                        output.extend_from_slice(&buf[..n]);
                    } else {
                        // The output pipe closed (the command closed it and no one else holds
                        // it): only the status is left to wait for.
                        let status = self.read_status_only(&mut ctl_open, cancel, &mut sleep, result).await;
                        if let Some(s) = status {
                            return (output, Ok(s));
                        }
                        if result.timed_out || result.interrupted {
                            return (output, Err(()));
                        }
                    }
                }
                r = l.stdin.write(&frame[written..]), if written < frame.len() => match r {
                    Ok(n) => {
                        written += n;
                        if written == frame.len() {
                            let Io::Local(l) = &mut self.io else { unreachable!("a local kernel") };
                            let _ = l.stdin.flush().await;
                        }
                    }
                    Err(_) => written = frame.len(),
                },
            }
        }
    }

    /// [`Kernel::one`] on an exec session: the command is over once its status (stderr) and
    /// its frame's marker (stdout) arrived (see [`Kernel::start_remote`]).
    async fn one_remote(
        &mut self,
        mode: Mode,
        text: &[u8],
        deadline: Option<Instant>,
        cancel: &Cancel,
        result: &mut KernelRun,
    ) -> (Vec<u8>, Result<i32, ()>) {
        let mut output = std::mem::take(&mut self.pending);
        let marker = format!("\u{1e}tutor-{:032x}\u{1e}", rand::random::<u128>()).into_bytes();
        let text = match std::str::from_utf8(text) {
            Ok(t) => self.remote().control.to_target(t).into_bytes(),
            Err(_) => text.to_vec(),
        };
        let mut frame = Vec::with_capacity(text.len() + marker.len() + 8);
        frame.push(match mode {
            Mode::Plain => b'c',
            Mode::ErrExit => b'e',
            Mode::Quiet => b'q',
        });
        frame.push(b'\n');
        frame.extend(text.iter().copied().filter(|&b| b != 0));
        frame.extend_from_slice(b"\n\0");
        frame.extend_from_slice(&marker);
        frame.push(b'\n');
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        let mut written = 0;
        let mut status = None;
        let mut marked = false;
        // Where the marker search goes on (it may arrive in pieces).
        let mut searched = output.len();
        loop {
            if status.is_none() {
                status = self.status_line();
            }
            if marked && let Some(s) = status {
                return (output, Ok(s));
            }
            let r = self.remote();
            if r.exited.is_some() || r.closed {
                // The shell ended: what it printed last is still on its way.
                self.drain_remote(&mut output, marked).await;
                let r = self.remote();
                return match r.exited {
                    Some(code) => {
                        result.died = Some(describe_exit(code));
                        (output, Ok(code))
                    }
                    None => {
                        result.died = Some("the exec session of the target's shell ended".into());
                        (output, Err(()))
                    }
                };
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    result.interrupted = true;
                    self.kill_remote(&mut output, marked).await;
                    return (output, Err(()));
                }
                _ = &mut sleep => {
                    result.timed_out = true;
                    self.kill_remote(&mut output, marked).await;
                    return (output, Err(()));
                }
                chunk = r.output.next() => match chunk {
                    Some(Ok(Chunk::Stdout(b))) if marked => self.pending.extend_from_slice(&b),
                    Some(Ok(Chunk::Stdout(b))) => {
                        output.extend_from_slice(&b);
                        let from = searched.saturating_sub(marker.len());
                        if let Some(at) = find(&output[from..], &marker) {
                            let rest = output.split_off(from + at);
                            self.pending.extend_from_slice(&rest[marker.len()..]);
                            marked = true;
                        }
                        searched = output.len();
                    }
                    Some(Ok(Chunk::Stderr(b))) => self.ctl_buf.extend_from_slice(&b),
                    None | Some(Err(_)) => self.remote().closed = true,
                },
                w = r.stdin.write(&frame[written..]), if written < frame.len() => match w {
                    Ok(n) => {
                        written += n;
                        if written == frame.len() {
                            let _ = self.remote().stdin.flush().await;
                        }
                    }
                    Err(_) => written = frame.len(),
                },
            }
        }
    }

    /// Read what a remote kernel that ended (or was killed) still delivers, until its session
    /// ends, briefly: stdout to `output` (to the next command once the marker passed), stderr
    /// to the control buffer (a state sent before the end is kept).
    async fn drain_remote(&mut self, output: &mut Vec<u8>, marked: bool) {
        let until = tokio::time::Instant::now() + REMOTE_DRAIN;
        loop {
            let r = self.remote();
            if r.closed {
                break;
            }
            match tokio::time::timeout_at(until, r.output.next()).await {
                Ok(Some(Ok(Chunk::Stdout(b)))) if marked => self.pending.extend_from_slice(&b),
                Ok(Some(Ok(Chunk::Stdout(b)))) => output.extend_from_slice(&b),
                Ok(Some(Ok(Chunk::Stderr(b)))) => self.ctl_buf.extend_from_slice(&b),
                Ok(None | Some(Err(_))) => self.remote().closed = true,
                Err(_) => break,
            }
        }
        while self.status_line().is_some() {}
    }

    /// Kill a remote kernel's process tree through a second exec, at once.
    async fn kill_remote(&mut self, output: &mut Vec<u8>, marked: bool) {
        let r = self.remote();
        if let Some(pid) = r.pid {
            r.control.kill_tree(pid).await;
        }
        self.drain_remote(output, marked).await;
        self.remote().exited.get_or_insert(128 + 9);
    }

    /// The output pipe is gone; wait for the status (or the end) on the control channel only.
    async fn read_status_only(
        &mut self,
        ctl_open: &mut bool,
        cancel: &Cancel,
        sleep: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
        result: &mut KernelRun,
    ) -> Option<i32> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(s) = self.status_line() {
                return Some(s);
            }
            if !*ctl_open {
                return None;
            }
            let Io::Local(l) = &mut self.io else { unreachable!("a local kernel") };
            tokio::select! {
                _ = cancel.cancelled() => { result.interrupted = true; self.kill().await; return None; }
                _ = sleep.as_mut() => { result.timed_out = true; self.kill().await; return None; }
                r = l.ctl.read(&mut buf) => match r {
                    Ok(0) | Err(_) => *ctl_open = false,
                    Ok(n) => self.ctl_buf.extend_from_slice(&buf[..n]),
                },
            }
        }
    }

    /// The next `status N` line of the control channel. A state (`state`, a line, the text, a
    /// NUL) is kept as the kernel's latest; anything else there, such as a shell warning
    /// printed outside any command, is skipped.
    fn status_line(&mut self) -> Option<i32> {
        const STATE: &[u8] = b"state\n";
        loop {
            if self.ctl_buf.starts_with(STATE) {
                // Incomplete until its NUL: a kernel killed meanwhile keeps the previous state.
                let end = self.ctl_buf.iter().position(|&b| b == 0)?;
                let text = self.ctl_buf[STATE.len()..end].to_vec();
                self.ctl_buf.drain(..=end);
                self.defined = defined_names(&text);
                self.state = Some(text);
                self.states_sent += 1;
                continue;
            }
            let nl = self.ctl_buf.iter().position(|&b| b == b'\n')?;
            let line: Vec<u8> = self.ctl_buf.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if let Some(status) = text.strip_prefix("status ").and_then(|s| s.parse().ok()) {
                return Some(status);
            }
            // A remote kernel's wrapper: the pid, bash's end, no bash at all.
            if let Io::Remote(r) = &mut self.io {
                if let Some(pid) = text.strip_prefix("pid ").and_then(|s| s.parse().ok()) {
                    r.pid = Some(pid);
                } else if let Some(code) = text.strip_prefix("exit ").and_then(|s| s.parse().ok()) {
                    r.exited = Some(code);
                } else if text == "nobash" {
                    r.no_bash = true;
                }
            }
        }
    }

    /// Everything already in the output pipe, without waiting.
    fn drain(&mut self, into: &mut Vec<u8>) {
        if let Io::Local(l) = &self.io {
            read_available(&l.out, into);
        }
    }

    async fn exit_code(&mut self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        let Io::Local(l) = &mut self.io else { unreachable!("a local kernel") };
        match l.child.wait().await {
            Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
            Err(_) => -1,
        }
    }

    /// SIGKILL the kernel's process group (its commands and background jobs with it).
    async fn kill(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        let Io::Local(l) = &mut self.io else { unreachable!("a local kernel") };
        let pgid = l.pgid;
        let group = nix::unistd::Pid::from_raw(pgid);
        let _ = killpg(group, Signal::SIGKILL);
        let _ = l.child.wait().await;
        // A state the kernel sent after the previous block may still be unread.
        read_available(&l.ctl, &mut self.ctl_buf);
        while self.status_line().is_some() {}
        // Until the group is empty (its members may be in the middle of a fork), briefly.
        for _ in 0..20 {
            if killpg(group, Signal::SIGKILL).is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        process::unregister(pgid);
    }

    /// Write the kernel's state (what a restart restores) to `path`, a path valid where the
    /// kernel runs: for `bg` blocks (shells of their own that source it) and for resuming a
    /// tutorial later from a saved environment.
    pub async fn save_state(&mut self, path: &str) -> Result<(), SaveStateError> {
        let cmd = format!("__tutor_save > {}", quote(path));
        let r = self.run(&[(Mode::Quiet, cmd.as_bytes())], &|_, _| true, None, &Cancel::default()).await;
        match r.runs.first().and_then(|r| r.status) {
            Some(0) if r.died.is_none() => Ok(()),
            _ => Err(SaveStateError { path: path.to_string() }),
        }
    }

    /// End the kernel and everything in its process group: SIGTERM, a grace period, SIGKILL.
    /// A remote kernel (and its process tree) is killed through a second exec, unless it ended.
    pub async fn stop(self) {
        use nix::sys::signal::{Signal, killpg};
        let mut l = match self.io {
            Io::Local(l) => l,
            Io::Remote(mut r) => {
                let _ = r.stdin.shutdown().await;
                if let (Some(pid), None, false) = (r.pid, r.exited, r.closed) {
                    let _ = tokio::time::timeout(REMOTE_START, r.control.kill_tree(pid)).await;
                }
                return;
            }
        };
        let group = nix::unistd::Pid::from_raw(l.pgid);
        let _ = l.stdin.shutdown().await;
        let _ = killpg(group, Signal::SIGTERM);
        // The shell is reaped here (a zombie would still count as a member of its group).
        let _ = tokio::time::timeout(Duration::from_millis(300), l.child.wait()).await;
        // Background jobs that ignore SIGTERM, and the shell if it did not end.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = l.child.wait().await;
        process::unregister(l.pgid);
    }
}

/// The shell did not write its state (it died, or the path is not writable where it runs).
#[derive(Debug, thiserror::Error)]
#[error("cannot save the shell's state to {path}")]
pub struct SaveStateError {
    pub path: String,
}

/// Everything already in the pipe, without waiting. A plain `read(2)` on the non-blocking
/// descriptor: tokio's `try_read` answers from its cached readiness, which may not have seen yet
/// the bytes a command wrote just before its status arrived on the other pipe.
fn read_available(pipe: &pipe::Receiver, into: &mut Vec<u8>) {
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n) = nix::unistd::read(pipe, &mut buf) {
        if n == 0 {
            break;
        }
        into.extend_from_slice(&buf[..n]);
    }
}

/// Where `needle` starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Names of the functions (`declare -f`: `NAME () `) and aliases (`alias NAME=…`) in a state.
fn defined_names(state: &[u8]) -> HashSet<Vec<u8>> {
    let mut names = HashSet::new();
    for line in state.split(|&b| b == b'\n') {
        if let Some(name) = line.strip_suffix(b" () ") {
            names.insert(name.to_vec());
        } else if let Some(rest) = line.strip_prefix(b"alias ") {
            let rest = rest.strip_prefix(b"-- ").unwrap_or(rest);
            if let Some(eq) = rest.iter().position(|&b| b == b'=') {
                names.insert(rest[..eq].to_vec());
            }
        }
    }
    names
}

/// Builtins and keywords that may change what a state holds (variables, functions, aliases,
/// options, traps, umask, the working directory), or run code that may.
const STATEFUL_WORDS: &[&str] = &[
    ".",
    "source",
    "alias",
    "unalias",
    "bind",
    "builtin",
    "cd",
    "pushd",
    "popd",
    "command",
    "declare",
    "typeset",
    "local",
    "readonly",
    "export",
    "unset",
    "enable",
    "eval",
    "exec",
    "exit",
    "logout",
    "return",
    "set",
    "shopt",
    "shift",
    "trap",
    "umask",
    "read",
    "readarray",
    "mapfile",
    "let",
    "hash",
    "getopts",
    "complete",
    "compopt",
    "history",
    "fc",
    "coproc",
    "if",
    "then",
    "else",
    "elif",
    "fi",
    "case",
    "esac",
    "for",
    "select",
    "while",
    "until",
    "do",
    "done",
    "in",
    "function",
    "time",
    "!",
    "[[",
    "]]",
    "{",
    "}",
];

/// Whether running `text` certainly leaves the shell's state as it was, so the kernel need not
/// send it again (docs/architecture.md, "The notebook kernel"). Conservative: only lists of
/// simple commands whose first word is a plain name (not a builtin or keyword of
/// [`STATEFUL_WORDS`], not `printf -v`, not a function or alias of `defined`, no assignment),
/// with no subshell or group, heredoc, arithmetic or `${…=…}` expansion. Command substitutions
/// run in a subshell and are skipped. Anything else counts as changing the state.
pub fn keeps_state(text: &[u8], defined: &HashSet<Vec<u8>>) -> bool {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"_./:@%+,-[".contains(&b);
    let n = text.len();
    let mut i = 0;
    let mut first = true;
    let mut after_printf = false;
    while i < n {
        let b = text[i];
        match b {
            b' ' | b'\t' => i += 1,
            b'\n' | b';' | b'&' | b'|' => {
                first = true;
                after_printf = false;
                i += 1;
            }
            b'\\' if text.get(i + 1) == Some(&b'\n') => i += 2,
            b'#' => {
                // A comment (words never start with `#` here: a word is read whole below).
                while i < n && text[i] != b'\n' {
                    i += 1;
                }
            }
            _ if first => {
                let start = i;
                while i < n && !matches!(text[i], b' ' | b'\t' | b'\n' | b';' | b'&' | b'|') {
                    i += 1;
                }
                let word = &text[start..i];
                if !word.iter().all(|&c| plain(c)) || (word.contains(&b'[') && word != b"[") {
                    return false;
                }
                let name = std::str::from_utf8(word).unwrap_or("");
                if STATEFUL_WORDS.contains(&name) || defined.contains(word) {
                    return false;
                }
                after_printf = name == "printf";
                first = false;
            }
            _ => {
                // A later word: `printf -v` assigns; expansions and quotes are checked.
                let start = i;
                match skip_word(text, i) {
                    Some(end) => i = end,
                    None => return false,
                }
                if std::mem::take(&mut after_printf) && text[start..i].starts_with(b"-v") {
                    return false;
                }
            }
        }
    }
    true
}

/// The end of the word starting at `i` (not a command's first word), or `None` if it holds
/// something that may change the state (an unquoted `(`, `{`/`}` group, `<<`, arithmetic,
/// `${NAME=…}`) or does not parse.
fn skip_word(text: &[u8], mut i: usize) -> Option<usize> {
    let n = text.len();
    let mut dquote = false;
    while i < n {
        let b = text[i];
        match b {
            b'\\' => i += 2,
            b'\'' if !dquote => i += text[i + 1..].iter().position(|&c| c == b'\'')? + 2,
            b'"' => {
                dquote = !dquote;
                i += 1;
            }
            b'`' => i += text[i + 1..].iter().position(|&c| c == b'`')? + 2,
            b'$' => match text.get(i + 1) {
                Some(b'(') if text.get(i + 2) == Some(&b'(') => return None,
                Some(b'(') => i = skip_parens(text, i + 1)?,
                Some(b'[') => return None,
                Some(b'{') => {
                    let end = i + 2 + text[i + 2..].iter().position(|&c| c == b'}')?;
                    if text[i + 2..end].contains(&b'=') {
                        return None;
                    }
                    i = end + 1;
                }
                _ => i += 1,
            },
            _ if dquote => i += 1,
            b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' => return Some(i),
            b'<' | b'>' if text.get(i + 1) == Some(&b'(') => i = skip_parens(text, i + 1)?,
            b'<' if text.get(i + 1) == Some(&b'<') && text.get(i + 2) != Some(&b'<') => return None,
            b'(' | b')' | b'{' | b'}' => return None,
            _ => i += 1,
        }
    }
    (!dquote).then_some(i.min(n))
}

/// `text[open]` is `(`: the index after its matching `)` (a subshell: whatever runs inside
/// cannot change this shell), skipping quoted text.
fn skip_parens(text: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 1,
            b'\'' => i += text[i + 1..].iter().position(|&c| c == b'\'')? + 1,
            b'"' => {
                i += 1;
                while text.get(i)? != &b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// How a kernel that ended on its own ended.
fn describe_exit(code: i32) -> String {
    if code > 128 {
        let name = nix::sys::signal::Signal::try_from(code - 128).map(|s| s.as_str().to_string());
        format!("the shell was killed by {}", name.unwrap_or_else(|_| format!("signal {}", code - 128)))
    } else {
        format!("the shell exited with status {code}")
    }
}

/// `NAME='value'` lines that set captured values in a kernel.
pub fn assignments<'a>(values: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut s = String::new();
    for (k, v) in values {
        let _ = writeln!(s, "{k}={}", quote(v));
    }
    s
}

/// The text that restores `state` (from [`Kernel::state`]) in a new kernel, as a quiet frame
/// (read-only variables cannot be set again: those errors are not seen).
pub fn restore_script(state: &[u8]) -> Vec<u8> {
    let mut s = state.to_vec();
    s.extend_from_slice(b"\ntrue\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash() -> std::process::Command {
        std::process::Command::new("bash")
    }

    async fn kernel(dir: &std::path::Path) -> Kernel {
        let mut cmd = bash();
        cmd.current_dir(dir);
        Kernel::start(cmd, b"").await.unwrap()
    }

    async fn run(k: &mut Kernel, cmds: &[&str]) -> KernelRun {
        let frames: Vec<(Mode, &[u8])> = cmds.iter().map(|c| (Mode::Plain, c.as_bytes())).collect();
        k.run(&frames, &|_, _| true, Some(Instant::now() + Duration::from_secs(10)), &Cancel::default()).await
    }

    fn outputs(r: &KernelRun) -> Vec<(&str, Option<i32>)> {
        r.runs.iter().map(|r| (r.output.as_str(), r.status)).collect()
    }

    #[tokio::test]
    async fn state_lives_in_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = kernel(dir.path()).await;
        let r = run(&mut k, &["X=plain; f() { echo \"f:$1\"; }; alias hi='echo alias'", "mkdir -p sub; cd sub"]).await;
        assert_eq!(outputs(&r), [("", Some(0)), ("", Some(0))]);
        let r = run(
            &mut k,
            &["echo $X; f 1; hi; echo ${PWD##*/}", "set -o pipefail; false | true", "echo 'x\\' ; (exit 3)"],
        )
        .await;
        assert_eq!(outputs(&r), [("plain\nf:1\nalias\nsub\n", Some(0)), ("", Some(1)), ("x\\\n", Some(3))]);
        k.stop().await;
    }

    #[tokio::test]
    async fn output_cannot_forge_a_status_and_stderr_is_merged() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = kernel(dir.path()).await;
        let r =
            run(&mut k, &["echo 'status 0'; echo err >&2; printf 'no-eol'", "exit_code=4; (exit $exit_code)"]).await;
        assert_eq!(outputs(&r), [("status 0\nerr\nno-eol", Some(0)), ("", Some(4))]);
        k.stop().await;
    }

    #[tokio::test]
    async fn a_daemon_holding_the_output_does_not_hold_the_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = kernel(dir.path()).await;
        let start = Instant::now();
        let r = run(&mut k, &["setsid -f sh -c 'echo $$ > d.pid; exec sleep 77' && echo started"]).await;
        assert_eq!(outputs(&r), [("started\n", Some(0))]);
        // Well under the daemon's 77 s (a loaded machine may take seconds to start processes).
        assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
        // The daemon outlives the block, and this kernel once it has left the process group
        // (it has when it wrote its pid: a loaded machine may take a while to get there, and a
        // kernel stopped before then takes the still-forking daemon with it).
        let mut pid = None;
        for _ in 0..3000 {
            pid = std::fs::read_to_string(dir.path().join("d.pid")).ok().and_then(|p| p.trim().parse::<i32>().ok());
            if pid.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        k.stop().await;
        let pid = nix::unistd::Pid::from_raw(pid.expect("the daemon wrote its pid"));
        assert!(nix::sys::signal::kill(pid, None).is_ok(), "the daemon is running");
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }

    #[tokio::test]
    async fn timeout_kills_the_block_and_a_restart_restores_the_state_from_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = kernel(dir.path()).await;
        run(&mut k, &["export A=1; B=2; g() { echo g; }; cd /; set -o pipefail; shopt -s extglob; alias al='echo al'"])
            .await;
        let frames = [(Mode::Plain, b"A=changed; sleep 100".as_slice())];
        let r =
            k.run(&frames, &|_, _| true, Some(Instant::now() + Duration::from_millis(300)), &Cancel::default()).await;
        assert!(r.timed_out);
        assert_eq!(r.runs[0].status, None);
        assert!(!k.alive());
        // The state the kernel sent after the first block (read when it was killed at the latest).
        let state = k.state().expect("a state").to_vec();
        let mut k = Kernel::start(bash(), &restore_script(&state)).await.unwrap();
        let r = run(&mut k, &["echo $A $B; g; pwd; shopt -q extglob && echo extglob; al", "false | true"]).await;
        assert_eq!(outputs(&r), [("1 2\ng\n/\nextglob\nal\n", Some(0)), ("", Some(1))]);
        k.stop().await;
    }

    #[tokio::test]
    async fn exit_and_errexit_end_the_kernel_with_their_status() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = kernel(dir.path()).await;
        let r = run(&mut k, &["echo a", "echo b; exit 4", "echo c"]).await;
        assert_eq!(outputs(&r), [("a\n", Some(0)), ("b\n", Some(4)), ("", None)]);
        assert_eq!(r.died.as_deref(), Some("the shell exited with status 4"));
        let mut k = kernel(dir.path()).await;
        let frames = [(Mode::ErrExit, b"echo one\nfalse\necho two".as_slice())];
        let r = k.run(&frames, &|_, _| true, None, &Cancel::default()).await;
        assert_eq!(outputs(&r), [("one\n", Some(1))]);
        assert!(r.died.is_some());
    }

    #[tokio::test]
    async fn go_on_stops_at_the_first_failure_and_big_frames_go_through_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = kernel(dir.path()).await;
        let frames = [(Mode::Plain, b"echo a".as_slice()), (Mode::Plain, b"false"), (Mode::Plain, b"echo never")];
        let r = k.run(&frames, &|_, s| s == 0, None, &Cancel::default()).await;
        assert_eq!(outputs(&r), [("a\n", Some(0)), ("", Some(1)), ("", None)]);
        let big = format!("x='{}'; echo ${{#x}}", "y".repeat(300_000));
        let r = run(&mut k, &[&big, "seq 200000 | wc -l"]).await;
        assert_eq!(outputs(&r), [("300000\n", Some(0)), ("200000\n", Some(0))]);
        k.stop().await;
    }

    #[tokio::test]
    async fn background_output_between_blocks_goes_to_the_next_command() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = kernel(dir.path()).await;
        let r = run(&mut k, &["(sleep 0.3; echo late) & echo started"]).await;
        assert_eq!(outputs(&r), [("started\n", Some(0))]);
        tokio::time::sleep(Duration::from_millis(600)).await;
        // The runner's quiet frames (captures, saves) keep it for the next command.
        let r = k.run(&[(Mode::Quiet, b"X=1".as_slice())], &|_, _| true, None, &Cancel::default()).await;
        assert_eq!(outputs(&r), [("", Some(0))]);
        let r = run(&mut k, &["echo next", "echo after"]).await;
        assert_eq!(outputs(&r), [("late\nnext\n", Some(0)), ("after\n", Some(0))]);
        // Printed while a command runs: that command's.
        let r = run(&mut k, &["(sleep 0.2; echo during) & sleep 0.6; echo done"]).await;
        assert_eq!(outputs(&r), [("during\ndone\n", Some(0))]);
        k.stop().await;
    }

    #[test]
    fn only_commands_that_cannot_change_the_state_keep_it() {
        let defined: HashSet<Vec<u8>> = [b"greet".to_vec(), b"ll".to_vec()].into();
        let keeps = |t: &str| keeps_state(t.as_bytes(), &defined);
        for t in [
            "echo block-1",
            "kubectl get pods -o wide | grep -c Running; ip route",
            "curl -s http://x/?a=b && echo \"ok $HOME ${PATH}\" || true",
            "printf '%s\\n' \"$(cd /tmp; X=1; pwd)\" > out.txt 2>&1",
            "[ -f x ] && cat x # cd /",
            "sleep 1 &\nwait",
            "diff <(sort a) <(sort b)",
            "echo `date`",
        ] {
            assert!(keeps(t), "{t}");
        }
        for t in [
            "X=1",
            "X=1 echo",
            "cd /tmp",
            "echo a; export A=1",
            "greet you",
            "ll",
            "f() { echo; }",
            "function f { :; }",
            "(cd /tmp)",
            "{ echo; }",
            "echo ${X:=1}",
            "echo $((n++))",
            "((n++))",
            "for i in 1 2; do echo $i; done",
            "printf -v X %s 1",
            "cat <<EOF\nX\nEOF",
            ". ./env.sh",
            "source env.sh",
            "$CMD arg",
            "\"echo\" x",
            "set -o pipefail",
            "read X < f",
            "echo 'unterminated",
            "[[ -f x ]]",
            "echo \"$(echo unbalanced\"",
        ] {
            assert!(!keeps(t), "{t}");
        }
    }

    #[test]
    fn function_and_alias_names_come_from_the_state() {
        let state = b"declare -- X=\"1\"\ngreet () \n{ \n    echo hi\n}\nalias ll='ls -l'\n";
        let names = defined_names(state);
        assert!(names.contains(b"greet".as_slice()) && names.contains(b"ll".as_slice()), "{names:?}");
        assert_eq!(names.len(), 2);
    }

    #[tokio::test]
    async fn a_block_that_keeps_the_state_is_not_followed_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = kernel(dir.path()).await;
        let text = |k: &Kernel| String::from_utf8_lossy(k.state().unwrap_or_default()).into_owned();
        run(&mut k, &["X=1; bump() { G=$((G+1)); }"]).await;
        run(&mut k, &["echo probe"]).await;
        assert_eq!(k.states_sent, 1);
        assert!(text(&k).contains("declare -- X=\"1\""));
        run(&mut k, &["echo plain", "ls >/dev/null"]).await;
        run(&mut k, &["echo probe"]).await;
        assert_eq!(k.states_sent, 1, "no state after blocks that keep it");
        // `bump` is a function now: calling it may change the state.
        run(&mut k, &["bump"]).await;
        run(&mut k, &["echo probe"]).await;
        assert_eq!(k.states_sent, 2);
        assert!(text(&k).contains("declare -- G=\"1\""));
        k.stop().await;
    }

    #[tokio::test]
    async fn cancel_ends_the_wait_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = kernel(dir.path()).await;
        let cancel = Cancel::default();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c2.cancel();
        });
        let start = Instant::now();
        let r = k.run(&[(Mode::Plain, b"sleep 100")], &|_, _| true, None, &cancel).await;
        assert!(r.interrupted);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
