//! Packets per second through the bundled XDP LB (native and generic XDP) against nftables DNAT
//! with conntrack on a lab-shaped node in namespaces (`tutor lb bench --traffic` runs the same
//! code): one line `xdp_native_mpps=… ratio_native_nft=…` and a table.
//!
//! `cargo bench --bench lb_traffic` (needs root and XDP; skips with the reason otherwise).

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: the packet-rate benchmark needs root (namespaces, XDP)");
        return;
    }
    let opts = tutor::lb::traffic::TrafficOptions { packets: 2_000_000, rounds: 5, ..Default::default() };
    match tutor::lb::traffic::run(&opts) {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("packet-rate benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
