//! mdBook's preprocessor protocol (mdBook 0.5): `supports <renderer>` is answered by exit code
//! (the CLI's job), otherwise `[context, book]` arrives as JSON on stdin and the rewritten book
//! leaves as JSON on stdout. The types come from the `mdbook-preprocessor` crate, so tutor and
//! mdBook agree on the shape by construction.
//!
//! Options in `book.toml`, all optional:
//! ```toml
//! [preprocessor.tutor]
//! record = "target/tutor/last-run.json"   # relative to the book root
//! hide-backends = ["lab"]                  # blocks with backend=<one of these> are not shown (default: none)
//! snapshots = "snapshots"                  # default: found from each tutorial
//! source-url-template = "https://example.org/repo/blob/main/{path}"   # {path}: tutorials/intro.md
//!     # default: `output.html.edit-url-template` with `/edit/` read as `/blob/`
//! ```

use std::path::PathBuf;

use mdbook_preprocessor::PreprocessorContext;
use mdbook_preprocessor::book::Book;

use super::BookError;
use super::chapter::{Options, Scrub, transform};
use super::includes;
use super::record::{self, DEFAULT_RECORD, RunIndex};
use crate::backend::BackendKind;

/// The mdBook minor version whose JSON shape this build speaks.
const PROTOCOL: &str = "0.5.";

/// What the command line adds to `book.toml`.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Run record to read instead of the configured one (`--record`, `TUTOR_RECORD`).
    pub record: Option<PathBuf>,
}

/// The page carries raw HTML (badges, outputs): renderers that show HTML only.
pub fn supports_renderer(renderer: &str) -> bool {
    matches!(renderer, "html" | "markdown")
}

/// Rewrite every tutorial chapter of the book in `input` (mdBook's stdin).
pub fn preprocess(input: &str, settings: &Settings) -> Result<Book, BookError> {
    let (ctx, mut book) = parse(input)?;
    let config = |key: &str| format!("preprocessor.tutor.{key}");
    let get_path = |key: &str| -> Result<Option<PathBuf>, BookError> {
        ctx.config.get::<PathBuf>(&config(key)).map_err(|e| BookError::Config(format!("{e:#}")))
    };
    let record_path = match &settings.record {
        Some(p) => p.clone(),
        None => ctx.root.join(get_path("record")?.unwrap_or_else(|| PathBuf::from(DEFAULT_RECORD))),
    };
    let mut opts = Options { snapshots: get_path("snapshots")?.map(|p| ctx.root.join(p)), ..Options::default() };
    let hide: Option<Vec<String>> =
        ctx.config.get(&config("hide-backends")).map_err(|e| BookError::Config(format!("{e:#}")))?;
    if let Some(names) = hide {
        opts.hide_backends = names
            .iter()
            .map(|n| n.parse::<BackendKind>())
            .collect::<Result<_, _>>()
            .map_err(|e| BookError::Config(format!("{}: {e}", config("hide-backends"))))?;
    }
    let record = record::load(&record_path)?;
    let index = record.as_ref().map(|r| RunIndex::new(r, record_path.clone()));
    let src = ctx.root.join(&ctx.config.book.src);
    opts.source_url = source_url(&ctx)?;
    opts.book_root = Some(ctx.root.clone());
    opts.scrub = scrub(&ctx, record.as_ref());
    let mut first_error = None;
    book.for_each_chapter_mut(|chapter| {
        if first_error.is_some() {
            return;
        }
        let Some(source) = &chapter.source_path else { return };
        let file = src.join(source);
        // The file as written (mdBook's `links` may have expanded the content already).
        let written = std::fs::read_to_string(&file).unwrap_or_default();
        if let Err(e) = includes::check(&ctx.root, &file, &written)
            .and_then(|_| includes::check(&ctx.root, &file, &chapter.content))
        {
            first_error = Some(e);
            return;
        }
        match transform(&file, &chapter.content, index.as_ref(), &opts) {
            Ok(Some(content)) => chapter.content = content,
            Ok(None) => {}
            Err(e) => first_error = Some(e),
        }
    });
    match first_error {
        Some(e) => Err(e),
        None => Ok(book),
    }
}

/// `preprocessor.tutor.source-url-template`, else mdBook's `edit-url-template` pointed at the
/// file view (`/edit/` → `/blob/`, GitHub's and GitLab's layout).
fn source_url(ctx: &PreprocessorContext) -> Result<Option<String>, BookError> {
    let get = |key: &str| -> Result<Option<String>, BookError> {
        ctx.config.get::<String>(key).map_err(|e| BookError::Config(format!("{key}: {e:#}")))
    };
    if let Some(t) = get("preprocessor.tutor.source-url-template")? {
        return Ok(Some(t));
    }
    Ok(get("output.html.edit-url-template")?.map(|t| t.replacen("/edit/", "/blob/", 1)))
}

/// The folders whose absolute paths must not show on a page: the book's root and the current
/// folder (made relative), the home folder (`~`), and the root of the project the record was
/// made in when its tutorial paths are absolute (another machine, a CI runner).
fn scrub(ctx: &PreprocessorContext, record: Option<&crate::report::record::RunRecord>) -> Scrub {
    let mut scrub = Scrub::default();
    if let Ok(root) = std::path::absolute(&ctx.root) {
        scrub.add(&root, "");
    }
    if let Ok(cwd) = std::env::current_dir() {
        scrub.add(&cwd, "");
    }
    let src = &ctx.config.book.src;
    for t in record.iter().flat_map(|r| &r.tutorials) {
        let path = std::path::Path::new(&t.path);
        if !path.is_absolute() {
            continue;
        }
        if let Some(found) = path.ancestors().find(|a| a.ends_with(src)) {
            let mut root = found.to_path_buf();
            for _ in src.components() {
                root.pop();
            }
            scrub.add(&root, "");
        }
    }
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute()) {
        scrub.add(&home, "~");
    }
    scrub
}

/// Check the version first: another mdBook's JSON would otherwise fail with a serde message
/// about a missing field, which says nothing about the real problem.
fn parse(input: &str) -> Result<(PreprocessorContext, Book), BookError> {
    let value: serde_json::Value =
        serde_json::from_str(input).map_err(|e| BookError::Protocol(format!("not JSON: {e}")))?;
    let version = value
        .get(0)
        .and_then(|ctx| ctx.get("mdbook_version"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| BookError::Protocol("expected `[context, book]` with `context.mdbook_version`".into()))?;
    if !version.starts_with(PROTOCOL) {
        return Err(BookError::Protocol(format!(
            "mdbook {version} is not supported: tutor speaks the preprocessor protocol of mdbook {PROTOCOL}x \
             (install it with `cargo install mdbook --locked --version ^0.5`)"
        )));
    }
    mdbook_preprocessor::parse_input(input.as_bytes()).map_err(|e| BookError::Protocol(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::testing::{Project, record_with};
    use crate::runner::Status;
    use mdbook_preprocessor::book::{BookItem, Chapter};
    use mdbook_preprocessor::config::Config;
    use std::path::Path;

    fn input(root: &Path, config: &str, chapters: &[(&str, &str)]) -> String {
        let config: Config = config.parse().unwrap();
        let ctx = PreprocessorContext::new(root.to_path_buf(), config, "html".into());
        let mut book = Book::new();
        for (name, content) in chapters {
            book.push_item(BookItem::Chapter(Chapter::new(name, content.to_string(), format!("{name}.md"), vec![])));
        }
        serde_json::to_string(&(ctx, book)).unwrap()
    }

    fn contents(book: &Book) -> Vec<String> {
        book.chapters().map(|c| c.content.clone()).collect()
    }

    const HELLO: &str = "# Hello\n\n## Greet\n\n```sh {id=greet}\necho hi\n```\n";

    #[test]
    fn rewrites_tutorials_and_leaves_other_chapters() {
        let p = Project::new();
        p.snapshot("hello", "greet", "echo hi", "hi\n");
        let text =
            input(p.root(), "[book]\nsrc = \"tutorials\"\n", &[("intro", "# Intro\n\nWelcome.\n"), ("hello", HELLO)]);
        let book = preprocess(&text, &Settings::default()).unwrap();
        let c = contents(&book);
        assert_eq!(c[0], "# Intro\n\nWelcome.\n");
        assert!(c[1].contains("<code class=\"nohighlight\">hi</code>"), "{}", c[1]);
        assert!(c[1].contains("not run yet"), "{}", c[1]);
    }

    #[test]
    fn reads_the_record_from_config_or_override() {
        let p = Project::new();
        p.snapshot("hello", "greet", "echo hi", "hi\n");
        let rec = record_with("hello", &[("greet", Status::Passed, "hi\n")]);
        std::fs::write(p.root().join("run.json"), serde_json::to_string(&rec).unwrap()).unwrap();
        let cfg = "[book]\nsrc = \"tutorials\"\n[preprocessor.tutor]\nrecord = \"run.json\"\n";
        let book = preprocess(&input(p.root(), cfg, &[("hello", HELLO)]), &Settings::default()).unwrap();
        assert!(contents(&book)[0].contains("verified on lab, 2026-11-26, 1/1 blocks"), "{}", contents(&book)[0]);
        let settings = Settings { record: Some(p.root().join("elsewhere.json")) };
        let book = preprocess(&input(p.root(), cfg, &[("hello", HELLO)]), &settings).unwrap();
        assert!(contents(&book)[0].contains("not run yet"));
    }

    #[test]
    fn hide_backends_is_configurable() {
        let p = Project::new();
        let chapter = "## S\n\n```sh {backend=kind}\nkind-only\n```\n\n```sh {backend=lab}\nlab-only\n```\n";
        let cfg = "[book]\nsrc = \"tutorials\"\n[preprocessor.tutor]\nhide-backends = [\"kind\"]\n";
        let book = preprocess(&input(p.root(), cfg, &[("t", chapter)]), &Settings::default()).unwrap();
        let c = &contents(&book)[0];
        assert!(!c.contains("kind-only") && c.contains("lab-only"), "{c}");
        let bad = "[book]\nsrc = \"tutorials\"\n[preprocessor.tutor]\nhide-backends = [\"docker\"]\n";
        let e = preprocess(&input(p.root(), bad, &[("t", chapter)]), &Settings::default()).unwrap_err();
        assert!(e.to_string().contains("preprocessor.tutor.hide-backends: unknown backend"), "{e}");
    }

    #[test]
    fn errors_name_the_chapter_file() {
        let p = Project::new();
        let text = input(p.root(), "[book]\nsrc = \"tutorials\"\n", &[("bad", "## S\n\n```sh {on=}\n```\n")]);
        let e = preprocess(&text, &Settings::default()).unwrap_err().to_string();
        assert!(e.contains(&format!("{}:3: attribute `on` needs a value", p.tutorial_path("bad.md").display())), "{e}");
    }

    #[test]
    fn includes_from_outside_the_book_root_are_refused() {
        let p = Project::new();
        let chapter = "# T\n\n{{#include ../../../../../../../../etc/passwd}}\n";
        let text = input(p.root(), "[book]\nsrc = \"tutorials\"\n", &[("intro", chapter)]);
        let e = preprocess(&text, &Settings::default()).unwrap_err().to_string();
        let file = p.root().join("tutorials/intro.md");
        assert!(
            e.starts_with(&format!("{}:3: `{{{{#include ../../../../../../../../etc/passwd}}}}`", file.display())),
            "{e}"
        );
        // The file as written counts even when `links` already expanded the content.
        std::fs::write(&file, chapter).unwrap();
        let text = input(p.root(), "[book]\nsrc = \"tutorials\"\n", &[("intro", "# T\n\nroot:x:0:0\n")]);
        assert!(preprocess(&text, &Settings::default()).is_err());
        let ok = input(p.root(), "[book]\nsrc = \"tutorials\"\n", &[("intro2", "{{#include ../book.toml}}\n")]);
        preprocess(&ok, &Settings::default()).unwrap();
    }

    #[test]
    fn other_protocol_versions_are_refused_clearly() {
        let e = preprocess("[{\"mdbook_version\": \"0.4.52\"}, {\"sections\": []}]", &Settings::default()).unwrap_err();
        assert!(e.to_string().contains("mdbook 0.4.52 is not supported"), "{e}");
        assert!(preprocess("{", &Settings::default()).unwrap_err().to_string().contains("not JSON"));
        assert!(supports_renderer("html") && !supports_renderer("epub"));
    }
}
