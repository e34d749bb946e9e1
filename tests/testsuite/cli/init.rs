//! `tutor init`: the project it writes is accepted as it is by `tutor run`, `tutor book` and
//! (when installed) actionlint, and nothing that exists is overwritten.

use std::path::Path;

use crate::book::fixture::{self as book_fixture, tutor};

crate::tests![
    init_makes_a_project_that_runs_and_builds,
    init_never_overwrites,
    init_without_an_action_writes_no_workflow_and_says_how
];

fn init_makes_a_project_that_runs_and_builds() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("my-tutorials");
    let out = tutor().arg("init").arg(&dir).args(["--action", "me/tutor@v0.1.0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for f in [
        "book.toml",
        "tutorials/SUMMARY.md",
        "tutorials/first-steps.md",
        ".gitignore",
        ".github/workflows/tutorials.yml",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let toml = std::fs::read_to_string(dir.join("book.toml")).unwrap();
    assert!(toml.contains("title = \"my-tutorials\""), "{toml}");

    let run = tutor().arg("run").current_dir(&dir).env_remove("TUTOR_RECORD").output().unwrap();
    let printed = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{printed}{}", String::from_utf8_lossy(&run.stderr));
    assert!(printed.contains("2 passed, 0 failed"), "{printed}");

    let workflow: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join(".github/workflows/tutorials.yml")).unwrap()).unwrap();
    let steps = workflow["jobs"]["tutorials"]["steps"].as_sequence().unwrap();
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert!(uses.contains(&"me/tutor@v0.1.0"), "{uses:?}");
    let action = steps.iter().find(|s| s["uses"].as_str() == Some("me/tutor@v0.1.0")).unwrap();
    assert_eq!(action["with"]["paths"].as_str(), Some("tutorials/"));
    if let Some(lint) = ["/usr/local/bin/actionlint", "/usr/bin/actionlint"].iter().map(Path::new).find(|p| p.is_file())
    {
        let out =
            std::process::Command::new(lint).arg(".github/workflows/tutorials.yml").current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "actionlint: {}", String::from_utf8_lossy(&out.stdout));
    }

    if book_fixture::mdbook().is_ok() {
        let book = tutor().arg("book").current_dir(&dir).env_remove("TUTOR_RECORD").output().unwrap();
        assert!(book.status.success(), "{}", String::from_utf8_lossy(&book.stderr));
        let html = std::fs::read_to_string(dir.join("book/first-steps.html")).unwrap();
        assert!(html.contains("verified on host, "), "the book shows the run:\n{html}");
    }
}

fn init_never_overwrites() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("tutorials")).unwrap();
    std::fs::write(d.path().join("tutorials/SUMMARY.md"), "mine\n").unwrap();
    let out = tutor().arg("init").arg(d.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("these files exist already (nothing was written): tutorials/SUMMARY.md"), "{err}");
    assert_eq!(std::fs::read_to_string(d.path().join("tutorials/SUMMARY.md")).unwrap(), "mine\n");
    assert!(!d.path().join("book.toml").exists());
}

fn init_without_an_action_writes_no_workflow_and_says_how() {
    let d = tempfile::tempdir().unwrap();
    let out = tutor().arg("init").arg(d.path()).env_remove("TUTOR_ACTION").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!d.path().join(".github").exists());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pass --action OWNER/REPO@REF"));
    let bad = tutor().arg("init").arg(d.path().join("x")).args(["--action", "tutor"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected OWNER/REPO@REF"));
}
