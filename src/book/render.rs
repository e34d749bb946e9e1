//! The Markdown and HTML pieces the preprocessor puts into a chapter. Code stays in Markdown
//! fences (mdBook highlights them); outputs, badges and diffs are raw HTML with `tutor-*`
//! classes styled by `theme/tutor.css`, which every rewritten chapter carries inline so the
//! preprocessor works in any book without theme set-up.

use super::verdict::Verdict;

pub const STYLE: &str = include_str!("theme/tutor.css");

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// A fenced block with the language only (attributes are for tutor, not readers), fenced with
/// more backticks than the body ever has in a row.
pub fn fence(lang: &str, body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let ticks = "`".repeat(longest.max(2) + 1);
    let body = body.trim_end_matches('\n');
    if body.is_empty() { format!("{ticks}{lang}\n{ticks}") } else { format!("{ticks}{lang}\n{body}\n{ticks}") }
}

/// A command's output, beneath the command.
pub fn output(text: &str) -> String {
    format!(
        "<pre class=\"tutor-output\"><code class=\"nohighlight\">{}</code></pre>",
        escape(text.trim_end_matches('\n'))
    )
}

/// A `file=NAME` block: the file's name as a tab over its (fenced) contents.
pub fn file(name: &str, fenced: &str) -> String {
    format!(
        "<div class=\"tutor-file\">\n<div class=\"tutor-file-name\">{}</div>\n\n{fenced}{BLOCK_CLOSE}",
        escape(name)
    )
}

/// A failed block's diff, open: it is the reason the block failed. Each line is coloured by
/// what it is (removed expectation, added actual output, hunk header), whether the diff carries
/// `old new │` line numbers (tutor's own) or not.
pub fn diff(summary: &str, diff: &str) -> String {
    let lines: Vec<String> = diff.trim_end_matches('\n').split('\n').map(diff_line).collect();
    format!(
        "<details class=\"tutor-diff\" open><summary>{}</summary>\n<pre><code class=\"nohighlight\">{}</code></pre>\n</details>",
        escape(summary),
        lines.join("\n")
    )
}

fn diff_line(line: &str) -> String {
    let class = if line.starts_with("--- ") {
        Some("tutor-diff-del tutor-diff-head")
    } else if line.starts_with("+++ ") {
        Some("tutor-diff-add tutor-diff-head")
    } else if line.starts_with("@@") {
        Some("tutor-diff-hunk")
    } else {
        // After the line-number gutter, if there is one.
        let text = line.split_once('│').map_or(line, |(_, t)| t);
        match text.chars().next() {
            Some('-') => Some("tutor-diff-del"),
            Some('+') => Some("tutor-diff-add"),
            _ => None,
        }
    };
    match class {
        Some(c) => format!("<span class=\"{c}\">{}</span>", escape(line)),
        None => escape(line),
    }
}

/// The label over a failed block: when and where it failed, and why.
pub fn failed_label(text: &str) -> String {
    format!("<div class=\"tutor-failed-label\">{}</div>", escape(text))
}

/// Small labels over a block for the attributes that change what it means (`exit 1`,
/// `background`, …): `(data-attr, label, tooltip)`.
pub fn labels(labels: &[(&str, String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let spans: Vec<String> = labels
        .iter()
        .map(|(attr, label, title)| {
            format!(
                "<span class=\"tutor-label\" data-attr=\"{}\" title=\"{}\">{}</span>",
                escape(attr),
                escape(title),
                escape(label)
            )
        })
        .collect();
    format!("<div class=\"tutor-labels\">{}</div>\n\n", spans.join(""))
}

pub fn note(text: &str) -> String {
    format!("<p class=\"tutor-note\">{}</p>", escape(text))
}

pub fn badge(v: Verdict) -> String {
    format!("<span class=\"tutor-badge tutor-{}\">{}</span>", v.class(), v.label())
}

/// The line under a step heading: badge, then facts about the run (duration, backend, date).
pub fn step_line(v: Verdict, facts: &[String]) -> String {
    let mut s = format!("<div class=\"tutor-step\" data-status=\"{}\">{}", v.class(), badge(v));
    if !facts.is_empty() {
        s.push_str(&format!(" <span class=\"tutor-meta\">{}</span>", escape(&facts.join(" · "))));
    }
    s.push_str("</div>");
    s
}

/// The chapter's "verified on lab, 2026-11-26, 9/9 blocks" line, with the style sheet and the
/// copy script, then the facts of the run it reflects and a link to the chapter's source.
pub fn chapter_line(v: Verdict, text: &str, title: Option<&str>, run: &[String], source: Option<&str>) -> String {
    let title = title.map(|t| format!(" title=\"{}\"", escape(t))).unwrap_or_default();
    let mut facts: Vec<String> = run.iter().map(|f| escape(f)).collect();
    if let Some(url) = source {
        facts.push(format!("<a class=\"tutor-source\" href=\"{}\">source</a>", escape(url)));
    }
    let facts =
        if facts.is_empty() { String::new() } else { format!("<div class=\"tutor-run\">{}</div>", facts.join(" · ")) };
    format!(
        "<style>\n{}</style>\n<script>\n{}</script>\n<div class=\"tutor-chapter\" data-status=\"{}\"{title}>{} {}{facts}</div>",
        STYLE.trim_end_matches('\n').to_string() + "\n",
        COPY_SCRIPT.trim_end_matches('\n').to_string() + "\n",
        v.class(),
        badge(v),
        escape(text)
    )
}

/// mdBook's copy button copies the whole code block; on a console block that is prompts and
/// outputs. A block that carries `data-copy` gets exactly that text copied instead.
pub const COPY_SCRIPT: &str = include_str!("theme/copy.js");

/// Open and close the wrapper of one command block. The blank lines let Markdown inside it
/// (the code fence) be parsed as Markdown. `copy`: what the copy button copies (a console
/// block's commands, without prompts or outputs).
pub fn block_open(id: &str, v: Verdict, copy: Option<&str>) -> String {
    // Newlines as character references: a raw blank line would end the HTML block early.
    let copy = copy.map(|c| format!(" data-copy=\"{}\"", escape(c).replace('\n', "&#10;"))).unwrap_or_default();
    format!("<div class=\"tutor-block\" id=\"tutor-{}\" data-status=\"{}\"{copy}>\n\n", escape(id), v.class())
}

pub const BLOCK_CLOSE: &str = "\n\n</div>";

/// Re-indent continuation lines so the piece stays inside the list item or quote it replaces.
pub fn indent(text: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(if line.is_empty() { prefix.trim_end() } else { prefix });
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_outgrow_backticks_in_the_body() {
        assert_eq!(fence("sh", "echo hi\n"), "```sh\necho hi\n```");
        assert_eq!(fence("md", "```x\n```\n"), "````md\n```x\n```\n````");
        assert_eq!(fence("sh", ""), "```sh\n```");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            output("<b>&</b>\n"),
            "<pre class=\"tutor-output\"><code class=\"nohighlight\">&lt;b&gt;&amp;&lt;/b&gt;</code></pre>"
        );
        assert!(diff("x", "-</pre>").contains("-&lt;/pre&gt;"));
        assert!(
            block_open("a", Verdict::Passed, Some("echo \"a\"\n\ncat <x"))
                .contains("data-copy=\"echo &quot;a&quot;&#10;&#10;cat &lt;x\"")
        );
    }

    #[test]
    fn diff_lines_are_coloured_by_kind() {
        let d = diff(
            "s",
            "--- expected (t.md:4)\n+++ actual\n@@ -1,2 +1,2 @@\n   1    1 │ a\n   2      │-b\n        2 │+B\n c\n-x\n+y\n",
        );
        assert!(d.contains("<span class=\"tutor-diff-del tutor-diff-head\">--- expected (t.md:4)</span>"), "{d}");
        assert!(d.contains("<span class=\"tutor-diff-hunk\">@@ -1,2 +1,2 @@</span>"), "{d}");
        assert!(d.contains("\n   1    1 │ a\n<span class=\"tutor-diff-del\">   2      │-b</span>"), "{d}");
        assert!(d.contains("<span class=\"tutor-diff-add\">        2 │+B</span>\n c\n"), "{d}");
        assert!(
            d.contains("<span class=\"tutor-diff-del\">-x</span>\n<span class=\"tutor-diff-add\">+y</span>"),
            "{d}"
        );
    }

    #[test]
    fn indents_continuation_lines_only() {
        assert_eq!(indent("a\n\nb", "  "), "a\n\n  b");
        assert_eq!(indent("a\nb", "> "), "a\n> b");
        assert_eq!(indent("a\n\nb", "> "), "a\n>\n> b");
    }
}
