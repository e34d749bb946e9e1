//! The published book: tutor as an mdBook preprocessor, and `tutor book` (docs/architecture.md,
//! "Modules").
//!
//! The preprocessor never executes anything. It reads each tutorial chapter, its snapshots and
//! the last run record, and rewrites the chapter for readers: test-only attributes and hidden
//! setup blocks gone, every command followed by its verified output, a verdict badge per step
//! and a "verified on …" line per chapter. `tutor book` drives the `mdbook` binary with this
//! very executable as the preprocessor.

mod chapter;
mod driver;
mod fill;
mod includes;
mod markdown;
mod preprocess;
mod record;
mod render;
#[cfg(test)]
mod testing;
mod verdict;

use std::path::PathBuf;

pub use chapter::{Options, transform};
pub use driver::{BuildRequest, MDBOOK_REQUIREMENT, Mdbook, RECORD_VAR, Serve, build_command, find_mdbook};
pub use preprocess::{Settings, preprocess, supports_renderer};
pub use record::{DEFAULT_RECORD, RunIndex, load as load_record};

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error(transparent)]
    Tutorial(#[from] crate::tutorial::TutorialError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error("{}: {source}", path.display())]
    Pattern { path: PathBuf, source: crate::snapshot::MatchError },
    #[error("{}:{line}: the run record is not valid: {message}", path.display())]
    Record { path: PathBuf, line: usize, message: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// What mdBook sent does not follow the preprocessor protocol tutor speaks.
    #[error("mdBook preprocessor input: {0}")]
    Protocol(String),
    #[error("book.toml: {0}")]
    Config(String),
    #[error("{0}")]
    Mdbook(String),
    /// A file helper (`{{#include}}`, …) naming a file outside the book's root.
    #[error(
        "{}:{line}: `{helper}` names a file outside the book's root ({}): the book only includes files from inside it",
        path.display(), root.display()
    )]
    Include { path: PathBuf, line: usize, helper: String, root: PathBuf },
}
