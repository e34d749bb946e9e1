//! tutor book: chapters, verdicts and outputs as mdBook and a browser show them.

pub(crate) mod browser;
pub(crate) mod fixture;
mod from_run;
mod mdbook;
mod summary;

pub(crate) fn tests() -> Vec<crate::harness::Test> {
    [browser::tests(), from_run::tests(), mdbook::tests(), summary::tests()].into_iter().flatten().collect()
}
