//! `tutor check`: parse and lint tutorials without executing anything: syntax and attributes,
//! templates, redactions, snapshot files (corrupted, missing for `sh` blocks, orphans).

use std::path::PathBuf;

use console::style;

use super::Exit;
use super::run::load;
use crate::runner::preflight;
use crate::template::Templates;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Markdown tutorials, or folders searched recursively for them.
    #[arg(default_value = "tutorials")]
    paths: Vec<PathBuf>,
    /// Folder holding `<tutorial>/<id>.snap` (default: the nearest `snapshots/` above the tutorial).
    #[arg(long, value_name = "DIR")]
    snapshots: Option<PathBuf>,
}

pub async fn execute(args: CheckArgs) -> anyhow::Result<Exit> {
    let (tutorials, mut problems) = load(&args.paths);
    let mut warnings = Vec::new();
    let mut blocks = 0;
    for t in &tutorials {
        blocks += t.steps.iter().map(|s| s.blocks.len()).sum::<usize>();
        let lint = preflight::lint(t, &Templates::new(&t.front), args.snapshots.as_deref());
        problems.extend(lint.errors);
        warnings.extend(lint.warnings);
        problems.extend(lint.missing);
        problems.extend(
            lint.orphans.iter().map(|p| {
                format!("{}: orphan snapshot: no `sh` block of {} has this id", p.display(), t.path.display())
            }),
        );
    }
    for w in &warnings {
        eprintln!("{} {w}", style("warning:").yellow().bold());
    }
    for p in &problems {
        eprintln!("{} {p}", style("error:").red().bold());
    }
    if problems.is_empty() {
        println!("ok: {} tutorial(s), {blocks} block(s)", tutorials.len());
        Ok(Exit::Pass)
    } else {
        eprintln!("{} problem(s)", problems.len());
        Ok(Exit::Usage)
    }
}
