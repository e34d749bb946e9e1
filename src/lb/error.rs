use std::path::PathBuf;

/// Everything that can go wrong in the load balancer's userspace.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("loading the XDP program into the kernel: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("{what}: {source}")]
    Map {
        what: String,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("{what}: {source}")]
    Program {
        what: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
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
    move |source| LbError::Map { what, source }
}

pub(crate) fn prog_err(what: impl Into<String>) -> impl FnOnce(aya::programs::ProgramError) -> LbError {
    let what = what.into();
    move |source| LbError::Program { what, source }
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LbError {
    let what = what.into();
    move |source| LbError::Io { what, source }
}
