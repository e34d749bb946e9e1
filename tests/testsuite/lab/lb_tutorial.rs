//! The article's north/south part as a tutorial (tests/fixtures/lab/loadbalancer.md) through
//! `tutor run` on the lab: LB IPAM, `cilium-dbg service list`, L2 announcements seen from the
//! host (`curl`, `ip neigh`) and native XDP, with the article's commands and outputs.
//!
//! Pinned to the emulation (`kubernetes: emulated` in the fixture): the emulated LB IPAM, L2
//! and XDP; tutorials/native-routing.md's last part covers them on the real API.

crate::tests![the_load_balancing_part_of_the_article_runs_on_the_lab(Lab)];

fn the_load_balancing_part_of_the_article_runs_on_the_lab() {
    let out = crate::lab::support::run_fixture_tutorial("loadbalancer.md");
    assert!(out.contains("6 passed, 0 failed"), "{out}");
}
