//! Judging one run of a block: did it exit as expected, and does its output match? Pure
//! functions over an [`Observation`], so that every verdict rule is unit-tested without a shell.

use std::time::Duration;

use super::outcome::Status;
use super::script::CommandRun;
use super::transcript;
use crate::backend::Observation;
use crate::snapshot::{Captures, Matcher};
use crate::tutorial::ConsoleCommand;

/// One try of a block, before update mode and retry decide the final verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// What the block printed (console: the transcript, prompts included).
    pub output: String,
    /// The run itself went wrong (timeout, signal, wrong exit status): never recordable.
    pub problem: Option<(Status, String)>,
    /// `None` when there is no expectation to compare with (missing snapshot).
    pub matched: Option<bool>,
    /// The actual output normalised against the expectation (see `Matcher::normalize`).
    pub normalized: Option<String>,
    /// Why trying again cannot help (a command that does not exist), if so.
    pub hopeless: Option<String>,
    /// Values this run captured with `[..NAME..]` (kept once the block passes).
    pub captures: Captures,
}

impl Attempt {
    /// Done trying: a clean run that matched, or (update mode) a clean run without expectation.
    pub fn settled(&self, update: bool) -> bool {
        self.problem.is_none() && (self.matched == Some(true) || (update && self.matched.is_none()))
    }
}

/// Expected and actual are compared without their trailing newlines: a fence or a `.snap`
/// file always ends a line, a command's output need not.
fn trim(s: &str) -> &str {
    s.trim_end_matches('\n')
}

fn compare(matcher: &Matcher, expected: Option<&str>, actual: &str) -> (Option<bool>, Option<String>) {
    match expected {
        None => (None, None),
        Some(exp) => {
            // The actual output keeps its final newline: a ` (no-eol)` line asks about it.
            let (exp, act) = (trim(exp), actual);
            if matcher.is_match(exp, act) {
                (Some(true), None)
            } else {
                (Some(false), Some(matcher.normalize(exp, trim(act))))
            }
        }
    }
}

/// What a run is judged against, whatever the kind of block.
pub struct Rules<'a> {
    /// `exit=` (the last command's, for console blocks).
    pub expected_exit: i32,
    /// The block's time-out (named in the verdict).
    pub timeout: Duration,
    /// The run was cut short by Ctrl-C or SIGTERM.
    pub interrupted: bool,
    pub matcher: &'a Matcher,
}

/// Timeout, signals: problems of the run as a whole.
fn run_problem(obs: &Observation, rules: &Rules<'_>) -> Option<(Status, String)> {
    if obs.timed_out {
        Some((Status::Error, format!("timed out after {}", humantime::format_duration(rules.timeout))))
    } else if obs.exit.is_none() && rules.interrupted {
        Some((Status::Error, "interrupted".to_string()))
    } else if obs.exit.is_none() {
        Some((Status::Error, "killed by a signal".to_string()))
    } else {
        None
    }
}

/// An `sh`/`bash` block: exit status, then the output against its snapshot.
pub fn shell(obs: &Observation, expected: Option<&str>, rules: &Rules<'_>) -> Attempt {
    let expected_exit = rules.expected_exit;
    let problem = run_problem(obs, rules).or_else(|| match obs.exit {
        Some(code) if code != expected_exit => {
            Some((Status::Failed, format!("exited with status {code}, expected {expected_exit}")))
        }
        _ => None,
    });
    let (matched, normalized) = compare(rules.matcher, expected, &obs.output);
    let hopeless = hopeless(obs.exit);
    Attempt { output: obs.output.clone(), problem, matched, normalized, hopeless, captures: Captures::new() }
}

/// Statuses that waiting cannot change: the shell found no such command (127) or could not
/// execute it (126).
fn hopeless(status: Option<i32>) -> Option<String> {
    match status {
        Some(127) => Some("command not found".into()),
        Some(126) => Some("command not executable".into()),
        _ => None,
    }
}

/// A console block, command by command: a command with an `[N]` line shows its status as
/// that line (the comparison judges it); without one it must exit 0 (the last one: `exit=`),
/// else the block stops there (its output and status shown, the rest not run). Each command's
/// output is compared with its own expectation, so prompt lines are never read as patterns.
pub fn console(
    timed_out: bool,
    commands: &[ConsoleCommand],
    prompts: &[String],
    runs: &[CommandRun],
    expected: &[String],
    rules: &Rules<'_>,
    bound: &Captures,
) -> Attempt {
    let last = commands.len().saturating_sub(1);
    let mut problem = if timed_out {
        Some((Status::Error, format!("timed out after {}", humantime::format_duration(rules.timeout))))
    } else if rules.interrupted && runs.iter().any(|r| r.status.is_none()) {
        Some((Status::Error, "interrupted".to_string()))
    } else {
        None
    };
    let mut sections: Vec<(String, String)> = Vec::new();
    let mut normalized: Vec<(String, String)> = Vec::new();
    let mut all_matched = true;
    let mut captures = bound.clone();
    let mut fresh = Captures::new();
    let mut hopeless_why = None;
    for (i, ((cmd, run), exp)) in commands.iter().zip(runs).zip(expected).enumerate() {
        let Some(status) = run.status else {
            if problem.is_none() {
                let what = format!("`{}` (line {})", first_line(&cmd.command), cmd.line);
                problem = Some((Status::Error, format!("{what} was killed before it ended")));
            }
            sections.push((prompts[i].clone(), run.output.clone()));
            normalized.push((prompts[i].clone(), run.output.clone()));
            all_matched = false;
            break;
        };
        let exit_line = cmd.exit_line();
        let want = if i == last { rules.expected_exit } else { 0 };
        let mut actual = run.output.clone();
        if exit_line.is_some() || status != want {
            if !actual.is_empty() && !actual.ends_with('\n') {
                actual.push('\n');
            }
            actual.push_str(&format!("[{status}]\n"));
        }
        hopeless_why = hopeless_why.or_else(|| hopeless(Some(status)));
        let matched = rules.matcher.bind(exp, &actual, &captures);
        let norm = match &matched {
            Some(_) => trim(exp).to_string(),
            None => rules.matcher.normalize(trim(exp), trim(&actual)),
        };
        match matched {
            Some(new) => {
                captures.extend(new.clone());
                fresh.extend(new);
            }
            None => all_matched = false,
        }
        sections.push((prompts[i].clone(), actual));
        normalized.push((prompts[i].clone(), norm));
        if exit_line.is_none() && status != want && problem.is_none() {
            let what = format!("`{}` (line {})", first_line(&cmd.command), cmd.line);
            let rest = commands.len() - i - 1;
            let expected_note = if i == last { format!(", expected {want}") } else { String::new() };
            let not_run = match rest {
                0 => String::new(),
                1 => "; 1 later command not run".to_string(),
                n => format!("; {n} later commands not run"),
            };
            problem = Some((Status::Failed, format!("{what} exited with status {status}{expected_note}{not_run}")));
            all_matched = false;
            break;
        }
    }
    let output = transcript::build(sections.iter().map(|(p, o)| (p.as_str(), o.as_str())));
    let normalized = transcript::build(normalized.iter().map(|(p, o)| (p.as_str(), o.as_str())));
    let matched = all_matched && runs.len() >= commands.len();
    Attempt {
        output,
        problem,
        matched: Some(matched),
        normalized: (!matched).then_some(normalized),
        hopeless: hopeless_why,
        captures: fresh,
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn obs(output: &str, exit: Option<i32>, timed_out: bool) -> Observation {
        Observation { output: output.into(), exit, timed_out, duration: Duration::ZERO }
    }

    fn rules(expected_exit: i32, interrupted: bool, matcher: &Matcher) -> Rules<'_> {
        Rules { expected_exit, timeout: T, interrupted, matcher }
    }

    fn matcher() -> Matcher {
        Matcher::new(&BTreeMap::new()).unwrap()
    }

    fn cmd(line: usize, command: &str) -> ConsoleCommand {
        ConsoleCommand {
            line,
            prompt_text: format!("$ {command}"),
            command: command.into(),
            expected: String::new(),
            blank_before: 0,
        }
    }

    fn prompts(cmds: &[ConsoleCommand]) -> Vec<String> {
        cmds.iter().map(|c| c.prompt_text.clone()).collect()
    }

    const T: Duration = Duration::from_secs(2);

    #[test]
    fn shell_passes_on_match_ignoring_the_final_newline() {
        let a = shell(&obs("hi\n", Some(0), false), Some("hi"), &rules(0, false, &matcher()));
        assert_eq!((a.problem.clone(), a.matched), (None, Some(true)));
        assert!(a.settled(false));
    }

    #[test]
    fn shell_mismatch_carries_the_normalised_actual() {
        let a = shell(&obs("bye\n", Some(0), false), Some("hi\n"), &rules(0, false, &matcher()));
        assert_eq!(a.matched, Some(false));
        assert_eq!(a.normalized.as_deref(), Some("bye"));
        assert!(!a.settled(true));
    }

    #[test]
    fn shell_wrong_exit_timeout_and_signal_are_problems() {
        let m = matcher();
        let a = shell(&obs("", Some(1), false), Some(""), &rules(0, false, &m));
        assert_eq!(a.problem, Some((Status::Failed, "exited with status 1, expected 0".into())));
        let a = shell(&obs("", Some(3), false), Some(""), &rules(3, false, &m));
        assert_eq!(a.problem, None);
        let a = shell(&obs("", None, true), Some(""), &rules(0, false, &m));
        assert_eq!(a.problem, Some((Status::Error, "timed out after 2s".into())));
        let a = shell(&obs("", None, false), Some(""), &rules(0, true, &m));
        assert_eq!(a.problem, Some((Status::Error, "interrupted".into())));
        let a = shell(&obs("", None, false), Some(""), &rules(0, false, &m));
        assert_eq!(a.problem, Some((Status::Error, "killed by a signal".into())));
    }

    #[test]
    fn shell_without_snapshot_settles_only_in_update_mode() {
        let a = shell(&obs("x\n", Some(0), false), None, &rules(0, false, &matcher()));
        assert_eq!(a.matched, None);
        assert!(!a.settled(false));
        assert!(a.settled(true));
    }

    fn run(output: &str, status: Option<i32>) -> CommandRun {
        CommandRun { output: output.into(), status }
    }

    fn exps(e: &[&str]) -> Vec<String> {
        e.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn console_transcript_interleaves_prompts_and_outputs() {
        let cmds = [cmd(3, "echo a"), cmd(5, "printf b")];
        let runs = [run("a\n", Some(0)), run("b", Some(0))];
        let m = matcher();
        let a =
            console(false, &cmds, &prompts(&cmds), &runs, &exps(&["a", "b"]), &rules(0, false, &m), &Captures::new());
        assert_eq!((a.problem, a.matched), (None, Some(true)));
        assert_eq!(a.output, "$ echo a\na\n$ printf b\nb\n");
    }

    #[test]
    fn prompt_lines_are_never_patterns() {
        let cmds = [cmd(3, "echo '[DATE] x (re)' >/dev/null; echo ok")];
        let runs = [run("ok\n", Some(0))];
        let m = matcher();
        let a = console(false, &cmds, &prompts(&cmds), &runs, &exps(&["ok"]), &rules(0, false, &m), &Captures::new());
        assert_eq!((a.problem, a.matched), (None, Some(true)));
    }

    #[test]
    fn a_failing_command_stops_the_block_unless_it_has_an_exit_line() {
        let m = matcher();
        let cmds = [cmd(3, "false"), cmd(4, "echo never")];
        let runs = [run("", Some(1)), run("", None)];
        let a = console(false, &cmds, &prompts(&cmds), &runs, &exps(&["", ""]), &rules(0, false, &m), &Captures::new());
        assert_eq!(
            a.problem,
            Some((Status::Failed, "`false` (line 3) exited with status 1; 1 later command not run".into()))
        );
        assert_eq!(a.output, "$ false\n[1]\n", "its status is shown");
        // With `[1]` the status is expected and the block goes on.
        let mut with_exit = cmds.clone();
        with_exit[0].expected = "[1]".into();
        let runs = [run("", Some(1)), run("", Some(0))];
        let a = console(
            false,
            &with_exit,
            &prompts(&cmds),
            &runs,
            &exps(&["[1]", ""]),
            &rules(0, false, &m),
            &Captures::new(),
        );
        assert_eq!((a.problem, a.matched), (None, Some(true)));
        // A different status than the `[N]` line is a mismatch, shown in the diff.
        let runs = [run("", Some(2)), run("", Some(0))];
        let a = console(
            false,
            &with_exit,
            &prompts(&cmds),
            &runs,
            &exps(&["[1]", ""]),
            &rules(0, false, &m),
            &Captures::new(),
        );
        assert_eq!((a.problem.clone(), a.matched), (None, Some(false)));
        assert_eq!(a.normalized.as_deref(), Some("$ false\n[2]\n$ echo never\n"));
    }

    #[test]
    fn the_last_command_exits_with_the_exit_attribute() {
        let m = matcher();
        let cmds = [cmd(3, "true"), cmd(4, "(exit 2)")];
        let runs = [run("", Some(0)), run("", Some(2))];
        let a = console(false, &cmds, &prompts(&cmds), &runs, &exps(&["", ""]), &rules(2, false, &m), &Captures::new());
        assert_eq!((a.problem, a.matched), (None, Some(true)));
        let a = console(false, &cmds, &prompts(&cmds), &runs, &exps(&["", ""]), &rules(0, false, &m), &Captures::new());
        assert_eq!(a.problem, Some((Status::Failed, "`(exit 2)` (line 4) exited with status 2, expected 0".into())));
    }

    #[test]
    fn captures_are_taken_from_the_output() {
        let m = matcher();
        let cmds = [cmd(3, "hostname -I"), cmd(4, "echo $IP")];
        let runs = [run("10.0.0.7\n", Some(0)), run("10.0.0.7\n", Some(0))];
        let a = console(
            false,
            &cmds,
            &prompts(&cmds),
            &runs,
            &exps(&["[..IP..]", "[..IP..]"]),
            &rules(0, false, &m),
            &Captures::new(),
        );
        assert_eq!(a.matched, Some(true));
        assert_eq!(a.captures.get("IP").map(String::as_str), Some("10.0.0.7"));
        let runs = [run("10.0.0.7\n", Some(0)), run("10.0.0.8\n", Some(0))];
        let a = console(
            false,
            &cmds,
            &prompts(&cmds),
            &runs,
            &exps(&["[..IP..]", "[..IP..]"]),
            &rules(0, false, &m),
            &Captures::new(),
        );
        assert_eq!(a.matched, Some(false), "a second value does not match the first");
    }

    #[test]
    fn not_found_is_hopeless() {
        let m = matcher();
        let cmds = [cmd(3, "nosuchcommand")];
        let runs = [run("bash: nosuchcommand: command not found\n", Some(127))];
        let a = console(false, &cmds, &prompts(&cmds), &runs, &exps(&[""]), &rules(0, false, &m), &Captures::new());
        assert_eq!(a.hopeless.as_deref(), Some("command not found"));
    }
}
