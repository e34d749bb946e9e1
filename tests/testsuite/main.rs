//! The integration tests: one binary (one link step), one module per area, organised like
//! mdBook's and ripgrep's suites. `cargo test --test testsuite lab::` runs one area;
//! `harness.rs` says how tests are registered and when they report themselves as ignored.

mod harness;
mod prelude;

mod book;
mod cli;
mod kind;
mod lab;
mod lb;
mod project;
mod runner;

fn main() -> std::process::ExitCode {
    // The lab backend's supervisors and shims are this crate's `tutor` binary, not the test
    // binary (read by `tutor::backend::lab`); set before any test thread starts.
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("TUTOR_BIN", env!("CARGO_BIN_EXE_tutor")) };
    let areas = [
        harness::tests(),
        book::tests(),
        cli::tests(),
        kind::tests(),
        lab::tests(),
        lb::tests(),
        project::tests(),
        runner::tests(),
    ];
    // Fixture tutorials that mismatch on purpose must not leave pending changes (`tutor review`)
    // in the source tree; the review tests remove this variable for their own runs.
    // SAFETY: as above.
    unsafe { std::env::set_var("TUTOR_NO_PENDING", "true") };
    harness::main(areas.into_iter().flatten().collect())
}
