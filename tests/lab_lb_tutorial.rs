//! The article's north/south part as a tutorial (tests/fixtures/lab/loadbalancer.md) through
//! `tutor run` on the lab: LB IPAM, `cilium-dbg service list`, L2 announcements seen from the
//! host (`curl`, `ip neigh`) and native XDP, with the article's commands and outputs.

mod lab_support;

#[test]
fn the_load_balancing_part_of_the_article_runs_on_the_lab() {
    require_lab!();
    let record = tempfile::NamedTempFile::new().unwrap();
    let o = std::process::Command::new(lab_support::TUTOR)
        .args(["run", "loadbalancer.md", "--record"])
        .arg(record.path())
        .current_dir(lab_support::fixtures())
        .output()
        .unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("6 passed, 0 failed"), "{out}");
}
