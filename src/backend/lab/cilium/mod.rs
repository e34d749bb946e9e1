//! Cilium on a lab running the real control plane (docs/architecture.md, "Cilium on the real
//! API"): the programs of the `quay.io/cilium/cilium` image — `cilium-agent`, `cilium-dbg` —
//! and of `quay.io/cilium/operator-generic` — `cilium-operator-generic` (`operator`) —
//! played by tutor itself. The image's layer links them to the tutor executable, and tutor
//! tells which program it is from its argv[0], as it does for the lab's shims.

pub mod agent;
pub mod config;
mod dbg;
pub mod operator;

use std::process::ExitCode;

/// The image programs tutor plays (argv[0] names).
pub const PROGRAMS: &[&str] = &["cilium-agent", "cilium-dbg", operator::PROGRAM, "cilium-operator"];

/// Why a Cilium program of the lab failed.
#[derive(Debug, thiserror::Error)]
pub enum CiliumError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("the Kubernetes API: {what}: {source}")]
    Api { what: String, source: Box<kube::Error> },
    #[error("in-cluster configuration: {0}")]
    InCluster(String),
    #[error("configuration {key}: {why}")]
    Config { key: String, why: String },
    #[error("the node's datapath: {0}")]
    Datapath(#[from] Box<crate::backend::lab::LabError>),
    #[error("usage: {0}")]
    Usage(String),
    #[error(transparent)]
    Operator(operator::OperatorError),
}

impl From<operator::OperatorError> for CiliumError {
    fn from(e: operator::OperatorError) -> CiliumError {
        match e {
            operator::OperatorError::Usage(u) => CiliumError::Usage(u),
            e => CiliumError::Operator(e),
        }
    }
}

impl CiliumError {
    pub fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> CiliumError {
        let what = what.into();
        move |source| CiliumError::Api { what, source: Box::new(source) }
    }

    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CiliumError {
        let what = what.into();
        move |source| CiliumError::Io { what, source }
    }
}

impl From<crate::backend::lab::LabError> for CiliumError {
    fn from(e: crate::backend::lab::LabError) -> CiliumError {
        CiliumError::Datapath(Box::new(e))
    }
}

/// When tutor was started as one of the image's programs: run it and give its exit code.
pub fn dispatch() -> Option<ExitCode> {
    let argv0 = std::env::args_os().next()?;
    let program = std::path::Path::new(&argv0).file_name()?.to_string_lossy().into_owned();
    if !PROGRAMS.contains(&program.as_str()) {
        return None;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: starting the async runtime: {e}");
            return Some(ExitCode::from(1));
        }
    };
    let result = rt.block_on(async {
        match program.as_str() {
            "cilium-agent" => agent::main(&args).await,
            "cilium-operator-generic" | "cilium-operator" => operator::main(&args).await.map_err(CiliumError::from),
            _ => dbg::main(&args).await,
        }
    });
    Some(match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("level=fatal msg=\"{e}\" subsys={program}");
            ExitCode::from(if matches!(e, CiliumError::Usage(_)) { 2 } else { 1 })
        }
    })
}
