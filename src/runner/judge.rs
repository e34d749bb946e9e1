//! Judging one run of a block: did it exit as expected, and does its output match? Pure
//! functions over an [`Observation`], so that every verdict rule is unit-tested without a shell.

use std::time::Duration;

use super::outcome::Status;
use super::script::CommandRun;
use super::transcript;
use crate::backend::Observation;
use crate::snapshot::Matcher;
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
    Attempt { output: obs.output.clone(), problem, matched, normalized }
}

/// A console block: every command but the last must succeed, the last must exit with `exit=`,
/// and the transcript must match the block's body.
pub fn console(
    obs: &Observation,
    commands: &[ConsoleCommand],
    prompts: &[String],
    runs: &[CommandRun],
    expected: &str,
    rules: &Rules<'_>,
) -> Attempt {
    let expected_exit = rules.expected_exit;
    let output = transcript::build(prompts.iter().zip(runs).map(|(p, r)| (p.as_str(), r.output.as_str())));
    let last = commands.len().saturating_sub(1);
    let problem = run_problem(obs, rules).or_else(|| {
        commands.iter().zip(runs).enumerate().find_map(|(i, (cmd, run))| {
            let want = if i == last { expected_exit } else { 0 };
            let what = format!("`{}` (line {})", first_line(&cmd.command), cmd.line);
            match run.status {
                Some(code) if code == want => None,
                Some(code) if i == last => {
                    Some((Status::Failed, format!("{what} exited with status {code}, expected {want}")))
                }
                Some(code) => Some((Status::Failed, format!("{what} exited with status {code}"))),
                None => Some((Status::Failed, format!("{what} did not run"))),
            }
        })
    });
    let (matched, normalized) = compare(rules.matcher, Some(expected), &output);
    Attempt { output, problem, matched, normalized }
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

    #[test]
    fn console_transcript_interleaves_prompts_and_outputs() {
        let cmds = [cmd(3, "echo a"), cmd(5, "printf b")];
        let runs =
            [CommandRun { output: "a\n".into(), status: Some(0) }, CommandRun { output: "b".into(), status: Some(0) }];
        let a = console(
            &obs("", Some(0), false),
            &cmds,
            &prompts(&cmds),
            &runs,
            "$ echo a\na\n$ printf b\nb\n",
            &rules(0, false, &matcher()),
        );
        assert_eq!((a.problem, a.matched), (None, Some(true)));
    }

    #[test]
    fn console_earlier_failure_and_last_exit_status() {
        let cmds = [cmd(3, "false"), cmd(4, "exit 2")];
        let runs = [
            CommandRun { output: String::new(), status: Some(1) },
            CommandRun { output: String::new(), status: Some(2) },
        ];
        let a = console(
            &obs("", Some(2), false),
            &cmds,
            &prompts(&cmds),
            &runs,
            "$ false\n$ exit 2\n",
            &rules(2, false, &matcher()),
        );
        assert_eq!(a.problem, Some((Status::Failed, "`false` (line 3) exited with status 1".into())));
        let runs = [
            CommandRun { output: String::new(), status: Some(0) },
            CommandRun { output: String::new(), status: Some(2) },
        ];
        let a = console(
            &obs("", Some(2), false),
            &cmds,
            &prompts(&cmds),
            &runs,
            "$ false\n$ exit 2\n",
            &rules(0, false, &matcher()),
        );
        assert_eq!(a.problem, Some((Status::Failed, "`exit 2` (line 4) exited with status 2, expected 0".into())));
    }

    #[test]
    fn console_command_that_never_ran() {
        let cmds = [cmd(3, "exit 0"), cmd(4, "echo never")];
        let runs =
            [CommandRun { output: String::new(), status: Some(0) }, CommandRun { output: String::new(), status: None }];
        let a = console(&obs("", Some(0), false), &cmds, &prompts(&cmds), &runs, "", &rules(0, false, &matcher()));
        assert_eq!(a.problem, Some((Status::Failed, "`echo never` (line 4) did not run".into())));
    }
}
