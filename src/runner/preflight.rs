//! Everything checked before anything executes: templates, redactions, snapshot files, step
//! range, backend. `tutor run` refuses to start (exit 2) on any problem found here; `tutor check`
//! reports the same problems plus missing and orphan snapshots.

use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::backend::{self, Backend, BackendKind};
use crate::snapshot::{self, Matcher, Snapshot};
use crate::template::{FACT_NAMES, Templates};
use crate::tutorial::{Block, BlockKind, Tutorial};

/// Which steps to run (`--step N`, `--from N --to M`), 1-based and inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepRange {
    pub from: Option<usize>,
    pub to: Option<usize>,
    /// Run the steps before `from` first, as set-up (`--step N` on a fresh environment).
    pub setup: bool,
}

/// A step range (`--step`, `--from`, `--to`) that does not fit the tutorial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepRangeError {
    #[error("steps are numbered from 1")]
    Zero,
    #[error("--from {from} is after --to {to}")]
    Reversed { from: usize, to: usize },
    #[error("step {step} does not exist: the tutorial has {last} step(s)")]
    NoSuchStep { step: usize, last: usize },
}

impl StepRange {
    fn resolve(&self, t: &Tutorial) -> Result<RangeInclusive<usize>, StepRangeError> {
        let last = t.steps.len();
        if last == 0 && self.from.is_none() && self.to.is_none() {
            // Nothing to run: an empty range.
            return Ok(RangeInclusive::new(1, 0));
        }
        let from = self.from.unwrap_or(1);
        let to = self.to.unwrap_or(last);
        if from == 0 || to == 0 {
            return Err(StepRangeError::Zero);
        }
        if from > to {
            return Err(StepRangeError::Reversed { from, to });
        }
        if (self.from.is_some() || self.to.is_some()) && to > last {
            return Err(StepRangeError::NoSuchStep { step: to, last });
        }
        Ok(from..=to)
    }
}

/// Everything about one tutorial that is decided before it runs.
pub struct Plan {
    pub tutorial: Tutorial,
    pub backend: BackendKind,
    pub templates: Templates,
    pub matcher: Matcher,
    pub snapshot_dir: PathBuf,
    /// Snapshots that exist, by block id. A `sh` block without one fails at run time.
    pub snapshots: HashMap<String, Snapshot>,
    pub steps: RangeInclusive<usize>,
    /// Steps run first, silently, to set up `steps` (empty unless asked for).
    pub setup: RangeInclusive<usize>,
}

impl Plan {
    /// `None` when the plan runs every step; else which steps it runs, for the run record.
    pub fn partial(&self) -> Option<String> {
        let last = self.tutorial.steps.len();
        let (from, to) = (*self.steps.start(), *self.steps.end());
        if from <= 1 && to >= last {
            return None;
        }
        let what = if from == to { format!("step {from}") } else { format!("steps {from}-{to}") };
        Some(match (*self.setup.start(), *self.setup.end()) {
            (a, b) if a > b => what,
            (a, b) if a == b => format!("{what}, step {a} as set-up"),
            (a, b) => format!("{what}, steps {a}-{b} as set-up"),
        })
    }

    /// Whether step `n` runs, as selected or as set-up.
    pub fn runs_step(&self, n: usize) -> bool {
        self.steps.contains(&n) || self.setup.contains(&n)
    }
}

pub struct Prepared {
    pub plan: Plan,
    pub backend: Box<dyn Backend>,
}

/// Blocks whose expectation lives in a `.snap` file.
pub fn needs_snapshot(block: &Block) -> bool {
    matches!(block.kind, BlockKind::Shell) && !block.attrs.skip && !block.attrs.bg
}

/// What linting one tutorial found.
#[derive(Default)]
pub struct Lint {
    /// Input errors (`path:line: message`): `run` refuses to start.
    pub errors: Vec<String>,
    /// `sh` blocks without a `.snap` file.
    pub missing: Vec<String>,
    /// Files of the snapshot folder no block uses: `.snap` files and pending changes
    /// (`.snap.new`, `.console.new`) of blocks that are gone.
    pub orphans: Vec<PathBuf>,
    /// Not errors, but worth a look (`tutor check` prints them): ambiguous templates.
    pub warnings: Vec<String>,
    pub snapshots: HashMap<String, Snapshot>,
    pub matcher: Option<Matcher>,
    pub snapshot_dir: PathBuf,
}

/// Check templates, redactions and snapshot files of `t` without executing anything.
pub fn lint(t: &Tutorial, templates: &Templates, snapshots_dir: Option<&Path>) -> Lint {
    let mut lint = Lint { snapshot_dir: snapshot::snapshot_dir(t, snapshots_dir), ..Lint::default() };
    let path = t.path.as_path();
    match Matcher::new(&t.front.redact) {
        Ok(m) => lint.matcher = Some(m),
        Err(e) => lint.errors.push(format!("{}: {e}", path.display())),
    }
    let mut template_errors = Vec::new();
    // Values captured with `[..NAME..]` in expected outputs are template names too, from the
    // block after the one that captures them on.
    let mut captured: Vec<String> = Vec::new();
    let mut first_site: HashMap<String, usize> = HashMap::new();
    for block in t.steps.iter().flat_map(|s| s.blocks.iter()) {
        if let BlockKind::Console(cmds) = &block.kind {
            for c in cmds {
                for name in snapshot::capture_names(&c.expected) {
                    if !captured.contains(&name) {
                        first_site.insert(name.clone(), c.line + c.prompt_text.lines().count());
                        captured.push(name);
                    }
                }
            }
        }
    }
    let mut order_errors = Vec::new();
    if !captured.is_empty() {
        let mut bound: BTreeSet<String> = BTreeSet::new();
        let mut assigned: BTreeSet<String> = BTreeSet::new();
        for block in t.steps.iter().flat_map(|s| s.blocks.iter()) {
            let (texts, names): (Vec<(&str, usize)>, Vec<String>) = match &block.kind {
                BlockKind::Console(cmds) => (
                    cmds.iter()
                        .flat_map(|c| [(c.command.as_str(), c.line), (c.expected.as_str(), c.line + 1)])
                        .collect(),
                    cmds.iter().flat_map(|c| snapshot::capture_names(&c.expected)).collect(),
                ),
                _ => (vec![(block.body.as_str(), block.body_line)], Vec::new()),
            };
            // `$NAME` in a command, unless the tutorial assigned NAME itself by then.
            let commands: Vec<(&str, usize)> = match &block.kind {
                BlockKind::Console(cmds) => cmds.iter().map(|c| (c.command.as_str(), c.line)).collect(),
                BlockKind::Shell => vec![(block.body.as_str(), block.body_line)],
                BlockKind::File(_) => Vec::new(),
            };
            for (text, _) in &commands {
                assigned.extend(shell_assignments(text));
            }
            for (text, line) in commands {
                for name in shell_uses(text) {
                    if let Some(site) = first_site.get(&name)
                        && !bound.contains(&name)
                        && !assigned.contains(&name)
                    {
                        order_errors.push(format!(
                            "{p}:{line}: `${name}` is used before `[..{name}..]` captures it ({p}:{site})",
                            p = path.display()
                        ));
                    }
                }
            }
            for (text, line) in texts {
                for use_ in template_uses().captures_iter(text) {
                    let name = &use_[1];
                    if let Some(site) = first_site.get(name)
                        && !bound.contains(name)
                    {
                        order_errors.push(format!(
                            "{p}:{line}: `{{{{ {name} }}}}` is used before `[..{name}..]` captures it ({p}:{site})",
                            p = path.display()
                        ));
                    }
                }
            }
            bound.extend(names);
        }
    }
    let names: Vec<&str> = FACT_NAMES.iter().copied().chain(captured.iter().map(String::as_str)).collect();
    let mut warnings = Vec::new();
    let mut check = |text: &str, file: &Path, line: usize| {
        if let Err(e) = templates.check(text, &names, file, line) {
            template_errors.push(e.to_string());
        }
        for (offset, expr) in templates.ambiguous(text, FACT_NAMES) {
            warnings.push(format!(
                "{}:{}: `{expr}` starts with a name tutor knows, so tutor substitutes it; if it is a Go \
                 template, wrap it in {{% raw %}}…{{% endraw %}} or rename the var",
                file.display(),
                line + offset
            ));
        }
    };
    // Invalid ` (re)` lines in expected output.
    let mut regex_errors = Vec::new();
    let mut check_regex = |text: &str, file: &Path, line: usize| {
        if let Some(Err(e)) = lint.matcher.as_ref().map(|m| m.validate(text)) {
            regex_errors.push(format!("{}:{line}: {e}", file.display()));
        }
    };
    let mut wanted = BTreeSet::new();
    for block in t.steps.iter().flat_map(|s| s.blocks.iter()) {
        if block.attrs.skip {
            continue;
        }
        match &block.kind {
            BlockKind::Console(cmds) => {
                for c in cmds {
                    check(&c.command, path, c.line);
                    if !c.expected.is_empty() {
                        let line = c.line + c.prompt_text.lines().count().max(1);
                        check(&c.expected, path, line);
                        check_regex(&c.expected, path, line);
                    }
                }
            }
            BlockKind::Shell | BlockKind::File(_) => check(&block.body, path, block.body_line),
        }
        if !needs_snapshot(block) {
            continue;
        }
        wanted.insert(block.id.clone());
        let snap_path = snapshot::snapshot_path(&lint.snapshot_dir, &block.id);
        match snapshot::read(&snap_path) {
            Ok(Some(snap)) => {
                check(&snap.body, &snap_path, 1);
                check_regex(&snap.body, &snap_path, 1);
                lint.snapshots.insert(block.id.clone(), snap);
            }
            Ok(None) => lint.missing.push(format!(
                "{}:{}: no snapshot {} for block `{}` (run with --update)",
                path.display(),
                block.line,
                snap_path.display(),
                block.id
            )),
            Err(e) => lint.errors.push(e.to_string()),
        }
    }
    // `offline:` files beside the tutorial must be there (read when the lab comes up).
    for o in &t.front.offline {
        if let crate::tutorial::OfflineSource::Path(rel) = &o.source {
            let file = crate::tutorial::offline::source_path(path, rel);
            if !file.is_file() {
                lint.errors.push(format!(
                    "{}:{}: front matter: `offline`: `{}`: no file {} (paths are relative to the tutorial's folder)",
                    path.display(),
                    o.line,
                    o.url,
                    file.display()
                ));
            }
        }
    }
    lint.errors.extend(order_errors);
    lint.errors.extend(template_errors);
    lint.warnings.extend(warnings);
    lint.errors.extend(regex_errors);
    // Files of the snapshot folder that no block uses: `<id>.snap` and pending `<id>.snap.new`
    // of no `sh` block, pending `<id>.console.new` of no console block.
    let consoles: BTreeSet<&str> = t
        .steps
        .iter()
        .flat_map(|s| s.blocks.iter())
        .filter(|b| matches!(b.kind, BlockKind::Console(_)))
        .map(|b| b.id.as_str())
        .collect();
    if let Ok(entries) = std::fs::read_dir(&lint.snapshot_dir) {
        let mut orphans: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let Some(name) = p.file_name().and_then(|n| n.to_str()) else { return false };
                let snap = name.strip_suffix(".snap").or_else(|| name.strip_suffix(".snap.new"));
                match (snap, name.strip_suffix(".console.new")) {
                    (Some(id), _) => !wanted.contains(id),
                    (None, Some(id)) => !consoles.contains(id),
                    (None, None) => false,
                }
            })
            .collect();
        orphans.sort();
        lint.orphans = orphans;
    }
    lint
}

/// `{{ NAME }}` with NAME in capitals (a captured value, when a `[..NAME..]` defines it).
fn template_uses() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\{\{-?\s*([A-Z][A-Z0-9_]*)\s*-?\}\}").expect("valid regex"))
}

/// Capitalised names a shell command expands (`$NAME`, `${NAME…}`), outside single quotes.
fn shell_uses(text: &str) -> Vec<String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"(^|[^\\])\$\{?([A-Z][A-Z0-9_]*)").expect("valid regex"));
    let mut out: Vec<String> = Vec::new();
    for (i, part) in text.split('\'').enumerate() {
        if i % 2 == 1 {
            continue; // inside '…'
        }
        for c in re.captures_iter(part) {
            if !out.contains(&c[2].to_string()) {
                out.push(c[2].to_string());
            }
        }
    }
    out
}

/// Capitalised names a shell command assigns (`NAME=`, `read … NAME`, `for NAME in`).
fn shell_assignments(text: &str) -> Vec<String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r"(?:^|[\s;&|(])([A-Z][A-Z0-9_]*)\+?=|\bfor\s+([A-Z][A-Z0-9_]*)\b|\bread\b[^;&|\n]*?\b([A-Z][A-Z0-9_]*)\b",
        )
        .expect("valid regex")
    });
    re.captures_iter(text).filter_map(|c| c.get(1).or(c.get(2)).or(c.get(3)).map(|m| m.as_str().to_string())).collect()
}

/// Which backend a tutorial runs on: `--backend`, else its front matter, else lab.
pub fn backend_kind(t: &Tutorial, flag: Option<BackendKind>) -> BackendKind {
    flag.or(t.front.backend).unwrap_or(BackendKind::Lab)
}

/// Build the plan and the backend of one tutorial, or every input error found.
pub fn prepare(
    t: Tutorial,
    flag: Option<BackendKind>,
    context: Option<&str>,
    steps_range: StepRange,
    snapshots_dir: Option<&Path>,
) -> Result<Prepared, Vec<String>> {
    let templates = Templates::new(&t.front);
    let lint = lint(&t, &templates, snapshots_dir);
    let mut errors = lint.errors;
    let range = steps_range.resolve(&t).map_err(|e| format!("{}: {e}", t.path.display()));
    let kind = backend_kind(&t, flag);
    let backend = backend::create(kind, context).map_err(|e| format!("{}: {e}", t.path.display()));
    match (range, backend, lint.matcher) {
        (Ok(steps), Ok(backend), Some(matcher)) if errors.is_empty() => Ok(Prepared {
            plan: Plan {
                setup: if steps_range.setup {
                    RangeInclusive::new(1, steps.start().saturating_sub(1))
                } else {
                    RangeInclusive::new(1, 0)
                },
                tutorial: t,
                backend: kind,
                templates,
                matcher,
                snapshot_dir: lint.snapshot_dir,
                snapshots: lint.snapshots,
                steps,
            },
            backend,
        }),
        (range, backend, _) => {
            errors.extend(range.err());
            errors.extend(backend.err());
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::testing::tutorial;

    #[test]
    fn step_ranges_are_checked_against_the_tutorial() {
        let t = tutorial(&[&["true"], &["true"], &["true"]]);
        assert_eq!(StepRange::default().resolve(&t).unwrap(), 1..=3);
        assert_eq!(StepRange { from: Some(2), to: Some(2), setup: false }.resolve(&t).unwrap(), 2..=2);
        assert_eq!(StepRange { from: Some(2), to: None, setup: false }.resolve(&t).unwrap(), 2..=3);
        let err = |from, to| StepRange { from, to, setup: false }.resolve(&t).unwrap_err();
        assert_eq!(err(Some(3), Some(2)), StepRangeError::Reversed { from: 3, to: 2 });
        assert!(err(Some(3), Some(2)).to_string().contains("after"));
        assert_eq!(err(Some(4), Some(4)), StepRangeError::NoSuchStep { step: 4, last: 3 });
        assert!(err(Some(4), Some(4)).to_string().contains("3 step"));
        assert_eq!(err(Some(0), None), StepRangeError::Zero);
    }

    #[test]
    fn an_unbuilt_backend_is_an_input_error() {
        let t = tutorial(&[&["true"]]);
        let err = prepare(t, Some(BackendKind::Lab), None, StepRange::default(), None);
        // The lab may be built by the time this runs; only an unbuilt one must be refused.
        if let Err(errors) = err {
            assert!(errors.iter().any(|e| e.contains("lab")), "{errors:?}");
        }
    }

    #[test]
    fn a_capture_used_before_it_is_bound_names_both_places() {
        use crate::runner::testing::console;
        let t = crate::runner::testing::with_steps(vec![vec![
            console("use", &[("echo {{ IP }}", "")]),
            console("bind", &[("hostname -I", "[..IP..]")]),
            console("later", &[("echo {{ IP }}", "")]),
        ]]);
        let lint = lint(&t, &Templates::new(&t.front), None);
        assert_eq!(lint.errors, ["t.md:10: `{{ IP }}` is used before `[..IP..]` captures it (t.md:11)"]);
    }

    #[test]
    fn a_shell_variable_used_before_its_capture_names_both_places() {
        use crate::runner::testing::console;
        let t = crate::runner::testing::with_steps(vec![vec![
            console("use", &[("curl http://$IP/ && echo '$IP is literal here'", "")]),
            console("bind", &[("hostname -I", "[..IP..]")]),
            console("later", &[("echo \"${IP}\"", "")]),
        ]]);
        let found = lint(&t, &Templates::new(&t.front), None);
        assert_eq!(found.errors, ["t.md:10: `$IP` is used before `[..IP..]` captures it (t.md:11)"]);
        // A tutorial that sets the variable itself first is not using the capture.
        let t = crate::runner::testing::with_steps(vec![vec![
            console("own", &[("IP=10.0.0.1; echo $IP", "10.0.0.1")]),
            console("bind", &[("hostname -I", "[..IP..]")]),
        ]]);
        assert!(lint(&t, &Templates::new(&t.front), None).errors.is_empty());
        assert_eq!(shell_assignments("export A=1; read -r B C; for D in x; do :; done"), ["A", "B", "D"]);
    }

    #[test]
    fn missing_and_orphan_snapshots_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = tutorial(&[&["echo a", "echo b"]]);
        for b in &mut t.steps[0].blocks {
            b.kind = BlockKind::Shell;
        }
        let snaps = dir.path().join(&t.stem);
        std::fs::create_dir_all(&snaps).unwrap();
        let keep = crate::snapshot::Snapshot {
            tutorial: "t.md".into(),
            id: "s1-1".into(),
            command: "echo a".into(),
            body: "a\n".into(),
        };
        crate::snapshot::write(&snapshot::snapshot_path(&snaps, "s1-1"), &keep).unwrap();
        crate::snapshot::write(&snapshot::snapshot_path(&snaps, "gone"), &keep).unwrap();
        // Pending changes: of a block that is there (kept) and of blocks that are gone.
        for name in ["s1-1.snap.new", "gone2.snap.new", "s1-2.console.new", "gone3.console.new", "notes.txt"] {
            std::fs::write(snaps.join(name), "x").unwrap();
        }
        let lint = lint(&t, &Templates::new(&t.front), Some(dir.path()));
        assert!(lint.errors.is_empty(), "{:?}", lint.errors);
        assert_eq!(lint.missing.len(), 1);
        assert!(lint.missing[0].contains("s1-2"), "{:?}", lint.missing);
        let names: Vec<_> = lint.orphans.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
        // s1-2 is an `sh` block here: a pending console body of it is stale.
        assert_eq!(names, ["gone.snap", "gone2.snap.new", "gone3.console.new", "s1-2.console.new"]);
        assert!(lint.snapshots.contains_key("s1-1"));
    }
}
