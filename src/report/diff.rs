//! Unified diff of expected vs actual with the line numbers of both sides, coloured for a
//! terminal or plain for JSON, JUnit and the run record.

use console::Style;
use std::collections::HashMap;
use std::ops::Range;
use std::time::Instant;

use similar::{Algorithm, ChangeTag, DiffOp};

use crate::runner::Mismatch;
use crate::runner::outcome::file_line;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// How long the diff may search for the smallest edit script; past it `similar` settles for a
/// larger one, so a huge mismatch is still reported at once.
const DEADLINE: std::time::Duration = std::time::Duration::from_millis(300);

/// Past this many lines (both sides together) the diff is anchored first (see [`anchored`]):
/// Myers alone costs O(n·d) and, on 100k lines with a hundred scattered changes, ran into the
/// deadline and then reported the whole middle as removed and added. Smaller texts keep
/// Myers' minimal diff.
const ANCHOR_FROM: usize = 2_000;

/// Lines of hunks shown at most; the rest is summed up in one note line (which hunks, how many
/// lines removed and added), since nobody reads a diff of thousands of lines in a report.
const MAX_SHOWN: usize = 300;

fn with_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') { s.to_string() } else { format!("{s}\n") }
}

/// `--- expected (source)` / `+++ actual`, then hunks whose lines carry `old new │` numbers.
pub fn unified(m: &Mismatch, colour: bool) -> String {
    let style = |s: Style| if colour { s.force_styling(true) } else { Style::new() };
    let (del, ins, head, dim) =
        (style(Style::new().red()), style(Style::new().green()), style(Style::new().cyan()), style(Style::new().dim()));
    let (expected, actual) = (with_newline(&m.expected), with_newline(&m.actual));
    let (old, new): (Vec<&str>, Vec<&str>) =
        (expected.split_inclusive('\n').collect(), actual.split_inclusive('\n').collect());
    let ops = m.diff.get_or_init(|| {
        let deadline = Some(Instant::now() + DEADLINE);
        if old.len() + new.len() > ANCHOR_FROM {
            anchored(&old, &new, deadline)
        } else {
            similar::capture_diff_slices_deadline(Algorithm::Myers, &old, &new, deadline)
        }
    });
    let mut out = String::new();
    out.push_str(&format!("{}\n", del.apply_to(format!("--- expected ({})", m.source))));
    out.push_str(&format!("{}\n", ins.apply_to("+++ actual")));
    let groups = similar::group_diff_ops(ops.to_vec(), CONTEXT);
    let mut shown = 0;
    for (g, group) in groups.iter().enumerate() {
        let size: usize = group.iter().map(rendered).sum();
        if shown > 0 && shown + size > MAX_SHOWN {
            out.push_str(&format!("{}\n", head.apply_to(cut_note(&groups[g..]))));
            break;
        }
        shown += size;
        let (first, last) = (&group[0], &group[group.len() - 1]);
        let olds = first.old_range().start..last.old_range().end;
        let news = first.new_range().start..last.new_range().end;
        let (old_at, new_at) = (file_line(&m.expected_lines, olds.start), file_line(&m.actual_lines, news.start));
        let hunk = format!("@@ -{old_at},{} +{new_at},{} @@", olds.len(), news.len());
        out.push_str(&format!("{}\n", head.apply_to(hunk)));
        // A first hunk bigger than the limit is shown up to it.
        let changes = group.iter().flat_map(|op| op.iter_changes(&old, &new)).take(MAX_SHOWN);
        for change in changes {
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
        if size > MAX_SHOWN {
            let rest = size - MAX_SHOWN;
            out.push_str(&format!("{}\n", head.apply_to(format!("… {rest} more lines of this hunk not shown"))));
            if g + 1 < groups.len() {
                out.push_str(&format!("{}\n", head.apply_to(cut_note(&groups[g + 1..]))));
            }
            break;
        }
    }
    out
}

/// Patience-style anchoring: lines that occur exactly once on each side are paired, the longest
/// chain of pairs in the same order on both sides (a longest increasing subsequence, O(n log n))
/// is kept as equal lines, and Myers diffs the gaps between them, each small when the changes
/// are scattered. Without such lines it is Myers over the whole text.
fn anchored(old: &[&str], new: &[&str], deadline: Option<Instant>) -> Vec<DiffOp> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..].iter().rev().zip(new[prefix..].iter().rev()).take_while(|(a, b)| a == b).count();
    let (o, n) = (prefix..old.len() - suffix, prefix..new.len() - suffix);
    // Per distinct line: occurrences on each side (up to 2) and its index on the new side.
    let mut seen: HashMap<&str, (u8, u8, usize)> = HashMap::with_capacity(o.len());
    for i in o.clone() {
        let e = seen.entry(old[i]).or_insert((0, 0, 0));
        e.0 = e.0.saturating_add(1).min(2);
    }
    for j in n.clone() {
        if let Some(e) = seen.get_mut(new[j]) {
            e.1 = e.1.saturating_add(1).min(2);
            e.2 = j;
        }
    }
    let pairs: Vec<(usize, usize)> = o
        .clone()
        .filter_map(|i| match seen[old[i]] {
            (1, 1, j) => Some((i, j)),
            _ => None,
        })
        .collect();
    let mut ops = Vec::new();
    let mut equal = |ops: &mut Vec<DiffOp>, old_index: usize, new_index: usize, len: usize| {
        if len == 0 {
            return;
        }
        match ops.last_mut() {
            Some(DiffOp::Equal { old_index: oi, len: l, .. }) if *oi + *l == old_index => *l += len,
            _ => ops.push(DiffOp::Equal { old_index, new_index, len }),
        }
    };
    equal(&mut ops, 0, 0, prefix);
    let (mut at_old, mut at_new) = (o.start, n.start);
    for (i, j) in increasing(&pairs) {
        gap(&mut ops, old, at_old..i, new, at_new..j, deadline, &mut equal);
        equal(&mut ops, i, j, 1);
        (at_old, at_new) = (i + 1, j + 1);
    }
    gap(&mut ops, old, at_old..o.end, new, at_new..n.end, deadline, &mut equal);
    equal(&mut ops, o.end, n.end, suffix);
    ops
}

/// Myers between two anchors, its equal runs joined to their neighbours.
fn gap(
    ops: &mut Vec<DiffOp>,
    old: &[&str],
    o: Range<usize>,
    new: &[&str],
    n: Range<usize>,
    deadline: Option<Instant>,
    equal: &mut impl FnMut(&mut Vec<DiffOp>, usize, usize, usize),
) {
    if o.is_empty() && n.is_empty() {
        return;
    }
    for op in similar::capture_diff_deadline(Algorithm::Myers, old, o, new, n, deadline) {
        match op {
            DiffOp::Equal { old_index, new_index, len } => equal(ops, old_index, new_index, len),
            op => ops.push(op),
        }
    }
}

/// The longest chain of `pairs` (sorted by their first index) whose second indexes increase.
fn increasing(pairs: &[(usize, usize)]) -> Vec<(usize, usize)> {
    // tails[k]: the pair ending the best chain of length k + 1 found so far (smallest end).
    let mut tails: Vec<usize> = Vec::new();
    let mut before: Vec<Option<usize>> = vec![None; pairs.len()];
    for (p, &(_, j)) in pairs.iter().enumerate() {
        let k = tails.partition_point(|&t| pairs[t].1 < j);
        before[p] = k.checked_sub(1).map(|k| tails[k]);
        if k == tails.len() {
            tails.push(p);
        } else {
            tails[k] = p;
        }
    }
    let mut chain = Vec::with_capacity(tails.len());
    let mut at = tails.last().copied();
    while let Some(p) = at {
        chain.push(pairs[p]);
        at = before[p];
    }
    chain.reverse();
    chain
}

/// Lines an operation shows (a replacement shows both sides).
fn rendered(op: &DiffOp) -> usize {
    match *op {
        DiffOp::Equal { len, .. } => len,
        DiffOp::Delete { old_len, .. } => old_len,
        DiffOp::Insert { new_len, .. } => new_len,
        DiffOp::Replace { old_len, new_len, .. } => old_len + new_len,
    }
}

/// The note standing for the hunks left out: how many, and the lines they remove and add.
fn cut_note(rest: &[Vec<DiffOp>]) -> String {
    let (mut removed, mut added) = (0, 0);
    for op in rest.iter().flatten() {
        match op {
            DiffOp::Delete { old_len, .. } => removed += old_len,
            DiffOp::Insert { new_len, .. } => added += new_len,
            DiffOp::Replace { old_len, new_len, .. } => (removed, added) = (removed + old_len, added + new_len),
            DiffOp::Equal { .. } => {}
        }
    }
    let hunks = if rest.len() == 1 { "1 more hunk".to_string() } else { format!("{} more hunks", rest.len()) };
    format!("… {hunks} not shown: {removed} lines removed, {added} added")
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
            diff: Default::default(),
        }
    }

    /// The edit script is computed by the first report and reused by the next ones (the human
    /// output and the run record of one run; clones of the result share it).
    #[test]
    fn each_mismatch_is_diffed_once() {
        let mm = m("a\nb\nc", "a\nB\nc");
        assert!(!mm.diff.is_computed());
        let plain = unified(&mm, false);
        assert!(mm.diff.is_computed());
        let copy = mm.clone();
        // A script that is not the texts' own shows that the cached one is used: nothing
        // changes, so no hunk.
        let other = m("x", "y");
        let fake = similar::capture_diff_slices(Algorithm::Myers, &["x\n"], &["x\n"]);
        other.diff.get_or_init(|| fake);
        assert_eq!(unified(&other, false), "--- expected (t.md:4)\n+++ actual\n");
        assert_eq!(unified(&copy, false), plain);
        assert!(plain.contains("-b") && plain.contains("+B"), "{plain}");
        // The coloured form has the same lines.
        assert_eq!(console::strip_ansi_codes(&unified(&copy, true)), plain);
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
    fn a_long_output_with_scattered_changes_gets_small_hunks_and_a_cut_note() {
        let exp: Vec<String> =
            (1..=40_000).map(|i| if i % 400 == 0 { format!("x{i}") } else { i.to_string() }).collect();
        let act: Vec<String> = (1..=40_000).map(|i| i.to_string()).collect();
        let d = unified(&m(&exp.join("\n"), &act.join("\n")), false);
        // Each change is one line replaced, with its context: not the whole middle.
        assert!(d.contains("@@ -397,7 +397,7 @@\n"), "{d}");
        assert!(d.contains(" 800      │-x800\n      800 │+800\n"), "{d}");
        // 100 hunks of 8 lines; the first 37 fit in the limit, the rest is one note.
        let hunks = d.matches("@@ -").count();
        assert_eq!(hunks, MAX_SHOWN / 8, "{d}");
        assert_eq!(d.lines().count(), 2 + hunks * 9 + 1, "{d}");
        let left = 100 - hunks;
        assert!(d.ends_with(&format!("… {left} more hunks not shown: {left} lines removed, {left} added\n")), "{d}");
    }

    #[test]
    fn anchored_ops_cover_both_sides_in_order() {
        // Repeated lines (never anchors), a moved block, and changes at both ends.
        let old: Vec<String> = (0..3000).map(|i| if i % 7 == 0 { "same\n".into() } else { format!("{i}\n") }).collect();
        let mut new = old.clone();
        new.drain(100..110);
        new.splice(2000..2000, (100..110).map(|i| format!("{i}\n")));
        new[0] = "first\n".into();
        new.push("last\n".into());
        let (old, new): (Vec<&str>, Vec<&str>) =
            (old.iter().map(String::as_str).collect(), new.iter().map(String::as_str).collect());
        let ops = anchored(&old, &new, None);
        let (mut o, mut n) = (Vec::new(), Vec::new());
        for op in &ops {
            assert_eq!((op.old_range().start, op.new_range().start), (o.len(), n.len()), "{op:?}");
            for c in op.iter_changes(&old, &new) {
                match c.tag() {
                    ChangeTag::Equal => (o.push(c.value()), n.push(c.value())),
                    ChangeTag::Delete => (o.push(c.value()), ()),
                    ChangeTag::Insert => ((), n.push(c.value())),
                };
            }
        }
        assert_eq!((o, n), (old.clone(), new.clone()));
        let changed: usize = ops.iter().filter(|op| !matches!(op, DiffOp::Equal { .. })).map(rendered).sum();
        assert!(changed <= 2 * (10 + 2) + 2, "a small edit script: {changed} lines");
    }

    #[test]
    fn a_hunk_bigger_than_the_limit_is_shown_up_to_it() {
        let exp: Vec<String> = (0..1000).map(|i| format!("a{i}")).collect();
        let act: Vec<String> = (0..1000).map(|i| format!("b{i}")).collect();
        let d = unified(&m(&exp.join("\n"), &act.join("\n")), false);
        assert_eq!(d.lines().count(), 3 + MAX_SHOWN + 1, "{d}");
        assert!(d.ends_with(&format!("… {} more lines of this hunk not shown\n", 2000 - MAX_SHOWN)), "{d}");
    }

    #[test]
    fn colour_uses_ansi_escapes_only_when_asked() {
        assert!(unified(&m("a", "b"), true).contains("\u{1b}["));
        assert!(!unified(&m("a", "b"), false).contains("\u{1b}["));
    }
}
