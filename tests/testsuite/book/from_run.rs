//! The whole path on the host backend: `tutor run --update` records the snapshots, `tutor run`
//! writes the run record, `tutor book` shows it. Checks that what the runner records is what
//! the book reads (ids, console transcripts, wildcards filled from real output). Skips when
//! mdbook is missing.

use std::path::Path;

crate::tests![the_book_shows_what_tutor_run_recorded(Mdbook)];

const TUTORIAL: &str = r#"---
title: From a real run
backend: host
vars:
  greeting: hello
redact:
  PID: '[0-9]+'
---
# From a real run

## Console

```console {id=console}
$ echo "pid $$"
pid [PID]

$ echo "{{ greeting }} at $(date +%s)"
{{ greeting }} at [..]
$ seq 1 5
1
...
5
```

## Shell with a snapshot

```sh {id=shell}
echo "shell $((6 * 7))"
```

## Not for this backend

```console {backend=kind}
$ kind get clusters
```

```console {skip}
$ false
```
"#;

fn run(root: &Path, args: &[&str]) -> String {
    let out = crate::book::fixture::tutor().args(args).current_dir(root).env_remove("TUTOR_RECORD").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tutor {args:?} failed:\n{text}");
    text
}

fn the_book_shows_what_tutor_run_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("tutorials")).unwrap();
    std::fs::create_dir_all(root.join("snapshots")).unwrap();
    std::fs::write(root.join("book.toml"), "[book]\ntitle = \"Run\"\nsrc = \"tutorials\"\n[preprocessor.tutor]\n")
        .unwrap();
    std::fs::write(root.join("tutorials/SUMMARY.md"), "# Summary\n\n- [Run](run.md)\n").unwrap();
    std::fs::write(root.join("tutorials/run.md"), TUTORIAL).unwrap();

    run(root, &["run", "--update", "tutorials/run.md"]);
    assert!(root.join("snapshots/run/shell.snap").is_file());
    run(root, &["run", "tutorials/run.md"]);
    assert!(root.join("target/tutor/last-run.json").is_file());
    run(root, &["book"]);

    let html = std::fs::read_to_string(root.join("book/run.html")).unwrap();
    let has = |s: &str| assert!(html.contains(s), "missing {s:?}:\n{html}");
    has("verified on host, ");
    has(", 2/2 blocks (2 skipped on host)");
    assert!(!html.contains("Changed since the last run") && !html.contains("not run"), "{html}");
    assert!(!html.contains("[PID]") && !html.contains("[..]"), "wildcards are filled:\n{html}");
    assert!(
        regex::Regex::new(r"pid \d+\n\n\$ echo").unwrap().is_match(&html),
        "the author's blank line stays:\n{html}"
    );
    has("hello at 1");
    has("1\n...\n5");
    has("<code class=\"nohighlight\">shell 42</code>");
    assert_eq!(html.matches("tutor-badge tutor-passed").count(), 3, "chapter + 2 steps:\n{html}");
    has("<span class=\"tutor-badge tutor-skipped\">skipped</span> <span class=\"tutor-meta\">on host · ");
}
