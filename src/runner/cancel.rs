//! Ctrl-C and SIGTERM: a shared flag the runner checks between blocks, plus killing the live
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

/// Install SIGINT/SIGTERM handlers that cancel `cancel` and stop every running block. A block
/// that was being spawned while the signal arrived is caught by the second sweep.
pub fn on_signals(cancel: Cancel) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            cancel.cancel();
            process::kill_all();
            tokio::time::sleep(Duration::from_millis(200)).await;
            process::kill_all();
        }
    }))
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
