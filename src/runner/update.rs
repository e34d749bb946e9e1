//! Update mode (`--update`): recording what a block printed as its new expectation. `sh` blocks
//! get their `.snap` file rewritten, console blocks their body in the Markdown. Only files whose
//! content changes are written.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// Lines of the recorded text that equal a rendered template line get their `{{ … }}` source
/// back, so recording does not freeze values that came from variables or facts; every other
/// line goes through `escape`, so that it reads back as itself (output that holds `{{ name }}`).
pub fn restore_templates(raw: &str, rendered: &str, recorded: &str, escape: impl Fn(&str) -> String) -> String {
    // Every rendered line of the old expectation maps back to its source, which is known to
    // render to it (identical lines included: they need no escaping).
    let sources: std::collections::HashMap<&str, &str> = if raw.lines().count() != rendered.lines().count() {
        Default::default()
    } else {
        rendered.lines().zip(raw.lines()).collect()
    };
    let mut out: Vec<String> = Vec::new();
    for line in recorded.lines() {
        out.push(match sources.get(line) {
            Some(source) => source.to_string(),
            None => escape(line),
        });
    }
    let mut text = out.join("\n");
    if recorded.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// The recorded text as a block body or snapshot body: always one final newline.
pub fn as_body(text: &str) -> String {
    let t = text.trim_end_matches('\n');
    if t.is_empty() { String::new() } else { format!("{t}\n") }
}

/// `body`, to replace `span` of `source`, with the blockquote markers and indentation that the
/// block's lines carry there (a fence in `> ` quotes or in a list item). The span starts after
/// the first line's prefix; an empty span starts at the closing fence's line.
pub fn in_container(source: &str, span: &Range<usize>, body: &str) -> String {
    let line_start = source[..span.start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let is_prefix = |p: &str| p.chars().all(|c| matches!(c, ' ' | '\t' | '>'));
    let (prefix, first_prefixed) = if span.is_empty() {
        let line = &source[line_start..];
        let len = line.len() - line.trim_start_matches([' ', '\t', '>']).len();
        (&line[..len], true)
    } else {
        (&source[line_start..span.start], false)
    };
    if prefix.is_empty() || !is_prefix(prefix) {
        return body.to_string();
    }
    let mut out = String::with_capacity(body.len() + 8 * prefix.len());
    for (i, line) in body.split_inclusive('\n').enumerate() {
        if i > 0 || first_prefixed {
            out.push_str(if line.trim().is_empty() { prefix.trim_end() } else { prefix });
        }
        out.push_str(line);
    }
    out
}

/// Replace byte ranges of `source` (non-overlapping) with new text.
pub fn apply(source: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = source.to_string();
    for (range, text) in edits {
        out.replace_range(range, &text);
    }
    out
}

/// Write the rewritten Markdown if it changed; returns the path when it did.
pub fn rewrite_markdown(
    path: &Path,
    source: &str,
    edits: Vec<(Range<usize>, String)>,
) -> std::io::Result<Option<PathBuf>> {
    if edits.is_empty() {
        return Ok(None);
    }
    let new = apply(source, edits);
    if new == source {
        return Ok(None);
    }
    std::fs::write(path, new)?;
    Ok(Some(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_sources_come_back_on_identical_lines() {
        let raw = "name: {{ name }}\nstatic\n";
        let rendered = "name: web\nstatic\n";
        let same = |l: &str| l.to_string();
        assert_eq!(restore_templates(raw, rendered, "name: web\nnew line\n", same), "name: {{ name }}\nnew line\n");
        assert_eq!(restore_templates(raw, rendered, "name: db\n", same), "name: db\n");
        assert_eq!(restore_templates("plain", "plain", "other", same), "other");
        let upper = |l: &str| l.to_uppercase();
        assert_eq!(restore_templates(raw, rendered, "name: web\nnew\n", upper), "name: {{ name }}\nNEW\n");
    }

    #[test]
    fn edits_apply_back_to_front() {
        let src = "aaa BBB ccc DDD";
        let out = apply(src, vec![(4..7, "b".into()), (12..15, "dddd".into())]);
        assert_eq!(out, "aaa b ccc dddd");
    }

    #[test]
    fn markdown_is_only_written_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.md");
        std::fs::write(&path, "x\n").unwrap();
        assert_eq!(rewrite_markdown(&path, "x\n", vec![(0..1, "x".into())]).unwrap(), None);
        assert_eq!(rewrite_markdown(&path, "x\n", vec![(0..1, "y".into())]).unwrap(), Some(path.clone()));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "y\n");
    }

    #[test]
    fn bodies_end_with_one_newline() {
        assert_eq!(as_body("a\n\n"), "a\n");
        assert_eq!(as_body("a"), "a\n");
        assert_eq!(as_body(""), "");
    }

    #[test]
    fn bodies_keep_their_blockquote_and_list_indentation() {
        let src = "> ```console\n> $ echo a\n> old\n> ```\n\n1. x\n\n   ```console\n   $ echo b\n   ```\n";
        let quoted = src.find("$ echo a").unwrap()..src.find("> ```\n\n").unwrap();
        let new = in_container(src, &quoted, "$ echo a\na\n\nb\n");
        assert_eq!(new, "$ echo a\n> a\n>\n> b\n");
        let listed = src.find("$ echo b").unwrap()..src.rfind("   ```").unwrap();
        assert_eq!(in_container(src, &listed, "$ echo b\nb\n"), "$ echo b\n   b\n");
        let top = "```console\n$ x\n```\n";
        assert_eq!(in_container(top, &(11..15), "$ x\ny\n"), "$ x\ny\n");
    }
}
