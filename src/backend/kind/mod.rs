//! Real kind cluster / existing cluster backends. Built in the issue "The kind backend".

use super::{Backend, BackendError, BackendKind};

pub fn create(kind: BackendKind, _context: Option<&str>) -> Result<Box<dyn Backend>, BackendError> {
    Err(BackendError::NotBuilt(kind))
}
