//! `tutor lb`.

use super::Exit;

#[derive(Debug, clap::Args)]
pub struct LbArgs {}

pub async fn execute(_args: LbArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`tutor lb` is not built yet")
}
