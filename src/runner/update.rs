//! Update mode (`--update`): recording what a block printed as its new expectation. `sh` blocks
//! get their `.snap` file rewritten, console blocks their body in the Markdown. Only files whose
//! content changes are written.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// Lines of the recorded text that equal a rendered template line get their `{{ … }}` source
/// back, so recording does not freeze values that came from variables or facts.
pub fn restore_templates(raw: &str, rendered: &str, recorded: &str) -> String {
    if raw == rendered || raw.lines().count() != rendered.lines().count() {
        return recorded.to_string();
    }
    let sources: std::collections::HashMap<&str, &str> =
        rendered.lines().zip(raw.lines()).filter(|(r, s)| r != s).collect();
    let mut out: Vec<&str> = Vec::new();
    for line in recorded.lines() {
        out.push(sources.get(line).copied().unwrap_or(line));
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
        assert_eq!(restore_templates(raw, rendered, "name: web\nnew line\n"), "name: {{ name }}\nnew line\n");
        assert_eq!(restore_templates(raw, rendered, "name: db\n"), "name: db\n");
        assert_eq!(restore_templates("plain", "plain", "other"), "other");
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
}
