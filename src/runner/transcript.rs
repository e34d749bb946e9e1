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

/// `text` (a transcript) laid out like the block's body: the blank lines the author put before
/// each prompt after the first (`ConsoleCommand::blank_before`) are inserted before the same
/// prompt here.
pub fn relayout(commands: &[ConsoleCommand], text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut next = 1;
    for line in text.lines() {
        if let Some(c) = commands.get(next)
            && c.prompt_text.lines().next() == Some(line)
        {
            out.extend(std::iter::repeat_n("", c.blank_before));
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

/// File lines of the expected transcript of `commands` (as [`expected`] builds it).
pub fn expected_lines(commands: &[ConsoleCommand]) -> Vec<usize> {
    let mut out = Vec::new();
    for c in commands {
        let prompt = c.prompt_text.lines().count().max(1);
        let output = c.expected.trim_end_matches(['\n', ' ', '\t', '\r']).lines().count();
        out.extend(c.line..c.line + prompt + output);
    }
    out
}

/// File lines that the lines of transcript `text` would take if it replaced the block's body
/// ([`relayout`] puts the author's blank lines back before each prompt).
pub fn relayout_lines(commands: &[ConsoleCommand], text: &str) -> Vec<usize> {
    let Some(first) = commands.first() else { return Vec::new() };
    let mut out = Vec::new();
    let mut line = first.line;
    let mut next = 1;
    for l in text.lines() {
        if let Some(c) = commands.get(next)
            && c.prompt_text.lines().next() == Some(l)
        {
            line += c.blank_before;
            next += 1;
        }
        out.push(line);
        line += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: usize, prompt: &str, expected: &str, blank_before: usize) -> ConsoleCommand {
        ConsoleCommand {
            line,
            prompt_text: prompt.into(),
            command: prompt.trim_start_matches("$ ").into(),
            expected: expected.into(),
            blank_before,
        }
    }

    #[test]
    fn build_skips_empty_outputs_and_trailing_blank_lines() {
        assert_eq!(build([("$ a", "x\n\n"), ("$ b", ""), ("$ c", "y")]), "$ a\nx\n$ b\n$ c\ny\n");
    }

    #[test]
    fn relayout_restores_the_authors_blank_lines() {
        let body = "$ a\nx\n\n$ b\ny\n\n\n$ c\n";
        let cmds = [cmd(10, "$ a", "x", 0), cmd(13, "$ b", "y", 1), cmd(17, "$ c", "", 2)];
        let text = "$ a\nX\n$ b\nY\n$ c\nZ\n";
        assert_eq!(relayout(&cmds, text), "$ a\nX\n\n$ b\nY\n\n\n$ c\nZ\n");
        assert_eq!(relayout(&cmds, &expected(&cmds)), body);
        assert_eq!(expected_lines(&cmds), vec![10, 11, 13, 14, 17]);
        assert_eq!(relayout_lines(&cmds, "$ a\nX\nX2\n$ b\n$ c\n"), vec![10, 11, 12, 14, 17]);
    }
}
