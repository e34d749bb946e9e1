//! `tutor check`.

use super::Exit;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

pub async fn execute(_args: CheckArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`tutor check` is not built yet")
}
