//! `tutor review`: go through the pending changes that failing runs recorded (insta's
//! `cargo insta review`): each is shown as a diff, then accepted, rejected or skipped by a key
//! in a terminal, or all at once with `--accept` / `--reject`.

use std::io::IsTerminal;
use std::path::PathBuf;

use console::{Key, Term, style};

use super::Exit;
use super::run::load;
use crate::report::diff;
use crate::review::{self, Pending};
use crate::snapshot;

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// Markdown tutorials, or folders searched recursively for them.
    #[arg(default_value = "tutorials")]
    paths: Vec<PathBuf>,
    /// Accept every pending change without asking.
    #[arg(long, conflicts_with = "reject")]
    accept: bool,
    /// Reject every pending change without asking.
    #[arg(long)]
    reject: bool,
    /// Folder holding `<tutorial>/<id>.snap` (default: the nearest `snapshots/` above the tutorial).
    #[arg(long, value_name = "DIR")]
    snapshots: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Accept,
    Reject,
    Skip,
    Quit,
}

fn ask(term: &Term) -> std::io::Result<Choice> {
    loop {
        term.write_str(&format!(
            "{} accept  {} reject  {} skip  {} quit: ",
            style("a").green().bold(),
            style("r").red().bold(),
            style("s").yellow().bold(),
            style("q").bold()
        ))?;
        let key = term.read_key()?;
        term.write_line("")?;
        match key {
            Key::Char('a') | Key::Char('A') | Key::Enter => return Ok(Choice::Accept),
            Key::Char('r') | Key::Char('R') => return Ok(Choice::Reject),
            Key::Char('s') | Key::Char('S') | Key::Char(' ') => return Ok(Choice::Skip),
            Key::Char('q') | Key::Char('Q') | Key::Escape | Key::CtrlC => return Ok(Choice::Quit),
            _ => term.write_line("press a, r, s or q")?,
        }
    }
}

pub async fn execute(args: ReviewArgs) -> anyhow::Result<Exit> {
    let (tutorials, errors) = load(&args.paths);
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{} {e}", style("error:").red().bold());
        }
        return Ok(Exit::Usage);
    }
    let mut pending: Vec<Pending> = Vec::new();
    for t in &tutorials {
        let dir = snapshot::snapshot_dir(t, args.snapshots.as_deref());
        pending.extend(review::find(t, &dir)?);
    }
    if pending.is_empty() {
        println!("no pending changes");
        return Ok(Exit::Pass);
    }
    let term = Term::stdout();
    let interactive = !args.accept && !args.reject;
    if interactive && !(std::io::stdin().is_terminal() && term.is_term()) {
        for p in &pending {
            println!("pending: {} ({})", p.target(), p.id);
        }
        eprintln!(
            "{} not a terminal: `tutor review --accept` or `--reject` decides for all {} pending change(s)",
            style("error:").red().bold(),
            pending.len()
        );
        return Ok(Exit::Usage);
    }
    let total = pending.len();
    let (mut accepted, mut rejected, mut skipped) = (0, 0, 0);
    let mut failed = false;
    for (i, p) in pending.iter().enumerate() {
        let choice = if args.accept {
            Choice::Accept
        } else if args.reject {
            Choice::Reject
        } else {
            println!("{}", style(format!("[{}/{total}] {} — block `{}`", i + 1, p.target(), p.id)).bold());
            print!("{}", diff::unified(&p.mismatch(), console::colors_enabled()));
            ask(&term)?
        };
        let done = match choice {
            Choice::Accept => review::accept(p).map(|_| {
                accepted += 1;
                "accepted"
            }),
            Choice::Reject => review::reject(p).map(|_| {
                rejected += 1;
                "rejected"
            }),
            Choice::Skip => {
                skipped += 1;
                Ok("skipped")
            }
            Choice::Quit => {
                skipped += total - i;
                break;
            }
        };
        match done {
            Ok(what) => println!("{what}: {} ({})", p.target(), p.id),
            Err(e) => {
                failed = true;
                eprintln!("{} {e}", style("error:").red().bold());
            }
        }
    }
    println!("{accepted} accepted, {rejected} rejected, {skipped} skipped");
    Ok(if failed { Exit::Fail } else { Exit::Pass })
}
