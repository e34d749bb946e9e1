//! mdBook's file helpers — `{{#include}}`, `{{#rustdoc_include}}`, `{{#playground}}`,
//! `{{#playpen}}` — may name any path of the building machine (`{{#include ../../etc/shadow}}`).
//! The book refuses every one that resolves outside the book's root (the folder of
//! `book.toml`), symbolic links followed, before mdBook's own `links` preprocessor reads it.
//! Files included from inside the root are checked in turn, as mdBook expands them too.

use std::path::{Component, Path, PathBuf};

use super::BookError;

/// mdBook stops expanding at this depth; so do we.
const MAX_DEPTH: usize = 10;

const HELPERS: [&str; 4] = ["include", "rustdoc_include", "playground", "playpen"];

/// One file helper in a text: its 1-based line and the path it names.
#[derive(Debug, PartialEq, Eq)]
struct Helper {
    line: usize,
    kind: String,
    path: String,
}

/// The file helpers of `text` (escaped `\{{#…}}` are not helpers).
fn helpers(text: &str) -> Vec<Helper> {
    let mut found = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(i) = rest.find("{{") {
        let at = offset + i;
        let after = &rest[i + 2..];
        offset = at + 2;
        rest = after;
        if text[..at].ends_with('\\') {
            continue;
        }
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim_start();
        let Some(inner) = inner.strip_prefix('#') else { continue };
        let mut words = inner.split_whitespace();
        let (Some(kind), Some(target)) = (words.next(), words.next()) else { continue };
        if !HELPERS.contains(&kind) || inner.contains('}') {
            continue;
        }
        // `path:anchor`, `path:2:10`: the path is what precedes the first colon.
        let path = target.split(':').next().unwrap_or(target).to_string();
        found.push(Helper { line: text[..at].matches('\n').count() + 1, kind: kind.to_string(), path });
    }
    found
}

/// `path` with `.` and `..` resolved lexically (for paths that do not exist).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Where `target` resolves to: through symbolic links where it exists; otherwise its longest
/// existing ancestor through symbolic links, and the rest lexically.
fn resolve(target: &Path) -> PathBuf {
    if let Ok(p) = target.canonicalize() {
        return p;
    }
    let lexical = normalise(target);
    for ancestor in lexical.ancestors().skip(1) {
        if let Ok(base) = ancestor.canonicalize() {
            return base.join(lexical.strip_prefix(ancestor).unwrap_or(&lexical));
        }
    }
    lexical
}

/// Check the file helpers of `text` (the content of `file`) and, recursively, of the files they
/// include from inside `root`.
pub fn check(root: &Path, file: &Path, text: &str) -> Result<(), BookError> {
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let root = resolve(&root);
    check_at(&root, file, text, 0)
}

fn check_at(root: &Path, file: &Path, text: &str, depth: usize) -> Result<(), BookError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let base = file.parent().unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    for h in helpers(text) {
        let target = resolve(&base.join(&h.path));
        if !target.starts_with(root) {
            return Err(BookError::Include {
                path: file.to_path_buf(),
                line: h.line,
                helper: format!("{{{{#{} {}}}}}", h.kind, h.path),
                root: root.to_path_buf(),
            });
        }
        // A file that does not exist is mdBook's error to report.
        if let Ok(inner) = std::fs::read_to_string(&target) {
            check_at(root, &target, &inner, depth + 1)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_helpers_and_their_paths() {
        let text = "a\n{{#include x.rs:2:10}}\n\\{{#include escaped}}\n{{ #rustdoc_include ../y.rs:anchor }}\n\
                    {{#title T}}\n{{#playground p.rs editable}}\n{{ name }}\n";
        let h = helpers(text);
        assert_eq!(
            h,
            vec![
                Helper { line: 2, kind: "include".into(), path: "x.rs".into() },
                Helper { line: 4, kind: "rustdoc_include".into(), path: "../y.rs".into() },
                Helper { line: 6, kind: "playground".into(), path: "p.rs".into() },
            ]
        );
    }

    #[test]
    fn paths_outside_the_root_are_refused_with_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("book");
        std::fs::create_dir_all(root.join("src/sub")).unwrap();
        std::fs::write(root.join("src/inc.md"), "inside\n").unwrap();
        std::fs::write(d.path().join("secret"), "s\n").unwrap();
        let chapter = root.join("src/sub/ch.md");
        check(&root, &chapter, "{{#include ../inc.md}}\n{{#include ../../book.toml}}\n").unwrap();
        let e = check(&root, &chapter, "# T\n\n{{#include ../../../secret}}\n").unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:3: `{{{{#include ../../../secret}}}}`", chapter.display())), "{e}");
        assert!(e.contains("outside the book's root"), "{e}");
        let e = check(&root, &chapter, "{{#rustdoc_include /etc/shadow}}\n").unwrap_err().to_string();
        assert!(e.contains(":1: `{{#rustdoc_include /etc/shadow}}`"), "{e}");
        // Escaped, it is text.
        check(&root, &chapter, "\\{{#include /etc/shadow}}\n").unwrap();
    }

    #[test]
    fn symlinks_out_and_nested_includes_are_followed() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("book");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(d.path().join("secret"), "s\n").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), root.join("src/link.md")).unwrap();
        let chapter = root.join("src/ch.md");
        let e = check(&root, &chapter, "{{#include link.md}}\n").unwrap_err().to_string();
        assert!(e.contains("`{{#include link.md}}`"), "{e}");
        // An included file inside the root that itself reaches out.
        std::fs::write(root.join("src/relay.md"), "x\n{{#include ../../secret}}\n").unwrap();
        let e = check(&root, &chapter, "{{#include relay.md}}\n").unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2:", root.join("src/relay.md").canonicalize().unwrap().display())), "{e}");
    }
}
