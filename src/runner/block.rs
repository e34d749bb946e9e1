//! Running one command block: render its templates, wrap it for notebook state, execute it on
//! its target (again and again with `retry=`), judge the result and, in update mode, record it.

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::cancel::Cancel;
use super::events::{Event, Reporter};
use super::judge::{self, Attempt};
use super::outcome::{BlockResult, Mismatch, Status};
use super::preflight::Plan;
use super::script::{self, State};
use super::transcript;
use super::update;
use crate::backend::{Backend, BgTask, ExecRequest, Target};
use crate::snapshot::{self, Snapshot};
use crate::tutorial::{Block, BlockKind, ConsoleCommand};

/// Block timeout when neither the block nor the front matter sets one (DESIGN §4).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between tries of a `retry=` block.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// What a block runs against; shared by all blocks of a tutorial.
pub struct Env<'a> {
    pub plan: &'a Plan,
    pub backend: &'a dyn Backend,
    pub update: bool,
    pub cancel: &'a Cancel,
    pub reporter: &'a dyn Reporter,
}

/// What blocks of one tutorial leave behind for later blocks and for the end of the tutorial.
pub struct Session {
    /// Targets that already ran a block (their state file is current).
    seen: HashSet<Target>,
    /// Marks console command boundaries; random so that no output can fake it.
    nonce: String,
    pub bg: Vec<Box<dyn BgTask>>,
    /// Update mode: new console block bodies, applied to the Markdown at the end.
    pub edits: Vec<(Range<usize>, String)>,
    pub updated: Vec<PathBuf>,
}

impl Session {
    pub fn new() -> Session {
        Session {
            seen: HashSet::new(),
            nonce: format!("{:016x}", rand::random::<u64>()),
            bg: Vec::new(),
            edits: Vec::new(),
            updated: Vec::new(),
        }
    }
}

/// A block with its templates rendered.
enum Work<'b> {
    Shell {
        body: String,
        /// (rendered, raw) snapshot body.
        expected: Option<(String, String)>,
    },
    Console {
        commands: &'b [ConsoleCommand],
        rendered: Vec<String>,
        prompts: Vec<String>,
        /// (rendered, raw) expected transcript.
        expected: (String, String),
    },
}

fn render<'b>(env: &Env<'_>, block: &'b Block) -> Result<Work<'b>, String> {
    let facts = env.backend.facts();
    let path = env.plan.tutorial.path.as_path();
    let r = |text: &str, file: &std::path::Path, line: usize| {
        env.plan.templates.render(text, &facts, file, line).map_err(|e| e.to_string())
    };
    match &block.kind {
        BlockKind::Shell => {
            let body = r(&block.body, path, block.body_line)?;
            let expected = match env.plan.snapshots.get(&block.id) {
                Some(snap) => {
                    let file = snapshot::snapshot_path(&env.plan.snapshot_dir, &block.id);
                    Some((r(&snap.body, &file, 1)?, snap.body.clone()))
                }
                None => None,
            };
            Ok(Work::Shell { body, expected })
        }
        BlockKind::Console(commands) => {
            let rendered = commands.iter().map(|c| r(&c.command, path, c.line)).collect::<Result<_, _>>()?;
            let prompts = commands.iter().map(|c| r(&c.prompt_text, path, c.line)).collect::<Result<_, _>>()?;
            let raw = transcript::expected(commands);
            let expected = (r(&raw, path, block.body_line)?, raw);
            Ok(Work::Console { commands, rendered, prompts, expected })
        }
        BlockKind::File(_) => Err("a file block is not a command".into()),
    }
}

fn result(block: &Block, status: Status, reason: Option<String>, start: Instant) -> BlockResult {
    BlockResult { status, reason, duration: start.elapsed(), tries: 1, ..BlockResult::skipped(block, "") }
}

/// Run `block` to its verdict.
pub async fn run(env: &Env<'_>, session: &mut Session, block: &Block) -> BlockResult {
    let start = Instant::now();
    let work = match render(env, block) {
        Ok(w) => w,
        Err(e) => return result(block, Status::Error, Some(e), start),
    };
    let timeout = block.attrs.timeout.or(env.plan.tutorial.front.timeout).unwrap_or(DEFAULT_TIMEOUT);
    let target = &block.attrs.on;
    let state_path = env.backend.state_path(target);
    let fresh = session.seen.insert(target.clone());

    if block.attrs.bg {
        let body = match &work {
            Work::Shell { body, .. } => body.clone(),
            Work::Console { rendered, .. } => rendered.join("\n"),
        };
        let script = script::background(&body, &State { path: &state_path, fresh });
        let req = ExecRequest { target, script: &script, timeout, env: &[] };
        return match env.backend.spawn(req).await {
            Ok(task) => {
                session.bg.push(task);
                result(block, Status::Passed, Some("running in the background".into()), start)
            }
            Err(e) => result(block, Status::Error, Some(e.to_string()), start),
        };
    }

    let deadline = block.attrs.retry.map(|d| start + d);
    let mut tries = 0;
    let attempt = loop {
        tries += 1;
        let state = State { path: &state_path, fresh: fresh && tries == 1 };
        let script = match &work {
            Work::Shell { body, .. } => script::shell(body, &state),
            Work::Console { rendered, .. } => {
                let cmds: Vec<&str> = rendered.iter().map(String::as_str).collect();
                script::console(&cmds, &state, &session.nonce)
            }
        };
        let req = ExecRequest { target, script: &script, timeout, env: &[] };
        let obs = match env.backend.exec(req).await {
            Ok(o) => o,
            Err(e) => return result(block, Status::Error, Some(e.to_string()), start),
        };
        let interrupted = env.cancel.is_cancelled();
        let rules = judge::Rules { expected_exit: block.attrs.exit, timeout, interrupted, matcher: &env.plan.matcher };
        let attempt = match &work {
            Work::Shell { expected, .. } => judge::shell(&obs, expected.as_ref().map(|e| e.0.as_str()), &rules),
            Work::Console { commands, prompts, expected, .. } => {
                let runs = script::split_console(&obs.output, &session.nonce, commands.len(), obs.exit);
                judge::console(&obs, commands, prompts, &runs, &expected.0, &rules)
            }
        };
        if attempt.settled(env.update) || interrupted {
            break attempt;
        }
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => break attempt,
        };
        if left.is_zero() {
            break attempt;
        }
        env.reporter.event(&Event::BlockRetrying { tutorial: &env.plan.tutorial, block, tries });
        if !env.cancel.sleep(RETRY_PAUSE.min(left)).await {
            break attempt;
        }
    };
    let mut res = verdict(env, session, block, &work, attempt, start);
    res.tries = tries;
    if tries > 1 && res.status != Status::Passed {
        let reason = res.reason.take().unwrap_or_default();
        res.reason = Some(format!("{reason} (after {tries} tries)"));
    }
    res
}

fn mismatch(env: &Env<'_>, block: &Block, work: &Work<'_>, attempt: &Attempt) -> Option<Mismatch> {
    let actual = attempt.normalized.clone()?;
    let (source, expected) = match work {
        Work::Shell { expected, .. } => (
            snapshot::snapshot_path(&env.plan.snapshot_dir, &block.id).display().to_string(),
            expected.as_ref()?.0.clone(),
        ),
        Work::Console { expected, .. } => {
            (format!("{}:{}", env.plan.tutorial.path.display(), block.body_line), expected.0.clone())
        }
    };
    Some(Mismatch { source, expected: expected.trim_end_matches('\n').to_string(), actual })
}

fn verdict(
    env: &Env<'_>,
    session: &mut Session,
    block: &Block,
    work: &Work<'_>,
    attempt: Attempt,
    start: Instant,
) -> BlockResult {
    let mut res = result(block, Status::Passed, None, start);
    res.mismatch = mismatch(env, block, work, &attempt);
    if let Some((status, reason)) = &attempt.problem {
        res.status = *status;
        res.reason = Some(reason.clone());
    } else if attempt.matched == Some(true) {
        res.mismatch = None;
    } else if env.update {
        res.mismatch = None;
        match record(env, session, block, work, &attempt) {
            Ok(true) => res.reason = Some("expectation updated".into()),
            Ok(false) => {}
            Err(e) => {
                res.status = Status::Error;
                res.reason = Some(e);
            }
        }
    } else if attempt.matched.is_none() {
        res.status = Status::Failed;
        res.reason = Some("no snapshot (run with --update)".into());
    } else {
        res.status = Status::Failed;
        res.reason = Some("output does not match".into());
    }
    res.output = attempt.output;
    res
}

/// Update mode: make what the block printed its new expectation. Returns whether it changed.
fn record(
    env: &Env<'_>,
    session: &mut Session,
    block: &Block,
    work: &Work<'_>,
    attempt: &Attempt,
) -> Result<bool, String> {
    let recorded = attempt.normalized.as_deref().unwrap_or(&attempt.output);
    match work {
        Work::Shell { expected, .. } => {
            let text = match expected {
                Some((rendered, raw)) => update::restore_templates(raw, rendered, recorded),
                None => recorded.to_string(),
            };
            let t = &env.plan.tutorial;
            let snap = Snapshot {
                tutorial: t.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                id: block.id.clone(),
                command: block.body.trim_end_matches('\n').to_string(),
                body: update::as_body(&text),
            };
            let path = snapshot::snapshot_path(&env.plan.snapshot_dir, &block.id);
            let changed = snapshot::write(&path, &snap).map_err(|e| e.to_string())?;
            if changed {
                session.updated.push(path);
            }
            Ok(changed)
        }
        Work::Console { commands, expected: (rendered, raw), .. } => {
            let text = update::restore_templates(raw, rendered, recorded);
            let body = transcript::relayout(commands, &update::as_body(&text));
            let changed = body != block.body;
            if changed {
                session.edits.push((block.body_span.clone(), body));
            }
            Ok(changed)
        }
    }
}
