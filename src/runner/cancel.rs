//! Ctrl-C, SIGTERM, SIGHUP and SIGQUIT: a shared flag the runner checks between blocks, plus killing the live
//! process groups so that a running block returns at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::backend::process;

#[derive(Clone, Default)]
pub struct Cancel(Arc<Inner>);

#[derive(Default)]
struct Inner {
    flag: AtomicBool,
    notify: Notify,
}

impl Cancel {
    pub fn cancel(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// Resolves once [`Cancel::cancel`] was called.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Sleep for `d` unless cancelled first; returns false when cancelled.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.is_cancelled(),
            _ = self.cancelled() => false,
        }
    }
}

/// Install handlers for SIGINT, SIGTERM, SIGHUP and SIGQUIT that cancel `cancel` and stop every
/// running block: the four end a run the same way (teardown, reports written, exit 130). A
/// block that was being spawned while the signal arrived is caught by the second sweep.
///
/// SIGHUP usually means the terminal is gone: standard output and error are then pointed at
/// `/dev/null` when they were that terminal, so the closing lines cannot fail the teardown
/// (the run record and JUnit report are files and are still written).
pub fn on_signals(cancel: Cancel) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => detach_from_terminal(),
                _ = quit.recv() => {}
            }
            cancel.cancel();
            process::kill_all();
            tokio::time::sleep(Duration::from_millis(200)).await;
            process::kill_all();
        }
    }))
}

/// Point standard output and error at `/dev/null` where they are a terminal (one that hung up
/// fails every write with EIO, and `println!` panics on that). A hung-up terminal no longer
/// answers `isatty`, so the descriptor's target is looked at too.
fn detach_from_terminal() {
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else { return };
    use std::io::IsTerminal;
    let on_tty = |fd: i32, isatty: bool| {
        isatty
            || std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|p| p.starts_with("/dev/pts") || p.to_string_lossy().starts_with("/dev/tty"))
                .unwrap_or(false)
    };
    if on_tty(1, std::io::stdout().is_terminal()) {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    if on_tty(2, std::io::stderr().is_terminal()) {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleep_is_cut_short_by_cancel() {
        let c = Cancel::default();
        let c2 = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c2.cancel();
        });
        let start = std::time::Instant::now();
        assert!(!c.sleep(Duration::from_secs(10)).await);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(c.is_cancelled());
        c.cancelled().await;
    }

    #[tokio::test]
    async fn sleep_completes_without_cancel() {
        assert!(Cancel::default().sleep(Duration::from_millis(5)).await);
    }
}
