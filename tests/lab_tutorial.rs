//! The article's whole story as a tutorial (tests/fixtures/lab/article.md) through `tutor run`
//! on the lab backend: every command and output of the article that the lab covers.

mod lab_support;

#[test]
fn the_article_runs_on_the_lab() {
    require_lab!();
    let record = tempfile::NamedTempFile::new().unwrap();
    let o = std::process::Command::new(lab_support::TUTOR)
        .args(["run", "article.md", "--record"])
        .arg(record.path())
        .current_dir(lab_support::fixtures())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(format!("{out}{err}").contains("12 passed, 0 failed"), "{out}{err}");
}
