//! A tutorial's `offline:` URLs on the lab (tests/fixtures/lab/offline.md): a manifest applied
//! by URL, curl and wget over https and http from the lab host, a node and a pod, the 404 a URL
//! not declared answers, `docker pull` and `kind load docker-image` of catalogued images.

crate::tests![the_offline_fixture_runs_on_the_lab(Lab, K8s), the_emulated_lab_serves_offline_content_too(Lab)];

fn the_offline_fixture_runs_on_the_lab() {
    let start = std::time::Instant::now();
    let out = crate::lab::support::run_fixture_tutorial("offline.md");
    assert!(out.contains("10 passed, 0 failed"), "{out}");
    eprintln!("offline.md: {:.1} s", start.elapsed().as_secs_f64());
}

/// tests/fixtures/lab/offline-emulated.md: the same outside world on the deprecated emulation
/// (`kubernetes: emulated`), which serves it without the Go-built binaries; it goes with the
/// emulation.
fn the_emulated_lab_serves_offline_content_too() {
    let start = std::time::Instant::now();
    let out = crate::lab::support::run_fixture_tutorial("offline-emulated.md");
    assert!(out.contains("3 passed, 0 failed"), "{out}");
    eprintln!("offline-emulated.md: {:.1} s", start.elapsed().as_secs_f64());
}
