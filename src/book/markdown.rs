//! Where things are in a chapter's Markdown: front matter, the title, step headings and fenced
//! blocks, as byte ranges, so the chapter can be rewritten by splicing and everything the
//! preprocessor does not touch stays byte for byte as the author wrote it.

use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag};

/// A fenced code block as it sits in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// 1-based line of the opening fence (what `tutorial::Block::line` holds).
    pub line: usize,
    /// From the opening fence to the end of the closing fence (no trailing newline).
    pub range: Range<usize>,
    /// What must start every continuation line so the replacement stays inside the same list
    /// item or block quote: the opening line's prefix with list markers turned into spaces.
    pub indent: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heading {
    pub line: usize,
    pub level: HeadingLevel,
    /// The whole heading, without its trailing newline.
    pub range: Range<usize>,
}

#[derive(Debug, Default)]
pub struct Layout {
    /// YAML front matter (mdBook would render it as a rule and a heading).
    pub front_matter: Option<Range<usize>>,
    pub headings: Vec<Heading>,
    pub fences: Vec<Fence>,
}

impl Layout {
    /// The chapter's `#` title, if it has one.
    pub fn title(&self) -> Option<&Heading> {
        self.headings.iter().find(|h| h.level == HeadingLevel::H1)
    }

    pub fn heading_at(&self, line: usize, level: HeadingLevel) -> Option<&Heading> {
        self.headings.iter().find(|h| h.line == line && h.level == level)
    }

    pub fn fence_at(&self, line: usize) -> Option<&Fence> {
        self.fences.iter().find(|f| f.line == line)
    }
}

pub fn scan(text: &str) -> Layout {
    let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let line_of = |offset: usize| line_starts.partition_point(|&s| s <= offset);
    let mut layout = Layout::default();
    let parser = Parser::new_ext(text, Options::ENABLE_YAML_STYLE_METADATA_BLOCKS).into_offset_iter();
    for (event, range) in parser {
        let range = range.start..trim_newlines(text, range.end, range.start);
        match event {
            Event::Start(Tag::MetadataBlock(_)) if range.start == 0 => layout.front_matter = Some(range),
            Event::Start(Tag::Heading { level, .. }) => {
                layout.headings.push(Heading { line: line_of(range.start), level, range });
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_))) => {
                let line = line_of(range.start);
                let prefix = &text[line_starts[line - 1]..range.start];
                let indent = prefix.chars().map(|c| if c == '>' || c == '\t' { c } else { ' ' }).collect();
                layout.fences.push(Fence { line, range, indent });
            }
            _ => {}
        }
    }
    layout
}

/// pulldown-cmark ranges of block elements include their line end; splicing is simpler
/// without it.
fn trim_newlines(text: &str, end: usize, start: usize) -> usize {
    start + text[start..end].trim_end_matches(['\n', '\r']).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_front_matter_headings_and_fences() {
        let text = "---\ntitle: T\n---\n# Title\n\n## Step one\n\n```sh {id=a}\necho hi\n```\n\n- item\n\n  ```console\n  $ true\n  ```\n\n1. ```yaml\n   a: 1\n   ```\n";
        let l = scan(text);
        assert_eq!(&text[l.front_matter.clone().unwrap()], "---\ntitle: T\n---");
        assert_eq!(&text[l.title().unwrap().range.clone()], "# Title");
        let h2 = l.heading_at(6, HeadingLevel::H2).unwrap();
        assert_eq!(&text[h2.range.clone()], "## Step one");
        assert_eq!(l.fences.len(), 3);
        let f = l.fence_at(8).unwrap();
        assert_eq!(&text[f.range.clone()], "```sh {id=a}\necho hi\n```");
        assert_eq!(f.indent, "");
        let f = l.fence_at(14).unwrap();
        assert_eq!(&text[f.range.clone()], "```console\n  $ true\n  ```");
        assert_eq!(f.indent, "  ");
        let f = l.fence_at(18).unwrap();
        assert_eq!(f.indent, "   ", "the list marker becomes the continuation indent");
    }

    #[test]
    fn no_front_matter_without_the_opening_line() {
        let l = scan("# T\n\n---\n\nx\n");
        assert!(l.front_matter.is_none());
    }
}
