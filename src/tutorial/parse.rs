//! The Markdown walk: `##` headings open steps, fenced blocks become [`Block`]s. Offsets from
//! pulldown-cmark are turned into line numbers so every error names `file:line`.

use std::collections::HashMap;
use std::path::Path;

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Parser, Tag, TagEnd};

use super::attributes::{AttributeError, parse_info};
use super::console;
use super::error::TutorialError;
use super::front_matter;
use super::model::{Attributes, Block, BlockKind, FrontMatter, Note, Step, Tutorial};
use crate::backend::Target;
use crate::backend::kind::config::KindConfig;

const EXEC_LANGS: &[&str] = &["sh", "bash", "console"];

/// Maps byte offsets to 1-based line numbers.
struct Lines(Vec<usize>);

impl Lines {
    fn new(src: &str) -> Self {
        Lines(std::iter::once(0).chain(src.match_indices('\n').map(|(i, _)| i + 1)).collect())
    }
    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset)
    }
}

/// A fence being read.
struct OpenBlock {
    info: String,
    start: usize,
    text: String,
    span: Option<std::ops::Range<usize>>,
}

/// A tutorial that does not parse: every error (sorted by line), and the notes found anyway.
#[derive(Debug)]
pub struct Failed {
    pub errors: Vec<TutorialError>,
    pub notes: Vec<Note>,
}

/// Parse a tutorial, stopping at nothing: every error of the file (sorted by line) and, when
/// there is none, the tutorial. A block with an error is left out and the walk goes on.
pub fn parse_all(path: &Path, source: &str) -> Result<Tutorial, Failed> {
    let (yaml, body_start) = front_matter::split(source);
    let (front, mut errors) = match yaml {
        Some(y) => front_matter::parse(path, y),
        None => (FrontMatter::default(), Vec::new()),
    };
    let lines = Lines::new(source);
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    // The stem names the snapshot folder `snapshots/<stem>/` (and the run record's key): it must
    // be one plain path component (`...md` would give `..`).
    if matches!(stem.as_str(), "" | "." | "..") || stem.contains(['/', '\0']) {
        errors.push(TutorialError::Path {
            path: path.to_path_buf(),
            message: format!(
                "the file name gives the tutorial the name `{stem}`, which cannot name its snapshot folder \
                 (snapshots/<name>/): rename the file"
            ),
        });
    }

    let mut steps: Vec<Step> = Vec::new();
    let mut notes: Vec<Note> = Vec::new();
    let mut h1: Option<String> = None;
    let mut heading: Option<(HeadingLevel, usize, String)> = None;
    let mut open: Option<OpenBlock> = None;

    let parser = Parser::new(&source[body_start..]).into_offset_iter();
    for (event, range) in parser {
        let range = range.start + body_start..range.end + body_start;
        match event {
            Event::Start(Tag::Heading { level, .. }) => heading = Some((level, range.start, String::new())),
            Event::End(TagEnd::Heading(_)) => {
                let (level, start, title) = heading.take().expect("heading start");
                let title = title.trim().to_string();
                match level {
                    HeadingLevel::H1 if h1.is_none() => h1 = Some(title),
                    HeadingLevel::H2 => steps.push(new_step(steps.len() + 1, title, lines.line(start))),
                    _ => {}
                }
            }
            Event::Text(t) | Event::Code(t) if heading.is_some() => heading.as_mut().unwrap().2.push_str(&t),
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                open = Some(OpenBlock { info: info.to_string(), start: range.start, text: String::new(), span: None });
            }
            Event::Text(t) if open.is_some() => {
                let b = open.as_mut().unwrap();
                b.text.push_str(&t);
                b.span = Some(match b.span.take() {
                    Some(s) => s.start..range.end,
                    None => range.clone(),
                });
            }
            Event::End(TagEnd::CodeBlock) => {
                let Some(b) = open.take() else { continue };
                if let Err(e) = check_closed(path, source, &lines, &b, range.end) {
                    errors.push(e);
                    continue;
                }
                let block = match make_block(path, source, &lines, b) {
                    Ok(Made::Block(block)) => *block,
                    Ok(Made::Prose(note)) => {
                        notes.extend(note);
                        continue;
                    }
                    Err(e) => {
                        errors.extend(e);
                        continue;
                    }
                };
                if steps.is_empty() {
                    let title = h1.clone().unwrap_or_else(|| "Preamble".to_string());
                    steps.push(new_step(1, title, 1));
                }
                steps.last_mut().unwrap().blocks.push(block);
            }
            _ => {}
        }
    }
    errors.extend(assign_ids(path, &mut steps));
    errors.extend(check_targets(path, &steps));
    errors.extend(super::offline::check_blocks(path, &front.offline, &steps));
    let mut front = front;
    for need in &mut front.needs {
        match steps.iter().find(|s| s.title == need.from) {
            Some(s) => need.from_step = s.number,
            None => errors.push(TutorialError::at(
                path,
                need.line,
                format!(
                    "front matter: `needs` from `{}`: no step has that title (steps: {})",
                    need.from,
                    steps.iter().map(|s| format!("`{}`", s.title)).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line());
        return Err(Failed { errors, notes });
    }
    let title = front.title.clone().or(h1);
    let front = FrontMatter { title, ..front };
    Ok(Tutorial { path: path.to_path_buf(), stem, source: source.to_string(), front, steps, notes })
}

/// Parse a tutorial; its first error (by line) if it has any ([`parse_all`] gives them all).
pub fn parse_str(path: &Path, source: &str) -> Result<Tutorial, TutorialError> {
    parse_all(path, source).map_err(|f| f.errors.into_iter().next().expect("at least one error"))
}

fn new_step(number: usize, title: String, line: usize) -> Step {
    let slug = slugify(&title);
    let slug = if slug.is_empty() { format!("step-{number}") } else { slug };
    Step { number, title, slug, line, blocks: Vec::new() }
}

/// `Cilium & native routing!` → `cilium-native-routing`.
pub fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// pulldown-cmark ends an unclosed fence at the end of the document; a real closing fence is
/// the last line of the block's range.
fn check_closed(path: &Path, src: &str, lines: &Lines, b: &OpenBlock, end: usize) -> Result<(), TutorialError> {
    // Inside a blockquote or a list item the lines carry the container's `>` and indentation.
    let strip = |l: &str| l.trim_start_matches([' ', '\t', '>']).to_string();
    let opening = strip(src[b.start..].lines().next().unwrap_or(""));
    let fence_char = opening.chars().next().unwrap_or('`');
    let fence_len = opening.chars().take_while(|&c| c == fence_char).count();
    let last = strip(src[b.start..end].trim_end_matches(['\n', '\r']).lines().last().unwrap_or("")).trim().to_string();
    let closed = src[b.start..end].lines().count() > 1
        && last.chars().take_while(|&c| c == fence_char).count() >= fence_len
        && last.chars().all(|c| c == fence_char);
    if closed {
        Ok(())
    } else {
        Err(TutorialError::at(path, lines.line(b.start), format!("code fence `{opening}` is never closed")))
    }
}

/// What a fence turned out to be.
enum Made {
    Block(Box<Block>),
    /// Prose (not kept), with a note when it looks like commands that will not run.
    Prose(Option<Note>),
}

/// Languages of fences that look like shell commands but are prose to tutor.
const SHELL_LIKE: &[&str] = &[
    "shell",
    "zsh",
    "fish",
    "ksh",
    "csh",
    "tcsh",
    "dash",
    "shellscript",
    "shell-session",
    "shellsession",
    "sh-session",
    "bash-session",
    "console-session",
    "terminal",
    "session",
];

/// A note for a fence that looks like commands but is prose (`shell`, `zsh`, `Bash`,
/// `bash session`, …): it would silently never run.
fn shell_like(lang: &str, rest: &str, line: usize) -> Option<Note> {
    let lower = lang.to_ascii_lowercase();
    let written = if rest.is_empty() { lang.to_string() } else { format!("{lang} {rest}") };
    let looks = SHELL_LIKE.contains(&lower.as_str()) || EXEC_LANGS.contains(&lower.as_str());
    looks.then(|| Note {
        line,
        message: format!(
            "```{written} blocks do not run: tutor runs ```sh, ```bash and ```console blocks (write one of \
             those, with {{skip}} if it must not run)"
        ),
    })
}

fn make_block(path: &Path, src: &str, lines: &Lines, b: OpenBlock) -> Result<Made, Vec<TutorialError>> {
    let line = lines.line(b.start);
    let err = |m: String| TutorialError::at(path, line, m);
    let info = b.info.trim();
    let lang = info.split(|c: char| c.is_whitespace() || c == '{').next().unwrap_or("");
    let rest = info[lang.len()..].trim();
    let (lang, attrs, had_braces) = match parse_info(&b.info) {
        Ok(parsed) => parsed,
        // Words after a prose language are the author's business (`python title="x.py"`).
        Err(e)
            if !EXEC_LANGS.contains(&lang)
                && !rest.contains('{')
                && matches!(e[..], [AttributeError::NotOpened { .. }]) =>
        {
            return Ok(Made::Prose(shell_like(lang, rest, line)));
        }
        Err(e) => return Err(e.into_iter().map(|e| err(e.to_string())).collect()),
    };
    let body_start = b
        .span
        .as_ref()
        .map(|s| s.start)
        .unwrap_or_else(|| b.start + src[b.start..].find('\n').map(|i| i + 1).unwrap_or(src.len() - b.start));
    let body_span = b.span.clone().unwrap_or(body_start..body_start);
    let body_line = lines.line(body_start);
    let kind = if let Some(name) = &attrs.file {
        check_file_attrs(&attrs).map_err(|e| vec![err(e.to_string())])?;
        if name.contains("..") || name.starts_with('/') {
            return Err(vec![err(format!("file=`{name}` must be a relative path inside the work directory"))]);
        }
        BlockKind::File(name.clone())
    } else if !EXEC_LANGS.contains(&lang.as_str()) {
        // `{skip}` alone says "prose on purpose" (and silences the note).
        if had_braces && !(attrs.skip && Attributes { skip: false, ..attrs.clone() } == Attributes::default()) {
            return Err(vec![err(format!(
                "`{lang}` blocks are prose: attributes apply to sh, bash and console blocks (or add file=NAME)"
            ))]);
        }
        return Ok(Made::Prose(if attrs.skip { None } else { shell_like(&lang, "", line) }));
    } else if lang == "console" {
        let commands =
            console::parse(&b.text, body_line).map_err(|(l, m)| vec![TutorialError::at(path, l.max(line), m)])?;
        BlockKind::Console(commands)
    } else {
        BlockKind::Shell
    };
    Ok(Made::Block(Box::new(Block { id: String::new(), line, lang, attrs, kind, body: b.text, body_line, body_span })))
}

fn check_file_attrs(a: &Attributes) -> Result<(), AttributeError> {
    let misplaced = [
        (a.on != crate::backend::Target::Host, "on"),
        (a.retry.is_some(), "retry"),
        (a.timeout.is_some(), "timeout"),
        (a.exit != 0, "exit"),
        (a.bg, "bg"),
    ];
    match misplaced.iter().find(|(bad, _)| *bad) {
        Some((_, name)) => Err(AttributeError::NotForFiles(name.to_string())),
        None => Ok(()),
    }
}

/// Default ids are `<step slug>-<n>` (n counts command blocks in the step) and
/// `<step slug>-file-<n>` for file blocks; every id must be unique in the tutorial.
fn assign_ids(path: &Path, steps: &mut [Step]) -> Vec<TutorialError> {
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for step in steps.iter_mut() {
        let (mut commands, mut files) = (0, 0);
        for block in &mut step.blocks {
            let default = if block.is_command() {
                commands += 1;
                format!("{}-{commands}", step.slug)
            } else {
                files += 1;
                format!("{}-file-{files}", step.slug)
            };
            block.id = block.attrs.id.clone().unwrap_or(default);
            match seen.get(&block.id) {
                Some(first) => errors.push(TutorialError::at(
                    path,
                    block.line,
                    format!("duplicate block id `{}` (first used on line {first})", block.id),
                )),
                None => {
                    seen.insert(block.id.clone(), block.line);
                }
            }
        }
    }
    errors
}

/// `on=NODE` of every block checked against the nodes of the tutorial's kind cluster configs
/// (`file=` blocks holding `kind: Cluster`), named as kind names them. Without such a config the
/// nodes are not known here and nothing is checked; nor when a cluster's name is chosen at run
/// time (`kind create cluster --name "$X"`).
fn check_targets(path: &Path, steps: &[Step]) -> Vec<TutorialError> {
    let blocks = || steps.iter().flat_map(|s| s.blocks.iter());
    let configs: Vec<(&Block, KindConfig)> = blocks()
        .filter(|b| matches!(b.kind, BlockKind::File(_)))
        .filter_map(|b| {
            let cfg = KindConfig::parse(&b.body).ok()?;
            (cfg.kind.as_deref() == Some("Cluster")).then_some((b, cfg))
        })
        .collect();
    if configs.is_empty() {
        return Vec::new();
    }
    // Cluster names given on `kind create cluster` command lines.
    let mut flagged: Vec<String> = Vec::new();
    for b in blocks() {
        let texts: Vec<&str> = match &b.kind {
            BlockKind::Console(cmds) => cmds.iter().map(|c| c.command.as_str()).collect(),
            BlockKind::Shell => vec![b.body.as_str()],
            BlockKind::File(_) => continue,
        };
        for text in texts.iter().flat_map(|t| t.lines()).filter(|l| l.contains("kind create cluster")) {
            let words: Vec<&str> = text.split_whitespace().collect();
            for (i, w) in words.iter().enumerate() {
                let name = match w.strip_prefix("--name=") {
                    Some(n) => Some(n),
                    None if *w == "--name" || *w == "-n" => words.get(i + 1).copied(),
                    None => None,
                };
                if let Some(n) = name {
                    if n.contains(['$', '{', '`', '(']) {
                        return Vec::new();
                    }
                    flagged.push(n.trim_matches(['\'', '"']).to_string());
                }
            }
        }
    }
    let mut nodes: Vec<String> = Vec::new();
    for (_, cfg) in &configs {
        let mut clusters = flagged.clone();
        clusters.extend(cfg.name.clone());
        if clusters.is_empty() {
            clusters.push("kind".to_string());
        }
        for c in clusters {
            nodes.extend(cfg.node_names(&c).into_iter().filter(|n| !nodes.contains(n)).collect::<Vec<_>>());
        }
    }
    let known: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let where_ = configs.iter().map(|(b, _)| format!("line {}", b.line)).collect::<Vec<_>>().join(", ");
    blocks()
        .filter_map(|b| match &b.attrs.on {
            Target::Node(n) if !nodes.contains(n) => {
                let hint =
                    crate::template::closest(n, &known).map(|k| format!("did you mean `{k}`? ")).unwrap_or_default();
                Some(TutorialError::at(
                    path,
                    b.line,
                    format!(
                        "on={n}: no node `{n}` in the tutorial's kind config ({where_}): {hint}its nodes are {}",
                        known.join(", ")
                    ),
                ))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_that_gives_no_plain_stem_is_refused() {
        for name in ["...md", "/t/...md"] {
            let e = parse_str(Path::new(name), "# T\n\n## S\n\n```console\n$ true\n```\n").unwrap_err().to_string();
            assert!(e.contains("gives the tutorial the name `..`"), "{e}");
        }
        assert_eq!(parse_str(Path::new("....md"), "# T\n").unwrap().stem, "...");
    }

    fn parse(src: &str) -> Result<Tutorial, TutorialError> {
        parse_str(Path::new("t.md"), src)
    }

    #[test]
    fn steps_blocks_and_lines() {
        let src = "---\ntitle: Demo\n---\n# Ignored title\n\n## First step\n\n```sh\necho hi\n```\n\nprose\n\n```yaml\na: 1\n```\n\n## Second: `kubectl`!\n\n```console {on=kind-worker id=routes}\n$ ip route\ndefault via 172.18.0.1 dev eth0\n```\n\n```yaml {file=values.yaml}\nx: 1\n```\n";
        let t = parse(src).unwrap();
        assert_eq!(t.front.title.as_deref(), Some("Demo"));
        assert_eq!(t.stem, "t");
        assert_eq!(t.steps.len(), 2);
        let s1 = &t.steps[0];
        assert_eq!((s1.number, s1.title.as_str(), s1.slug.as_str(), s1.line), (1, "First step", "first-step", 6));
        assert_eq!(s1.blocks.len(), 1, "yaml prose block is not kept");
        let b = &s1.blocks[0];
        assert_eq!((b.id.as_str(), b.line, b.body_line, b.body.as_str()), ("first-step-1", 8, 9, "echo hi\n"));
        assert_eq!(&t.source[b.body_span.clone()], "echo hi\n");
        let s2 = &t.steps[1];
        assert_eq!(s2.slug, "second-kubectl");
        let c = &s2.blocks[0];
        assert_eq!(c.id, "routes");
        assert_eq!(c.attrs.on, Target::Node("kind-worker".into()));
        match &c.kind {
            BlockKind::Console(cmds) => {
                assert_eq!(cmds[0].line, 21);
                assert_eq!(cmds[0].expected, "default via 172.18.0.1 dev eth0");
            }
            k => panic!("{k:?}"),
        }
        assert!(matches!(&s2.blocks[1].kind, BlockKind::File(n) if n == "values.yaml"));
        assert_eq!(s2.blocks[1].id, "second-kubectl-file-1");
    }

    #[test]
    fn preamble_blocks_get_a_step() {
        let t = parse("# Title\n\n```sh\ntrue\n```\n").unwrap();
        assert_eq!(t.steps[0].title, "Title");
        assert_eq!(t.steps[0].blocks[0].id, "title-1");
    }

    #[test]
    fn tilde_fences_and_empty_bodies() {
        let t = parse("## S\n~~~sh\n~~~\n").unwrap();
        let b = &t.steps[0].blocks[0];
        assert_eq!(b.body, "");
        assert_eq!(b.body_span.start, b.body_span.end);
    }

    fn err(src: &str) -> String {
        parse(src).unwrap_err().to_string()
    }

    #[test]
    fn syntax_errors_name_the_line() {
        assert_eq!(
            err("## S\n\n```sh {colour=red}\nx\n```\n"),
            "t.md:3: unknown attribute `colour` (known: id, on, retry, timeout, exit, bg, backend, skip, hidden, file)"
        );
        assert!(err("## S\n```sh {on=x\n```\n").starts_with("t.md:2: attribute list"));
        assert!(err("## S\n\n```sh\necho\n").starts_with("t.md:3: code fence `"));
        assert!(err("## S\n```console\nhello\n```\n").starts_with("t.md:3: console block: output before"));
        assert!(err("## S\n```console\n```\n").contains("no `$ command`"));
        assert!(err("## S\n```sh {retry=abc}\n```\n").starts_with("t.md:2: invalid duration `abc`"));
        assert_eq!(
            err("## S\n```sh {id=a}\n```\n```sh {id=a}\n```\n"),
            "t.md:4: duplicate block id `a` (first used on line 2)"
        );
        assert!(err("## S\n```yaml {on=x}\n```\n").contains("blocks are prose"));
        assert!(err("## S\n```yaml {file=a on=x}\n```\n").contains("`on` does not apply"));
        assert!(err("## S\n```yaml {file=../a}\n```\n").contains("relative path"));
        assert!(err("---\nfoo: 1\n---\n").starts_with("t.md:2: front matter"));
    }

    #[test]
    fn needs_name_a_step_and_images() {
        let src = "---\nneeds:\n  - from: Two\n    images: [quay.io/cilium/cilium]\n---\n## One\n```sh\ntrue\n```\n## Two\n```sh\ntrue\n```\n";
        let t = parse(src).unwrap();
        assert_eq!(t.front.needs.len(), 1);
        let n = &t.front.needs[0];
        assert_eq!(
            (n.from.as_str(), n.from_step, n.images.as_slice(), n.line),
            ("Two", 2, &["quay.io/cilium/cilium".to_string()][..], 3)
        );
        let e = err("---\nneeds:\n  - from: Three\n    images: [x]\n---\n## One\n```sh\ntrue\n```\n");
        assert!(
            e.starts_with("t.md:3: front matter: `needs` from `Three`: no step has that title (steps: `One`)"),
            "{e}"
        );
        let e = err("---\nneeds:\n  - from: One\n    images: [Bad]\n---\n## One\n```sh\ntrue\n```\n");
        assert!(e.starts_with("t.md:3: front matter: `needs`: invalid image reference \"Bad\""), "{e}");
        let e = err("---\nneeds:\n  - from: One\n---\n## One\n```sh\ntrue\n```\n");
        assert!(e.contains("names no `images`"), "{e}");
        let e = err("---\nneeds:\n  - from: One\n    image: [x]\n---\n## One\n```sh\ntrue\n```\n");
        assert!(e.contains("unknown field `image`"), "{e}");
    }

    #[test]
    fn fences_in_blockquotes_and_list_items() {
        let src = "## S\n\n> Note:\n>\n> ```console\n> $ echo a\n> a\n> ```\n\n1. Run:\n\n   ```sh\n   echo b\n   echo c\n   ```\n";
        let t = parse(src).unwrap();
        let blocks = &t.steps[0].blocks;
        assert_eq!(blocks.len(), 2);
        match &blocks[0].kind {
            BlockKind::Console(c) => {
                assert_eq!((c[0].command.as_str(), c[0].expected.as_str(), c[0].line), ("echo a", "a", 6))
            }
            k => panic!("{k:?}"),
        }
        assert_eq!((blocks[0].line, blocks[0].body_line), (5, 6));
        assert_eq!(blocks[1].body, "echo b\necho c\n");
        assert_eq!((blocks[1].line, blocks[1].body_line), (12, 13));
        assert!(err("## S\n\n> ```sh\n> echo\n").contains("never closed"));
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("Cilium & native routing!"), "cilium-native-routing");
        assert_eq!(slugify("  --  "), "");
    }
}
