//! Expectations: `.snap` files and the matcher shared by snapshots and console blocks.

mod file;
mod location;
mod matcher;

pub use file::{Snapshot, SnapshotError, body_line, parse, read, render, write};
pub use location::{snapshot_dir, snapshot_path};
pub use matcher::{Captures, MatchError, Matcher, capture_names, display, escape, unescape};
