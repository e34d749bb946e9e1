//! Backends for `tutor run --env NAME`: the environment an earlier `--keep` run left, attached
//! to as it is — never created, never torn down (docs/architecture.md, "Resume").
//!
//! The host's environment is its work directory, so the host backend itself attaches; the lab
//! backend attaches to the running lab by name ([`LabBackend::attach`]). A kept kind or kube
//! environment cannot be attached to yet.

use super::lab::{self, LabBackend, registry};
use super::{Backend, BackendError, BackendKind, Target};

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

/// Why a kept environment is no longer there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Gone {
    #[error("its work directory {} is gone", .0.display())]
    Workdir(std::path::PathBuf),
    /// Its registry entry is there, its supervisor is not.
    #[error("lab `{0}` has stopped")]
    LabStopped(String),
    /// No registry entry to read.
    #[error("lab `{0}` is down")]
    LabDown(String),
}

/// Whether the kept environment `name` (work directory `workdir`) is still there; why not.
pub fn still_there(kind: BackendKind, name: &str, workdir: &std::path::Path) -> Result<(), Gone> {
    if !workdir.is_dir() {
        return Err(Gone::Workdir(workdir.to_path_buf()));
    }
    match kind {
        BackendKind::Lab => match registry::read_info(name) {
            Ok(info) if info.alive() => Ok(()),
            Ok(_) => Err(Gone::LabStopped(name.to_string())),
            Err(_) => Err(Gone::LabDown(name.to_string())),
        },
        _ => Ok(()),
    }
}

/// A command that runs `argv` on `target` of the kept environment `name` (of kind `kind`, work
/// directory `workdir`), to look around in it (`tutor shell`): a local process starting in the
/// work directory on the host, `nsenter` into the target's namespaces on the lab.
pub fn shell_command(
    kind: BackendKind,
    name: &str,
    workdir: &std::path::Path,
    target: &Target,
    argv: &[String],
) -> Result<std::process::Command, BackendError> {
    match kind {
        BackendKind::Host if *target == Target::Host => {
            let (program, args) = argv.split_first().expect("a shell's argv has a program");
            let mut cmd = std::process::Command::new(program);
            cmd.args(args).current_dir(workdir);
            Ok(cmd)
        }
        BackendKind::Host => Err(BackendError::UnknownTarget { backend: kind, target: target.to_string() }),
        BackendKind::Lab => Ok(lab::target_command(&registry::read_info(name)?, target, workdir, argv)?),
        other => Err(BackendError::Unsupported(format!(
            "a shell in a kept environment works on the host and lab backends, not on {other}"
        ))),
    }
}
