//! The steps of one tutorial, in order: `file=` blocks written first, then command blocks one
//! by one; stop at the first failure unless `--keep-going`; stop `bg` blocks at the end; apply
//! update mode's Markdown edits.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::RwLock;

use super::RunOptions;
use super::block::{self, Env, Session};
use super::cancel::Cancel;
use super::events::{Event, Reporter};
use super::outcome::{BlockResult, Status, StepResult};
use super::preflight::Plan;
use super::update;
use crate::backend::Backend;
use crate::tutorial::{Block, BlockKind};

pub struct StepsOutcome {
    pub steps: Vec<StepResult>,
    pub updated: Vec<PathBuf>,
    pub pending: Vec<PathBuf>,
    pub errors: Vec<String>,
    /// Values captured with `[..NAME..]` by the end, and where (kept for `--env`).
    pub captures: crate::snapshot::Captures,
    pub capture_sites: std::collections::BTreeMap<String, String>,
}

/// Why a block does not run here, if it does not.
fn skip_reason(plan: &Plan, block: &Block) -> Option<String> {
    if block.attrs.skip {
        return Some("marked skip".into());
    }
    match block.attrs.backend {
        Some(b) if b != plan.backend => Some(format!("only runs on the {b} backend")),
        _ => None,
    }
}

/// Why a `file=` block was not written.
#[derive(Debug, thiserror::Error)]
pub enum FileBlockError {
    #[error("file={name}: must be a relative path inside the work directory")]
    NotRelative { name: String },
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    #[error("file={name}: cannot write {}: {source}", path.display())]
    Write { name: String, path: PathBuf, source: std::io::Error },
    /// Refused by `beneath` (a symbolic link out of the work directory, …).
    #[error("file={name}: {source}")]
    Refused { name: String, source: super::beneath::BeneathError },
}

/// Write a `file=` block (rendered) into the work directory, never outside it (`beneath`).
fn write_file(env: &Env<'_>, workdir: &Path, name: &str, block: &Block) -> Result<(), FileBlockError> {
    let rel = Path::new(name);
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(FileBlockError::NotRelative { name: name.to_string() });
    }
    let text =
        env.plan.templates.render(&block.body, &env.backend.facts(), &env.plan.tutorial.path, block.body_line)?;
    super::beneath::write(workdir, name, text.as_bytes()).map_err(|e| match e {
        super::beneath::BeneathError::Io { source, .. } => {
            FileBlockError::Write { name: name.to_string(), path: workdir.join(rel), source }
        }
        e => FileBlockError::Refused { name: name.to_string(), source: e },
    })
}

pub async fn run(
    plan: Arc<Plan>,
    backend: Arc<RwLock<Box<dyn Backend>>>,
    workdir: PathBuf,
    opts: Arc<RunOptions>,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
) -> StepsOutcome {
    let guard = backend.read().await;
    let env = Env {
        plan: &plan,
        backend: guard.as_ref(),
        update: opts.update,
        no_retry: opts.no_retry,
        pending: opts.pending && !opts.update,
        cancel: &cancel,
        reporter: reporter.as_ref(),
        resumed: opts.resume.is_some(),
    };
    // Set-up steps are judged but never recorded: the user asked for another step.
    let setup_env = Env { update: false, pending: false, ..env };
    let tutorial = &plan.tutorial;
    let mut session = Session::new();
    if let Some(resume) = &opts.resume {
        // A kept environment: every target's shell goes on from its saved state.
        let targets = tutorial.steps.iter().flat_map(|s| &s.blocks).map(|b| b.attrs.on.clone());
        session.resume(env.backend, targets, resume.captures.clone(), resume.capture_sites.clone());
    }
    // Steps the backend cannot run here (front matter `needs:`): skipped with its reason.
    let mut unavailable: Option<(usize, String)> = None;
    for need in &tutorial.front.needs {
        if unavailable.as_ref().is_some_and(|(from, _)| *from <= need.from_step) {
            continue;
        }
        if let Some(why) = env.backend.lacks_images(&need.images).await {
            let reason = format!(
                "the {} backend cannot run this here (needed from step {} `{}` on): {why}",
                plan.backend, need.from_step, need.from
            );
            unavailable = Some((need.from_step, reason));
        }
    }
    let cannot_run = |number: usize| unavailable.as_ref().filter(|(from, _)| number >= *from).map(|(_, r)| r.clone());
    let mut stop: Option<&str> = None;
    let mut steps = Vec::new();
    let mut setup_done = plan.setup.is_empty();
    for step in tutorial.steps.iter().filter(|s| plan.runs_step(s.number)) {
        let setup = plan.setup.contains(&step.number);
        if !setup && !setup_done {
            setup_done = true;
            reporter.event(&Event::SetupFinished { tutorial, steps: &steps });
        }
        let started = Instant::now();
        if !setup {
            reporter.event(&Event::StepStarted { tutorial, step });
        }
        let mut blocks: Vec<BlockResult> = Vec::new();
        let finish = |res: BlockResult, blocks: &mut Vec<BlockResult>, stop: &mut Option<&str>| {
            if matches!(res.status, Status::Failed | Status::Error) && !opts.keep_going {
                stop.get_or_insert(if setup {
                    "a set-up step failed"
                } else {
                    "an earlier block failed (--keep-going runs the rest)"
                });
            }
            if !setup {
                reporter.event(&Event::BlockFinished { tutorial, step, result: &res });
            }
            blocks.push(res);
        };
        for block in &step.blocks {
            let BlockKind::File(name) = &block.kind else { continue };
            if stop.is_some()
                || cancel.is_cancelled()
                || skip_reason(&plan, block).is_some()
                || cannot_run(step.number).is_some()
            {
                continue;
            }
            let t0 = Instant::now();
            if let Err(e) = write_file(&env, &workdir, name, block) {
                let mut res = BlockResult::skipped(block, e.to_string());
                res.status = Status::Error;
                res.duration = t0.elapsed();
                finish(res, &mut blocks, &mut stop);
            }
        }
        for block in step.blocks.iter().filter(|b| b.is_command()) {
            let res = if cancel.is_cancelled() {
                BlockResult::skipped(block, "interrupted")
            } else if let Some(why) = stop {
                BlockResult::skipped(block, why)
            } else if let Some(why) = skip_reason(&plan, block).or_else(|| cannot_run(step.number)) {
                BlockResult::skipped(block, why)
            } else {
                if !setup {
                    reporter.event(&Event::BlockStarted { tutorial, step, block });
                }
                block::run(if setup { &setup_env } else { &env }, &mut session, block).await
            };
            finish(res, &mut blocks, &mut stop);
        }
        let result = StepResult {
            number: step.number,
            title: step.title.clone(),
            line: step.line,
            duration: started.elapsed(),
            setup,
            blocks,
        };
        if !setup {
            reporter.event(&Event::StepFinished { tutorial, result: &result });
        }
        steps.push(result);
    }
    if !setup_done {
        reporter.event(&Event::SetupFinished { tutorial, steps: &steps });
    }
    for task in session.bg.drain(..) {
        task.stop().await;
    }
    let mut errors = Vec::new();
    if opts.keep || opts.resume.is_some() {
        // A kept environment keeps its shells' state for `--env NAME`.
        errors.extend(session.save_states(env.backend).await);
    }
    session.close().await;
    let mut updated = std::mem::take(&mut session.updated);
    if opts.update {
        match update::rewrite_markdown(&tutorial.path, &tutorial.source, std::mem::take(&mut session.edits)) {
            Ok(Some(p)) => updated.push(p),
            Ok(None) => {}
            Err(e) => errors.push(format!("cannot rewrite {}: {e}", tutorial.path.display())),
        }
    }
    StepsOutcome {
        steps,
        updated,
        pending: std::mem::take(&mut session.pending),
        errors,
        captures: std::mem::take(&mut session.captures),
        capture_sites: std::mem::take(&mut session.capture_sites),
    }
}
