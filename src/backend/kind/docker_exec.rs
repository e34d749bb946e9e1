//! Node targets: blocks run in the kind node container through the Docker API (bollard), the
//! way `docker exec` would, with the exit code from the exec's inspect record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::remote::{self, Background, DRAIN, Deadline, End};
use crate::backend::shell::{self, Chunk, ExecShell, ShellControl};
use crate::backend::{BackendError, BgTask, Observation};

type Output = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, bollard::errors::Error>> + Send>>;

fn docker_err(container: &str) -> impl FnOnce(bollard::errors::Error) -> BackendError + '_ {
    move |e| match e {
        bollard::errors::Error::DockerResponseServerError { status_code: 404, .. } => {
            BackendError::Other(format!("node container `{container}` does not exist (was the cluster deleted?)"))
        }
        e => BackendError::Other(format!("docker exec in `{container}`: {e}")),
    }
}

/// Create and start an exec of `argv` in `container`, attached to its output.
async fn start(docker: &Docker, container: &str, argv: Vec<String>) -> Result<(String, Output), BackendError> {
    let opts = CreateExecOptions {
        cmd: Some(argv),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let created = docker.create_exec(container, opts).await.map_err(docker_err(container))?;
    match docker.start_exec(&created.id, None).await.map_err(docker_err(container))? {
        StartExecResults::Attached { output, .. } => {
            Ok((created.id, Box::pin(output.map(|r| r.map(|log| log.into_bytes())))))
        }
        StartExecResults::Detached => Err(BackendError::Other(format!("docker exec in `{container}` did not attach"))),
    }
}

/// The runner's kernel in `container`: an exec of `argv` with stdin attached, its stdout and
/// stderr apart (Docker's multiplexed stream, without a terminal).
pub async fn shell(docker: &Docker, container: &str, argv: Vec<String>) -> Result<ExecShell, BackendError> {
    let opts = CreateExecOptions {
        cmd: Some(argv),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let created = docker.create_exec(container, opts).await.map_err(docker_err(container))?;
    match docker.start_exec(&created.id, None).await.map_err(docker_err(container))? {
        StartExecResults::Attached { output, input } => {
            let output = output.filter_map(|r| {
                std::future::ready(match r {
                    Ok(LogOutput::StdOut { message }) => Some(Ok(Chunk::Stdout(message))),
                    Ok(LogOutput::StdErr { message }) => Some(Ok(Chunk::Stderr(message))),
                    Ok(_) => None,
                    Err(e) => Some(Err(std::io::Error::other(e))),
                })
            });
            let control = NodeControl { docker: docker.clone(), container: container.to_string() };
            Ok(ExecShell { stdin: input, output: Box::pin(output), control: Arc::new(control), keep: Box::new(()) })
        }
        StartExecResults::Detached => Err(BackendError::Other(format!("docker exec in `{container}` did not attach"))),
    }
}

/// Kills a kernel in a node container through a second exec.
struct NodeControl {
    docker: Docker,
    container: String,
}

#[async_trait]
impl ShellControl for NodeControl {
    async fn kill_tree(&self, pid: u32) {
        if let Ok((_, mut out)) = start(&self.docker, &self.container, shell::kill_tree_argv(pid)).await {
            remote::drain(&mut out, DRAIN, &mut Vec::new()).await;
        }
    }
}

/// The exit code of a finished exec. The engine may still report it running for a moment after
/// its output closed.
async fn exit_code(docker: &Docker, container: &str, id: &str) -> Result<Option<i32>, BackendError> {
    for _ in 0..50 {
        let info = docker.inspect_exec(id).await.map_err(docker_err(container))?;
        if info.running != Some(true) {
            return Ok(info.exit_code.map(|c| c as i32));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(None)
}

/// Kill a block's process tree through a second exec; best effort (the container may be gone).
async fn kill(docker: &Docker, container: &str, pid: u32) {
    if let Ok((_, mut out)) = start(docker, container, remote::kill_argv(pid)).await {
        remote::drain(&mut out, DRAIN, &mut Vec::new()).await;
    }
}

/// Run one block in `container`.
pub async fn exec(
    docker: &Docker,
    container: &str,
    script: &str,
    env: &[(String, String)],
    deadline: Deadline,
) -> Result<Observation, BackendError> {
    let began = Instant::now();
    let (id, mut out) = start(docker, container, remote::run_argv(script, env)).await?;
    let (c, end) = remote::collect_or_kill(&mut out, deadline, async |pid| kill(docker, container, pid).await)
        .await
        .map_err(docker_err(container))?;
    if end != End::Finished {
        let timed_out = end == End::TimedOut;
        return Ok(Observation { output: c.text(), exit: None, timed_out, duration: began.elapsed() });
    }
    let exit = exit_code(docker, container, &id).await?;
    Ok(Observation { output: c.text(), exit, timed_out: false, duration: began.elapsed() })
}

/// A `bg` block in a node container.
pub struct NodeBg {
    docker: Docker,
    container: String,
    exec_id: String,
    output: Background<()>,
}

/// Start a `bg` block in `container`; its output is gathered until [`BgTask::stop`].
pub async fn spawn(
    docker: &Docker,
    container: &str,
    script: &str,
    env: &[(String, String)],
) -> Result<Box<dyn BgTask>, BackendError> {
    let (exec_id, out) = start(docker, container, remote::run_argv(script, env)).await?;
    Ok(Box::new(NodeBg {
        docker: docker.clone(),
        container: container.to_string(),
        exec_id,
        output: Background::start(out, async { None }),
    }))
}

#[async_trait]
impl BgTask for NodeBg {
    async fn stop(self: Box<Self>) -> Observation {
        let ended_by_itself = self.output.ended();
        if !ended_by_itself && let Some(pid) = self.output.pid(Duration::from_secs(2)).await {
            kill(&self.docker, &self.container, pid).await;
        }
        let duration = self.output.began.elapsed();
        let (c, _) = self.output.finish().await;
        let exit = if ended_by_itself {
            exit_code(&self.docker, &self.container, &self.exec_id).await.ok().flatten()
        } else {
            None
        };
        Observation { output: c.text(), exit, timed_out: false, duration }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake_docker::FakeDocker;
    use super::*;

    #[tokio::test]
    async fn exec_returns_output_and_exit_code() {
        let fake = FakeDocker::start().await;
        let docker = fake.client();
        let o = exec(
            &docker,
            "tutor-r1-worker",
            "echo out; echo err >&2; exit 3",
            &[("A".into(), "b c".into())],
            Deadline::new(Duration::from_secs(10)),
        )
        .await
        .unwrap();
        assert_eq!(o.output, "out\nerr\n");
        assert_eq!(o.exit, Some(3));
        assert!(!o.timed_out);
        let execs = fake.execs();
        assert_eq!(execs.len(), 1);
        assert_eq!(execs[0].container, "tutor-r1-worker");
        assert_eq!(execs[0].cmd[..2], ["sh", "-c"]);
        assert!(execs[0].cmd[4].starts_with("export A='b c'\n"), "{:?}", execs[0].cmd);
    }

    #[tokio::test]
    async fn timeout_kills_the_process_tree_through_a_second_exec() {
        let fake = FakeDocker::start().await;
        let docker = fake.client();
        let o = exec(
            &docker,
            "tutor-r1-worker",
            "echo started; sleep 1000",
            &[],
            Deadline::new(Duration::from_millis(300)),
        )
        .await
        .unwrap();
        assert!(o.timed_out);
        assert_eq!(o.exit, None);
        assert!(o.output.starts_with("started\n"), "{:?}", o.output);
        assert!(o.duration < Duration::from_secs(5), "{:?}", o.duration);
        let execs = fake.execs();
        assert_eq!(execs.len(), 2, "{execs:?}");
        assert_eq!(execs[1].cmd[..4], remote::kill_argv(0)[..4]);
    }

    #[tokio::test]
    async fn ctrl_c_stops_a_node_block_at_once() {
        let fake = FakeDocker::start().await;
        let deadline =
            Deadline::with_interrupt(Duration::from_secs(600), tokio::time::sleep(Duration::from_millis(200)));
        let o = exec(&fake.client(), "tutor-r1-worker", "echo busy; sleep 1000", &[], deadline).await.unwrap();
        assert_eq!((o.output.as_str(), o.exit, o.timed_out), ("busy\n", None, false));
        assert!(o.duration < Duration::from_secs(10), "{:?}", o.duration);
        assert_eq!(fake.execs().last().unwrap().cmd[..4], remote::kill_argv(0)[..4]);
    }

    #[tokio::test]
    async fn missing_container_is_a_clear_error() {
        let fake = FakeDocker::start().await;
        let err = exec(&fake.client(), "nope", "true", &[], Deadline::new(Duration::from_secs(5))).await.unwrap_err();
        assert!(err.to_string().contains("node container `nope` does not exist"), "{err}");
    }

    #[tokio::test]
    async fn bg_block_is_stopped_with_its_output() {
        let fake = FakeDocker::start().await;
        let docker = fake.client();
        let bg = spawn(&docker, "tutor-r1-worker", "echo serving; sleep 1000", &[]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let o = bg.stop().await;
        assert_eq!(o.output, "serving\n");
        assert_eq!(o.exit, None);
        assert_eq!(fake.execs().last().unwrap().cmd[..4], remote::kill_argv(0)[..4]);
    }
}
