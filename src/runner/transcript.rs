//! Console transcripts: each command's prompt line(s) followed by its output, the layout of a
//! console block's body. Blank lines between one command's output and the next `$` are layout
//! (the parser drops them from the expectation), so transcripts leave them out and update mode
//! puts them back where the author had them.

use crate::tutorial::ConsoleCommand;

/// Prompt, then output; every section ends with a newline; trailing blank output lines dropped.
pub fn build<'a>(sections: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (prompt, output) in sections {
        out.push_str(prompt.trim_end_matches('\n'));
        out.push('\n');
        let output = output.trim_end_matches(['\n', ' ', '\t', '\r']);
        if !output.is_empty() {
            out.push_str(output);
            out.push('\n');
        }
    }
    out
}

/// The expected transcript of a console block (before templates are rendered).
pub fn expected(commands: &[ConsoleCommand]) -> String {
    build(commands.iter().map(|c| (c.prompt_text.as_str(), c.expected.as_str())))
}

/// Blank lines the author put before each command's prompt (0 for the first command).
fn separators(body: &str, body_line: usize, commands: &[ConsoleCommand]) -> Vec<usize> {
    let lines: Vec<&str> = body.lines().collect();
    commands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                return 0;
            }
            let at = c.line.saturating_sub(body_line).min(lines.len());
            lines[..at].iter().rev().take_while(|l| l.trim().is_empty()).count()
        })
        .collect()
}

/// `text` (a transcript) laid out like `body`: the blank lines that preceded each prompt there
/// are inserted before the same prompt here.
pub fn relayout(body: &str, body_line: usize, commands: &[ConsoleCommand], text: &str) -> String {
    let seps = separators(body, body_line, commands);
    let mut out: Vec<&str> = Vec::new();
    let mut next = 1;
    for line in text.lines() {
        if let Some(c) = commands.get(next)
            && c.prompt_text.lines().next() == Some(line)
        {
            out.extend(std::iter::repeat_n("", seps[next]));
            next += 1;
        }
        out.push(line);
    }
    let mut s = out.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: usize, prompt: &str, expected: &str) -> ConsoleCommand {
        ConsoleCommand {
            line,
            prompt_text: prompt.into(),
            command: prompt.trim_start_matches("$ ").into(),
            expected: expected.into(),
        }
    }

    #[test]
    fn build_skips_empty_outputs_and_trailing_blank_lines() {
        assert_eq!(build([("$ a", "x\n\n"), ("$ b", ""), ("$ c", "y")]), "$ a\nx\n$ b\n$ c\ny\n");
    }

    #[test]
    fn relayout_restores_the_authors_blank_lines() {
        let body = "$ a\nx\n\n$ b\ny\n\n\n$ c\n";
        let cmds = [cmd(10, "$ a", "x"), cmd(13, "$ b", "y"), cmd(17, "$ c", "")];
        let text = "$ a\nX\n$ b\nY\n$ c\nZ\n";
        assert_eq!(relayout(body, 10, &cmds, text), "$ a\nX\n\n$ b\nY\n\n\n$ c\nZ\n");
        assert_eq!(relayout(body, 10, &cmds, &expected(&cmds)), body);
    }
}
