//! `tutor check`: parse and lint tutorials without executing anything: syntax and attributes
//! (every error of a file, by line), `on=` targets, templates, redactions, snapshot files
//! (corrupted, missing for `sh` blocks), and as warnings: fences that will not run, ambiguous
//! templates, orphan snapshot files (removed with `--prune`, never silently).

use std::path::{Path, PathBuf};

use console::style;

use super::Exit;
use super::run::load_noting;
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
    /// Remove orphan snapshot files (`.snap` and pending changes of blocks that are gone),
    /// naming each one.
    #[arg(long)]
    prune: bool,
}

/// Sort key of a `path:line: message` about tutorial `path`: its own lines first, by line, then
/// messages about other files (snapshots) in their order.
fn by_line(path: &Path) -> impl Fn(&String) -> (bool, usize) + '_ {
    move |message: &String| {
        let line = message
            .strip_prefix(&*path.to_string_lossy())
            .and_then(|r| r.strip_prefix(':'))
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse().ok());
        match line {
            Some(n) => (false, n),
            None => (true, 0),
        }
    }
}

pub async fn execute(args: CheckArgs) -> anyhow::Result<Exit> {
    let (tutorials, mut problems, mut warnings) = load_noting(&args.paths);
    let mut pruned = Vec::new();
    let mut blocks = 0;
    for t in &tutorials {
        blocks += t.steps.iter().map(|s| s.blocks.len()).sum::<usize>();
        let lint = preflight::lint(t, &Templates::new(&t.front), args.snapshots.as_deref());
        let mut errors = lint.errors;
        errors.extend(lint.missing);
        errors.sort_by_key(by_line(&t.path));
        problems.extend(errors);
        let mut notes: Vec<String> =
            t.notes.iter().map(|n| format!("{}:{}: {}", t.path.display(), n.line, n.message)).collect();
        notes.extend(lint.warnings);
        notes.sort_by_key(by_line(&t.path));
        warnings.extend(notes);
        for p in lint.orphans {
            if args.prune {
                match std::fs::remove_file(&p) {
                    Ok(()) => pruned.push(p),
                    Err(e) => problems.push(format!("{}: cannot remove: {e}", p.display())),
                }
            } else {
                warnings.push(format!(
                    "{}: orphan snapshot: no block of {} has this id (`tutor check --prune` removes it)",
                    p.display(),
                    t.path.display()
                ));
            }
        }
    }
    for w in &warnings {
        eprintln!("{} {w}", style("warning:").yellow().bold());
    }
    for p in &pruned {
        println!("removed {} (orphan snapshot)", p.display());
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

#[cfg(test)]
mod tests {
    #[test]
    fn messages_sort_by_their_line_in_the_tutorial() {
        let mut m = vec![
            "t.md:12: b".to_string(),
            "snapshots/t/x.snap:3: c".to_string(),
            "t.md:3: a".to_string(),
            "t.md: whole file".to_string(),
        ];
        m.sort_by_key(super::by_line(std::path::Path::new("t.md")));
        assert_eq!(m, ["t.md:3: a", "t.md:12: b", "snapshots/t/x.snap:3: c", "t.md: whole file"]);
    }
}
