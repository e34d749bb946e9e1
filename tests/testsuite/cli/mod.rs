//! The command line itself: linting (tutor check), bad input, tutor init.

mod bad_input;
mod check;
mod init;

pub(crate) fn tests() -> Vec<crate::harness::Test> {
    [bad_input::tests(), check::tests(), init::tests()].into_iter().flatten().collect()
}
