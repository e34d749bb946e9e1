//! The host backend: blocks run in a local `bash`, starting in the run's work directory.
//! Only `on=host` exists here.

use async_trait::async_trait;
use tokio::process::Command;

use super::cgroup::Cgroup;
use super::{
    Backend, BackendError, BackendKind, BgTask, ExecRequest, Observation, Target, UpContext, local_state_path, process,
};

#[derive(Debug, Default)]
pub struct HostBackend {
    workdir: std::path::PathBuf,
    /// The run's cgroup: every shell of the run starts in it and `down` kills what is left in
    /// it (`setsid` daemons included). `None` without root or cgroup v2, and for `--keep`
    /// (what the blocks started is part of the kept environment).
    cgroup: Option<Cgroup>,
}

impl HostBackend {
    fn contain(&self, cmd: &mut std::process::Command) -> Result<(), BackendError> {
        match &self.cgroup {
            Some(cg) => cg.place(cmd).map_err(|source| BackendError::Io {
                context: format!("joining cgroup {}", cg.path().display()),
                source,
            }),
            None => Ok(()),
        }
    }
}

impl HostBackend {
    fn command(&self, req: &ExecRequest<'_>) -> Result<Command, BackendError> {
        if *req.target != Target::Host {
            return Err(BackendError::UnknownTarget { backend: BackendKind::Host, target: req.target.to_string() });
        }
        let mut cmd = std::process::Command::new("bash");
        self.contain(&mut cmd)?;
        cmd.arg("--noprofile").arg("--norc").arg("-c").arg(req.script);
        cmd.current_dir(&self.workdir);
        cmd.env("COLUMNS", "80").env("LINES", "24").env("LC_ALL", "C.UTF-8").env("TZ", "UTC").env_remove("NO_COLOR");
        cmd.envs(req.env.iter().map(|(k, v)| (k, v)));
        Ok(Command::from(cmd))
    }
}

#[async_trait]
impl Backend for HostBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Host
    }

    async fn up(&mut self, ctx: &UpContext) -> Result<(), BackendError> {
        self.workdir = ctx.workdir.clone();
        // Best effort: without a cgroup a run's daemons outlive it, as they always did.
        self.cgroup = if ctx.keep { None } else { Cgroup::new_run().ok() };
        Ok(())
    }

    async fn exec(&self, req: ExecRequest<'_>) -> Result<Observation, BackendError> {
        let timeout = req.timeout;
        process::run(self.command(&req)?, timeout).await
    }

    async fn spawn(&self, req: ExecRequest<'_>) -> Result<Box<dyn BgTask>, BackendError> {
        process::spawn(self.command(&req)?)
    }

    fn kernel_command(&self, target: &Target) -> Result<Option<std::process::Command>, BackendError> {
        if *target != Target::Host {
            return Err(BackendError::UnknownTarget { backend: BackendKind::Host, target: target.to_string() });
        }
        let mut cmd = std::process::Command::new("bash");
        self.contain(&mut cmd)?;
        cmd.current_dir(&self.workdir);
        super::block_env(&mut cmd);
        Ok(Some(cmd))
    }

    fn state_path(&self, target: &Target) -> String {
        local_state_path(&self.workdir, target)
    }

    fn facts(&self) -> serde_json::Value {
        // `tutor`: this very executable, so a tutorial about tutor (the user guide) can run it
        // whether or not it is on PATH (`cargo run -- run …`).
        let tutor = super::lab::tutor_exe();
        serde_json::json!({ "backend": "host", "workdir": self.workdir.display().to_string(), "tutor": tutor.display().to_string() })
    }

    async fn down(&mut self) -> Result<(), BackendError> {
        let Some(cg) = self.cgroup.take() else { return Ok(()) };
        tokio::task::spawn_blocking(move || {
            cg.remove().map_err(|source| BackendError::Io {
                context: format!("removing cgroup {}", cg.path().display()),
                source,
            })
        })
        .await
        .map_err(|e| BackendError::Other(e.to_string()))??;
        Ok(())
    }
}
