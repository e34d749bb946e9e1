//! Cilium on a lab running the real control plane (docs/architecture.md, "Cilium on the real
//! API"): the programs of the `quay.io/cilium/cilium` image — `cilium-agent`, `cilium-dbg` —
//! and of `quay.io/cilium/operator-generic` — `cilium-operator-generic` (`operator`) —
//! played by tutor itself (see `programs.rs`).

pub mod agent;
pub mod cli;
pub mod config;
pub mod dbg;
pub mod l2;
pub mod lb;
pub mod operator;
pub mod tabwriter;

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
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// What the cilium CLI says when it gives up (its own words).
    #[error("{0}")]
    Cli(String),
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
