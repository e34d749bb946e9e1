//! Turning a block into the bash script a backend runs.
//!
//! Notebook state: every script first restores the target's state file (exported variables and
//! the working directory) and, from an EXIT trap, saves them back, so `export A=1` or `cd` in one
//! block holds in the next block on the same target. Only exported variables persist, and a
//! block that installs its own EXIT trap replaces ours (then its changes are not saved).

/// The state file of one target, as a path valid where the script runs.
pub struct State<'a> {
    pub path: &'a str,
    /// First block on this target in this run: start from a clean slate instead of restoring
    /// whatever an earlier run left in a reused work directory.
    pub fresh: bool,
}

/// Single-quote `s` for bash.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn restore(state: &State<'_>) -> String {
    let path = quote(state.path);
    if state.fresh {
        // `${x%/*}` is the directory without running `dirname`: every process counts per block.
        format!("__tutor_state={path}\nmkdir -p -- \"${{__tutor_state%/*}}\"; rm -f -- \"$__tutor_state\"\n")
    } else {
        format!("__tutor_state={path}\nif [ -f \"$__tutor_state\" ]; then . \"$__tutor_state\"; fi\n")
    }
}

/// Saves `export -p` (minus the variables bash manages itself) and the cwd. The shell is exiting,
/// so un-exporting here changes nothing for the block.
const SAVE: &str = r#"__tutor_save() {
  export -n PWD OLDPWD SHLVL _ 2>/dev/null
  { export -p; printf 'cd -- %q 2>/dev/null || true\n' "$PWD"; } > "$__tutor_state" 2>/dev/null
}
trap __tutor_save EXIT
"#;

/// An `sh`/`bash` block: restore, save on exit, `set -e`, the body.
pub fn shell(body: &str, state: &State<'_>) -> String {
    let mut s = restore(state);
    s.push_str(SAVE);
    s.push_str("set -e\n");
    push_line(&mut s, body);
    s
}

/// A `bg` block: restores the state but never saves it (it runs alongside later blocks).
pub fn background(body: &str, state: &State<'_>) -> String {
    let mut s = restore(state);
    push_line(&mut s, body);
    s
}

/// A `console` block (backends without kernels): all its commands in one shell; after each, a
/// marker line carrying its exit status so that [`split_console`] can cut the output per
/// command. `commands`: (text, has an `[N]` line); a command without one that does not exit 0
/// (the last one: `expected_exit`) ends the script, so later commands never run.
pub fn console(commands: &[(&str, bool)], expected_exit: i32, state: &State<'_>, nonce: &str) -> String {
    let mut s = restore(state);
    s.push_str(SAVE);
    for (i, (cmd, exit_line)) in commands.iter().enumerate() {
        push_line(&mut s, cmd);
        s.push_str(&format!("__tutor_rc=$?; printf '\\036tutor-{nonce}:%d\\036\\n' \"$__tutor_rc\"\n"));
        if !exit_line {
            let want = if i + 1 == commands.len() { expected_exit } else { 0 };
            s.push_str(&format!(
                "[ \"$__tutor_rc\" = {want} ] || {{ printf '\\036tutor-{nonce}:stop\\036\\n'; exit \"$__tutor_rc\"; }}\n"
            ));
        }
    }
    s
}

fn push_line(s: &mut String, text: &str) {
    s.push_str(text);
    if !text.ends_with('\n') {
        s.push('\n');
    }
}

/// Output and status of one command of a console block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRun {
    pub output: String,
    /// `None` when the command never ran (an earlier one ended the shell).
    pub status: Option<i32>,
}

/// Cut a console block's output at the markers. Commands after the last marker: the first of
/// them ended the shell, so it gets the shell's exit status (`shell_exit`) and the rest never ran.
pub fn split_console(output: &str, nonce: &str, count: usize, shell_exit: Option<i32>) -> Vec<CommandRun> {
    let marker = format!("\u{1e}tutor-{nonce}:");
    let mut runs = Vec::with_capacity(count);
    let mut rest = output;
    let mut stopped = false;
    while runs.len() < count {
        let Some(at) = rest.find(&marker) else { break };
        let after = &rest[at + marker.len()..];
        let Some(end) = after.find("\u{1e}\n") else { break };
        if &after[..end] == "stop" {
            // The script ended the block after a failing command: the rest never ran.
            stopped = true;
            break;
        }
        let status = after[..end].parse::<i32>().ok();
        runs.push(CommandRun { output: rest[..at].to_string(), status });
        rest = &after[end + 2..];
    }
    if runs.len() < count && !stopped {
        runs.push(CommandRun { output: rest.to_string(), status: shell_exit });
    }
    while runs.len() < count {
        runs.push(CommandRun { output: String::new(), status: None });
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn bash(script: &str, cwd: &std::path::Path) -> (String, Option<i32>) {
        let out = Command::new("bash").args(["--noprofile", "--norc", "-c", script]).current_dir(cwd).output().unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (text, out.status.code())
    }

    #[test]
    fn quoting_survives_single_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let (out, _) = bash(&format!("printf %s {}", quote("it's $HOME")), dir.path());
        assert_eq!(out, "it's $HOME");
    }

    #[test]
    fn exported_variables_and_cwd_persist_but_plain_variables_do_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub dir")).unwrap();
        let state_file = dir.path().join(".tutor/state/host.sh").display().to_string();
        let first = State { path: &state_file, fresh: true };
        let later = State { path: &state_file, fresh: false };
        let (out, code) = bash(&shell("export A='x y'; B=2; cd 'sub dir'", &first), dir.path());
        assert_eq!((out.as_str(), code), ("", Some(0)));
        let (out, _) = bash(&shell("echo \"$A|${B:-unset}|${PWD##*/}\"", &later), dir.path());
        assert_eq!(out, "x y|unset|sub dir\n");
        // A fresh start forgets everything.
        let (out, _) = bash(&shell("echo \"${A:-unset}\"", &first), dir.path());
        assert_eq!(out, "unset\n");
    }

    #[test]
    fn state_is_saved_even_when_the_block_fails() {
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("s/host.sh").display().to_string();
        let (_, code) =
            bash(&shell("export A=1\nfalse\necho never", &State { path: &state_file, fresh: true }), dir.path());
        assert_eq!(code, Some(1), "set -e stops at `false` and keeps its status");
        let (out, _) = bash(&shell("echo $A", &State { path: &state_file, fresh: false }), dir.path());
        assert_eq!(out, "1\n");
    }

    #[test]
    fn console_commands_are_split_with_their_status() {
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("s/host.sh").display().to_string();
        let state = State { path: &state_file, fresh: true };
        let script = console(
            &[
                ("echo one", false),
                ("printf 'no newline'", false),
                ("(exit 3)", true),
                ("cat <<EOF\nheredoc\nEOF", false),
            ],
            0,
            &state,
            "n1",
        );
        let (out, code) = bash(&script, dir.path());
        assert_eq!(code, Some(0));
        let runs = split_console(&out, "n1", 4, code);
        let got: Vec<(&str, Option<i32>)> = runs.iter().map(|r| (r.output.as_str(), r.status)).collect();
        assert_eq!(got, vec![("one\n", Some(0)), ("no newline", Some(0)), ("", Some(3)), ("heredoc\n", Some(0))]);
    }

    #[test]
    fn a_command_that_exits_the_shell_takes_its_status_and_the_rest_never_run() {
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("s/host.sh").display().to_string();
        let state = State { path: &state_file, fresh: true };
        let script = console(&[("echo a", false), ("echo b; exit 4", false), ("echo c", false)], 0, &state, "n2");
        let (out, code) = bash(&script, dir.path());
        assert_eq!(code, Some(4));
        let runs = split_console(&out, "n2", 3, code);
        assert_eq!(runs[1], CommandRun { output: "b\n".into(), status: Some(4) });
        assert_eq!(runs[2], CommandRun { output: String::new(), status: None });
    }

    #[test]
    fn a_failing_command_without_exit_line_ends_the_script() {
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("s/host.sh").display().to_string();
        let state = State { path: &state_file, fresh: true };
        let script = console(&[("false", false), ("echo never", false)], 0, &state, "n3");
        let (out, code) = bash(&script, dir.path());
        assert_eq!(code, Some(1));
        let runs = split_console(&out, "n3", 2, code);
        assert_eq!(runs[0].status, Some(1));
        assert_eq!(runs[1], CommandRun { output: String::new(), status: None });
    }

    #[test]
    fn background_scripts_restore_but_do_not_save() {
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("s/host.sh").display().to_string();
        bash(&shell("export A=1", &State { path: &state_file, fresh: true }), dir.path());
        let (out, _) = bash(&background("echo $A; export A=2", &State { path: &state_file, fresh: false }), dir.path());
        assert_eq!(out, "1\n");
        let (out, _) = bash(&shell("echo $A", &State { path: &state_file, fresh: false }), dir.path());
        assert_eq!(out, "1\n");
    }
}
