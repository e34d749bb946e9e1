//! The project as a newcomer and CI meet it: README.md, the GitHub workflows and the composite
//! action.

mod readme;
pub(crate) mod workflows;

pub(crate) fn tests() -> Vec<crate::harness::Test> {
    [readme::tests(), workflows::tests()].into_iter().flatten().collect()
}
