//! The command line itself: linting (tutor check) and bad input.

mod bad_input;
mod check;

pub(crate) fn tests() -> Vec<crate::harness::Test> {
    [bad_input::tests(), check::tests()].into_iter().flatten().collect()
}
