//! `tutor check`: lint without executing.

use crate::prelude::{copy_tree, fixture, run_in};

crate::tests![
    a_good_tutorial_checks_clean,
    missing_and_orphan_snapshots_are_reported,
    check_reports_every_bad_input,
    an_invalid_regex_line_is_an_input_error,
    every_error_of_a_file_at_once_sorted_by_line,
    front_matter_yaml_errors_are_at_the_files_line,
    fences_that_will_not_run_get_a_note,
    prune_removes_orphans_and_names_each,
    offline_urls_are_checked_at_their_lines
];

fn a_good_tutorial_checks_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_in(tmp.path(), &["check", fixture("features.md").to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("ok: 1 tutorial(s)"), "{out:?}");
}

fn missing_and_orphan_snapshots_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture("snapshots/features"), &tmp.path().join("snapshots/features"));
    std::fs::copy(fixture("features.md"), tmp.path().join("features.md")).unwrap();
    // Rename the block's snapshot: the block misses it, the file is an orphan.
    std::fs::rename(
        tmp.path().join("snapshots/features/show-config.snap"),
        tmp.path().join("snapshots/features/old-name.snap"),
    )
    .unwrap();
    let out = run_in(tmp.path(), &["check", "features.md"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("features.md:51: no snapshot"), "{out:?}");
    // The orphan is a warning (`--prune` removes it), the missing snapshot the one problem.
    let orphan = out.stderr.lines().find(|l| l.contains("old-name.snap")).unwrap_or_else(|| panic!("{out:?}"));
    assert!(orphan.starts_with("warning: ") && orphan.contains("snapshots/features/old-name.snap: orphan snapshot"));
    assert!(out.stderr.contains("1 problem(s)"), "{out:?}");
}

fn every_error_of_a_file_at_once_sorted_by_line() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "---\ntitel: T\n---\n\n## One\n\n```yaml {file=kind-config.yaml}\nkind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n  - role: worker\n```\n\n```console {on=kind-wroker}\n$ true\n```\n\n```sh {exit=256 tmeout=5s}\ntrue\n```\n\n```sh {timeout=0s id=a}\ntrue\n```\n\n## Two\n\n```console {id=a retry=-1s}\n$ true\n```\n\n```console {on=kind-worker}\n$ true\n```\n";
    std::fs::write(tmp.path().join("t.md"), text).unwrap();
    let out = run_in(tmp.path(), &["check", "t.md"]);
    assert_eq!(out.code, 2, "{out:?}");
    let errors: Vec<&str> = out.stderr.lines().filter_map(|l| l.strip_prefix("error: ")).collect();
    assert_eq!(
        errors,
        [
            "t.md:2: front matter: unknown key `titel` (did you mean `title`? known: title, backend, timeout, vars, redact, kubernetes, offline, needs)",
            "t.md:15: on=kind-wroker: no node `kind-wroker` in the tutorial's kind config (line 7): did you mean `kind-worker`? its nodes are kind-control-plane, kind-worker",
            "t.md:19: invalid exit status `256` (expected a number from 0 to 255)",
            "t.md:19: unknown attribute `tmeout` (did you mean `timeout`? known: id, on, retry, timeout, exit, bg, backend, skip, hidden, file)",
            "t.md:23: `timeout=0s` must be longer than 0",
            "t.md:29: invalid duration `-1s` for `retry=` (expected e.g. 30s, 2m, 500ms)",
        ],
        "{out:?}"
    );
    assert!(out.stderr.contains("6 problem(s)"), "{out:?}");
    // `tutor run` refuses the same file with the same errors, before running anything.
    let out = run_in(tmp.path(), &["run", "t.md", "--record", "r.json"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("t.md:29: invalid duration"), "{out:?}");
}

fn front_matter_yaml_errors_are_at_the_files_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("t.md"), "---\ntitle: T\nvars:\n  a: 1\n b: 2\n---\n\n```sh\ntrue\n```\n").unwrap();
    let out = run_in(tmp.path(), &["check", "t.md"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("error: t.md:5: front matter: "), "{out:?}");
    assert!(!out.stderr.contains(" at line "), "no position in the YAML document: {out:?}");
}

fn fences_that_will_not_run_get_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("t.md"),
        "# T\n\n```shell\nls\n```\n\n```zsh\nls\n```\n\n```Bash\nls\n```\n\n```shell {skip}\nls\n```\n\n```python title=\"x.py\"\nprint(1)\n```\n\n```console\n$ true\n```\n",
    )
    .unwrap();
    let out = run_in(tmp.path(), &["check", "t.md"]);
    assert_eq!(out.code, 0, "notes are not errors: {out:?}");
    let notes: Vec<&str> = out.stderr.lines().filter_map(|l| l.strip_prefix("warning: ")).collect();
    assert_eq!(notes.len(), 3, "{out:?}");
    for (note, (line, lang)) in notes.iter().zip([(3, "shell"), (7, "zsh"), (11, "Bash")]) {
        assert!(note.starts_with(&format!("t.md:{line}: ```{lang} blocks do not run")), "{out:?}");
    }
}

fn prune_removes_orphans_and_names_each() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture("snapshots/features"), &tmp.path().join("snapshots/features"));
    std::fs::copy(fixture("features.md"), tmp.path().join("features.md")).unwrap();
    let dir = tmp.path().join("snapshots/features");
    std::fs::copy(dir.join("show-config.snap"), dir.join("old-name.snap")).unwrap();
    std::fs::write(dir.join("gone.snap.new"), "x").unwrap();
    let out = run_in(tmp.path(), &["check", "features.md"]);
    assert_eq!(out.code, 0, "orphans alone are warnings: {out:?}");
    assert!(out.stderr.contains("old-name.snap: orphan snapshot"), "{out:?}");
    assert!(out.stderr.contains("gone.snap.new: orphan snapshot"), "{out:?}");
    assert!(out.stderr.contains("`tutor check --prune` removes it"), "{out:?}");
    assert!(dir.join("old-name.snap").exists(), "never removed without --prune");

    let out = run_in(tmp.path(), &["check", "--prune", "features.md"]);
    assert_eq!(out.code, 0, "{out:?}");
    let removed: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("removed ")).collect();
    assert_eq!(removed.len(), 2, "{out:?}");
    assert!(removed[0].ends_with("snapshots/features/gone.snap.new (orphan snapshot)"), "{out:?}");
    assert!(removed[1].ends_with("snapshots/features/old-name.snap (orphan snapshot)"), "{out:?}");
    assert!(!dir.join("old-name.snap").exists() && !dir.join("gone.snap.new").exists());
    assert!(dir.join("show-config.snap").exists(), "a used snapshot stays");
    let out = run_in(tmp.path(), &["check", "features.md"]);
    assert!(!out.stderr.contains("orphan"), "{out:?}");
}

fn check_reports_every_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_in(tmp.path(), &["check", fixture("bad").to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out:?}");
    for needle in [
        "unknown-attribute.md:5",
        "malformed-braces.md:5",
        "unclosed-fence.md:5",
        "no-command.md:6",
        "bad-duration.md:5",
        "duplicate-ids.md:9",
        "broken.snap:3",
        "undefined-template.md:10",
    ] {
        assert!(out.stderr.contains(needle), "{needle} missing in {out:?}");
    }
}

fn an_invalid_regex_line_is_an_input_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("re.md"),
        "---\nbackend: host\n---\n\n## One\n\n```console\n$ echo x\n([a- (re)\n```\n",
    )
    .unwrap();
    let out = run_in(tmp.path(), &["check", "re.md"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("re.md:9: expected output line"), "{out:?}");
    let out = run_in(tmp.path(), &["run", "re.md", "--record", "r.json"]);
    assert_eq!(out.code, 2, "{out:?}");
}

/// The front matter's `offline:` map: every bad entry at its own line, a missing file or
/// `file=` block included; `tutor run` refuses the same file before anything runs.
fn offline_urls_are_checked_at_their_lines() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("offline")).unwrap();
    std::fs::write(tmp.path().join("offline/ok.yaml"), "kind: ConfigMap\n").unwrap();
    let text = "---\ntitle: T\noffline:\n  https://example.com/ok.yaml: offline/ok.yaml\n  \
                https://example.com/gone.yaml: offline/gone.yaml\n  ftp://example.com/x: offline/ok.yaml\n  \
                https://example.com/b: {file: motd.txt}\n  https://example.com/c: {paht: offline/ok.yaml}\n  \
                https://10.0.0.1/d: offline/ok.yaml\n---\n\n## One\n\n```text {file=mtod.txt}\nhi\n```\n\n\
                ```console\n$ true\n```\n";
    std::fs::write(tmp.path().join("t.md"), text).unwrap();
    let out = run_in(tmp.path(), &["check", "t.md"]);
    assert_eq!(out.code, 2, "{out:?}");
    let errors: Vec<&str> = out.stderr.lines().filter_map(|l| l.strip_prefix("error: ")).collect();
    assert_eq!(
        errors,
        [
            "t.md:6: front matter: `offline`: `ftp://example.com/x`: `ftp:` URLs cannot be served: the lab serves http:// and https://",
            "t.md:7: front matter: `offline`: `https://example.com/b`: no `file=motd.txt` block in the tutorial (did you mean `mtod.txt`?)",
            "t.md:8: front matter: `offline`: `https://example.com/c`: unknown key `paht` (did you mean `path`? known: path, file, type)",
            "t.md:9: front matter: `offline`: `https://10.0.0.1/d`: an address, not a name: the lab serves content by host name",
        ],
        "{out:?}"
    );
    // Once the entries parse, a file that is not there.
    let text = "---\noffline:\n  https://example.com/ok.yaml: offline/ok.yaml\n  https://example.com/gone.yaml: offline/gone.yaml\n---\n\n## One\n\n```console\n$ true\n```\n";
    std::fs::write(tmp.path().join("t.md"), text).unwrap();
    let out = run_in(tmp.path(), &["check", "t.md"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(
            "error: t.md:4: front matter: `offline`: `https://example.com/gone.yaml`: no file offline/gone.yaml"
        ),
        "{out:?}"
    );
    let out = run_in(tmp.path(), &["run", "t.md", "--backend", "host", "--record", "r.json"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("t.md:4: front matter: `offline`"), "{out:?}");
}
