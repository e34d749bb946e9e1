//! What the reader sees under a command that passed: the expected output with every wildcard
//! line (`[..]`, `[NAME]`, ` (re)`, `{{ expr }}`) replaced by the line the run actually printed.
//! A `...` line stays: the author elided those lines on purpose.

use crate::snapshot::Matcher;
use crate::tutorial::ConsoleCommand;

enum Line {
    /// `...`: any number of lines.
    Elided,
    /// A blank line of a console block's layout (before a `$` prompt, or at either end): the
    /// parser drops it from the expectation and the run's transcript never has it, so it
    /// matches nothing and stays on the page as the author put it.
    Layout,
    /// A line pattern, as the matcher reads it.
    Pattern { text: String },
}

/// `None` when `actual` does not match `expected` (the caller then shows `expected`).
pub fn fill(matcher: &Matcher, expected: &str, actual: &str) -> Option<String> {
    fill_lines(matcher, expected.lines().map(line_pattern).collect(), actual)
}

/// A console block's body (starting on `body_line`) filled from the run's transcript.
pub fn fill_console(
    matcher: &Matcher,
    body: &str,
    body_line: usize,
    commands: &[ConsoleCommand],
    actual: &str,
) -> Option<String> {
    let rows: Vec<&str> = body.lines().collect();
    let mut layout = vec![false; rows.len()];
    // The parser counted the blank lines before each prompt; those at the very end of the block
    // are layout too.
    for c in commands {
        let at = c.line.saturating_sub(body_line).min(rows.len());
        layout[at.saturating_sub(c.blank_before)..at].iter_mut().for_each(|l| *l = true);
    }
    let trailing = rows.iter().rev().take_while(|r| r.trim().is_empty()).count();
    layout[rows.len() - trailing..].iter_mut().for_each(|l| *l = true);
    let pats = rows.iter().zip(layout).map(|(row, is_layout)| if is_layout { Line::Layout } else { line_pattern(row) });
    fill_lines(matcher, pats.collect(), actual)
}

fn fill_lines(matcher: &Matcher, pats: Vec<Line>, actual: &str) -> Option<String> {
    // The matcher aligns the pattern lines; layout lines take no part and are put back after.
    let expected: Vec<&str> = pats
        .iter()
        .filter_map(|p| match p {
            Line::Elided => Some("..."),
            Line::Layout => None,
            Line::Pattern { text, .. } => Some(text.as_str()),
        })
        .collect();
    let cover = matcher.cover(&expected.join("\n"), actual)?;
    let acts: Vec<&str> = actual.lines().map(str::trim_end).collect();
    let mut taken = cover.into_iter();
    let mut out: Vec<&str> = Vec::with_capacity(pats.len());
    for p in &pats {
        match p {
            Line::Layout => out.push(""),
            Line::Elided => {
                taken.next();
                out.push("...");
            }
            Line::Pattern { .. } => out.push(acts[taken.next()?.start]),
        }
    }
    let mut text = out.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    Some(text)
}

fn line_pattern(line: &str) -> Line {
    let line = line.trim_end();
    if line == "..." {
        return Line::Elided;
    }
    // The run rendered `{{ expr }}` before matching; its value is unknown here, so it matches
    // like `[..]`.
    let text = template_holes().replace_all(line, "[..]").into_owned();
    Line::Pattern { text }
}

fn template_holes() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\{\{.*?\}\}").expect("valid regex"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn matcher() -> Matcher {
        let mut r = BTreeMap::new();
        r.insert("POD".to_string(), "cilium-[a-z0-9]{5}".to_string());
        Matcher::new(&r).unwrap()
    }

    #[test]
    fn wildcards_take_the_actual_line() {
        let exp = "NAME STATUS\n[POD] Running\nip [..] dev eth0\nnode {{ nodes.w.ip }}\nuptime [0-9]+s (re)\n";
        let act = "NAME STATUS\ncilium-ab12c Running\nip 10.0.0.1 dev eth0\nnode 172.18.0.3\nuptime 42s\n";
        assert_eq!(fill(&matcher(), exp, act).unwrap(), act);
    }

    #[test]
    fn elided_lines_stay_elided() {
        let exp = "first\n...\nlast [..]\n";
        let act = "first\nnoise 1\nnoise 2\nlast line\n";
        assert_eq!(fill(&matcher(), exp, act).unwrap(), "first\n...\nlast line\n");
        assert_eq!(fill(&matcher(), "...\n", "").unwrap(), "...\n");
    }

    #[test]
    fn trailing_space_is_not_significant() {
        assert_eq!(fill(&matcher(), "a  \nb\n", "a\nb  ").unwrap(), "a\nb\n");
    }

    #[test]
    fn mismatch_gives_none() {
        assert!(fill(&matcher(), "a\nb\n", "a\nc\n").is_none());
        assert!(fill(&matcher(), "a\n", "a\nb\n").is_none());
        assert!(fill(&matcher(), "[POD]\n", "kube-proxy-x\n").is_none());
    }

    #[test]
    fn console_layout_blank_lines_stay_without_being_matched() {
        let body = "\n$ echo a\n[..]\n\n\n$ echo b\n\n$ true\n\n";
        let t = crate::tutorial::parse_str(std::path::Path::new("t.md"), &format!("## S\n```console\n{body}```\n"))
            .unwrap();
        let b = &t.steps[0].blocks[0];
        let crate::tutorial::BlockKind::Console(cmds) = &b.kind else { panic!() };
        let transcript = "$ echo a\na\n$ echo b\n$ true\n";
        let filled = fill_console(&matcher(), &b.body, b.body_line, cmds, transcript).unwrap();
        assert_eq!(filled, "\n$ echo a\na\n\n\n$ echo b\n\n$ true\n\n");
        assert!(fill_console(&matcher(), &b.body, b.body_line, cmds, "$ echo a\na\n$ echo c\n$ true\n").is_none());
    }

    #[test]
    fn empty_output() {
        assert_eq!(fill(&matcher(), "", "").unwrap(), "");
    }
}
