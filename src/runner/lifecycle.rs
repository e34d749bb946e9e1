//! One tutorial from start to end: work directory, `Backend::up`, the steps, and — on every
//! path, including a panic in the steps — `Backend::down` and the work directory's removal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::RwLock;

use super::RunOptions;
use super::cancel::Cancel;
use super::events::{Event, Reporter};
use super::outcome::TutorialResult;
use super::preflight::Prepared;
use super::steps;
use crate::backend::{BackendError, UpContext};

/// The work directory: `--workdir` (a sub-folder per tutorial when several run), else a fresh
/// temporary one that is removed afterwards unless `--keep`.
fn workdir(opts: &RunOptions, stem: &str, several: bool) -> std::io::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match &opts.workdir {
        Some(dir) => {
            let dir = if several { dir.join(stem) } else { dir.clone() };
            std::fs::create_dir_all(&dir)?;
            Ok((std::path::absolute(&dir)?, None))
        }
        None => {
            let tmp = tempfile::Builder::new().prefix(&format!("tutor-{stem}-")).tempdir()?;
            Ok((tmp.path().to_path_buf(), Some(tmp)))
        }
    }
}

pub async fn run(
    prepared: Prepared,
    opts: Arc<RunOptions>,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
    several: bool,
) -> TutorialResult {
    let start = Instant::now();
    let plan = Arc::new(prepared.plan);
    let t = &plan.tutorial;
    reporter.event(&Event::TutorialStarted { tutorial: t, backend: plan.backend });
    let mut result = TutorialResult {
        path: t.path.clone(),
        stem: t.stem.clone(),
        title: t.front.title.clone(),
        backend: plan.backend,
        duration: Default::default(),
        steps: Vec::new(),
        updated: Vec::new(),
        pending: Vec::new(),
        errors: Vec::new(),
        usage_error: false,
        interrupted: false,
        kept_workdir: None,
        partial: plan.partial(),
    };
    let (dir, tmp) = match workdir(&opts, &t.stem, several) {
        Ok(w) => w,
        Err(e) => {
            result.errors.push(format!("cannot create the work directory: {e}"));
            return finish(result, start, &*reporter, t);
        }
    };
    let backend = Arc::new(RwLock::new(prepared.backend));
    let ctx = UpContext {
        workdir: dir.clone(),
        run_name: format!("{:06x}", rand::random::<u32>() & 0xff_ffff),
        keep: opts.keep,
    };
    // `up` runs in its own task so that a panic in it still reaches `down` below; Ctrl-C aborts it.
    let up = if cancel.is_cancelled() {
        Err(BackendError::Other("interrupted".into()))
    } else {
        let (b, c) = (backend.clone(), ctx.clone());
        let mut task = tokio::spawn(async move { b.write().await.up(&c).await });
        tokio::select! {
            r = &mut task => r.unwrap_or_else(|e| Err(BackendError::Other(format!("internal error: {e}")))),
            _ = cancel.cancelled() => {
                task.abort();
                let _ = task.await;
                Err(BackendError::Other("interrupted while bringing the backend up".into()))
            }
        }
    };
    match up {
        Err(e) => {
            result.usage_error = e.is_usage();
            // Name the backend once: some errors (pre-flight) already do.
            let message = e.to_string();
            let prefix = format!("{} backend", plan.backend);
            result.errors.push(if message.starts_with(&prefix) { message } else { format!("{prefix}: {message}") });
        }
        Ok(()) => {
            let task = tokio::spawn(steps::run(
                plan.clone(),
                backend.clone(),
                dir.clone(),
                opts.clone(),
                reporter.clone(),
                cancel.clone(),
            ));
            match task.await {
                Ok(out) => {
                    result.steps = out.steps;
                    result.updated = out.updated;
                    result.pending = out.pending;
                    result.errors.extend(out.errors);
                }
                Err(e) => result.errors.push(format!("internal error while running the steps: {e}")),
            }
        }
    }
    if let Err(e) = backend.write().await.down().await {
        result.errors.push(format!("{} backend: tearing down: {e}", plan.backend));
    }
    result.interrupted = cancel.is_cancelled();
    if opts.keep {
        result.kept_workdir = Some(match tmp {
            Some(tmp) => tmp.keep(),
            None => dir,
        });
    }
    finish(result, start, &*reporter, t)
}

fn finish(
    mut result: TutorialResult,
    start: Instant,
    reporter: &dyn Reporter,
    t: &crate::tutorial::Tutorial,
) -> TutorialResult {
    result.duration = start.elapsed();
    reporter.event(&Event::TutorialFinished { tutorial: t, result: &result });
    result
}
