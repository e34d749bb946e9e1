//! `tutor run`.

use super::Exit;

#[derive(Debug, clap::Args)]
pub struct RunArgs {}

pub async fn execute(_args: RunArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`tutor run` is not built yet")
}
