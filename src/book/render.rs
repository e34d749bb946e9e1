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

/// Collapsed: the reader came for the tutorial, the author for the diff.
pub fn diff(summary: &str, diff: &str) -> String {
    format!(
        "<details class=\"tutor-diff\"><summary>{}</summary>\n<pre><code class=\"nohighlight\">{}</code></pre>\n</details>",
        escape(summary),
        escape(diff.trim_end_matches('\n'))
    )
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

/// The chapter's "verified on lab, 2026-11-26, 9/9 blocks" line, with the style sheet.
pub fn chapter_line(v: Verdict, text: &str, title: Option<&str>) -> String {
    let title = title.map(|t| format!(" title=\"{}\"", escape(t))).unwrap_or_default();
    format!(
        "<style>\n{}</style>\n<div class=\"tutor-chapter\" data-status=\"{}\"{title}>{} {}</div>",
        STYLE.trim_end_matches('\n').to_string() + "\n",
        v.class(),
        badge(v),
        escape(text)
    )
}

/// Open and close the wrapper of one command block. The blank lines let Markdown inside it
/// (the code fence) be parsed as Markdown.
pub fn block_open(id: &str, v: Verdict) -> String {
    format!("<div class=\"tutor-block\" id=\"tutor-{}\" data-status=\"{}\">\n\n", escape(id), v.class())
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
    }

    #[test]
    fn indents_continuation_lines_only() {
        assert_eq!(indent("a\n\nb", "  "), "a\n\n  b");
        assert_eq!(indent("a\nb", "> "), "a\n> b");
        assert_eq!(indent("a\n\nb", "> "), "a\n>\n> b");
    }
}
