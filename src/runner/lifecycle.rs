//! One tutorial from start to end: work directory, `Backend::up`, the steps, and — on every
//! path, including a panic in the steps — `Backend::down` and the work directory's removal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::RwLock;

use super::RunOptions;
use super::cancel::Cancel;
use super::events::{Event, Reporter};
use super::kept::KeptEnv;
use super::outcome::{Status, TutorialResult};
use super::preflight::Prepared;
use super::steps;
use super::workdirs;
use crate::backend::{BackendError, BackendKind, UpContext};

/// The work directory: `--workdir` (a sub-folder per tutorial when several run), else a fresh
/// temporary one that is removed afterwards unless `--keep`.
/// A temporary one is recorded (`workdirs`) until it is removed, so a killed run's is swept.
fn workdir(opts: &RunOptions, stem: &str, several: bool) -> std::io::Result<(PathBuf, Option<Temp>)> {
    match &opts.workdir {
        Some(dir) => {
            let dir = if several { dir.join(stem) } else { dir.clone() };
            std::fs::create_dir_all(&dir)?;
            Ok((std::path::absolute(&dir)?, None))
        }
        None => {
            let dir = tempfile::Builder::new().prefix(&format!("tutor-{stem}-")).tempdir()?;
            let record = workdirs::record(dir.path());
            Ok((dir.path().to_path_buf(), Some(Temp { dir, _record: record })))
        }
    }
}

/// A temporary work directory and its record (fields drop in order: the directory first).
struct Temp {
    dir: tempfile::TempDir,
    _record: workdirs::Recorded,
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
        kept: None,
        partial: plan.partial(),
    };
    let (dir, tmp) = match workdir(&opts, &t.stem, several) {
        Ok(w) => w,
        Err(e) => {
            result.errors.push(format!("cannot create the work directory: {e}"));
            return finish(result, start, &*reporter, t);
        }
    };
    // What the lab's outside world serves for the tutorial's `offline:` URLs (nothing on the
    // other backends: they fetch the real URLs).
    let offline = match offline_content(t, plan.backend) {
        Ok(o) => o,
        Err(e) => {
            result.usage_error = true;
            result.errors.push(e.to_string());
            return finish(result, start, &*reporter, t);
        }
    };
    let backend = Arc::new(RwLock::new(prepared.backend));
    let keep = opts.keep || opts.resume.is_some();
    let ctx = UpContext {
        workdir: dir.clone(),
        run_name: match &opts.resume {
            Some(r) => r.name.clone(),
            None => format!("{:06x}", rand::random::<u32>() & 0xff_ffff),
        },
        keep,
        kubernetes: t.front.kubernetes,
        offline,
        images: {
            // Images of the steps before the first that `needs:` something (the later ones may
            // not run here; the kind backend's registry still builds their images on demand),
            // and the images `needs:` names (the user's Docker engine may have them).
            let first_need = t.front.needs.iter().map(|n| n.from_step).min().unwrap_or(usize::MAX);
            let mut images = crate::backend::kind::workload::references(
                t.steps.iter().filter(|s| s.number < first_need).flat_map(|s| &s.blocks).map(|b| b.body.as_str()),
            );
            for i in t.front.needs.iter().flat_map(|n| &n.images) {
                if !images.contains(i) {
                    images.push(i.clone());
                }
            }
            images
        },
    };
    let mut captures = None;
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
            result.errors.push(if e.names_backend(plan.backend) {
                e.to_string()
            } else {
                format!("{} backend: {e}", plan.backend)
            });
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
                    captures = Some((out.captures, out.capture_sites));
                }
                Err(e) => result.errors.push(format!("internal error while running the steps: {e}")),
            }
        }
    }
    if let Err(e) = backend.write().await.down().await {
        result.errors.push(format!("{} backend: tearing down: {e}", plan.backend));
    }
    result.interrupted = cancel.is_cancelled();
    if keep {
        let dir = match tmp {
            Some(tmp) => tmp.dir.keep(),
            None => dir,
        };
        // Environments `--env NAME` can go on in: those whose state lives in the work directory.
        if let (Some((captures, capture_sites)), BackendKind::Host | BackendKind::Lab) = (captures, plan.backend) {
            result.kept = Some(KeptEnv {
                name: ctx.run_name.clone(),
                backend: plan.backend,
                tutorial: std::path::absolute(&t.path).unwrap_or_else(|_| t.path.clone()),
                workdir: dir.clone(),
                next_step: next_step(&plan, &result),
                last_step: t.steps.len(),
                captures,
                capture_sites,
            });
        }
        result.kept_workdir = Some(dir);
    }
    finish(result, start, &*reporter, t)
}

/// The content of each `offline:` URL, read from the tutorial's `file=` blocks and the files
/// beside it; nothing for backends that fetch the real URLs.
fn offline_content(
    t: &crate::tutorial::Tutorial,
    backend: BackendKind,
) -> Result<Vec<crate::backend::Served>, crate::tutorial::TutorialError> {
    if backend != BackendKind::Lab {
        return Ok(Vec::new());
    }
    t.front
        .offline
        .iter()
        .map(|o| {
            Ok(crate::backend::Served {
                url: o.url.clone(),
                host: o.host.clone(),
                target: o.target.clone(),
                content_type: o.content_type.clone(),
                body: crate::tutorial::offline::content(o, &t.path, &t.steps)?,
            })
        })
        .collect()
}

/// Where a later `--env` run goes on: the first selected step that did not pass (a failed,
/// errored or not-run block), else the step after the last one that ran.
fn next_step(plan: &super::preflight::Plan, result: &TutorialResult) -> usize {
    let selected = || result.steps.iter().filter(|s| !s.setup);
    let unfinished = selected()
        .find(|s| s.blocks.iter().any(|b| matches!(b.status, Status::Failed | Status::Error)))
        .map(|s| s.number);
    let after_last = selected().map(|s| s.number + 1).next_back();
    unfinished.or(after_last).unwrap_or(*plan.steps.start())
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
