//! The kind and kube backends: pre-flight as users meet it, and a real kind cluster.

mod cli;
mod cluster;
mod kernel;
mod preflight;
mod tutorials;

pub(crate) fn tests() -> Vec<crate::harness::Test> {
    [cli::tests(), cluster::tests(), kernel::tests(), preflight::tests(), tutorials::tests()]
        .into_iter()
        .flatten()
        .collect()
}
