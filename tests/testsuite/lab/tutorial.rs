//! The article's whole story as a tutorial (tests/fixtures/lab/article.md) through `tutor run`
//! on the lab backend: every command and output of the article that the lab covers.
//!
//! Pinned to the emulation (`kubernetes: emulated` in the fixture): article.md is the article
//! as the emulation prints it; on the real control plane the same story is
//! tutorials/native-routing.md, run by `tutor run tutorials/`. It goes with the emulation.

crate::tests![the_article_runs_on_the_lab(Lab)];

fn the_article_runs_on_the_lab() {
    let out = crate::lab::support::run_fixture_tutorial("article.md");
    assert!(out.contains("12 passed, 0 failed"), "{out}");
}
