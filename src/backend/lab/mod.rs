//! The embedded kind-shaped lab (DESIGN §5). Built in the issue "Lab backend, part 1".

use super::{Backend, BackendError, BackendKind};

pub fn create() -> Result<Box<dyn Backend>, BackendError> {
    Err(BackendError::NotBuilt(BackendKind::Lab))
}
