//! The lab backend: topology, datapath, shims, isolation, the LoadBalancer features, tutorials.

mod agent_runtime;
mod backend;
mod capacity;
mod cgroup;
mod chart;
mod cilium;
mod cilium_cli;
mod cilium_connectivity;
mod cilium_operator;
mod cilium_tunnel;
mod datapath;
mod gc;
mod isolation;
mod k8s;
mod kill;
mod lb_ipam;
mod lb_l2;
pub(crate) mod lb_support;
mod lb_traffic;
mod lb_tutorial;
mod offline;
mod registry;
mod resume;
mod shims;
pub(crate) mod support;
mod topology;
mod tutorial;

pub(crate) fn tests() -> Vec<crate::harness::Test> {
    [
        agent_runtime::tests(),
        backend::tests(),
        chart::tests(),
        cilium::tests(),
        cilium_cli::tests(),
        cilium_connectivity::tests(),
        cilium_operator::tests(),
        cilium_tunnel::tests(),
        capacity::tests(),
        cgroup::tests(),
        datapath::tests(),
        gc::tests(),
        isolation::tests(),
        k8s::tests(),
        kill::tests(),
        lb_ipam::tests(),
        lb_l2::tests(),
        lb_traffic::tests(),
        lb_tutorial::tests(),
        offline::tests(),
        registry::tests(),
        resume::tests(),
        shims::tests(),
        topology::tests(),
        tutorial::tests(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
