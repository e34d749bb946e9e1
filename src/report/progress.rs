//! Human output while a run goes: a header per tutorial and per step, a line per finished block
//! (with the diff or the output tail when it failed), and, on a terminal, a spinner with the
//! elapsed time of the running block. Without a terminal, or with `CI` set, plain lines only.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{diff, summary};
use crate::runner::{BlockResult, Event, Reporter, Status};
use crate::tutorial::Tutorial;

/// Lines of a failing block's output shown when there is no diff to show.
const OUTPUT_TAIL: usize = 20;

/// Whether to draw spinners: a terminal on stdout and not in CI.
pub fn interactive() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("CI").is_none()
}

pub struct Human {
    live: Option<MultiProgress>,
    spinners: Mutex<HashMap<PathBuf, ProgressBar>>,
    /// Several tutorials: prefix lines with the tutorial's stem, they may interleave.
    prefix: bool,
}

impl Human {
    pub fn new(several: bool) -> Human {
        Human {
            live: interactive().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout())),
            spinners: Mutex::new(HashMap::new()),
            prefix: several,
        }
    }

    fn print(&self, t: &Tutorial, text: &str) {
        let text = if self.prefix {
            text.lines().map(|l| format!("[{}] {l}", t.stem)).collect::<Vec<_>>().join("\n")
        } else {
            text.to_string()
        };
        match &self.live {
            Some(mp) => {
                let _ = mp.println(text);
            }
            None => println!("{text}"),
        }
    }

    fn stop_spinner(&self, t: &Tutorial) {
        if let Some(bar) = self.spinners.lock().unwrap().remove(&t.path) {
            bar.finish_and_clear();
            if let Some(mp) = &self.live {
                mp.remove(&bar);
            }
        }
    }
}

/// `✓ id  12ms`, `✗ id  reason`, followed by the diff or the output's tail.
pub fn block_lines(b: &BlockResult, colour: bool) -> String {
    let took = style(summary::duration(b.duration)).dim();
    let reason = b.reason.as_deref().unwrap_or("");
    let mut out = match b.status {
        Status::Passed if reason.is_empty() => format!("    {} {}  {took}", style("✓").green(), b.id),
        Status::Passed => format!("    {} {}  {took}  {}", style("✓").green(), b.id, style(reason).dim()),
        Status::Skipped => format!("    {} {}  {}", style("-").dim(), style(&b.id).dim(), style(reason).dim()),
        Status::Failed => format!("    {} {}  {}", style("✗").red().bold(), b.id, style(reason).red()),
        Status::Error => format!("    {} {}  {}", style("!").red().bold(), b.id, style(reason).red()),
    };
    if matches!(b.status, Status::Failed | Status::Error) {
        out.push_str(&format!("  {}", style(format!("(line {}, on {})", b.line, b.target)).dim()));
        let detail = match &b.mismatch {
            Some(m) => diff::unified(m, colour),
            None if !b.output.trim().is_empty() => {
                let lines: Vec<&str> = b.output.lines().collect();
                let tail = &lines[lines.len().saturating_sub(OUTPUT_TAIL)..];
                format!("output{}:\n{}\n", if tail.len() < lines.len() { " (last lines)" } else { "" }, tail.join("\n"))
            }
            None => String::new(),
        };
        for line in detail.lines() {
            out.push_str(&format!("\n      {line}"));
        }
    }
    out
}

impl Reporter for Human {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::TutorialStarted { tutorial, backend } => {
                let title = tutorial.front.title.as_deref().unwrap_or(&tutorial.stem);
                let text = format!(
                    "{} {}",
                    style(title).bold(),
                    style(format!("({}, {backend} backend)", tutorial.path.display())).dim()
                );
                self.print(tutorial, &text);
            }
            Event::StepStarted { tutorial, step } => {
                self.print(tutorial, &format!("  {}", style(format!("{}. {}", step.number, step.title)).bold()));
            }
            Event::BlockStarted { tutorial, block, .. } => {
                let Some(mp) = &self.live else { return };
                let bar = mp.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("    {spinner:.cyan} {msg} {elapsed:.dim}")
                        .expect("the spinner template is valid"),
                );
                bar.set_message(format!("{} on {}", block.id, block.attrs.on));
                bar.enable_steady_tick(Duration::from_millis(100));
                self.spinners.lock().unwrap().insert(tutorial.path.clone(), bar);
            }
            Event::BlockRetrying { tutorial, block, tries } => {
                if let Some(bar) = self.spinners.lock().unwrap().get(&tutorial.path) {
                    bar.set_message(format!("{} on {} (retrying, {tries} tries so far)", block.id, block.attrs.on));
                }
            }
            Event::BlockFinished { tutorial, result, .. } => {
                self.stop_spinner(tutorial);
                self.print(tutorial, &block_lines(result, console::colors_enabled()));
            }
            Event::StepFinished { .. } => {}
            Event::SetupFinished { tutorial, steps } => {
                let (Some(first), Some(last)) = (steps.first(), steps.last()) else { return };
                let which = if first.number == last.number {
                    format!("step {}", first.number)
                } else {
                    format!("steps {}-{}", first.number, last.number)
                };
                let blocks: Vec<&BlockResult> = steps.iter().flat_map(|s| &s.blocks).collect();
                let failed: Vec<&&BlockResult> =
                    blocks.iter().filter(|b| matches!(b.status, Status::Failed | Status::Error)).collect();
                let took = summary::duration(steps.iter().map(|s| s.duration).sum());
                let text = if failed.is_empty() {
                    let ran = blocks.iter().filter(|b| b.status == Status::Passed).count();
                    format!("  {}", style(format!("set-up: {which} ran first ({ran} block(s) in {took})")).dim())
                } else {
                    format!("  {}", style(format!("set-up: {which} failed")).red().bold())
                };
                self.print(tutorial, &text);
                for b in failed {
                    self.print(tutorial, &block_lines(b, console::colors_enabled()));
                }
            }
            Event::TutorialFinished { tutorial, result } => {
                self.stop_spinner(tutorial);
                for e in &result.errors {
                    self.print(tutorial, &format!("  {} {e}", style("error:").red().bold()));
                }
                if let Some(dir) = &result.kept_workdir {
                    self.print(tutorial, &format!("  work directory kept: {}", dir.display()));
                }
                let status = match result.status() {
                    Status::Passed => style("passed").green().bold(),
                    Status::Skipped => style("skipped").dim(),
                    s => style(s.as_str()).red().bold(),
                };
                let took = summary::duration(result.duration);
                self.print(tutorial, &format!("  {status} in {took}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Mismatch;

    fn block(status: Status) -> BlockResult {
        BlockResult {
            id: "b1".into(),
            line: 7,
            target: "host".into(),
            status,
            duration: Duration::from_millis(12),
            output: "x\n".into(),
            mismatch: None,
            reason: None,
            tries: 1,
        }
    }

    #[test]
    fn a_passing_block_is_one_line() {
        console::set_colors_enabled(false);
        assert_eq!(block_lines(&block(Status::Passed), false), "    ✓ b1  12ms");
    }

    #[test]
    fn a_failing_block_shows_where_and_the_diff() {
        console::set_colors_enabled(false);
        let mut b = block(Status::Failed);
        b.reason = Some("output does not match".into());
        b.mismatch = Some(Mismatch {
            source: "t.md:8".into(),
            expected: "a".into(),
            actual: "b".into(),
            expected_lines: vec![8],
            actual_lines: vec![8],
            diff: Default::default(),
        });
        let text = block_lines(&b, false);
        assert!(text.starts_with("    ✗ b1  output does not match  (line 7, on host)\n"), "{text}");
        assert!(text.contains("      --- expected (t.md:8)\n"), "{text}");
        assert!(text.contains("+b"), "{text}");
    }

    #[test]
    fn an_error_without_diff_shows_the_output_tail() {
        console::set_colors_enabled(false);
        let mut b = block(Status::Error);
        b.output = (1..=30).map(|i| format!("l{i}\n")).collect();
        let text = block_lines(&b, false);
        assert!(text.contains("output (last lines):"), "{text}");
        assert!(text.contains("l30") && !text.contains("l10\n"), "{text}");
    }
}
