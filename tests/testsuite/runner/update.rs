//! `tutor run --update` on a temporary copy of a fixture: snapshots and console blocks are
//! rewritten, wildcards and templates that still hold survive, errors are never recorded.

use crate::prelude::{fixture, run_in};

crate::tests![
    update_mode_records_only_what_changed_and_never_a_failing_block,
    an_sh_block_without_snapshot_fails_until_recorded
];

fn update_mode_records_only_what_changed_and_never_a_failing_block() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("snapshots")).unwrap();
    let md = tmp.path().join("update.md");
    std::fs::copy(fixture("update.md"), &md).unwrap();
    let original = std::fs::read_to_string(&md).unwrap();

    let out = run_in(tmp.path(), &["run", "--update", "--keep-going", "update.md", "--record", "r.json"]);
    // The block exiting 4 instead of 0 still fails, update mode or not.
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("updated update.md"), "{out:?}");
    let snap_path = tmp.path().join("snapshots/update/fresh.snap");
    assert!(out.stdout.contains(&format!("updated {}", snap_path.display())), "{out:?}");

    let new = std::fs::read_to_string(&md).unwrap();
    let expected = original.replace("stamp [..]\nold line\n", "stamp [..]\nnew line\n");
    assert_eq!(new, expected, "only the `old line` changed; `{{{{ name }}}}` and `[..]` survived");
    assert!(new.contains("$ echo broken; exit 4\nnot recorded\n"), "a failing block is never recorded");

    let snap = std::fs::read_to_string(&snap_path).unwrap();
    assert!(snap.starts_with("---\n"), "{snap}");
    assert!(snap.contains("id: fresh\n"), "{snap}");
    assert!(snap.ends_with("---\nrecorded\non-stderr\n"), "{snap}");

    // Recorded expectations now pass; a second update changes nothing.
    let out = run_in(tmp.path(), &["run", "--keep-going", "update.md", "--record", "r.json"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("3 passed, 1 failed, 0 skipped"), "{out:?}");
    let out = run_in(tmp.path(), &["run", "--update", "--keep-going", "update.md", "--record", "r.json"]);
    assert!(out.stdout.contains("update: nothing changed"), "{out:?}");
    assert_eq!(std::fs::read_to_string(&md).unwrap(), expected);
}

fn an_sh_block_without_snapshot_fails_until_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("snapshots")).unwrap();
    std::fs::write(tmp.path().join("t.md"), "---\nbackend: host\n---\n\n## One\n\n```sh {id=hi}\necho hi\n```\n")
        .unwrap();
    let out = run_in(tmp.path(), &["run", "t.md", "--record", "r.json"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("no snapshot (run with --update)"), "{out:?}");
    let out = run_in(tmp.path(), &["run", "t.md", "--update", "--record", "r.json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = run_in(tmp.path(), &["run", "t.md", "--record", "r.json"]);
    assert_eq!(out.code, 0, "{out:?}");
}
