//! The article's whole story as a tutorial (tests/fixtures/lab/article.md) through `tutor run`
//! on the lab backend: every command and output of the article that the lab covers.

mod lab_support;

#[test]
fn the_article_runs_on_the_lab() {
    require_lab!();
    let out = lab_support::run_fixture_tutorial("article.md");
    assert!(out.contains("12 passed, 0 failed"), "{out}");
}
