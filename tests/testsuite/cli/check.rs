//! `tutor check`: lint without executing.

use crate::prelude::{copy_tree, fixture, run_in};

crate::tests![
    a_good_tutorial_checks_clean,
    missing_and_orphan_snapshots_are_reported,
    check_reports_every_bad_input,
    an_invalid_regex_line_is_an_input_error
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
    assert!(out.stderr.contains("old-name.snap: orphan snapshot"), "{out:?}");
    assert!(out.stderr.contains("2 problem(s)"), "{out:?}");
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
