//! `tutor book` and `mdbook build` with the real mdbook binary on a small book; the HTML is
//! checked as mdBook rendered it. Skips (with the reason) when mdbook is not installed.

use std::path::Path;

use crate::book::fixture::{Book, build, mdbook, tutor};

crate::tests![
    book_shows_verified_outputs_and_verdicts(Mdbook),
    book_without_a_run_record_still_builds(Mdbook),
    record_flag_overrides_the_default_place(Mdbook),
    plain_mdbook_build_runs_tutor_from_path(Mdbook),
    a_broken_tutorial_fails_the_build_naming_file_and_line(Mdbook),
    the_projects_own_book_builds(Mdbook),
    supports_is_answered_by_exit_code,
    without_mdbook_the_error_says_how_to_install_it
];

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn book_shows_verified_outputs_and_verdicts() {
    let book = Book::new(true);
    let html = read(&build(&book, &[]).join("native-routing.html"));
    let has = |s: &str| assert!(html.contains(s), "missing {s:?} in the page:\n{html}");
    let lacks = |s: &str| assert!(!html.contains(s), "{s:?} should not be in the page:\n{html}");
    // The chapter line and one badge per step.
    has("<div class=\"tutor-chapter\" data-status=\"failed\"");
    has("failed on lab, 2026-11-26: 4/5 blocks passed (1 skipped on lab)");
    assert_eq!(html.matches("<div class=\"tutor-step\"").count(), 5, "{html}");
    has(
        "<span class=\"tutor-badge tutor-passed\">✓ passed</span> <span class=\"tutor-meta\">1.2 s · lab · 2026-11-26</span>",
    );
    has(
        "<span class=\"tutor-badge tutor-failed\">✗ failed</span> <span class=\"tutor-meta\">5.0 s · lab · 2026-11-26</span>",
    );
    has(
        "<span class=\"tutor-badge tutor-skipped\">skipped</span> <span class=\"tutor-meta\">on lab · 2026-11-26</span>",
    );
    // Outputs: wildcards and redactions filled from the run, `...` kept.
    has(
        "<pre class=\"tutor-output\"><code class=\"nohighlight\">Creating cluster \"kind\" ...\n ✓ Ensuring node image (kindest/node:v1.31.0) 🖼",
    );
    has("cilium-4xk2p   1/1     Running   0          52s");
    has("10.244.0.0/24 via 172.18.0.2 dev eth0 proto kernel\n...");
    lacks("10.244.1.0/24");
    lacks("[POD]");
    // mdBook still highlights: the language stays, the attributes go.
    has("<code class=\"language-sh\">");
    has("<code class=\"language-console\">");
    lacks("retry=");
    lacks("{id=");
    lacks("title: Cilium");
    // Hidden lab plumbing, files shown as files, the failed block's diff collapsed.
    lacks("LAB_ONLY_PLUMBING");
    has("<div class=\"tutor-file-name\">kind-config.yaml</div>");
    has(
        "<details class=\"tutor-diff\"><summary>Failed on lab: output does not match (diff: expected vs actual)</summary>",
    );
    has("+;; connection timed out; no servers could be reached");
    has("Not run on lab: backend=kind.");
    has("docker ps --format 'table {{.Names}}'");
}

fn book_without_a_run_record_still_builds() {
    let book = Book::new(false);
    let html = read(&build(&book, &[]).join("native-routing.html"));
    assert!(html.contains("not run yet: outputs shown are the recorded expectations"), "{html}");
    assert_eq!(html.matches("<div class=\"tutor-step\" data-status=\"not-run\"").count(), 5, "{html}");
    assert!(html.contains("(kindest/node:v1.31.0) [..]"), "the snapshot as written:\n{html}");
    assert!(html.contains("[POD]   1/1     Running"), "{html}");
}

fn record_flag_overrides_the_default_place() {
    let book = Book::new(false);
    book.add("elsewhere.json", &crate::book::fixture::record().to_string());
    let html = read(&build(&book, &["--record", "elsewhere.json"]).join("native-routing.html"));
    assert!(html.contains("failed on lab, 2026-11-26"), "{html}");
}

fn plain_mdbook_build_runs_tutor_from_path() {
    let book = Book::new(true);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tutor")).parent().unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let out = std::process::Command::new(mdbook().unwrap())
        .arg("build")
        .current_dir(book.root())
        .env("PATH", path)
        .env_remove("TUTOR_RECORD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = read(&book.root().join("book/native-routing.html"));
    assert!(html.contains("tutor-badge tutor-failed"), "{html}");
    let intro = read(&book.root().join("book/index.html"));
    assert!(
        intro.contains("Tutorials, verified.") && !intro.contains("tutor-chapter"),
        "prose chapters stay as written"
    );
}

fn a_broken_tutorial_fails_the_build_naming_file_and_line() {
    let book = Book::new(false);
    book.add("tutorials/native-routing.md", "# X\n\n## S\n\n```sh {colour=red}\ntrue\n```\n");
    let out =
        tutor().args(["book", "--root"]).arg(book.root()).arg("--dest").arg(book.root().join("out")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tutorials/native-routing.md:5: unknown attribute `colour`"), "{err}");
}

fn the_projects_own_book_builds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dest = Path::new(env!("CARGO_TARGET_TMPDIR")).join("project-book");
    let out = tutor()
        .args(["book", "--root"])
        .arg(root)
        .arg("--dest")
        .arg(&dest)
        .env_remove("TUTOR_RECORD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index = read(&dest.join("index.html"));
    assert!(index.contains("tutor: tested tutorials"), "{index}");
    assert!(!root.join("tutorials/native-routing.md").exists() || dest.join("native-routing.html").exists());
}

fn supports_is_answered_by_exit_code() {
    let status = |r: &str| tutor().args(["book", "preprocess", "supports", r]).status().unwrap().code();
    assert_eq!(status("html"), Some(0));
    assert_eq!(status("epub"), Some(1));
}

fn without_mdbook_the_error_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let out = tutor()
        .arg("book")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", empty.path())
        .env("HOME", empty.path())
        .env("CARGO_HOME", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mdbook is not installed") && err.contains("cargo install mdbook --locked --version ^0.5"),
        "{err}"
    );
}
