//! Backends for `tutor run --env NAME`: the environment an earlier `--keep` run left, attached
//! to as it is — never created, never torn down (docs/architecture.md, "Resume").
//!
//! The host's environment is its work directory, so the host backend itself attaches. The lab
//! is reached through the lab's public API (its registry entry, `target_command`), the way
//! `tutor lab exec` reaches it; a kept kind or kube environment cannot be attached to yet.

use std::path::PathBuf;

use async_trait::async_trait;
use tokio::process::Command;

use super::lab::{self, registry};
use super::{Backend, BackendError, BackendKind, BgTask, ExecRequest, Observation, Target, UpContext, process};

/// The backend of kind `kind` attached to the kept environment `name`.
pub fn attach(kind: BackendKind, name: &str) -> Result<Box<dyn Backend>, BackendError> {
    match kind {
        BackendKind::Host => Ok(Box::new(super::host::HostBackend::default())),
        BackendKind::Lab => Ok(Box::new(KeptLab { name: name.to_string(), workdir: PathBuf::from("/") })),
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

/// A lab an earlier `tutor run --keep` left up.
struct KeptLab {
    name: String,
    workdir: PathBuf,
}

impl KeptLab {
    /// Read on every use: the lab's nodes and pods change as the tutorial goes on.
    fn info(&self) -> Result<registry::LabInfo, BackendError> {
        Ok(registry::read_info(&self.name)?)
    }

    /// Pods behind the real API server are reached through the Kubernetes exec API, as
    /// `LabBackend` does; `None` for the emulated lab.
    async fn pod_transport(&self) -> Result<Option<super::kind::pod_exec::KubeTransport>, BackendError> {
        let kubeconfig = registry::dir(&self.name).join("kubeconfig");
        if !kubeconfig.exists() {
            return Ok(None);
        }
        let client = super::kind::cluster::client(&kubeconfig, None).await?;
        Ok(Some(super::kind::pod_exec::KubeTransport { client }))
    }

    fn command(&self, req: &ExecRequest<'_>) -> Result<Command, BackendError> {
        let argv: Vec<String> = ["bash", "--noprofile", "--norc", "-c", req.script].map(str::to_string).to_vec();
        let mut cmd = Command::from(lab::target_command(&self.info()?, req.target, &self.workdir, &argv)?);
        cmd.envs(req.env.iter().map(|(k, v)| (k, v)));
        Ok(cmd)
    }
}

#[async_trait]
impl Backend for KeptLab {
    fn kind(&self) -> BackendKind {
        BackendKind::Lab
    }

    async fn up(&mut self, ctx: &UpContext) -> Result<(), BackendError> {
        let gone = |why: String| BackendError::Preflight {
            backend: BackendKind::Lab,
            message: format!("the kept lab `{}` is gone ({why}); start again without --env", self.name),
        };
        let info = registry::read_info(&self.name).map_err(|e| gone(e.to_string()))?;
        if !info.alive() {
            return Err(gone("its supervisor has exited".into()));
        }
        self.workdir = ctx.workdir.clone();
        Ok(())
    }

    async fn exec(&self, req: ExecRequest<'_>) -> Result<Observation, BackendError> {
        if let Target::Pod { namespace, name } = req.target
            && let Some(transport) = self.pod_transport().await?
        {
            let deadline = super::kind::remote::Deadline::new(req.timeout);
            return super::kind::pod_exec::exec(&transport, namespace, name, req.script, req.env, deadline).await;
        }
        process::run(self.command(&req)?, req.timeout).await
    }

    async fn spawn(&self, req: ExecRequest<'_>) -> Result<Box<dyn BgTask>, BackendError> {
        if let Target::Pod { namespace, name } = req.target
            && let Some(transport) = self.pod_transport().await?
        {
            return super::kind::pod_exec::spawn(std::sync::Arc::new(transport), namespace, name, req.script, req.env)
                .await;
        }
        process::spawn(self.command(&req)?)
    }

    fn kernel_command(&self, target: &Target) -> Result<Option<std::process::Command>, BackendError> {
        if matches!(target, Target::Pod { .. }) && registry::dir(&self.name).join("kubeconfig").exists() {
            return Ok(None);
        }
        let mut cmd = lab::target_command(&self.info()?, target, &self.workdir, &["bash".to_string()])?;
        super::block_env(&mut cmd);
        Ok(Some(cmd))
    }

    fn state_path(&self, target: &Target) -> String {
        super::local_state_path(&self.workdir, target)
    }

    fn facts(&self) -> serde_json::Value {
        let Ok(info) = self.info() else { return serde_json::json!({ "backend": "lab" }) };
        let nodes: serde_json::Map<String, serde_json::Value> = info
            .nodes
            .iter()
            .map(|n| {
                (n.name.clone(), serde_json::json!({ "ip": n.ip.to_string(), "podCIDR": n.pod_cidr, "role": n.role }))
            })
            .collect();
        let tutor = lab::tutor_exe().display().to_string();
        serde_json::json!({ "backend": "lab", "lab": info.name, "cluster": info.cluster, "nodes": nodes, "tutor": tutor })
    }

    /// The environment stays: `tutor lab down NAME` ends it.
    async fn down(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}
