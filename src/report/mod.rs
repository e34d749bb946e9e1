//! Presenting results (docs/architecture.md, "Modules"): progress and human output, diffs, JSON
//! records, JUnit, and the run record the book reads.

pub mod diff;
pub mod json;
pub mod junit;
pub mod progress;
pub mod record;
pub mod summary;
