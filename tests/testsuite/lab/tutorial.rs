//! The article's whole story as a tutorial (tests/fixtures/lab/article.md) through `tutor run`
//! on the lab backend: every command and output of the article that the lab covers.

crate::tests![the_article_runs_on_the_lab(Lab)];

fn the_article_runs_on_the_lab() {
    let out = crate::lab::support::run_fixture_tutorial("article.md");
    assert!(out.contains("12 passed, 0 failed"), "{out}");
}
