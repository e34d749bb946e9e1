//! The parsed form of a tutorial. Every item keeps the 1-based line it came from so that any
//! later error (template, snapshot, runtime) can name `file:line`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::backend::{BackendKind, Target};

/// A whole tutorial file.
#[derive(Debug, Clone)]
pub struct Tutorial {
    /// Path as given by the user (used in messages and snapshot headers).
    pub path: PathBuf,
    /// File stem: names the snapshot folder `snapshots/<stem>/`.
    pub stem: String,
    /// Raw file contents (kept for update mode, which rewrites console blocks in place).
    pub source: String,
    pub front: FrontMatter,
    pub steps: Vec<Step>,
    /// Not errors, but worth a look (`tutor check` prints them): fences that look like commands
    /// but will not run.
    pub notes: Vec<Note>,
}

/// Something about a tutorial worth a warning, at a line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub line: usize,
    pub message: String,
}

/// Optional YAML front matter (docs/architecture.md, "Tutorial format").
#[derive(Debug, Clone, Default)]
pub struct FrontMatter {
    pub title: Option<String>,
    /// Backend the tutorial is written for (default: lab).
    pub backend: Option<BackendKind>,
    /// Default block timeout (default 120 s).
    pub timeout: Option<Duration>,
    /// Template variables.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Named redactions: `[NAME]` in expected output matches this regex.
    pub redact: BTreeMap<String, String>,
    /// `kubernetes: upstream|emulated`: on the lab, the real control plane (the default) or the
    /// deprecated emulation (kind and kube clusters are always real). `None`: not given.
    pub kubernetes: Option<crate::backend::LabKubernetes>,
    /// `needs:`: what steps need of the backend, from a step on (docs/architecture.md,
    /// "Stages a backend cannot run").
    pub needs: Vec<Need>,
    /// `offline:`: URLs the tutorial fetches and what the lab serves for each (other backends
    /// fetch the real URL).
    pub offline: Vec<OfflineUrl>,
}

/// One entry of the front matter's `offline:` map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineUrl {
    /// The URL as written.
    pub url: String,
    /// Its host name, lower-case.
    pub host: String,
    /// Its path and query (`/` when it has none): what a client asks for.
    pub target: String,
    pub source: OfflineSource,
    /// `type:`; else the lab picks one from the name.
    pub content_type: Option<String>,
    /// The entry's line in the file.
    pub line: usize,
}

/// What an `offline:` URL serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfflineSource {
    /// A file relative to the tutorial's folder (`URL: PATH`, `{path: PATH}`).
    Path(PathBuf),
    /// The body of the tutorial's `file=NAME` block (`{file: NAME}`).
    Block(String),
}

/// One entry of the front matter's `needs:` list: from the step titled `from` on, the
/// tutorial's pods run `images`. A backend that cannot provide them here reports why, and those
/// steps are skipped with that reason instead of failing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Need {
    /// The title of the first step that needs it (every later step depends on it too).
    pub from: String,
    /// The step's number, once the steps are known (0 until then).
    pub from_step: usize,
    pub images: Vec<String>,
    /// The line of the entry in the file.
    pub line: usize,
}

/// A `##` heading and everything under it.
#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based position in the tutorial (what `--step N` selects).
    pub number: usize,
    pub title: String,
    /// Slug of the title, used for default block ids.
    pub slug: String,
    pub line: usize,
    pub blocks: Vec<Block>,
}

/// A fenced code block that tutor acts on (prose blocks are not kept).
#[derive(Debug, Clone)]
pub struct Block {
    /// Stable id: `id=` or `<step slug>-<index within step, 1-based>`.
    pub id: String,
    /// Line of the opening fence.
    pub line: usize,
    /// The info string's language (`sh`, `bash`, `console`, `yaml`, …).
    pub lang: String,
    pub attrs: Attributes,
    pub kind: BlockKind,
    /// Raw text between the fences.
    pub body: String,
    /// Line of the first body line.
    pub body_line: usize,
    /// Byte range of the body in `Tutorial::source` (update mode rewrites it).
    pub body_span: std::ops::Range<usize>,
}

#[derive(Debug, Clone)]
pub enum BlockKind {
    /// `sh`/`bash`: the body is the script; the expectation lives in a `.snap` file.
    Shell,
    /// `console`: `$ command` lines, each followed by its expected output.
    Console(Vec<ConsoleCommand>),
    /// `file=NAME`: the body is written to NAME in the work directory before the step runs.
    File(String),
}

/// One `$ command` of a console block.
#[derive(Debug, Clone)]
pub struct ConsoleCommand {
    pub line: usize,
    /// The command lines exactly as written, prompt included (`$ kubectl get nodes`), so that
    /// an actual transcript can be laid out like the expected one.
    pub prompt_text: String,
    /// The command text without the `$ ` prompt (continuation lines and heredoc bodies joined
    /// with newlines).
    pub command: String,
    /// The expected output lines that follow it (joined with `\n`, no trailing newline).
    pub expected: String,
    /// Blank lines between the previous command's output (or the opening fence) and this
    /// prompt: the author's layout, not output. Update mode and the book put them back.
    pub blank_before: usize,
}

/// Attributes in braces after the language (docs/architecture.md, "Tutorial format").
#[derive(Debug, Clone, PartialEq)]
pub struct Attributes {
    pub id: Option<String>,
    pub on: Target,
    pub retry: Option<Duration>,
    pub timeout: Option<Duration>,
    pub exit: i32,
    pub bg: bool,
    pub backend: Option<BackendKind>,
    pub skip: bool,
    /// Runs like any block but is left out of the book (setup a reader need not see).
    pub hidden: bool,
    pub file: Option<String>,
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes {
            id: None,
            on: Target::Host,
            retry: None,
            timeout: None,
            exit: 0,
            bg: false,
            backend: None,
            skip: false,
            hidden: false,
            file: None,
        }
    }
}

impl ConsoleCommand {
    /// The exit status an `[N]` line (the last line of the expected output, cram's syntax)
    /// asks of this command; `None` without one.
    pub fn exit_line(&self) -> Option<i32> {
        exit_line(&self.expected)
    }
}

/// `[N]` as the last non-blank line of `expected`.
pub fn exit_line(expected: &str) -> Option<i32> {
    let last = expected.lines().rev().find(|l| !l.trim().is_empty())?.trim_end();
    last.strip_prefix('[')?.strip_suffix(']')?.parse().ok().filter(|_| last.len() > 2 && last.len() < 8)
}

impl Block {
    /// Whether the runner executes this block (as opposed to writing it as a file).
    pub fn is_command(&self) -> bool {
        matches!(self.kind, BlockKind::Shell | BlockKind::Console(_))
    }
}
