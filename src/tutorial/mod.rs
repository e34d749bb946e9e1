//! Markdown → [`Tutorial`]. Parsing never executes anything (docs/architecture.md, "Data flow").

mod attributes;
mod console;
mod discover;
mod error;
mod front_matter;
mod model;
pub mod offline;
mod parse;

use std::path::Path;

pub use console::parse as parse_console;
pub use discover::discover;
pub use error::TutorialError;
pub use model::*;
pub use parse::{Failed, parse_all, parse_str, slugify};

/// Read and parse one tutorial file: the tutorial, or every error of the file, sorted by line.
pub fn parse_file(path: &Path) -> Result<Tutorial, Failed> {
    let source = std::fs::read_to_string(path).map_err(|e| Failed {
        errors: vec![TutorialError::Io { path: path.to_path_buf(), source: e }],
        notes: Vec::new(),
    })?;
    parse_all(path, &source)
}
