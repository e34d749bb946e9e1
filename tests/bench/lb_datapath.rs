//! The XDP load balancer's benchmark (`tutor lb bench` runs the same code): ns per packet under
//! BPF_PROG_TEST_RUN (harness overhead, established flow, new flow) and requests/s through the
//! VIP with the XDP LB vs nftables DNAT in one namespace setup, with their ratio.
//!
//! `cargo bench --bench lb_datapath` (needs root and BPF; skips with the reason otherwise).

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: the XDP benchmark needs root");
        return;
    }
    let opts = tutor::lb::bench::BenchOptions { calls: 200_000, seconds: 3.0 };
    match tutor::lb::bench::run(&opts) {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("lb benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
