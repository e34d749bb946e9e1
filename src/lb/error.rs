use std::path::PathBuf;

/// Everything that can go wrong in the load balancer's userspace.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("loading the XDP program into the kernel: {0}")]
    Load(#[from] aya::EbpfError),
    // The cause is part of the message, not a `source()`, so chains print it once.
    #[error("{what}: {cause}")]
    Map { what: String, cause: aya::maps::MapError },
    #[error("{what}: {cause}")]
    Program { what: String, cause: aya::programs::ProgramError },
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    #[error("no load balancer is attached here: {0} does not exist (run `tutor lb attach` first)")]
    NotAttached(PathBuf),
    #[error("a load balancer is already attached: {0} exists (run `tutor lb detach` first)")]
    AlreadyAttached(PathBuf),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Full(String),
    #[error("the program is not loaded in this process (maps opened from pins)")]
    NoProgram,
}

pub type Result<T, E = LbError> = std::result::Result<T, E>;

pub(crate) fn map_err(what: impl Into<String>) -> impl FnOnce(aya::maps::MapError) -> LbError {
    let what = what.into();
    move |cause| LbError::Map { what, cause }
}

pub(crate) fn prog_err(what: impl Into<String>) -> impl FnOnce(aya::programs::ProgramError) -> LbError {
    let what = what.into();
    move |cause| LbError::Program { what, cause }
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LbError {
    let what = what.into();
    move |cause| LbError::Io { what, cause }
}
