//! Bad input: a clear message naming file:line, exit 2, and nothing executed.

use crate::prelude::{fixture, run_in};

crate::tests![
    unknown_attribute,
    malformed_brace_list,
    unclosed_fence,
    console_block_without_a_command,
    bad_duration,
    duplicate_block_ids,
    corrupted_snapshot_header,
    template_with_an_undefined_variable,
    a_path_that_is_not_markdown,
    a_path_that_does_not_exist,
    every_problem_of_several_files_is_reported_at_once
];

fn assert_rejected(file: &str, message: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let path = fixture(&format!("bad/{file}"));
    let record = tmp.path().join("record.json");
    let out = run_in(tmp.path(), &["run", path.to_str().unwrap(), "--record", record.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{file}: {out:?}");
    assert!(out.stderr.contains(message), "{file}: expected `{message}` in {out:?}");
    assert!(!record.exists(), "{file}: nothing may run, yet a run record was written");
    assert!(out.stdout.is_empty(), "{file}: {out:?}");
}

fn unknown_attribute() {
    assert_rejected("unknown-attribute.md", "unknown-attribute.md:5: unknown attribute `colour`");
}

fn malformed_brace_list() {
    assert_rejected("malformed-braces.md", "malformed-braces.md:5: attribute list `{id=x` is not closed");
}

fn unclosed_fence() {
    assert_rejected("unclosed-fence.md", "unclosed-fence.md:5: code fence");
}

fn console_block_without_a_command() {
    assert_rejected("no-command.md", "no-command.md:6: console block");
}

fn bad_duration() {
    assert_rejected("bad-duration.md", "bad-duration.md:5: invalid duration `abc` for `retry=`");
}

fn duplicate_block_ids() {
    assert_rejected("duplicate-ids.md", "duplicate-ids.md:9: duplicate block id `same`");
}

fn corrupted_snapshot_header() {
    assert_rejected("corrupted-snapshot.md", "snapshots/corrupted-snapshot/broken.snap:3: broken snapshot file");
}

fn template_with_an_undefined_variable() {
    assert_rejected("undefined-template.md", "undefined-template.md:10: template error: undefined variable `nowhere`");
}

fn a_path_that_is_not_markdown() {
    assert_rejected("not-markdown.txt", "not-markdown.txt: not a Markdown file");
}

fn a_path_that_does_not_exist() {
    assert_rejected("missing.md", "missing.md");
}

fn every_problem_of_several_files_is_reported_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let a = fixture("bad/unknown-attribute.md");
    let b = fixture("bad/bad-duration.md");
    let out = run_in(tmp.path(), &["run", a.to_str().unwrap(), b.to_str().unwrap(), "--record", "r.json"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("unknown-attribute.md:5") && out.stderr.contains("bad-duration.md:5"), "{out:?}");
}
