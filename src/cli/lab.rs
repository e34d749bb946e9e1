//! `tutor lab`.

use super::Exit;

#[derive(Debug, clap::Args)]
pub struct LabArgs {}

pub async fn execute(_args: LabArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`tutor lab` is not built yet")
}

/// When this binary was started as one of the lab's shims (`kubectl`, `kind`, …), run it.
pub fn shim_dispatch() -> Option<std::process::ExitCode> {
    None
}
