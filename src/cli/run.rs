//! `tutor run`: check every input first (exit 2, nothing executed), then run the tutorials and
//! report: progress or JSON lines, the closing line, JUnit, the run record.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use console::style;

use super::Exit;
use crate::backend::{BackendKind, attach, lab, process};
use crate::report::{json, junit, progress, record, summary};
use crate::runner::kept::{self, KeptEnv};
use crate::runner::{self, Cancel, Counts, Reporter, RunOptions, StepRange, TutorialResult};
use crate::tutorial::{self, Tutorial};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Markdown tutorials, or folders searched recursively for them (default: tutorials, or with
    /// --env the kept run's tutorial).
    paths: Vec<PathBuf>,
    /// Environment to run in (default: the tutorial's front matter `backend`, else lab).
    #[arg(long)]
    backend: Option<BackendKind>,
    /// Kubeconfig context (kube backend).
    #[arg(long)]
    context: Option<String>,
    /// Leave the environment and the work directory in place after the run, and say how to go on
    /// in it (`--env`).
    #[arg(long)]
    keep: bool,
    /// Go on in the environment a `--keep` run left, with its shells' state (variables, working
    /// directory) restored: no fresh environment, no teardown, no set-up steps. Runs from where
    /// the kept run stopped unless --step or --from says otherwise.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["backend", "workdir", "jobs"])]
    env: Option<String>,
    /// Record this run's outputs as the expectations (.snap files, console blocks in place).
    #[arg(long)]
    update: bool,
    /// Record mismatching blocks' new output as pending changes for `tutor review` even with
    /// `CI` set (they are recorded by default elsewhere).
    #[arg(long)]
    pending: bool,
    /// Never record pending changes.
    #[arg(long, conflicts_with = "pending", env = "TUTOR_NO_PENDING")]
    no_pending: bool,
    /// Run only step N (on a fresh environment steps 1..N-1 run first, as set-up).
    #[arg(long, value_name = "N", conflicts_with_all = ["from", "to"])]
    step: Option<usize>,
    /// Run from step N on.
    #[arg(long, value_name = "N")]
    from: Option<usize>,
    /// Run up to step M.
    #[arg(long, value_name = "M")]
    to: Option<usize>,
    /// Run the rest of a tutorial after a failing block.
    #[arg(long)]
    keep_going: bool,
    /// Run every block once, even with `retry=` (exposes flaky blocks).
    #[arg(long)]
    no_retry: bool,
    /// Tutorials to run at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    /// `human` (progress, diffs) or `json` (one record per block on stdout).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Also write a JUnit XML report here.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Work directory (default: a fresh temporary one per tutorial).
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// Folder holding `<tutorial>/<id>.snap` (default: the nearest `snapshots/` above the tutorial).
    #[arg(long, value_name = "DIR")]
    snapshots: Option<PathBuf>,
    /// Where to write the run record the book reads (`tutor book` reads the same variable).
    #[arg(long, value_name = "PATH", env = "TUTOR_RECORD", default_value = "target/tutor/last-run.json")]
    record: PathBuf,
}

fn print_errors(errors: &[String]) {
    for e in errors {
        eprintln!("{} {e}", style("error:").red().bold());
    }
}

/// Input errors: on stderr, and under `--format json` also as `error` records on stdout, with a
/// closing `summary` record, so that a machine reading stdout learns why nothing ran.
fn input_errors(format: Format, errors: &[String]) -> Exit {
    print_errors(errors);
    if format == Format::Json {
        for e in errors {
            json::print(&json::ErrorLine::new(e));
        }
        json::print(&json::SummaryLine::new(&[], std::time::Duration::ZERO, "usage"));
    }
    Exit::Usage
}

/// Discover and parse every tutorial: those that parse, and every error at once.
pub(super) fn load(paths: &[PathBuf]) -> (Vec<Tutorial>, Vec<String>) {
    let (tutorials, errors, _) = load_noting(paths);
    (tutorials, errors)
}

/// [`load`], and the notes (`path:line: message`) of the files that did not parse.
pub(super) fn load_noting(paths: &[PathBuf]) -> (Vec<Tutorial>, Vec<String>, Vec<String>) {
    let files = match tutorial::discover(paths) {
        Ok(f) => f,
        Err(e) => return (Vec::new(), vec![e.to_string()], Vec::new()),
    };
    if files.is_empty() {
        let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return (Vec::new(), vec![format!("no Markdown tutorials found in {}", list.join(", "))], Vec::new());
    }
    let mut tutorials = Vec::new();
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    for f in files {
        match tutorial::parse_file(&f) {
            Ok(t) => tutorials.push(t),
            Err(failed) => {
                errors.extend(failed.errors.iter().map(ToString::to_string));
                notes.extend(failed.notes.iter().map(|n| format!("{}:{}: {}", f.display(), n.line, n.message)));
            }
        }
    }
    (tutorials, errors, notes)
}

/// The kept environment `name`, if it is still there (else its entry is dropped).
fn kept_env(envs: &std::path::Path, name: &str) -> anyhow::Result<KeptEnv> {
    let k = kept::read(envs, name).map_err(|e| anyhow::anyhow!("--env {name}: {e}"))?;
    if let Err(why) = attach::still_there(k.backend, &k.name, &k.workdir) {
        kept::remove(envs, name);
        anyhow::bail!("--env {name}: the kept {} environment is gone: {why}", k.backend);
    }
    Ok(k)
}

/// What `--env` needs: one tutorial, and a step to go on from.
fn resume_checks(k: &KeptEnv, tutorials: &[Tutorial], steps: StepRange) -> anyhow::Result<()> {
    let [t] = tutorials else {
        anyhow::bail!("--env {} goes on with one tutorial (the kept run's: {})", k.name, k.tutorial.display());
    };
    if let Some(from) = steps.from
        && steps.to.is_none()
        && from > t.steps.len()
    {
        anyhow::bail!(
            "--env {}: the kept run went through every step of {} ({}); choose one with --step N or --from N",
            k.name,
            t.path.display(),
            t.steps.len()
        );
    }
    Ok(())
}

/// How to go on in a kept environment, for the end of the run.
fn kept_hint(k: &KeptEnv, r: &TutorialResult) -> Vec<String> {
    let how = match k.backend {
        BackendKind::Lab => format!(
            "`tutor shell {} TARGET` or `tutor lab exec {} TARGET -- …` to look around, `tutor lab down {}` to end it",
            k.name, k.name, k.name
        ),
        _ => format!("`tutor shell {}` to look around, remove {} to end it", k.name, k.workdir.display()),
    };
    let file = r.path.display();
    let resume = if k.next_step <= k.last_step {
        format!("tutor run --env {} --from {} {file}", k.name, k.next_step)
    } else {
        format!("tutor run --env {} --step N {file} (every step ran)", k.name)
    };
    vec![
        format!("kept environment {} ({} backend, work directory {}): {how}", k.name, k.backend, k.workdir.display()),
        format!("  go on with: {resume}"),
    ]
}

/// Exit status of a finished run.
fn exit_of(results: &[TutorialResult]) -> Exit {
    if results.iter().any(|r| r.interrupted) {
        Exit::Interrupted
    } else if results.iter().any(|r| r.usage_error) {
        Exit::Usage
    } else if results.iter().any(|r| matches!(r.status(), runner::Status::Failed | runner::Status::Error)) {
        Exit::Fail
    } else {
        Exit::Pass
    }
}

fn backend_label(flag: Option<BackendKind>, results: &[TutorialResult]) -> String {
    if let Some(b) = flag {
        return b.to_string();
    }
    let mut kinds: Vec<BackendKind> = results.iter().map(|r| r.backend).collect();
    kinds.dedup();
    match kinds.as_slice() {
        [one] => one.to_string(),
        _ => "mixed".into(),
    }
}

pub async fn execute(mut args: RunArgs) -> anyhow::Result<Exit> {
    let envs = kept::dir(&args.record);
    let resume = match &args.env {
        Some(name) => match kept_env(&envs, name) {
            Ok(k) => Some(k),
            Err(e) => return Ok(input_errors(args.format, &[e.to_string()])),
        },
        None => None,
    };
    if args.paths.is_empty() {
        args.paths = vec![resume.as_ref().map(|k| k.tutorial.clone()).unwrap_or_else(|| PathBuf::from("tutorials"))];
    }
    let (tutorials, errors) = load(&args.paths);
    if !errors.is_empty() {
        return Ok(input_errors(args.format, &errors));
    }
    // Markdown without a single command block (a folder's README) is not a tutorial to run.
    let tutorials: Vec<Tutorial> =
        tutorials.into_iter().filter(|t| t.steps.iter().flat_map(|s| &s.blocks).any(|b| b.is_command())).collect();
    if tutorials.is_empty() {
        return Ok(input_errors(args.format, &["no tutorial with a command block to run".to_string()]));
    }
    let steps = match (args.step, &resume) {
        // On a fresh environment the earlier steps run first, as set-up; a kept one has them.
        (Some(n), _) => StepRange { from: Some(n), to: Some(n), setup: resume.is_none() },
        (None, Some(k)) if args.from.is_none() && args.to.is_none() => {
            StepRange { from: Some(k.next_step), to: None, setup: false }
        }
        (None, _) => StepRange { from: args.from, to: args.to, setup: false },
    };
    if let Some(k) = &resume
        && let Err(e) = resume_checks(k, &tutorials, steps)
    {
        return Ok(input_errors(args.format, &[e.to_string()]));
    }
    let backend_flag = resume.as_ref().map(|k| k.backend).or(args.backend);
    let mut prepared = Vec::new();
    let mut errors = Vec::new();
    for t in tutorials {
        match runner::prepare(t, backend_flag, args.context.as_deref(), steps, args.snapshots.as_deref()) {
            Ok(mut p) => {
                if let Some(k) = &resume {
                    match attach::attach(k.backend, &k.name) {
                        Ok(b) => p.backend = b,
                        Err(e) => errors.push(format!("--env {}: {e}", k.name)),
                    }
                }
                prepared.push(p)
            }
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Ok(input_errors(args.format, &errors));
    }

    let cancel = Cancel::default();
    let signals = runner::cancel::on_signals(cancel.clone())?;
    // What a killed run left (its lab went with its supervisor; its work directory did not).
    runner::workdirs::sweep();
    crate::backend::cgroup::sweep_runs();
    let several = prepared.len() > 1;
    let reporter: Arc<dyn Reporter> = match args.format {
        Format::Human => Arc::new(progress::Human::new(several)),
        Format::Json => Arc::new(json::JsonLines),
    };
    let opts = RunOptions {
        update: args.update,
        pending: !args.no_pending && (args.pending || std::env::var_os("CI").is_none()),
        keep_going: args.keep_going,
        no_retry: args.no_retry,
        keep: args.keep,
        jobs: args.jobs as usize,
        workdir: resume.as_ref().map(|k| k.workdir.clone()).or_else(|| args.workdir.clone()),
        resume: resume.as_ref().map(kept::Resume::from),
    };
    let started_at = SystemTime::now();
    let start = Instant::now();
    let results = runner::run_all(prepared, opts, reporter, cancel.clone()).await;
    // Last safety net: nothing a block started outlives the run.
    process::kill_all();
    signals.abort();
    let took = start.elapsed();

    let mut exit = exit_of(&results);
    if cancel.is_cancelled() {
        exit = Exit::Interrupted;
    }
    let rec = record::from_results(&results, &backend_label(args.backend, &results), started_at, took);
    let mut write_errors = Vec::new();
    if let Err(e) = record::merge_into(&args.record, rec) {
        write_errors.push(e.to_string());
    }
    if let Some(path) = &args.junit
        && let Err(e) = junit::write(&results, path)
    {
        write_errors.push(format!("cannot write the JUnit report {}: {e}", path.display()));
    }
    let mut kept_lines = Vec::new();
    for r in &results {
        let Some(k) = &r.kept else { continue };
        match kept::write(&envs, k) {
            Ok(file) => {
                // `tutor lab exec` finds the run's state through the lab, from any folder.
                if k.backend == BackendKind::Lab
                    && let Err(e) = lab::registry::set_kept_run(&k.name, &std::path::absolute(&file).unwrap_or(file))
                {
                    write_errors.push(format!("cannot record the kept run in lab `{}`: {}", k.name, e.report()));
                }
                kept_lines.extend(kept_hint(k, r));
            }
            Err(e) => write_errors.push(format!("cannot record the kept environment: {e}")),
        }
    }
    print_errors(&write_errors);
    if !write_errors.is_empty() && exit == Exit::Pass {
        exit = Exit::Fail;
    }

    let updated: Vec<&PathBuf> = results.iter().flat_map(|r| r.updated.iter()).collect();
    let closing = summary::closing_line(Counts::of(&results), took);
    let mut lines = Vec::new();
    if args.update {
        if updated.is_empty() {
            lines.push("update: nothing changed".to_string());
        }
        lines.extend(updated.iter().map(|p| format!("updated {}", p.display())));
    }
    let failures = json::failures(&results);
    if !failures.is_empty() {
        lines.push(String::new());
        lines.push("failures:".to_string());
        for f in &failures {
            lines.push(match f.line {
                0 => format!("    {} — {}", f.tutorial, f.reason),
                n => format!("    {}:{n} {} — {}", f.tutorial, f.id, f.reason),
            });
        }
        lines.push(String::new());
    }
    let pending = results.iter().map(|r| r.pending.len()).sum::<usize>();
    if pending > 0 {
        lines.push(format!(
            "{pending} pending change(s): `tutor review` to see and accept or reject them (`--accept`/`--reject` for all)"
        ));
    }
    lines.extend(kept_lines);
    if exit == Exit::Interrupted {
        lines.push(format!("{}", style("interrupted").red().bold()));
    }
    lines.push(closing);
    for line in lines {
        match args.format {
            Format::Human => println!("{line}"),
            // stdout carries only JSON records.
            Format::Json => eprintln!("{line}"),
        }
    }
    if args.format == Format::Json {
        let outcome = match exit {
            Exit::Pass => "pass",
            Exit::Fail => "fail",
            Exit::Usage => "usage",
            Exit::Interrupted => "interrupted",
        };
        json::print(&json::SummaryLine::new(&results, took, outcome));
    }
    Ok(exit)
}
