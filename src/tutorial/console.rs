//! `console` blocks, cram/trycmd style: `$ command` lines followed by the expected output.
//! A command continues on `> ` lines, after a trailing `\`, and through a heredoc body.

use super::model::ConsoleCommand;

/// Parse a console body that starts at `first_line` (1-based). `Err` = (line, message).
pub fn parse(body: &str, first_line: usize) -> Result<Vec<ConsoleCommand>, (usize, String)> {
    let lines: Vec<&str> = body.lines().collect();
    let mut commands: Vec<ConsoleCommand> = Vec::new();
    // Output lines of each command, joined at the end.
    let mut outputs: Vec<Vec<&str>> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = first_line + i;
        let line = lines[i];
        let Some(cmd) = prompt(line) else {
            match outputs.last_mut() {
                Some(out) => out.push(line),
                None if line.trim().is_empty() => {}
                None => {
                    return Err((line_no, "console block: output before the first `$ command` line".into()));
                }
            }
            i += 1;
            continue;
        };
        if cmd.trim().is_empty() {
            return Err((line_no, "console block: `$` with no command".into()));
        }
        let mut command = cmd.to_string();
        let mut prompt_text = line.to_string();
        i += 1;
        // Continuations: `> ` lines (as a shell prints them) or a trailing backslash.
        while i < lines.len() {
            let next = lines[i];
            if let Some(rest) = next.strip_prefix("> ").or(if next == ">" { Some("") } else { None }) {
                command.push('\n');
                command.push_str(rest);
            } else if command.ends_with('\\') {
                command.push('\n');
                command.push_str(next);
            } else {
                break;
            }
            prompt_text.push('\n');
            prompt_text.push_str(next);
            i += 1;
        }
        // Heredoc bodies are part of the command, not output.
        for (delim, strip_tabs) in open_heredocs(&command) {
            loop {
                let Some(next) = lines.get(i) else {
                    return Err((line_no, format!("console block: heredoc `{delim}` is never closed")));
                };
                command.push('\n');
                command.push_str(next);
                prompt_text.push('\n');
                prompt_text.push_str(next);
                i += 1;
                let candidate = if strip_tabs { next.trim_start_matches('\t') } else { next };
                if candidate == delim {
                    break;
                }
            }
        }
        commands.push(ConsoleCommand { line: line_no, prompt_text, command, expected: String::new(), blank_before: 0 });
        outputs.push(Vec::new());
    }
    if commands.is_empty() {
        return Err((first_line.saturating_sub(1), "console block has no `$ command` line".into()));
    }
    // Blank lines before the first `$` and between a command's output and the next `$` are
    // layout, not output.
    let leading = lines.iter().take_while(|l| l.trim().is_empty()).count();
    let mut blank_before = leading;
    for (c, mut out) in commands.iter_mut().zip(outputs) {
        c.blank_before = blank_before;
        blank_before = 0;
        while out.last().is_some_and(|l| l.trim().is_empty()) {
            out.pop();
            blank_before += 1;
        }
        c.expected = out.join("\n");
    }
    Ok(commands)
}

fn prompt(line: &str) -> Option<&str> {
    if line == "$" {
        return Some("");
    }
    line.strip_prefix("$ ")
}

/// Heredocs opened in `command` whose closing delimiter is not in it yet (a heredoc typed
/// on `> ` continuation lines is already complete).
fn open_heredocs(command: &str) -> Vec<(String, bool)> {
    let mut pending: std::collections::VecDeque<(String, bool)> = Default::default();
    for line in command.lines() {
        if let Some((delim, strip_tabs)) = pending.front() {
            let candidate = if *strip_tabs { line.trim_start_matches('\t') } else { line };
            if candidate == delim {
                pending.pop_front();
            }
            continue;
        }
        pending.extend(heredoc_delimiters(line));
    }
    pending.into()
}

/// `<<EOF`, `<<'EOF'`, `<<"EOF"`, `<<-EOF` in a command (not `<<<`, a here-string).
fn heredoc_delimiters(command: &str) -> Vec<(String, bool)> {
    let re = regex_heredoc();
    re.captures_iter(command)
        .map(|c| {
            let word = c.get(2).or(c.get(3)).or(c.get(4)).unwrap().as_str().to_string();
            (word, c.get(1).is_some())
        })
        .collect()
}

fn regex_heredoc() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r#"(?:^|[^<])<<(-)?\s*(?:'([^']+)'|"([^"]+)"|([A-Za-z_][A-Za-z0-9_]*))"#).unwrap()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_outputs() {
        let c = parse("$ echo a\na\n$ true\n$ printf 'x\\ny'\nx\ny\n", 10).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].line, c[0].command.as_str(), c[0].expected.as_str()), (10, "echo a", "a"));
        assert_eq!(c[1].expected, "");
        assert_eq!((c[2].line, c[2].expected.as_str()), (13, "x\ny"));
    }

    #[test]
    fn continuations_and_heredocs() {
        let body = "$ cat <<EOF | wc -l\none\n$ not a prompt\nEOF\n2\n$ echo a \\\n  b\na b\n$ for i in 1; do\n> echo $i\n> done\n1\n";
        let c = parse(body, 1).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].command, "cat <<EOF | wc -l\none\n$ not a prompt\nEOF");
        assert_eq!(c[0].prompt_text, "$ cat <<EOF | wc -l\none\n$ not a prompt\nEOF");
        assert_eq!(c[0].expected, "2");
        assert_eq!(c[1].command, "echo a \\\n  b");
        assert_eq!(c[2].command, "for i in 1; do\necho $i\ndone");
        assert_eq!(c[2].expected, "1");
    }

    #[test]
    fn heredocs_on_continuation_lines() {
        let c = parse("$ cat <<EOF\n> a\n> EOF\na\n$ echo b\nb\n", 1).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].command, "cat <<EOF\na\nEOF");
        assert_eq!(c[0].expected, "a");
        assert_eq!(c[1].expected, "b");
    }

    #[test]
    fn blank_lines_before_prompts_are_layout() {
        let c = parse("\n$ a\nx\n\n\n$ b\n$ c\n\n", 1).unwrap();
        let blanks: Vec<usize> = c.iter().map(|c| c.blank_before).collect();
        assert_eq!(blanks, [1, 2, 0]);
        assert_eq!(c[0].expected, "x");
    }

    #[test]
    fn here_strings_are_not_heredocs() {
        let c = parse("$ cat <<< hi\nhi\n", 1).unwrap();
        assert_eq!(c[0].expected, "hi");
    }

    #[test]
    fn quoted_and_dash_heredocs() {
        let c = parse("$ cat <<-'X'\n\tz\n\tX\nz\n", 1).unwrap();
        assert_eq!(c[0].expected, "z");
    }

    #[test]
    fn bad_console_blocks() {
        assert_eq!(parse("hello\n", 5).unwrap_err().0, 5);
        assert!(parse("\n\n", 5).unwrap_err().1.contains("no `$ command`"));
        assert!(parse("$ echo\n$\n", 3).unwrap_err() == (4, "console block: `$` with no command".into()));
        assert!(parse("$ cat <<EOF\nnever closed\n", 1).unwrap_err().1.contains("never closed"));
    }
}
