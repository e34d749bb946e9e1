//! Presenting results (DESIGN §3): progress and human output, diffs, JSON records, JUnit, and
//! the run record the book reads.

pub mod record;
