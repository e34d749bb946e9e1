//! Markdown → [`Tutorial`]. Parsing never executes anything (DESIGN §2).
//! PLACEHOLDER (runner branch): the real parser lands from `main`; only the signatures matter.

mod model;
pub use model::*;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TutorialError(pub String);

pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, TutorialError> {
    Ok(paths.to_vec())
}

pub fn parse_file(path: &Path) -> Result<Tutorial, TutorialError> {
    Err(TutorialError(format!("{}: parser not merged yet", path.display())))
}
