//! One chapter: a tutorial's Markdown in, the reader's page out (still Markdown, for mdBook).
//!
//! The chapter is parsed with the same parser `tutor run` uses, so the blocks, their ids and
//! attributes are exactly those that ran. Edits are splices at byte ranges found by
//! [`markdown::scan`]; everything else is left as written.

use std::ops::Range;
use std::path::{Path, PathBuf};

use pulldown_cmark::HeadingLevel;
use serde_json::json;

use super::BookError;
use super::fill::{fill, fill_console};
use super::markdown::{self, Layout};
use super::record::{RunIndex, TutorialRun};
use super::render;
use super::verdict::{self, Tally, Verdict};
use crate::backend::BackendKind;
use crate::snapshot::{Matcher, snapshot_dir, snapshot_path};
use crate::template::Templates;
use crate::tutorial::{Block, BlockKind, Tutorial, parse_str};

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Blocks restricted to these backends are left off the page: a book whose `backend=lab`
    /// blocks are the lab's own plumbing (which a reader on a real cluster never types) sets
    /// `["lab"]`. Empty by default: a `backend=` block can also be an example the prose talks
    /// about (getting-started.md shows one being skipped).
    pub hide_backends: Vec<BackendKind>,
    /// Snapshot folder override (as `tutor run --snapshots`); default: found from the tutorial.
    pub snapshots: Option<PathBuf>,
    /// Where a chapter's source can be read: `{path}` is the chapter's path relative to
    /// `book_root`, e.g. `tutorials/intro.md` (mdBook's `edit-url-template` convention).
    pub source_url: Option<String>,
    /// The folder of `book.toml` (what `{path}` is relative to).
    pub book_root: Option<PathBuf>,
    /// Paths of the machine that built the book or ran the tutorials, as readers should see them
    /// instead (`/home/me/tutor/` → ``): see [`Scrub`].
    pub scrub: Scrub,
}

/// Absolute paths of the build machine never reach a page: project roots become relative,
/// the home folder `~`, a run's temporary work directory `<workdir>`.
#[derive(Debug, Clone, Default)]
pub struct Scrub {
    prefixes: Vec<(String, String)>,
}

impl Scrub {
    /// `root` (an absolute folder) is shown as `instead` (`""`: paths below it become relative).
    pub fn add(&mut self, root: &Path, instead: &str) {
        let mut text = root.display().to_string();
        if text.len() <= 1 || self.prefixes.iter().any(|(p, _)| *p == text) {
            return;
        }
        if !text.ends_with('/') {
            text.push('/');
        }
        let instead =
            if instead.is_empty() || instead.ends_with('/') { instead.to_string() } else { format!("{instead}/") };
        self.prefixes.push((text, instead));
        // Longest first: a project inside the home folder is made relative, not `~/…`.
        self.prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    pub fn apply(&self, text: &str) -> String {
        let mut out = workdirs().replace_all(text, "<workdir>").into_owned();
        for (prefix, instead) in &self.prefixes {
            out = out.replace(prefix.as_str(), instead);
            // The folder itself, without the slash.
            let bare = &prefix[..prefix.len() - 1];
            if out.contains(bare) {
                let name = if instead.is_empty() { "." } else { instead.trim_end_matches('/') };
                out = out.replace(bare, name);
            }
        }
        out
    }
}

/// `tutor run`'s temporary work directories (`$TMPDIR/tutor-<stem>-XXXXXX`).
fn workdirs() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"(?:/[\w.+-]+)*/tutor-[\w.+-]*?-[A-Za-z0-9]{6}\b").expect("valid regex"))
}

/// Rewrite one chapter. `path` is the chapter's file (it names the snapshot folder and errors);
/// `content` is its Markdown as mdBook hands it over. `Ok(None)`: not a tutorial, leave it.
pub fn transform(
    path: &Path,
    content: &str,
    run: Option<&RunIndex>,
    opts: &Options,
) -> Result<Option<String>, BookError> {
    let tutorial = parse_str(path, content)?;
    let layout = markdown::scan(content);
    if tutorial.steps.iter().all(|s| s.blocks.is_empty()) && layout.front_matter.is_none() {
        return Ok(None);
    }
    let page = Page::new(&tutorial, &layout, run, opts)?;
    Ok(Some(page.render()?))
}

/// Everything needed to lay out one tutorial's page.
struct Page<'a> {
    tutorial: &'a Tutorial,
    layout: &'a Layout,
    run: Option<&'a TutorialRun<'a>>,
    index: Option<&'a RunIndex<'a>>,
    opts: &'a Options,
    matcher: Matcher,
    templates: Templates,
    snapshots: PathBuf,
}

/// A block as it will be shown, decided once and used for the block, its step and the chapter.
struct Shown {
    verdict: Verdict,
    html: String,
}

impl<'a> Page<'a> {
    fn new(
        tutorial: &'a Tutorial,
        layout: &'a Layout,
        index: Option<&'a RunIndex<'a>>,
        opts: &'a Options,
    ) -> Result<Self, BookError> {
        let matcher = Matcher::new(&tutorial.front.redact)
            .map_err(|source| BookError::Pattern { path: tutorial.path.clone(), source })?;
        Ok(Page {
            tutorial,
            layout,
            run: index.and_then(|i| i.tutorial(&tutorial.stem)),
            index,
            opts,
            matcher,
            templates: Templates::new(&tutorial.front),
            snapshots: snapshot_dir(tutorial, opts.snapshots.as_deref()),
        })
    }

    fn render(&self) -> Result<String, BookError> {
        let source = &self.tutorial.source;
        let mut edits: Vec<(Range<usize>, String)> = Vec::new();
        let mut tally = Tally::default();
        if let Some(fm) = &self.layout.front_matter {
            edits.push((fm.clone(), String::new()));
        }
        for step in &self.tutorial.steps {
            let mut verdicts = Vec::new();
            for block in &step.blocks {
                let fence = self.layout.fence_at(block.line).ok_or_else(|| {
                    crate::tutorial::TutorialError::at(
                        &self.tutorial.path,
                        block.line,
                        "code fence not found again in the chapter".to_string(),
                    )
                })?;
                let shown = self.block(block)?;
                if block.is_command() {
                    verdicts.push(shown.verdict);
                    tally.add(shown.verdict);
                }
                edits.push((fence.range.clone(), render::indent(&shown.html, &fence.indent)));
            }
            let heading = self.layout.heading_at(step.line, HeadingLevel::H2);
            if let (Some(v), Some(h)) = (Verdict::combine(verdicts), heading) {
                let line = render::step_line(v, &self.step_facts(step.blocks.iter().find(|b| b.is_command()), v));
                edits.push((h.range.end..h.range.end, format!("\n\n{line}")));
            }
        }
        let (verdict, summary, title) = self.chapter_summary(&tally);
        let chapter_line =
            render::chapter_line(verdict, &summary, title.as_deref(), &self.run_facts(), self.source_url().as_deref());
        match self.layout.title() {
            Some(h) => edits.push((h.range.end..h.range.end, format!("\n\n{chapter_line}\n"))),
            None => {
                let at = self.layout.front_matter.as_ref().map_or(0, |r| r.end);
                edits.push((at..at, format!("\n{chapter_line}\n\n")));
            }
        }
        edits.sort_by_key(|(r, _)| (r.start, r.end));
        let mut out = String::with_capacity(source.len() * 2);
        let mut at = 0;
        for (range, text) in edits {
            out.push_str(&source[at..range.start]);
            out.push_str(&text);
            at = range.end;
        }
        out.push_str(&source[at..]);
        Ok(out)
    }

    fn hidden(&self, block: &Block) -> bool {
        block.attrs.hidden || block.attrs.backend.is_some_and(|b| self.opts.hide_backends.contains(&b))
    }

    /// Template values from the front matter's `vars`; values that need the environment's facts
    /// are only known to a run, so such text is shown as written.
    fn with_vars(&self, text: &str, line: usize) -> String {
        self.templates.render(text, &json!({}), &self.tutorial.path, line).unwrap_or_else(|_| text.to_string())
    }

    fn block(&self, block: &Block) -> Result<Shown, BookError> {
        let record = self.run.and_then(|r| r.block(&block.id));
        let mut verdict = Verdict::of(record.map(|r| r.status));
        if self.hidden(block) {
            return Ok(Shown { verdict, html: String::new() });
        }
        // A failed block shows what the run printed, never the stale expectation as if it were.
        let failed = record.filter(|_| verdict == Verdict::Failed);
        let actual = failed.map(|r| self.opts.scrub.apply(&r.output)).filter(|o| !o.trim().is_empty());
        // A background block's output is not judged (it is still running): nothing to fill.
        let passed_output = record.filter(|_| verdict == Verdict::Passed && !block.attrs.bg).map(|r| r.output.as_str());
        let mut html = String::new();
        let mut copy = None;
        match &block.kind {
            BlockKind::File(name) => {
                let body = self.with_vars(&block.body, block.body_line);
                return Ok(Shown { verdict, html: render::file(name, &render::fence(&block.lang, &body)) });
            }
            BlockKind::Console(commands) => {
                let expected = self.with_vars(&block.body, block.body_line);
                let filled = passed_output
                    .map(|out| fill_console(&self.matcher, &block.body, block.body_line, commands, out))
                    .map(|f| f.map(|text| self.opts.scrub.apply(&text)));
                let shown = match (filled, &actual) {
                    (_, Some(actual)) => actual.clone(),
                    (Some(Some(filled)), None) => filled,
                    (Some(None), None) => {
                        verdict = Verdict::NotRun;
                        expected
                    }
                    (None, None) => expected,
                };
                // The commands as shown: what the run ran (templates rendered) when it is a
                // transcript, else as written.
                let ran = crate::tutorial::parse_console(&shown, block.body_line).ok().filter(|c| !c.is_empty());
                let lines: Vec<String> = match ran {
                    Some(ran) => ran.into_iter().map(|c| c.command).collect(),
                    None => commands.iter().map(|c| self.with_vars(&c.command, c.line)).collect(),
                };
                copy = Some(lines.join("\n"));
                html.push_str(&render::fence(&block.lang, &shown));
            }
            BlockKind::Shell => {
                html.push_str(&render::fence(&block.lang, &self.with_vars(&block.body, block.body_line)));
                let snap = crate::snapshot::read(&snapshot_path(&self.snapshots, &block.id))?;
                let expected = snap.as_ref().map(|s| s.body.as_str());
                let shown = match (passed_output, expected) {
                    _ if actual.is_some() => actual.clone(),
                    (Some(out), Some(exp)) => match fill(&self.matcher, exp, out) {
                        Some(filled) => Some(self.opts.scrub.apply(&filled)),
                        None => {
                            verdict = Verdict::NotRun;
                            Some(self.with_vars(exp, 1))
                        }
                    },
                    (Some(out), None) => Some(self.opts.scrub.apply(out)),
                    (None, Some(exp)) => Some(self.with_vars(exp, 1)),
                    (None, None) => None,
                };
                match shown {
                    Some(text) if !text.trim().is_empty() => {
                        html.push_str("\n\n");
                        html.push_str(&render::output(&text));
                    }
                    Some(_) => {}
                    None if verdict != Verdict::Skipped && failed.is_none() => {
                        html.push_str("\n\n");
                        html.push_str(&render::note("No recorded output yet: `tutor run --update` records it."));
                    }
                    None => {}
                }
            }
        }
        if verdict == Verdict::NotRun && passed_output.is_some() {
            html.push_str("\n\n");
            html.push_str(&render::note(
                "Changed since the last run: this output is the expectation, not yet verified.",
            ));
        }
        let mut head = render::labels(&self.labels(block));
        if let Some(r) = record {
            let backend = self.backend();
            match verdict {
                Verdict::Failed => {
                    let when = self.date().map(|d| format!(" on {d}")).unwrap_or_default();
                    let why =
                        r.reason.as_deref().map(|s| format!(": {}", self.opts.scrub.apply(s))).unwrap_or_default();
                    let shown = if actual.is_some() { " (the output shown is what it printed)" } else { "" };
                    head.push_str(&render::failed_label(&format!("✗ failed{when} ({backend}){why}{shown}")));
                    head.push_str("\n\n");
                    if let Some(d) = r.diff.as_deref().filter(|d| !d.is_empty()) {
                        html.push_str("\n\n");
                        html.push_str(&render::diff("diff: expected vs actual", &self.opts.scrub.apply(d)));
                    }
                }
                Verdict::Skipped => {
                    let why = r.reason.as_deref().map(|s| format!(": {s}")).unwrap_or_default();
                    html.push_str("\n\n");
                    html.push_str(&render::note(&format!("Not run on {backend}{why}.")));
                }
                _ => {}
            }
        }
        let html =
            format!("{}{head}{html}{}", render::block_open(&block.id, verdict, copy.as_deref()), render::BLOCK_CLOSE);
        Ok(Shown { verdict, html })
    }

    /// The attributes that change what a block means, as the reader's labels.
    fn labels(&self, block: &Block) -> Vec<(&'static str, String, String)> {
        let a = &block.attrs;
        let mut out = Vec::new();
        if a.skip {
            out.push(("skip", "never run".to_string(), "skip: tutor never runs this block".to_string()));
        }
        if let Some(b) = a.backend {
            out.push(("backend", format!("{b} only"), format!("backend={b}: runs only on the {b} backend")));
        }
        if a.on != crate::backend::Target::Host {
            out.push((
                "on",
                format!("runs on {}", a.on),
                format!("on={}: runs in {}, not on your machine", a.on, a.on),
            ));
        }
        if a.exit != 0 {
            let n = a.exit;
            out.push((
                "exit",
                format!("exit {n}"),
                format!("exit={n}: the last command is expected to fail with status {n}"),
            ));
        }
        if a.bg {
            out.push((
                "bg",
                "background".to_string(),
                "bg: keeps running in the background until the tutorial ends".to_string(),
            ));
        }
        if let Some(d) = a.retry {
            let d = verdict::span(d.as_millis() as u64);
            out.push((
                "retry",
                format!("retries up to {d}"),
                format!("retry: run again until the output matches, for up to {d}"),
            ));
        }
        if let Some(d) = a.timeout {
            let d = verdict::span(d.as_millis() as u64);
            out.push(("timeout", format!("times out after {d}"), format!("timeout: stopped and failed after {d}")));
        }
        out
    }

    fn backend(&self) -> &str {
        self.run
            .and_then(|r| r.tutorial.backend.as_deref())
            .or(self.index.map(|i| i.record.backend.as_str()))
            .unwrap_or("?")
    }

    /// When this chapter's own run started (the record keeps each tutorial's latest run).
    fn started_at(&self) -> Option<&str> {
        self.run.and_then(|r| r.tutorial.started_at.as_deref()).or(self.index.map(|i| i.record.started_at.as_str()))
    }

    fn date(&self) -> Option<&str> {
        self.started_at().map(verdict::date)
    }

    /// Duration of the recorded step, backend and date of the run that verified it.
    fn step_facts(&self, first_command: Option<&Block>, v: Verdict) -> Vec<String> {
        let (Some(run), Some(block)) = (self.run, first_command) else { return Vec::new() };
        let mut facts = Vec::new();
        match v {
            Verdict::NotRun => return facts,
            Verdict::Skipped => facts.push(format!("on {}", self.backend())),
            Verdict::Passed | Verdict::Failed => {
                facts.extend(run.step_of(&block.id).map(|step| verdict::duration(step.duration_ms)));
                facts.push(self.backend().to_string());
            }
        }
        facts.extend(self.date().map(str::to_string));
        facts
    }

    /// The chapter's verdict and line, and the tooltip with the run's exact time and record.
    fn chapter_summary(&self, t: &Tally) -> (Verdict, String, Option<String>) {
        let (Some(index), Some(run)) = (self.index, self.run) else {
            let why = if self.index.is_some() { "not in the last run" } else { "not run yet" };
            return (Verdict::NotRun, format!("{why}: outputs shown are the recorded expectations"), None);
        };
        let backend = self.backend();
        let started_at = self.started_at().unwrap_or(&index.record.started_at);
        let date = verdict::date(started_at);
        let skipped = if t.skipped > 0 { format!(" ({} skipped on {backend})", t.skipped) } else { String::new() };
        let (passed, ran) = (t.passed, t.ran());
        let (verdict, text) = match (t.verdict(), &run.tutorial.error) {
            // The tutorial as a whole did not get to run its blocks (backend failed to come up, …).
            (Verdict::NotRun | Verdict::Skipped, Some(e)) => {
                (Verdict::Failed, format!("failed on {backend}, {date}: {e}"))
            }
            (Verdict::Passed, _) => {
                (Verdict::Passed, format!("verified on {backend}, {date}, {passed}/{ran} blocks{skipped}"))
            }
            (Verdict::Failed, _) => {
                (Verdict::Failed, format!("failed on {backend}, {date}: {passed}/{ran} blocks passed{skipped}"))
            }
            (Verdict::Skipped, None) => {
                (Verdict::Skipped, format!("not run on {backend}, {date}: every block is for another backend"))
            }
            (Verdict::NotRun, None) => (
                Verdict::NotRun,
                format!(
                    "partly verified on {backend}, {date}: {passed}/{ran} blocks (the others were not in that run, or changed since){skipped}"
                ),
            ),
        };
        let text = match &run.tutorial.partial {
            Some(which) => format!("{text} (partial run: {which})"),
            None => text,
        };
        let title = format!(
            "run started {} on {backend}, took {}; record: {}",
            started_at,
            verdict::duration(run.tutorial.duration_ms),
            self.record_name()
        );
        (verdict, text, Some(title))
    }

    /// The record's path as readers may see it: relative to the project, else its file name.
    fn record_name(&self) -> String {
        let Some(index) = self.index else { return String::new() };
        let shown = self.opts.scrub.apply(&index.path.display().to_string());
        if Path::new(&shown).is_absolute() {
            index.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        } else {
            shown
        }
    }

    /// The run this page reflects: backend, when, how long, which tutor.
    fn run_facts(&self) -> Vec<String> {
        let (Some(index), Some(run)) = (self.index, self.run) else { return Vec::new() };
        let mut facts = vec![format!("run on {}", self.backend())];
        let at = &index.record.started_at;
        facts.push(match (at.get(..10), at.get(11..16)) {
            (Some(day), Some(time)) if verdict::date(at) == day && at.ends_with('Z') => format!("{day} {time} UTC"),
            _ => at.clone(),
        });
        facts.push(format!("took {}", verdict::duration(run.tutorial.duration_ms)));
        if let Some(v) = &index.record.tutor_version {
            facts.push(format!("tutor {v}"));
        }
        facts
    }

    /// The chapter's source file, where the book says its sources are published.
    fn source_url(&self) -> Option<String> {
        let template = self.opts.source_url.as_deref()?;
        let rel = match &self.opts.book_root {
            Some(src) => self.tutorial.path.strip_prefix(src).ok()?,
            None => self.tutorial.path.as_path(),
        };
        Some(template.replace("{path}", &rel.display().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::testing::{Project, record_with};
    use crate::runner::Status;

    const TUTORIAL: &str = r#"---
title: Demo
vars:
  who: world
---
# Demo

Intro.

## Say hello

```sh {id=hello retry=5s}
echo hello {{ who }}
```

```console {on=kind-worker}
$ ip route
default via [..] dev eth0
```

## Set up

```sh {backend=lab id=plumbing}
secret-lab-setup
```

```yaml {file=kind-config.yaml}
kind: Cluster
nodes: [{role: control-plane}, {role: worker}]
```

```sh {backend=kind id=real}
docker ps
```
"#;

    fn project() -> Project {
        let p = Project::new();
        p.tutorial("demo.md", TUTORIAL);
        p.snapshot("demo", "hello", "echo hello {{ who }}", "hello world\n");
        p
    }

    fn page(p: &Project, rec: Option<&crate::report::record::RunRecord>) -> String {
        let index = rec.map(|r| RunIndex::new(r, p.root().join("last-run.json")));
        let opts = Options { hide_backends: vec![BackendKind::Lab], ..Options::default() };
        transform(&p.tutorial_path("demo.md"), TUTORIAL, index.as_ref(), &opts).unwrap().unwrap()
    }

    #[test]
    fn not_run_shows_expectations_and_strips_test_syntax() {
        let p = project();
        let out = page(&p, None);
        assert!(!out.contains("title: Demo"), "front matter removed:\n{out}");
        assert!(!out.contains("retry=") && !out.contains("{on="), "attributes stripped:\n{out}");
        assert!(out.contains("```sh\necho hello world\n```"), "vars filled, attributes gone:\n{out}");
        assert!(
            out.contains("<pre class=\"tutor-output\"><code class=\"nohighlight\">hello world</code></pre>"),
            "{out}"
        );
        assert!(out.contains("```console\n$ ip route\ndefault via [..] dev eth0\n```"), "{out}");
        assert!(!out.contains("secret-lab-setup"), "backend=lab blocks are hidden:\n{out}");
        assert!(out.contains("<div class=\"tutor-file\">\n<div class=\"tutor-file-name\">kind-config.yaml</div>\n\n```yaml\nkind: Cluster\nnodes: [{role: control-plane}, {role: worker}]\n```\n\n</div>"), "{out}");
        assert!(out.contains("```sh\ndocker ps\n```"), "backend=kind blocks stay:\n{out}");
        assert!(out.contains("not run yet: outputs shown are the recorded expectations"), "{out}");
        assert_eq!(out.matches("class=\"tutor-step\" data-status=\"not-run\"").count(), 2, "{out}");
        assert!(out.contains("# Demo\n\n<style>"), "chapter line under the title:\n{out}");
        assert!(out.contains("No recorded output yet"), "real has no snapshot:\n{out}");
    }

    #[test]
    fn passing_run_fills_wildcards_and_badges_steps() {
        let p = project();
        let mut rec = record_with(
            "demo",
            &[
                ("hello", Status::Passed, "hello world\n"),
                ("say-hello-2", Status::Passed, "$ ip route\ndefault via 172.18.0.1 dev eth0\n"),
                ("plumbing", Status::Passed, ""),
                ("real", Status::Skipped, ""),
            ],
        );
        rec.tutorials[0].steps[0].blocks[3].reason = Some("backend=kind".into());
        let out = page(&p, Some(&rec));
        assert!(out.contains("```console\n$ ip route\ndefault via 172.18.0.1 dev eth0\n```"), "{out}");
        assert!(out.contains("verified on lab, 2026-11-26, 3/3 blocks (1 skipped on lab)"), "{out}");
        assert!(out.contains("<span class=\"tutor-badge tutor-passed\">✓ passed</span> <span class=\"tutor-meta\">1.2 s · lab · 2026-11-26</span>"), "{out}");
        assert!(out.contains("Not run on lab: backend=kind."), "{out}");
        assert!(!out.contains("<details"), "{out}");
        assert!(!out.contains("No recorded output yet"), "a skipped block needs no snapshot:\n{out}");
    }

    #[test]
    fn failed_block_shows_what_it_printed_with_a_coloured_diff() {
        let p = project();
        let mut rec = record_with("demo", &[("hello", Status::Failed, "hello moon\n")]);
        rec.tutorials[0].status = Status::Failed;
        rec.tutorials[0].steps[0].blocks[0].diff = Some("-hello world\n+hello moon\n".into());
        rec.tutorials[0].steps[0].blocks[0].reason = Some("output does not match".into());
        let out = page(&p, Some(&rec));
        assert!(out.contains("<div class=\"tutor-failed-label\">✗ failed on 2026-11-26 (lab): output does not match (the output shown is what it printed)</div>"), "{out}");
        assert!(out.contains("<details class=\"tutor-diff\" open><summary>diff: expected vs actual</summary>\n<pre><code class=\"nohighlight\"><span class=\"tutor-diff-del\">-hello world</span>\n<span class=\"tutor-diff-add\">+hello moon</span></code></pre>\n</details>"), "{out}");
        assert!(
            out.contains("<code class=\"nohighlight\">hello moon</code></pre>"),
            "the actual output is shown:\n{out}"
        );
        assert!(!out.contains("hello world</code></pre>"), "never the stale expectation as output:\n{out}");
        assert!(out.contains("failed on lab, 2026-11-26: 0/"), "{out}");
        assert!(out.contains("tutor-step\" data-status=\"failed\""), "{out}");
    }

    #[test]
    fn failed_console_block_shows_the_transcript() {
        let p = Project::new();
        let text = "## S\n\n```console {id=c}\n$ echo a\nb\n```\n";
        let mut rec = record_with("t", &[("c", Status::Failed, "$ echo a\na\n")]);
        rec.tutorials[0].steps[0].blocks[0].diff = Some("-b\n+a\n".into());
        let index = RunIndex::new(&rec, p.root().join("r.json"));
        let out = transform(&p.tutorial_path("t.md"), text, Some(&index), &Options::default()).unwrap().unwrap();
        assert!(out.contains("```console\n$ echo a\na\n```"), "{out}");
        assert!(!out.contains("$ echo a\nb"), "{out}");
    }

    #[test]
    fn attributes_that_change_meaning_are_labelled() {
        let p = Project::new();
        let text = "## S\n\n```console {exit=1}\n$ false\n```\n\n```console {bg retry=60s timeout=5m}\n$ sleep 1\n```\n\n```sh {on=kind-worker backend=kind skip id=x}\nip r\n```\n\n```console\n$ plain\n```\n";
        let out = transform(&p.tutorial_path("t.md"), text, None, &Options::default()).unwrap().unwrap();
        for (attr, text) in [
            ("exit", "exit 1"),
            ("bg", "background"),
            ("retry", "retries up to 60 s"),
            ("timeout", "times out after 5 min"),
            ("on", "runs on kind-worker"),
            ("backend", "kind only"),
            ("skip", "never run"),
        ] {
            let at = out
                .find(&format!("<span class=\"tutor-label\" data-attr=\"{attr}\" title=\""))
                .unwrap_or_else(|| panic!("{attr}:\n{out}"));
            let span = &out[at..at + out[at..].find("</span>").unwrap()];
            assert!(span.ends_with(&format!("\">{text}")), "{span}");
        }
        assert_eq!(out.matches("<div class=\"tutor-labels\">").count(), 3, "{out}");
        assert!(
            out.contains(
                "<div class=\"tutor-block\" id=\"tutor-s-4\" data-status=\"not-run\" data-copy=\"plain\">\n\n```console"
            ),
            "a block without such attributes has no labels:\n{out}"
        );
    }

    #[test]
    fn copy_holds_the_commands_only() {
        let p = Project::new();
        let text = "---\nvars:\n  who: me\n---\n## S\n\n```console\n$ echo {{ who }} \\\n>   two\nme two\n\n$ cat <<EOF\nx\nEOF\nx\n```\n";
        let out = transform(&p.tutorial_path("t.md"), text, None, &Options::default()).unwrap().unwrap();
        assert!(out.contains("data-copy=\"echo me \\&#10;  two&#10;cat &lt;&lt;EOF&#10;x&#10;EOF\""), "{out}");
    }

    #[test]
    fn copy_holds_the_commands_the_run_ran() {
        let p = Project::new();
        let text = "## S\n\n```console {id=c}\n$ echo {{ backend }}\nhost\n```\n";
        let rec = record_with("t", &[("c", Status::Passed, "$ echo host\nhost\n")]);
        let index = RunIndex::new(&rec, p.root().join("r.json"));
        let out = transform(&p.tutorial_path("t.md"), text, Some(&index), &Options::default()).unwrap().unwrap();
        assert!(out.contains("data-copy=\"echo host\""), "{out}");
        let out = transform(&p.tutorial_path("t.md"), text, None, &Options::default()).unwrap().unwrap();
        assert!(out.contains("data-copy=\"echo {{ backend }}\""), "not run: as written:\n{out}");
    }

    #[test]
    fn absolute_paths_of_the_machine_never_reach_the_page() {
        let p = project();
        let root = p.root().display().to_string();
        let mut rec = record_with("demo", &[("hello", Status::Failed, "in /tmp/tutor-demo-Ab3xYz/sub\n")]);
        let b = &mut rec.tutorials[0].steps[0].blocks[0];
        b.diff = Some(format!(
            "--- expected ({root}/snapshots/demo/hello.snap)\n+++ actual\n-hello world\n+in /tmp/tutor-demo-Ab3xYz/sub\n"
        ));
        b.reason = Some(format!("see {root}/snapshots"));
        let index = RunIndex::new(&rec, p.root().join("target/tutor/last-run.json"));
        let mut opts = Options::default();
        opts.scrub.add(p.root(), "");
        let out = transform(&p.tutorial_path("demo.md"), TUTORIAL, Some(&index), &opts).unwrap().unwrap();
        assert!(!out.contains(&root), "{out}");
        assert!(!out.contains("/tmp/"), "{out}");
        assert!(out.contains("--- expected (snapshots/demo/hello.snap)"), "{out}");
        assert!(out.contains("in &lt;workdir&gt;/sub"), "{out}");
        assert!(out.contains("record: target/tutor/last-run.json"), "{out}");
    }

    #[test]
    fn scrub_prefers_the_longest_root() {
        let mut s = Scrub::default();
        s.add(Path::new("/home/me"), "~");
        s.add(Path::new("/home/me/tutor"), "");
        assert_eq!(s.apply("/home/me/tutor/snapshots/a /home/me/x /home/me/tutor"), "snapshots/a ~/x .");
    }

    #[test]
    fn chapter_shows_its_run_and_links_its_source() {
        let p = project();
        let rec = record_with("demo", &[("hello", Status::Passed, "hello world\n")]);
        let index = RunIndex::new(&rec, p.root().join("r.json"));
        let opts = Options {
            source_url: Some("https://example.org/r/blob/main/{path}".into()),
            book_root: Some(p.root().to_path_buf()),
            ..Options::default()
        };
        let out = transform(&p.tutorial_path("demo.md"), TUTORIAL, Some(&index), &opts).unwrap().unwrap();
        assert!(out.contains("<div class=\"tutor-run\">run on lab · 2026-11-26 10:00 UTC · took 1.3 s · tutor 0.1.0 · <a class=\"tutor-source\" href=\"https://example.org/r/blob/main/tutorials/demo.md\">source</a></div>"), "{out}");
    }

    #[test]
    fn output_that_no_longer_matches_is_not_claimed_verified() {
        let p = project();
        let rec = record_with("demo", &[("hello", Status::Passed, "hello old\n")]);
        let out = page(&p, Some(&rec));
        assert!(out.contains("Changed since the last run"), "{out}");
        assert!(out.contains("hello world</code></pre>"), "{out}");
    }

    #[test]
    fn partial_runs_and_broken_backends_are_said_so() {
        let p = project();
        let rec = record_with("demo", &[("hello", Status::Passed, "hello world\n")]);
        let out = page(&p, Some(&rec));
        assert!(out.contains("partly verified on lab, 2026-11-26: 1/"), "{out}");
        let mut rec = record_with("demo", &[]);
        rec.tutorials[0].status = Status::Error;
        rec.tutorials[0].error = Some("the lab did not come up: no netns".into());
        let out = page(&p, Some(&rec));
        assert!(out.contains("tutor-chapter\" data-status=\"failed\""), "{out}");
        assert!(out.contains("failed on lab, 2026-11-26: the lab did not come up: no netns"), "{out}");
    }

    #[test]
    fn nothing_is_hidden_by_default() {
        let p = project();
        let out = transform(&p.tutorial_path("demo.md"), TUTORIAL, None, &Options::default()).unwrap().unwrap();
        assert!(out.contains("secret-lab-setup"), "{out}");
    }

    #[test]
    fn hidden_blocks_are_left_out() {
        let p = Project::new();
        let text = "## S\n\n```console {hidden}\n$ echo secret-setup\nsecret-setup\n```\n\n```console\n$ echo shown\nshown\n```\n";
        let out = transform(&p.tutorial_path("h.md"), text, None, &Options::default()).unwrap().unwrap();
        assert!(!out.contains("secret-setup"), "{out}");
        assert!(out.contains("echo shown"), "{out}");
    }

    #[test]
    fn prose_chapters_are_left_alone() {
        let p = Project::new();
        let text = "# Intro\n\n```yaml\na: 1\n```\n";
        assert!(transform(&p.tutorial_path("intro.md"), text, None, &Options::default()).unwrap().is_none());
    }

    #[test]
    fn blocks_inside_lists_stay_inside() {
        let p = Project::new();
        let text = "## S\n\n1. Run:\n\n   ```sh {id=x}\n   echo a\n   ```\n\n2. Next\n";
        p.snapshot("t", "x", "echo a", "a\n\nb\n");
        let out = transform(&p.tutorial_path("t.md"), text, None, &Options::default()).unwrap().unwrap();
        assert!(out.contains("   <div class=\"tutor-block\" id=\"tutor-x\" data-status=\"not-run\">\n\n   ```sh\n   echo a\n   ```\n\n   <pre class=\"tutor-output\"><code class=\"nohighlight\">a\n\n   b</code></pre>\n\n   </div>\n\n2. Next"), "{out}");
    }

    #[test]
    fn tutorial_errors_name_file_and_line() {
        let p = Project::new();
        let e = transform(&p.tutorial_path("t.md"), "## S\n```sh {colour=red}\n```\n", None, &Options::default())
            .unwrap_err();
        assert!(e.to_string().ends_with("t.md:2: unknown attribute `colour` (known: id, on, retry, timeout, exit, bg, backend, skip, hidden, file)"), "{e}");
    }
}
