//! Progress events the runner emits while it works; `report` turns them into what a person or
//! a machine reads. Tutorials may run in parallel, so a reporter is called from several tasks.

use super::outcome::{BlockResult, StepResult, TutorialResult};
use crate::backend::BackendKind;
use crate::tutorial::{Block, Step, Tutorial};

pub enum Event<'a> {
    TutorialStarted {
        tutorial: &'a Tutorial,
        backend: BackendKind,
    },
    StepStarted {
        tutorial: &'a Tutorial,
        step: &'a Step,
    },
    BlockStarted {
        tutorial: &'a Tutorial,
        step: &'a Step,
        block: &'a Block,
    },
    /// A `retry=` block did not match yet and runs again.
    BlockRetrying {
        tutorial: &'a Tutorial,
        block: &'a Block,
        tries: u32,
    },
    BlockFinished {
        tutorial: &'a Tutorial,
        step: &'a Step,
        result: &'a BlockResult,
    },
    StepFinished {
        tutorial: &'a Tutorial,
        result: &'a StepResult,
    },
    /// The steps run silently before the selected ones (`--step N` on a fresh environment).
    SetupFinished {
        tutorial: &'a Tutorial,
        steps: &'a [StepResult],
    },
    TutorialFinished {
        tutorial: &'a Tutorial,
        result: &'a TutorialResult,
    },
}

pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event<'_>);
}

/// A reporter that ignores everything (tests, `--format json` without progress).
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _event: &Event<'_>) {}
}
