//! Running one command block: render its templates, execute it on its target's kernel (again
//! and again with `retry=`), judge the result and, in update mode, record it. Backends without
//! kernels (remote targets) run each block as a script that restores and saves its state.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::cancel::Cancel;
use super::events::{Event, Reporter};
use super::judge::{self, Attempt};
use super::kernel::{self, Kernel, KernelRun, Mode};
use super::outcome::{BlockResult, Mismatch, Status};
use super::preflight::Plan;
use super::script::{self, CommandRun, State};
use super::transcript;
use super::update;
use crate::backend::{Backend, BackendError, BgTask, ExecRequest, Observation, Target};
use crate::snapshot::{self, Captures, Snapshot};
use crate::tutorial::{Block, BlockKind, ConsoleCommand};

/// Block timeout when neither the block nor the front matter sets one (docs/architecture.md,
/// "Tutorial format").
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between tries of a `retry=` block.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// What a block runs against; shared by all blocks of a tutorial.
pub struct Env<'a> {
    pub plan: &'a Plan,
    pub backend: &'a dyn Backend,
    pub update: bool,
    /// `--no-retry`: every block runs once, `retry=` or not.
    pub no_retry: bool,
    /// Record a mismatching block's new expectation as a pending change for `tutor review`.
    pub pending: bool,
    pub cancel: &'a Cancel,
    pub reporter: &'a dyn Reporter,
    /// Going on in a kept environment (`--env`): earlier steps ran in it.
    pub resumed: bool,
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
    /// One live shell per target that ran a block.
    kernels: HashMap<Target, Kernel>,
    /// The last state of targets whose shell ended, for the next one (see `kernel.rs`).
    states: HashMap<Target, Vec<u8>>,
    /// Targets whose exec sessions have no bash for a kernel: their blocks run one by one.
    no_kernel: HashSet<Target>,
    /// Values captured with `[..NAME..]` so far, and where each was captured (`file:line`).
    pub captures: Captures,
    pub capture_sites: BTreeMap<String, String>,
    /// Pending changes written for `tutor review`.
    pub pending: Vec<PathBuf>,
}

impl Session {
    pub fn new() -> Session {
        Session {
            seen: HashSet::new(),
            nonce: format!("{:016x}", rand::random::<u64>()),
            bg: Vec::new(),
            edits: Vec::new(),
            updated: Vec::new(),
            kernels: HashMap::new(),
            states: HashMap::new(),
            no_kernel: HashSet::new(),
            captures: Captures::new(),
            capture_sites: BTreeMap::new(),
            pending: Vec::new(),
        }
    }

    /// Go on from a kept environment: `targets` start from the state their shells saved in
    /// their state files at the end of the kept run (instead of starting clean), and the
    /// captured values are bound again.
    pub fn resume(
        &mut self,
        backend: &dyn Backend,
        targets: impl IntoIterator<Item = Target>,
        captures: Captures,
        capture_sites: BTreeMap<String, String>,
    ) {
        for target in targets {
            if let Ok(state) = std::fs::read(backend.state_path(&target)) {
                self.states.insert(target.clone(), state);
            }
            self.seen.insert(target);
        }
        self.captures = captures;
        self.capture_sites = capture_sites;
    }

    /// Keep each target's last state in its state file (`--keep`), for a later `--env` run:
    /// live shells write theirs where they run; shells that ended left theirs here.
    pub async fn save_states(&mut self, backend: &dyn Backend) -> Vec<String> {
        let mut errors = Vec::new();
        for (target, k) in self.kernels.iter_mut() {
            if let Err(e) = k.save_state(&backend.state_path(target)).await {
                errors.push(format!("{target}: {e}"));
            }
        }
        for (target, state) in &self.states {
            if !self.kernels.contains_key(target) {
                let path = backend.state_path(target);
                if let Err(e) = std::fs::write(&path, state) {
                    errors.push(format!("{target}: cannot save the shell's state to {path}: {e}"));
                }
            }
        }
        errors
    }

    /// End every kernel (and what runs in its process group); the end of the tutorial.
    pub async fn close(&mut self) {
        for (_, k) in self.kernels.drain() {
            k.stop().await;
        }
    }

    /// The live kernel of `target`, started (restoring the target's state file unless this is
    /// its first block) if there is none. `None`: the backend has no kernels for this target.
    async fn kernel(&mut self, env: &Env<'_>, target: &Target) -> Result<Option<&mut Kernel>, BackendError> {
        if let Some(k) = self.kernels.get_mut(target)
            && !k.alive()
        {
            let k = self.kernels.remove(target).expect("present");
            if let Some(state) = k.state() {
                self.states.insert(target.clone(), state.to_vec());
            }
            k.stop().await;
        }
        if !self.kernels.contains_key(target) {
            if self.no_kernel.contains(target) {
                return Ok(None);
            }
            let local = env.backend.kernel_command(target)?;
            let remote = match local {
                Some(_) => None,
                None => match env.backend.exec_shell(target, kernel::remote_argv()).await? {
                    Some(shell) => Some(shell),
                    None => return Ok(None),
                },
            };
            let state = env.backend.state_path(target);
            if local.is_some() {
                if let Some(dir) = std::path::Path::new(&state).parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                if self.seen.insert(target.clone()) {
                    // First block on this target in this run: forget what an earlier run left
                    // (`bg` blocks source the file; `save_state` writes it before each).
                    let _ = std::fs::remove_file(&state);
                }
            }
            let mut init = self.states.get(target).map(|s| kernel::restore_script(s)).unwrap_or_default();
            init.extend_from_slice(kernel::assignments(&self.captures).as_bytes());
            let k = match (local, remote) {
                (Some(cmd), _) => Kernel::start(cmd, &init).await?,
                (None, Some(shell)) => match Kernel::start_remote(shell, &init).await? {
                    Some(k) => {
                        // The state file lives in the target; the kernel's first `save_state`
                        // (before a `bg` block) writes it over what an earlier run left.
                        self.seen.insert(target.clone());
                        k
                    }
                    None => {
                        self.no_kernel.insert(target.clone());
                        return Ok(None);
                    }
                },
                (None, None) => unreachable!("one of them"),
            };
            self.kernels.insert(target.clone(), k);
        }
        Ok(self.kernels.get_mut(target))
    }

    /// Bind new captured values: set them in every live kernel (new kernels get them at start).
    async fn bind(&mut self, new: Captures, site: String) {
        if new.is_empty() {
            return;
        }
        let set = kernel::assignments(&new);
        for k in self.kernels.values_mut() {
            k.run(&[(Mode::Quiet, set.as_bytes())], &|_, _| true, None, &Cancel::default()).await;
        }
        for (name, value) in new {
            self.capture_sites.entry(name.clone()).or_insert_with(|| site.clone());
            self.captures.insert(name, value);
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
        /// Each command's expected output, rendered.
        outputs: Vec<String>,
        /// (rendered, raw) expected transcript.
        expected: (String, String),
    },
}

/// Why a block could not be rendered into work to run.
#[derive(Debug, thiserror::Error)]
enum RenderError {
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    #[error("a file block is not a command")]
    NotACommand,
}

fn render<'b>(env: &Env<'_>, session: &Session, block: &'b Block) -> Result<Work<'b>, RenderError> {
    let mut facts = env.backend.facts();
    if let serde_json::Value::Object(m) = &mut facts {
        m.extend(session.captures.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))));
    }
    let path = env.plan.tutorial.path.as_path();
    let r = |text: &str, file: &std::path::Path, line: usize| {
        env.plan.templates.render(text, &facts, file, line).map_err(RenderError::from)
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
            let prompts: Vec<String> =
                commands.iter().map(|c| r(&c.prompt_text, path, c.line)).collect::<Result<_, _>>()?;
            let outputs: Vec<String> = commands
                .iter()
                .map(|c| r(&c.expected, path, c.line + c.prompt_text.lines().count()))
                .collect::<Result<_, _>>()?;
            let raw = transcript::expected(commands);
            let rendered_transcript =
                transcript::build(prompts.iter().map(String::as_str).zip(outputs.iter().map(String::as_str)));
            let expected = (rendered_transcript, raw);
            Ok(Work::Console { commands, rendered, prompts, outputs, expected })
        }
        BlockKind::File(_) => Err(RenderError::NotACommand),
    }
}

fn result(block: &Block, status: Status, reason: Option<String>, start: Instant) -> BlockResult {
    BlockResult { status, reason, duration: start.elapsed(), tries: 1, ..BlockResult::skipped(block, "") }
}

/// What one try of a block did, whatever ran it.
struct Ran {
    runs: Vec<CommandRun>,
    timed_out: bool,
    interrupted: bool,
    /// The target's shell ended during the block (how).
    died: Option<String>,
}

impl Ran {
    fn from_kernel(k: KernelRun) -> Ran {
        Ran { runs: k.runs, timed_out: k.timed_out, interrupted: k.interrupted, died: k.died }
    }
}

/// Whether a console command's status lets the block go on: an `[N]` line accepts any status
/// (the comparison judges it), else it must be the expected one (`exit=` for the last command).
fn goes_on(commands: &[ConsoleCommand], expected_exit: i32, i: usize, status: i32) -> bool {
    let last = i + 1 == commands.len();
    match commands.get(i).and_then(ConsoleCommand::exit_line) {
        Some(_) => true,
        None => status == if last { expected_exit } else { 0 },
    }
}

/// One try of `work` on `target`: in its kernel, or as a script where the backend has none.
async fn execute(
    env: &Env<'_>,
    session: &mut Session,
    block: &Block,
    work: &Work<'_>,
    timeout: Duration,
    fresh: bool,
) -> Result<Ran, BackendError> {
    let target = &block.attrs.on;
    let expected_exit = block.attrs.exit;
    let deadline = Instant::now() + timeout;
    if let Some(k) = session.kernel(env, target).await? {
        let r = match work {
            Work::Shell { body, .. } => {
                k.run(&[(Mode::ErrExit, body.as_bytes())], &|_, _| true, Some(deadline), env.cancel).await
            }
            Work::Console { commands, rendered, .. } => {
                let frames: Vec<(Mode, &[u8])> = rendered.iter().map(|c| (Mode::Plain, c.as_bytes())).collect();
                let go_on = |i: usize, s: i32| goes_on(commands, expected_exit, i, s);
                k.run(&frames, &go_on, Some(deadline), env.cancel).await
            }
        };
        return Ok(Ran::from_kernel(r));
    }
    let state_path = env.backend.state_path(target);
    let state = State { path: &state_path, fresh };
    let script = match work {
        Work::Shell { body, .. } => script::shell(body, &state),
        Work::Console { rendered, commands, .. } => {
            let cmds: Vec<(&str, bool)> =
                rendered.iter().zip(commands.iter()).map(|(r, c)| (r.as_str(), c.exit_line().is_some())).collect();
            script::console(&cmds, expected_exit, &state, &session.nonce)
        }
    };
    let obs = env.backend.exec(ExecRequest { target, script: &script, timeout, env: &[] }).await?;
    let interrupted = env.cancel.is_cancelled() && obs.exit.is_none();
    let runs = match work {
        Work::Shell { .. } => vec![CommandRun { output: obs.output.clone(), status: obs.exit }],
        Work::Console { commands, .. } => script::split_console(&obs.output, &session.nonce, commands.len(), obs.exit)
            .into_iter()
            .map(|r| CommandRun { output: snapshot::display(r.output.as_bytes()), status: r.status })
            .collect(),
    };
    let runs = if obs.exit.is_none() {
        // Killed: the command that was running has no status either.
        runs.into_iter().map(|r| if r.status.is_some() { r } else { CommandRun { status: None, ..r } }).collect()
    } else {
        runs
    };
    Ok(Ran { runs, timed_out: obs.timed_out, interrupted, died: None })
}

/// A console block that did not match because a captured value differs: say which, with the
/// place it was captured.
fn capture_conflict(env: &Env<'_>, session: &Session, work: &Work<'_>, ran: &Ran) -> Option<String> {
    let Work::Console { outputs, .. } = work else { return None };
    for (exp, run) in outputs.iter().zip(&ran.runs) {
        for name in snapshot::capture_names(exp) {
            let Some(value) = session.captures.get(&name) else { continue };
            let mut others = session.captures.clone();
            others.remove(&name);
            if let Some(found) = env.plan.matcher.bind(exp, &run.output, &others)
                && let Some(here) = found.get(&name)
                && here != value
            {
                let site = session.capture_sites.get(&name).map(String::as_str).unwrap_or("an earlier block");
                return Some(format!("`[..{name}..]` is `{here}` here, but was captured as `{value}` at {site}"));
            }
        }
    }
    None
}

/// A backend's error as a block's reason. A target the environment does not have yet (a lab
/// node), in a run that started past step 1 on a fresh environment, is most likely made by the
/// steps that did not run: the reason says so, and how to run them.
fn explain(env: &Env<'_>, e: &BackendError) -> String {
    let first = *env.plan.steps.start();
    if matches!(e, BackendError::TargetMissing(_)) && first > 1 && env.plan.setup.is_empty() && !env.resumed {
        let before = if first == 2 { "step 1 did".to_string() } else { format!("steps 1-{} did", first - 1) };
        return format!(
            "{e} ({before} not run on this fresh environment: `--step {first}` runs the steps before it \
             first, `--env NAME` goes on in an environment that `--keep` left)"
        );
    }
    e.to_string()
}

/// Run `block` to its verdict.
pub async fn run(env: &Env<'_>, session: &mut Session, block: &Block) -> BlockResult {
    let start = Instant::now();
    let work = match render(env, session, block) {
        Ok(w) => w,
        Err(e) => return result(block, Status::Error, Some(e.to_string()), start),
    };
    let timeout = block.attrs.timeout.or(env.plan.tutorial.front.timeout).unwrap_or(DEFAULT_TIMEOUT);
    let target = &block.attrs.on;

    if block.attrs.bg {
        let state_path = env.backend.state_path(target);
        // The target's shell writes its state for the new one (a live shell's state is kept in
        // memory only).
        let fresh = match session.kernel(env, target).await {
            Ok(Some(k)) => match k.save_state(&state_path).await {
                Ok(()) => false,
                Err(e) => return result(block, Status::Error, Some(e.to_string()), start),
            },
            Ok(None) => session.seen.insert(target.clone()),
            Err(e) => return result(block, Status::Error, Some(explain(env, &e)), start),
        };
        let body = match &work {
            Work::Shell { body, .. } => body.clone(),
            Work::Console { rendered, .. } => rendered.join("\n"),
        };
        let mut body_with_captures = kernel::assignments(&session.captures);
        body_with_captures.push_str(&body);
        let script = script::background(&body_with_captures, &State { path: &state_path, fresh });
        let req = ExecRequest { target, script: &script, timeout, env: &[] };
        return match env.backend.spawn(req).await {
            Ok(task) => {
                session.bg.push(task);
                result(block, Status::Passed, Some("running in the background".into()), start)
            }
            Err(e) => result(block, Status::Error, Some(e.to_string()), start),
        };
    }

    let deadline = block.attrs.retry.filter(|_| !env.no_retry).map(|d| start + d);
    let mut tries = 0;
    let (attempt, ran) = loop {
        tries += 1;
        let fresh = tries == 1 && !session.seen.contains(target);
        let ran = match execute(env, session, block, &work, timeout, fresh).await {
            Ok(r) => r,
            Err(e) => return result(block, Status::Error, Some(explain(env, &e)), start),
        };
        if fresh {
            session.seen.insert(target.clone());
        }
        let interrupted = ran.interrupted || env.cancel.is_cancelled();
        let rules = judge::Rules { expected_exit: block.attrs.exit, timeout, interrupted, matcher: &env.plan.matcher };
        let attempt = match &work {
            Work::Shell { expected, .. } => {
                let run = &ran.runs[0];
                let obs = Observation {
                    output: run.output.clone(),
                    exit: run.status,
                    timed_out: ran.timed_out,
                    duration: Duration::ZERO,
                };
                judge::shell(&obs, expected.as_ref().map(|e| e.0.as_str()), &rules)
            }
            Work::Console { commands, prompts, outputs, .. } => {
                judge::console(ran.timed_out, commands, prompts, &ran.runs, outputs, &rules, &session.captures)
            }
        };
        if attempt.settled(env.update) || interrupted {
            break (attempt, ran);
        }
        if let Some(why) = attempt.hopeless.clone() {
            let mut attempt = attempt;
            if let Some((_, reason)) = &mut attempt.problem {
                reason.push_str(&format!(" ({why}: not retried)"));
            }
            break (attempt, ran);
        }
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => break (attempt, ran),
        };
        if left.is_zero() {
            break (attempt, ran);
        }
        env.reporter.event(&Event::BlockRetrying { tutorial: &env.plan.tutorial, block, tries });
        if !env.cancel.sleep(RETRY_PAUSE.min(left)).await {
            break (attempt, ran);
        }
    };
    let new_captures = attempt.captures.clone();
    let conflict = (attempt.problem.is_none() && attempt.matched == Some(false))
        .then(|| capture_conflict(env, session, &work, &ran))
        .flatten();
    let mut res = verdict(env, session, block, &work, attempt, start);
    if let (Some(c), Status::Failed) = (conflict, res.status) {
        res.reason = Some(format!("{}: {c}", res.reason.take().unwrap_or_default()));
    }
    res.tries = tries;
    if let (Some(how), BlockKind::Console(_)) = (&ran.died, &block.kind) {
        let reason = res.reason.take().map(|r| format!("{r}; ")).unwrap_or_default();
        res.reason = Some(format!("{reason}{how} (restarted for the next block with its state from before this one)"));
    }
    if res.status == Status::Passed {
        let site = format!("{}:{}", env.plan.tutorial.path.display(), block.body_line);
        session.bind(new_captures, site).await;
    }
    if tries > 1 {
        let secs = start.elapsed().as_secs_f64();
        let reason = res.reason.take();
        res.reason = Some(match (res.status, reason) {
            (Status::Passed, None) => format!("passed after {tries} tries, {secs:.1} s"),
            (Status::Passed, Some(r)) => format!("{r} (passed after {tries} tries, {secs:.1} s)"),
            (_, r) => format!("{} (after {tries} tries, {secs:.1} s)", r.unwrap_or_default()),
        });
    }
    res
}

fn mismatch(env: &Env<'_>, block: &Block, work: &Work<'_>, attempt: &Attempt) -> Option<Mismatch> {
    let actual = attempt.normalized.clone()?;
    let (source, expected, expected_lines, actual_lines) = match work {
        Work::Shell { expected, .. } => {
            let first = env.plan.snapshots.get(&block.id).map(snapshot::body_line).unwrap_or(1);
            let exp = expected.as_ref()?.0.trim_end_matches('\n');
            (
                snapshot::snapshot_path(&env.plan.snapshot_dir, &block.id).display().to_string(),
                exp.to_string(),
                (first..first + exp.lines().count()).collect(),
                (first..first + actual.lines().count()).collect(),
            )
        }
        Work::Console { commands, expected, .. } => {
            let mut lines = transcript::expected_lines(commands);
            let exp = expected.0.trim_end_matches('\n');
            if lines.len() != exp.lines().count() {
                // A template value spanning lines: number from the block's first line.
                lines = (block.body_line..block.body_line + exp.lines().count()).collect();
            }
            (
                format!("{}:{}", env.plan.tutorial.path.display(), block.body_line),
                exp.to_string(),
                lines,
                transcript::relayout_lines(commands, &actual),
            )
        }
    };
    Some(Mismatch { source, expected, actual, expected_lines, actual_lines, diff: Default::default() })
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
        if env.pending {
            // A block that matches again has nothing pending (insta drops its `.snap.new`).
            crate::review::clear(&env.plan.snapshot_dir, &block.id);
        }
    } else if env.update {
        res.mismatch = None;
        match record(env, session, block, work, &attempt) {
            Ok(true) => res.reason = Some("expectation updated".into()),
            Ok(false) => {}
            Err(e) => {
                res.status = Status::Error;
                res.reason = Some(e.to_string());
            }
        }
    } else {
        res.status = Status::Failed;
        let what = if attempt.matched.is_none() { "no snapshot" } else { "output does not match" };
        res.reason = Some(match env.pending.then(|| pend(env, session, block, work, &attempt)) {
            Some(Ok(())) => format!("{what} (new output pending: `tutor review`)"),
            Some(Err(e)) => format!("{what} (cannot record the pending change: {e})"),
            None if attempt.matched.is_none() => format!("{what} (run with --update)"),
            None => what.to_string(),
        });
    }
    res.output = attempt.output;
    res
}

/// What accepting this run's output would make the expectation.
enum Proposal {
    Snapshot(Snapshot),
    Console(String),
}

/// Review mode: record the block's new expectation beside the old one.
fn pend(
    env: &Env<'_>,
    session: &mut Session,
    block: &Block,
    work: &Work<'_>,
    attempt: &Attempt,
) -> Result<(), crate::review::ReviewError> {
    let dir = &env.plan.snapshot_dir;
    let path = match proposal(env, block, work, attempt) {
        Proposal::Snapshot(snap) => crate::review::write_snapshot(dir, &snap),
        Proposal::Console(body) => {
            crate::review::write_console(dir, &env.plan.tutorial, &block.id, block.body_line, &block.body, &body)
        }
    }?;
    session.pending.push(path);
    Ok(())
}

/// Update mode: make what the block printed its new expectation. Returns whether it changed.
fn record(
    env: &Env<'_>,
    session: &mut Session,
    block: &Block,
    work: &Work<'_>,
    attempt: &Attempt,
) -> Result<bool, snapshot::SnapshotError> {
    match proposal(env, block, work, attempt) {
        Proposal::Snapshot(snap) => {
            let path = snapshot::snapshot_path(&env.plan.snapshot_dir, &block.id);
            let changed = snapshot::write(&path, &snap)?;
            if changed {
                session.updated.push(path);
            }
            crate::review::clear(&env.plan.snapshot_dir, &block.id);
            Ok(changed)
        }
        Proposal::Console(body) => {
            let changed = body != block.body;
            if changed {
                let body = update::in_container(&env.plan.tutorial.source, &block.body_span, &body);
                session.edits.push((block.body_span.clone(), body));
            }
            crate::review::clear(&env.plan.snapshot_dir, &block.id);
            Ok(changed)
        }
    }
}

/// The new expectation from what the block printed: the matcher's normalised output (patterns
/// that still match kept), lines of the old expectation back as their template source, every
/// other line escaped so that it reads back as itself: control bytes as ` (esc)`,
/// `$`/`...`/suffix-like lines escaped by the matcher, a console `[N]` line marked plain (it
/// would read as an exit status), template syntax wrapped in `{% raw %}`.
fn proposal(env: &Env<'_>, block: &Block, work: &Work<'_>, attempt: &Attempt) -> Proposal {
    let recorded = attempt.normalized.as_deref().unwrap_or(&attempt.output);
    let console = matches!(work, Work::Console { .. });
    let escape = |line: &str| {
        let mut line = env.plan.matcher.expectation_line(line, console);
        if console && crate::tutorial::exit_line(&line).is_some() {
            line.push_str(" (eq)");
        }
        env.plan.templates.escape(&line)
    };
    match work {
        Work::Shell { expected, .. } => {
            let text = match expected {
                Some((rendered, raw)) => update::restore_templates(raw, rendered, recorded, escape),
                None => update::restore_templates("", "", recorded, escape),
            };
            let t = &env.plan.tutorial;
            Proposal::Snapshot(Snapshot {
                tutorial: t.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                id: block.id.clone(),
                command: block.body.trim_end_matches('\n').to_string(),
                body: update::as_body(&text),
            })
        }
        Work::Console { commands, expected: (rendered, raw), .. } => {
            let text = update::restore_templates(raw, rendered, recorded, escape);
            Proposal::Console(transcript::relayout(commands, &update::as_body(&text)))
        }
    }
}
