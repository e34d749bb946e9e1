//! Plans and runs tutorials (docs/architecture.md, "Modules"): notebook sessions per target,
//! timeouts, `retry`, background blocks, step selection, tutorials in parallel, cleanup on every
//! exit path.
//!
//! Flow: [`preflight::prepare`] checks everything that can be checked without executing (any
//! problem there is an input error); [`run_all`] then runs the prepared tutorials, reporting
//! progress through a [`Reporter`] and returning one [`TutorialResult`] per tutorial.

mod beneath;
mod block;
pub mod cancel;
pub mod events;
mod judge;
pub mod kept;
pub mod kernel;
mod lifecycle;
pub mod outcome;
pub mod preflight;
pub mod script;
mod steps;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod transcript;
mod update;
pub mod workdirs;

use std::path::PathBuf;
use std::sync::Arc;

pub use cancel::Cancel;
pub use events::{Event, Reporter, Silent};
pub use outcome::{BlockResult, Counts, Mismatch, Status, StepResult, TutorialResult};
pub use preflight::{Prepared, StepRange, prepare};
pub use update::{apply as update_apply, in_container};

/// Options that apply while running (those that shape the plan go to [`prepare`]).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--update`: record outputs as the new expectations.
    pub update: bool,
    /// `--no-retry`: run every block once, even with `retry=` (exposes flaky blocks).
    pub no_retry: bool,
    /// Record mismatching blocks' new output as pending changes for `tutor review`.
    pub pending: bool,
    /// `--keep-going`: run the rest of a tutorial after a failing block.
    pub keep_going: bool,
    /// `--keep`: leave the environment and the work directory in place.
    pub keep: bool,
    /// `--jobs`: tutorials run at once (at least 1).
    pub jobs: usize,
    /// `--workdir`.
    pub workdir: Option<PathBuf>,
    /// `--env NAME`: run in that kept environment (its name, the captured values) and restore
    /// its targets' shell state instead of starting each target fresh. Implies `keep`.
    pub resume: Option<kept::Resume>,
}

/// Run every prepared tutorial, at most `opts.jobs` at a time; results come back in input order.
pub async fn run_all(
    prepared: Vec<Prepared>,
    opts: RunOptions,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
) -> Vec<TutorialResult> {
    let opts = Arc::new(opts);
    let several = prepared.len() > 1;
    let slots = Arc::new(tokio::sync::Semaphore::new(opts.jobs.max(1)));
    let mut handles = Vec::new();
    for p in prepared {
        let (opts, reporter, cancel, slots) = (opts.clone(), reporter.clone(), cancel.clone(), slots.clone());
        let fallback = (p.plan.tutorial.path.clone(), p.plan.tutorial.stem.clone(), p.plan.backend);
        let handle = tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("the semaphore is never closed");
            lifecycle::run(p, opts, reporter, cancel, several).await
        });
        handles.push((handle, fallback));
    }
    let mut results = Vec::new();
    for (handle, (path, stem, backend)) in handles {
        results.push(handle.await.unwrap_or_else(|e| TutorialResult {
            path,
            stem,
            title: None,
            backend,
            duration: Default::default(),
            steps: Vec::new(),
            updated: Vec::new(),
            pending: Vec::new(),
            errors: vec![format!("internal error: {e}")],
            usage_error: false,
            interrupted: false,
            kept_workdir: None,
            kept: None,
            partial: None,
        }));
    }
    results
}
