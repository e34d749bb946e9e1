//! tutor run: verdicts, step selection, reports, interruption, update mode.

mod run;
mod signal;
mod update;

pub(crate) fn tests() -> Vec<crate::harness::Test> {
    [run::tests(), signal::tests(), update::tests()].into_iter().flatten().collect()
}
