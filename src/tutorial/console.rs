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

/// Heredocs a command line opens: `<<EOF`, `<<'EOF'`, `<<"EOF"`, `<<-EOF`, `<<\EOF`, read the
/// way the shell reads them: `<<` inside quotes, after a backslash, in a comment, in arithmetic
/// (`$((1<<2))`) or as `<<<` (a here-string) opens nothing.
fn heredoc_delimiters(line: &str) -> Vec<(String, bool)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // Depth of `((`/`$((` arithmetic, where `<<` is a shift.
    let mut arith = 0usize;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'\'' => {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' if i == 0 || b[i - 1].is_ascii_whitespace() || b";&|(".contains(&b[i - 1]) => break,
            b'(' if b.get(i + 1) == Some(&b'(') => {
                arith += 1;
                i += 2;
            }
            b')' if arith > 0 && b.get(i + 1) == Some(&b')') => {
                arith -= 1;
                i += 2;
            }
            b'<' if arith == 0 && b.get(i + 1) == Some(&b'<') => {
                if b.get(i + 2) == Some(&b'<') {
                    i += 3;
                    continue;
                }
                i += 2;
                let strip_tabs = b.get(i) == Some(&b'-');
                if strip_tabs {
                    i += 1;
                }
                while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                    i += 1;
                }
                let (word, next) = heredoc_word(&line[i..]);
                if !word.is_empty() {
                    out.push((word, strip_tabs));
                }
                i += next.max(1);
            }
            _ => i += 1,
        }
    }
    out
}

/// The delimiter word at the start of `s`, quotes removed, and its length in `s`.
fn heredoc_word(s: &str) -> (String, usize) {
    let b = s.as_bytes();
    let mut word = Vec::new();
    let mut i = 0;
    while i < b.len() && !b[i].is_ascii_whitespace() && !b";&|<>()".contains(&b[i]) {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    word.push(b[i]);
                    i += 1;
                }
                i += 1;
            }
            b'\\' if i + 1 < b.len() => {
                word.push(b[i + 1]);
                i += 2;
            }
            c => {
                word.push(c);
                i += 1;
            }
        }
    }
    (String::from_utf8_lossy(&word).into_owned(), i.min(b.len()))
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
    fn only_real_heredoc_syntax_opens_one() {
        for cmd in [
            "echo 'a<<b'",
            "echo \"a<<b\"",
            "echo a\\<<b",
            "echo $((1<<2))",
            "(( x = 1<<3 ))",
            "echo hi # cat <<EOF",
            "cat <<<EOF",
        ] {
            let c = parse(&format!("$ {cmd}\nout\n"), 1).unwrap_or_else(|e| panic!("{cmd}: {e:?}"));
            assert_eq!((c.len(), c[0].expected.as_str()), (1, "out"), "{cmd}");
        }
        for (cmd, delim) in [("cat <<EOF", "EOF"), ("cat << 'E F'", "E F"), ("cat <<\\END", "END"), ("a<<\"X\"Y", "XY")]
        {
            let c = parse(&format!("$ {cmd}\nbody\n{delim}\nout\n"), 1).unwrap();
            assert_eq!((c[0].command.lines().count(), c[0].expected.as_str()), (3, "out"), "{cmd}");
        }
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
