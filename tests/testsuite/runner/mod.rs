//! tutor run: verdicts, step selection, reports, interruption, update mode.

mod author;
mod kernel;
mod resume;
mod run;
mod signal;
mod update;

pub(crate) fn tests() -> Vec<crate::harness::Test> {
    [author::tests(), kernel::tests(), resume::tests(), run::tests(), signal::tests(), update::tests()]
        .into_iter()
        .flatten()
        .collect()
}
