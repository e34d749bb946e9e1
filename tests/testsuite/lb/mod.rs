//! The bundled XDP load balancer: packets, services, attachment, the CLI, namespaces end to end.

mod attach;
mod cli;
mod e2e;
mod lab_shape;
mod layout;
mod packets;
mod robustness;
mod services;
pub(crate) mod support;
mod traffic;

pub(crate) fn tests() -> Vec<crate::harness::Test> {
    [
        attach::tests(),
        cli::tests(),
        e2e::tests(),
        lab_shape::tests(),
        layout::tests(),
        packets::tests(),
        robustness::tests(),
        services::tests(),
        traffic::tests(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
