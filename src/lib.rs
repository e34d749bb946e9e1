//! tutor: Markdown tutorials in, verdicts out.
//!
//! Data flows one way (docs/architecture.md, "Data flow"): `tutorial` parses, `template`
//! renders, `runner` executes blocks on a `backend`, `snapshot` matches, `report` presents. `lb`
//! is the bundled XDP load balancer's userspace, `book` the mdBook preprocessor.

pub mod backend;
pub mod book;
pub mod cli;
pub mod lb;
pub mod report;
pub mod review;
pub mod runner;
pub mod snapshot;
pub mod template;
pub mod tutorial;
