//! `tutor book`.

use super::Exit;

#[derive(Debug, clap::Args)]
pub struct BookArgs {}

pub async fn execute(_args: BookArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("`tutor book` is not built yet")
}
