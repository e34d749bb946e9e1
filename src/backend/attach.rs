//! Backends for `tutor run --env NAME`: the environment an earlier `--keep` run left, attached
//! to as it is — never created, never torn down (docs/architecture.md, "Resume").
//!
//! The host's environment is its work directory, so the host backend itself attaches; the lab
//! backend attaches to the running lab by name ([`LabBackend::attach`]). A kept kind or kube
//! environment cannot be attached to yet.

use super::lab::{LabBackend, registry};
use super::{Backend, BackendError, BackendKind};

/// The backend of kind `kind` attached to the kept environment `name`.
pub fn attach(kind: BackendKind, name: &str) -> Result<Box<dyn Backend>, BackendError> {
    match kind {
        BackendKind::Host => Ok(Box::new(super::host::HostBackend::default())),
        BackendKind::Lab => Ok(Box::new(LabBackend::attach(name))),
        other => Err(BackendError::Unsupported(format!(
            "resuming a kept environment works on the host and lab backends, not on {other}"
        ))),
    }
}

/// Whether the kept environment `name` (work directory `workdir`) is still there; why not.
pub fn still_there(kind: BackendKind, name: &str, workdir: &std::path::Path) -> Result<(), String> {
    if !workdir.is_dir() {
        return Err(format!("its work directory {} is gone", workdir.display()));
    }
    match kind {
        BackendKind::Lab => match registry::read_info(name) {
            Ok(info) if info.alive() => Ok(()),
            Ok(_) => Err(format!("lab `{name}` has stopped")),
            Err(_) => Err(format!("lab `{name}` is down")),
        },
        _ => Ok(()),
    }
}

