//! Unified diff of expected vs actual with the line numbers of both sides, coloured for a
//! terminal or plain for JSON, JUnit and the run record.

use console::Style;
use similar::{ChangeTag, TextDiff};

use crate::runner::Mismatch;
use crate::runner::outcome::file_line;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// How long the diff may search for the smallest edit script; past it `similar` settles for a
/// larger one, so a huge mismatch is still reported at once.
const DEADLINE: std::time::Duration = std::time::Duration::from_millis(300);

fn with_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') { s.to_string() } else { format!("{s}\n") }
}

/// `--- expected (source)` / `+++ actual`, then hunks whose lines carry `old new │` numbers.
pub fn unified(m: &Mismatch, colour: bool) -> String {
    let style = |s: Style| if colour { s.force_styling(true) } else { Style::new() };
    let (del, ins, head, dim) =
        (style(Style::new().red()), style(Style::new().green()), style(Style::new().cyan()), style(Style::new().dim()));
    let (expected, actual) = (with_newline(&m.expected), with_newline(&m.actual));
    let diff = TextDiff::configure().deadline(std::time::Instant::now() + DEADLINE).diff_lines(&expected, &actual);
    let mut out = String::new();
    out.push_str(&format!("{}\n", del.apply_to(format!("--- expected ({})", m.source))));
    out.push_str(&format!("{}\n", ins.apply_to("+++ actual")));
    for group in diff.grouped_ops(CONTEXT) {
        let (first, last) = (&group[0], &group[group.len() - 1]);
        let old = first.old_range().start..last.old_range().end;
        let new = first.new_range().start..last.new_range().end;
        let (old_at, new_at) = (file_line(&m.expected_lines, old.start), file_line(&m.actual_lines, new.start));
        let hunk = format!("@@ -{old_at},{} +{new_at},{} @@", old.len(), new.len());
        out.push_str(&format!("{}\n", head.apply_to(hunk)));
        for op in &group {
            for change in diff.iter_changes(op) {
                let num = |i: Option<usize>, lines: &[usize]| {
                    i.map(|i| format!("{:>4}", file_line(lines, i))).unwrap_or_else(|| "    ".into())
                };
                let gutter = format!(
                    "{} {} │",
                    num(change.old_index(), &m.expected_lines),
                    num(change.new_index(), &m.actual_lines)
                );
                let text = change.value().trim_end_matches('\n');
                let line = match change.tag() {
                    ChangeTag::Delete => format!("{}{}", dim.apply_to(gutter), del.apply_to(format!("-{text}"))),
                    ChangeTag::Insert => format!("{}{}", dim.apply_to(gutter), ins.apply_to(format!("+{text}"))),
                    ChangeTag::Equal => format!("{} {text}", dim.apply_to(gutter)),
                };
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(expected: &str, actual: &str) -> Mismatch {
        Mismatch {
            source: "t.md:4".into(),
            expected: expected.into(),
            actual: actual.into(),
            expected_lines: Vec::new(),
            actual_lines: Vec::new(),
        }
    }

    #[test]
    fn numbers_are_file_lines() {
        let mut mm = m("$ a\nx\n$ b\ny", "$ a\nx\n$ b\nz");
        // The second command sits after a blank line in the file.
        mm.expected_lines = vec![10, 11, 13, 14];
        mm.actual_lines = vec![10, 11, 13, 14];
        let d = unified(&mm, false);
        assert!(d.contains("@@ -10,4 +10,4 @@"), "{d}");
        assert!(d.contains("  14      │-y\n"), "{d}");
        assert!(d.contains("       14 │+z\n"), "{d}");
        assert_eq!(file_line(&[10, 11], 3), 13, "past the end counts on");
    }

    #[test]
    fn plain_diff_numbers_both_sides() {
        let d = unified(&m("a\nb\nc", "a\nB\nc"), false);
        assert_eq!(
            d,
            "--- expected (t.md:4)\n+++ actual\n@@ -1,3 +1,3 @@\n   1    1 │ a\n   2      │-b\n        2 │+B\n   3    3 │ c\n"
        );
    }

    #[test]
    fn far_apart_changes_get_separate_hunks() {
        let exp: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
        let mut act = exp.clone();
        act[1] = "two".into();
        act[18] = "nineteen".into();
        let d = unified(&m(&exp.join("\n"), &act.join("\n")), false);
        assert_eq!(d.matches("@@ -").count(), 2, "{d}");
        assert!(d.contains("  19      │-19\n"), "{d}");
    }

    #[test]
    fn colour_uses_ansi_escapes_only_when_asked() {
        assert!(unified(&m("a", "b"), true).contains("\u{1b}["));
        assert!(!unified(&m("a", "b"), false).contains("\u{1b}["));
    }
}
