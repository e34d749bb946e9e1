//! `tutor init [DIR]`: a new tutorial project that `tutor run` and `tutor book` accept as it is
//! — `book.toml`, `tutorials/SUMMARY.md`, one example tutorial on the host backend, a
//! `.gitignore`, and a GitHub workflow that runs the tutorials with tutor's composite action.
//! Nothing that exists is overwritten.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::Exit;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Folder of the new project (created if missing).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Title of the book (default: the folder's name).
    #[arg(long)]
    title: Option<String>,
    /// The GitHub action that installs and runs tutor in the CI workflow, `OWNER/REPO@REF` (the
    /// repository holding tutor's action.yml). Without it no workflow is written.
    #[arg(long, value_name = "OWNER/REPO@REF", env = "TUTOR_ACTION")]
    action: Option<String>,
}

/// The files of a new project, relative to its folder.
pub fn scaffold(title: &str, action: Option<&str>) -> Vec<(&'static str, String)> {
    let mut files = vec![
        ("book.toml", BOOK_TOML.replace("{title}", &toml_string(title))),
        ("tutorials/SUMMARY.md", SUMMARY.to_string()),
        ("tutorials/first-steps.md", TUTORIAL.to_string()),
        (".gitignore", "/target\n/book\n".to_string()),
    ];
    if let Some(action) = action {
        files.push((".github/workflows/tutorials.yml", WORKFLOW.replace("{action}", action)));
    }
    files
}

/// A TOML basic string (quotes and backslashes escaped).
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `OWNER/REPO@REF`, as a `uses:` line needs it.
fn check_action(action: &str) -> anyhow::Result<()> {
    let ok = action.split_once('@').is_some_and(|(repo, r)| {
        !r.is_empty() && repo.split('/').count() >= 2 && repo.split('/').all(|p| !p.is_empty() && !p.contains(' '))
    });
    if !ok {
        bail!(
            "--action {action:?}: expected OWNER/REPO@REF, the repository holding tutor's action.yml and a tag, branch or commit"
        );
    }
    Ok(())
}

pub async fn execute(args: InitArgs) -> anyhow::Result<Exit> {
    if let Some(a) = &args.action {
        check_action(a)?;
    }
    let dir = std::path::absolute(&args.dir).with_context(|| format!("{}", args.dir.display()))?;
    let title = match &args.title {
        Some(t) => t.clone(),
        None => dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "Tutorials".into()),
    };
    let files = scaffold(&title, args.action.as_deref());
    let existing: Vec<String> =
        files.iter().filter(|(rel, _)| args.dir.join(rel).exists()).map(|(rel, _)| rel.to_string()).collect();
    if !existing.is_empty() {
        bail!(
            "{}: not initialised, these files exist already (nothing was written): {}",
            args.dir.display(),
            existing.join(", ")
        );
    }
    for (rel, text) in &files {
        write(&args.dir.join(rel), text)?;
        println!("created {}", Path::new(&args.dir).join(rel).display());
    }
    if args.action.is_none() {
        println!(
            "no CI workflow: pass --action OWNER/REPO@REF (the repository holding tutor's action.yml) to get \
             .github/workflows/tutorials.yml"
        );
    }
    println!("next: tutor run && tutor book   (in {})", args.dir.display());
    Ok(Exit::Pass)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

const BOOK_TOML: &str = r#"[book]
title = {title}
src = "tutorials"

[build]
# A chapter listed in SUMMARY.md but not written is an error, not an empty file that
# `tutor run tutorials/` would then pick up. Drafts are written `- [Title]()`.
create-missing = false

[preprocessor.tutor]
# tutor shows each command with the output the last `tutor run` verified
# (target/tutor/last-run.json). `tutor book` runs it; so does `mdbook build` with tutor on PATH.
command = "tutor book preprocess"
"#;

const SUMMARY: &str = "# Summary\n\n- [First steps](first-steps.md)\n";

const TUTORIAL: &str = r#"---
title: First steps
backend: host
---

# First steps

Each `##` heading is a step. tutor runs every `console` block and checks that each command
prints what is written beneath it; `[..]` matches any text within a line.

## Make a file

```console
$ printf 'one\ntwo\nthree\n' > numbers.txt
$ wc -l < numbers.txt
3
```

## Read it back

```console
$ sort numbers.txt
one
three
two
$ date +%Y
[..]
```
"#;

const WORKFLOW: &str = r#"# Runs every tutorial on each push and pull request with tutor's composite action, then keeps
# the JUnit report and the run record (the book is built from it: `tutor book`).
name: tutorials

on:
  push:
  pull_request:

permissions:
  contents: read

jobs:
  tutorials:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4

      - uses: {action}
        with:
          paths: tutorials/
          junit: target/tutor/junit.xml

      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: tutor-run
          path: target/tutor/
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_toml_strings() {
        let files = scaffold("Ann's \"book\" \\ 1", None);
        assert!(files[0].1.contains("title = \"Ann's \\\"book\\\" \\\\ 1\""), "{}", files[0].1);
        let parsed: mdbook_preprocessor::config::Config = files[0].1.parse().unwrap();
        assert_eq!(parsed.book.title.as_deref(), Some("Ann's \"book\" \\ 1"));
    }

    #[test]
    fn the_workflow_needs_an_action() {
        assert_eq!(scaffold("t", None).len(), 4);
        let files = scaffold("t", Some("me/tutor@v1"));
        assert!(files[4].1.contains("      - uses: me/tutor@v1\n"), "{}", files[4].1);
        assert!(check_action("me/tutor@v1").is_ok());
        for bad in ["me/tutor", "tutor@v1", "me//tutor@v1", "me/tutor@", "me/tu tor@v1"] {
            assert!(check_action(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_example_tutorial_parses() {
        let t = crate::tutorial::parse_str(Path::new("first-steps.md"), TUTORIAL).unwrap();
        assert_eq!(t.steps.iter().map(|s| s.blocks.len()).sum::<usize>(), 2);
    }
}
