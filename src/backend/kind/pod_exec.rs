//! Pod targets: blocks run in a pod through the Kubernetes exec API (kube, websocket), the way
//! `kubectl exec` would. The exec itself sits behind [`PodTransport`] so that the plumbing
//! around it (pid marker, timeout, kill, exit status) is tested without a cluster.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncWrite;

use super::remote::{self, Background, DRAIN, Deadline, End};
use crate::backend::shell::{self, Chunk, Chunks, ExecShell, ShellControl};
use crate::backend::{BackendError, BgTask, Observation};

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;
pub type StatusFuture = Pin<Box<dyn std::future::Future<Output = Option<Status>> + Send>>;

/// A started exec: its (merged) output and the status the kubelet reports at the end.
pub struct Started {
    pub output: ByteStream,
    pub status: StatusFuture,
    /// Whatever must stay alive while the exec runs (the websocket task).
    pub keep: Box<dyn Send + Sync>,
}

/// A started exec with stdin attached and stdout and stderr apart (the runner's kernel).
pub struct Session {
    pub stdin: Pin<Box<dyn AsyncWrite + Send>>,
    pub output: Chunks,
    pub keep: Box<dyn Send>,
}

/// Starts `argv` in a pod.
#[async_trait]
pub trait PodTransport: Send + Sync {
    async fn start(&self, namespace: &str, pod: &str, argv: Vec<String>) -> Result<Started, BackendError>;

    /// Starts `argv` with stdin, stdout and stderr attached.
    async fn session(&self, namespace: &str, pod: &str, argv: Vec<String>) -> Result<Session, BackendError>;
}

/// The real transport: the Kubernetes API's `pods/exec` subresource.
#[derive(Clone)]
pub struct KubeTransport {
    pub client: kube::Client,
}

#[async_trait]
impl PodTransport for KubeTransport {
    async fn start(&self, namespace: &str, pod: &str, argv: Vec<String>) -> Result<Started, BackendError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        // stderr is merged into stdout by the wrapper, in order.
        let params = AttachParams::default().stdin(false).stdout(true).stderr(false);
        let mut attached = api.exec(pod, argv, &params).await.map_err(|e| kube_err(namespace, pod, e))?;
        let out = attached.stdout().ok_or_else(|| BackendError::Other("exec without stdout".into()))?;
        let status = attached.take_status().ok_or_else(|| BackendError::Other("exec without status".into()))?;
        Ok(Started {
            output: Box::pin(tokio_util::io::ReaderStream::new(out)),
            status: Box::pin(status),
            keep: Box::new(attached),
        })
    }

    async fn session(&self, namespace: &str, pod: &str, argv: Vec<String>) -> Result<Session, BackendError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = AttachParams::default().stdin(true).stdout(true).stderr(true);
        let mut attached = api.exec(pod, argv, &params).await.map_err(|e| kube_err(namespace, pod, e))?;
        let missing = |what: &str| BackendError::Other(format!("exec in pod {namespace}/{pod}: no {what}"));
        let stdin = attached.stdin().ok_or_else(|| missing("stdin"))?;
        let out = attached.stdout().ok_or_else(|| missing("stdout"))?;
        let err = attached.stderr().ok_or_else(|| missing("stderr"))?;
        Ok(Session { stdin: Box::pin(stdin), output: chunks(out, err), keep: Box::new(attached) })
    }
}

/// Two readers as one stream of chunks, each tagged with where it came from.
pub fn chunks(
    out: impl tokio::io::AsyncRead + Send + 'static,
    err: impl tokio::io::AsyncRead + Send + 'static,
) -> Chunks {
    let out = tokio_util::io::ReaderStream::new(out).map(|r| r.map(Chunk::Stdout));
    let err = tokio_util::io::ReaderStream::new(err).map(|r| r.map(Chunk::Stderr));
    Box::pin(futures_util::stream::select(out, err))
}

/// Kills a kernel in a pod through a second exec.
struct PodControl {
    transport: Arc<dyn PodTransport>,
    namespace: String,
    pod: String,
}

#[async_trait]
impl ShellControl for PodControl {
    async fn kill_tree(&self, pid: u32) {
        if let Ok(mut s) = self.transport.start(&self.namespace, &self.pod, shell::kill_tree_argv(pid)).await {
            remote::drain(&mut s.output, DRAIN, &mut Vec::new()).await;
        }
    }
}

/// The runner's kernel in a pod: an exec of `argv` with stdin attached.
pub async fn shell(
    transport: Arc<dyn PodTransport>,
    namespace: &str,
    pod: &str,
    argv: Vec<String>,
) -> Result<ExecShell, BackendError> {
    let s = transport.session(namespace, pod, argv).await?;
    let control = PodControl { transport, namespace: namespace.to_string(), pod: pod.to_string() };
    Ok(ExecShell { stdin: s.stdin, output: s.output, control: Arc::new(control), keep: s.keep })
}

/// A failed exec call, in the words a user acts on. A pod that does not exist is a target the
/// environment does not have now (a later step may create it), as on every backend.
pub fn kube_err(namespace: &str, pod: &str, e: kube::Error) -> BackendError {
    match e {
        kube::Error::Api(r) if r.code == 404 => {
            BackendError::TargetMissing(format!("pod `{pod}` not found in namespace `{namespace}`: {}", r.message))
        }
        kube::Error::UpgradeConnection(kube::client::UpgradeConnectionError::ProtocolSwitch(code)) if code == 404 => {
            BackendError::TargetMissing(format!("pod `{pod}` not found in namespace `{namespace}`"))
        }
        kube::Error::Api(r) => {
            BackendError::Other(format!("exec in pod {namespace}/{pod}: {} ({})", r.message, r.reason))
        }
        e => BackendError::Other(format!("exec in pod {namespace}/{pod}: {e}")),
    }
}

/// An exec's final status that carries no exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecStatusError {
    #[error("the exec ended without a status (connection lost?)")]
    NoStatus,
    #[error("non-zero exit without a code: {0}")]
    NoCode(String),
    /// Anything else (container gone, …): the status's message, or its reason when it has none.
    #[error("{}", if message.is_empty() { format!("exec failed: {reason}") } else { message.clone() })]
    Failed { reason: String, message: String },
}

/// The exit code in an exec's final status: `Success` is 0, `NonZeroExitCode` carries the code
/// in its `ExitCode` cause. Anything else (container gone, …) is an error.
pub fn exit_code(status: Option<&Status>) -> Result<i32, ExecStatusError> {
    let Some(status) = status else {
        return Err(ExecStatusError::NoStatus);
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let message = status.message.clone().unwrap_or_default();
    let reason = status.reason.as_deref().unwrap_or_default();
    if reason == "NonZeroExitCode" {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.parse().ok());
        return code.ok_or(ExecStatusError::NoCode(message));
    }
    Err(ExecStatusError::Failed { reason: reason.to_string(), message })
}

async fn kill(transport: &dyn PodTransport, namespace: &str, pod: &str, pid: u32) {
    if let Ok(mut s) = transport.start(namespace, pod, remote::kill_argv(pid)).await {
        remote::drain(&mut s.output, DRAIN, &mut Vec::new()).await;
    }
}

/// Run one block in a pod.
pub async fn exec(
    transport: &dyn PodTransport,
    namespace: &str,
    pod: &str,
    script: &str,
    env: &[(String, String)],
    deadline: Deadline,
) -> Result<Observation, BackendError> {
    let began = Instant::now();
    let mut s = transport.start(namespace, pod, remote::run_argv(script, env)).await?;
    let read_err = |e: std::io::Error| BackendError::Other(format!("exec in pod {namespace}/{pod}: {e}"));
    let (c, end) =
        remote::collect_or_kill(&mut s.output, deadline, async |pid| kill(transport, namespace, pod, pid).await)
            .await
            .map_err(read_err)?;
    if end != End::Finished {
        let timed_out = end == End::TimedOut;
        return Ok(Observation { output: c.text(), exit: None, timed_out, duration: began.elapsed() });
    }
    let status = tokio::time::timeout(DRAIN, s.status).await.ok().flatten();
    match exit_code(status.as_ref()) {
        Ok(code) => Ok(Observation { output: c.text(), exit: Some(code), timed_out: false, duration: began.elapsed() }),
        // The shell never ran (no `sh` in the image, container not running, …).
        Err(e) if c.pid.is_none() => Err(BackendError::Other(format!("exec in pod {namespace}/{pod}: {e}"))),
        Err(_) => Ok(Observation { output: c.text(), exit: None, timed_out: false, duration: began.elapsed() }),
    }
}

/// A `bg` block in a pod.
pub struct PodBg {
    transport: Arc<dyn PodTransport>,
    namespace: String,
    pod: String,
    output: Background<Status>,
    _keep: Box<dyn Send + Sync>,
}

pub async fn spawn(
    transport: Arc<dyn PodTransport>,
    namespace: &str,
    pod: &str,
    script: &str,
    env: &[(String, String)],
) -> Result<Box<dyn BgTask>, BackendError> {
    let s = transport.start(namespace, pod, remote::run_argv(script, env)).await?;
    Ok(Box::new(PodBg {
        transport,
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        output: Background::start(s.output, s.status),
        _keep: s.keep,
    }))
}

#[async_trait]
impl BgTask for PodBg {
    async fn stop(self: Box<Self>) -> Observation {
        let ended_by_itself = self.output.ended();
        if !ended_by_itself && let Some(pid) = self.output.pid(Duration::from_secs(2)).await {
            kill(self.transport.as_ref(), &self.namespace, &self.pod, pid).await;
        }
        let duration = self.output.began.elapsed();
        let (c, status) = self.output.finish().await;
        let exit = if ended_by_itself { exit_code(status.as_ref()).ok() } else { None };
        Observation { output: c.text(), exit, timed_out: false, duration }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use http::{Request, Response};
    use kube::client::Body;
    use std::sync::Mutex;

    /// A "pod" that is the local machine: each exec is a real local process, its status built
    /// the way the kubelet reports it. Records every argv.
    #[derive(Default)]
    struct LocalPod {
        argvs: Mutex<Vec<Vec<String>>>,
    }

    fn kubelet_status(code: Option<i32>) -> Option<Status> {
        match code {
            Some(0) => Some(Status { status: Some("Success".into()), ..Default::default() }),
            Some(n) => Some(
                serde_json::from_value(serde_json::json!({
                    "status": "Failure",
                    "message": format!("command terminated with non-zero exit code: error executing command [sh -c ...], exit code {n}"),
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": n.to_string()}]}
                }))
                .unwrap(),
            ),
            None => None,
        }
    }

    #[async_trait]
    impl PodTransport for LocalPod {
        async fn start(&self, _ns: &str, pod: &str, argv: Vec<String>) -> Result<Started, BackendError> {
            if pod == "missing" {
                return Err(BackendError::TargetMissing("pod `missing` not found in namespace `default`".into()));
            }
            self.argvs.lock().unwrap().push(argv.clone());
            let mut child = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let out = child.stdout.take().unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let code = child.wait().await.ok().and_then(|s| s.code());
                let _ = tx.send(kubelet_status(code));
            });
            Ok(Started {
                output: Box::pin(tokio_util::io::ReaderStream::new(out)),
                status: Box::pin(rx.map(|r| r.ok().flatten())),
                keep: Box::new(()),
            })
        }

        async fn session(&self, _ns: &str, _pod: &str, argv: Vec<String>) -> Result<Session, BackendError> {
            use std::process::Stdio;
            self.argvs.lock().unwrap().push(argv.clone());
            let mut child = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
            Ok(Session {
                stdin: Box::pin(child.stdin.take().unwrap()),
                output: chunks(out, err),
                keep: Box::new(child),
            })
        }
    }

    use crate::runner::Cancel;
    use crate::runner::kernel::{Kernel, KernelRun, Mode, remote_argv, restore_script};

    async fn kernel_in(transport: Arc<dyn PodTransport>, init: &[u8]) -> Kernel {
        let shell = shell(transport, "default", "tiefighter", remote_argv()).await.unwrap();
        Kernel::start_remote(shell, init).await.unwrap().expect("bash is there")
    }

    async fn frames(k: &mut Kernel, cmds: &[&str], timeout: Duration) -> KernelRun {
        let frames: Vec<(Mode, &[u8])> = cmds.iter().map(|c| (Mode::Plain, c.as_bytes())).collect();
        k.run(&frames, &|_, _| true, Some(std::time::Instant::now() + timeout), &Cancel::default()).await
    }

    fn outputs(r: &KernelRun) -> Vec<(&str, Option<i32>)> {
        r.runs.iter().map(|r| (r.output.as_str(), r.status)).collect()
    }

    /// The remote kernel's protocol, on an exec session whose "pod" is this machine: state lives
    /// in the shell, output and status stay apart (stderr merged into the command's output, a
    /// printed `status` line is output), a command without a final newline keeps it so, a
    /// daemon holding stdout does not hold the block, and output printed between blocks by a
    /// background job goes to the next command.
    #[tokio::test]
    async fn a_kernel_over_an_exec_session_keeps_the_shell() {
        let pod: Arc<LocalPod> = Arc::default();
        let dir = tempfile::tempdir().unwrap();
        let mut k = kernel_in(pod.clone(), b"").await;
        let d = dir.path().display();
        let r = frames(&mut k, &[&format!("cd {d}; X=plain; f() {{ echo \"f:$1\"; }}"), "alias hi='echo alias'"], LONG)
            .await;
        assert_eq!(outputs(&r), [("", Some(0)), ("", Some(0))]);
        let r = frames(
            &mut k,
            &["echo $X; f 1; hi; pwd", "echo 'status 0'; echo err >&2; printf no-eol", "(exit 3)", "echo $COLUMNS $TZ"],
            LONG,
        )
        .await;
        let pwd = format!("plain\nf:1\nalias\n{d}\n");
        assert_eq!(
            outputs(&r),
            [(pwd.as_str(), Some(0)), ("status 0\nerr\nno-eol", Some(0)), ("", Some(3)), ("80 UTC\n", Some(0))]
        );
        let began = std::time::Instant::now();
        // The daemon keeps the session's stdout open.
        let daemon =
            format!("setsid -f sh -c 'echo $$ > {d}/daemon; exec sleep 60'; (sleep 0.3; echo late) & echo started");
        let r = frames(&mut k, &[&daemon], LONG).await;
        assert_eq!(outputs(&r), [("started\n", Some(0))]);
        assert!(began.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(k.alive());
        let r = frames(&mut k, &["echo next"], LONG).await;
        assert_eq!(outputs(&r), [("late\nnext\n", Some(0))]);
        // One session for all of it: no exec per block.
        assert_eq!(pod.argvs.lock().unwrap().len(), 1);
        k.stop().await;
        let argvs = pod.argvs.lock().unwrap();
        assert_eq!(argvs.len(), 2, "stop kills the tree through a second exec");
        assert_eq!(argvs[1][..4], shell::kill_tree_argv(0)[..4]);
        if let Ok(pid) = std::fs::read_to_string(dir.path().join("daemon")) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
    }

    /// A timeout kills the kernel through a second exec at once; a new kernel restores the
    /// state from before the block; `exit` ends a kernel with its status.
    #[tokio::test]
    async fn a_timeout_kills_the_remote_kernel_and_the_next_one_restores_the_state() {
        let pod: Arc<LocalPod> = Arc::default();
        let mut k = kernel_in(pod.clone(), b"").await;
        frames(&mut k, &["A=1; g() { echo g; }; cd /; set -o pipefail"], LONG).await;
        let began = std::time::Instant::now();
        let r = frames(&mut k, &["A=changed; echo going; sleep 100"], Duration::from_millis(500)).await;
        assert!(r.timed_out);
        assert_eq!(outputs(&r), [("going\n", None)]);
        assert!(began.elapsed() < Duration::from_secs(10), "{:?}", began.elapsed());
        assert!(!k.alive());
        assert_eq!(pod.argvs.lock().unwrap()[1][..4], shell::kill_tree_argv(0)[..4]);
        let state = k.state().expect("a state").to_vec();
        k.stop().await;
        let mut k = kernel_in(pod.clone(), &restore_script(&state)).await;
        let r = frames(&mut k, &["echo $A; g; pwd; false | true", "echo b; exit 4", "echo never"], LONG).await;
        assert_eq!(outputs(&r), [("1\ng\n/\n", Some(1)), ("b\n", Some(4)), ("", None)]);
        assert_eq!(r.died.as_deref(), Some("the shell exited with status 4"));
        assert!(!k.alive());
        k.stop().await;
    }

    /// Ctrl-C ends a block in a remote kernel at once, through the second exec.
    #[tokio::test]
    async fn ctrl_c_kills_the_remote_kernel_at_once() {
        let pod: Arc<LocalPod> = Arc::default();
        let mut k = kernel_in(pod.clone(), b"").await;
        let cancel = Cancel::default();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            c2.cancel();
        });
        let began = std::time::Instant::now();
        let r = k.run(&[(Mode::Plain, b"echo busy; sleep 100".as_slice())], &|_, _| true, None, &cancel).await;
        assert!(r.interrupted && !r.timed_out);
        assert_eq!(outputs(&r), [("busy\n", None)]);
        assert!(began.elapsed() < Duration::from_secs(10), "{:?}", began.elapsed());
        assert!(!k.alive());
        assert_eq!(pod.argvs.lock().unwrap()[1][..4], shell::kill_tree_argv(0)[..4]);
    }

    /// The real transport: kube's exec client with stdin, stdout and stderr against the fake API
    /// server (a websocket; the "pod" is this machine).
    #[tokio::test]
    async fn a_kernel_over_kube_exec_with_stdin() {
        let api = super::super::fake_kube::FakeApiServer::start().await;
        let transport = Arc::new(KubeTransport { client: api.client().await });
        let mut k = kernel_in(transport, b"").await;
        let r = frames(&mut k, &["X=1; cd /tmp; f() { echo f$X; }"], LONG).await;
        assert_eq!(outputs(&r), [("", Some(0))]);
        let r = frames(&mut k, &["f; pwd; echo err >&2; (exit 2)"], LONG).await;
        assert_eq!(outputs(&r), [("f1\n/tmp\nerr\n", Some(2))]);
        let r = frames(&mut k, &["sleep 100"], Duration::from_millis(500)).await;
        assert!(r.timed_out);
        k.stop().await;
        let execs = api.execs.lock().unwrap().clone();
        assert_eq!(execs.len(), 2, "{execs:?}");
        assert_eq!(execs[1].2[..4], shell::kill_tree_argv(0)[..4]);
    }

    const LONG: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn exec_reports_output_and_exit_code() {
        let pod = LocalPod::default();
        let o = exec(
            &pod,
            "default",
            "tiefighter",
            "echo hi; echo oops >&2; exit 7",
            &[],
            Deadline::new(Duration::from_secs(10)),
        )
        .await
        .unwrap();
        assert_eq!(o.output, "hi\noops\n");
        assert_eq!(o.exit, Some(7));
        let o = exec(&pod, "default", "tiefighter", "true", &[], Deadline::new(Duration::from_secs(10))).await.unwrap();
        assert_eq!((o.output.as_str(), o.exit), ("", Some(0)));
    }

    #[tokio::test]
    async fn timeout_kills_through_a_second_exec() {
        let pod = LocalPod::default();
        let o = exec(&pod, "default", "x", "echo up; sleep 1000", &[], Deadline::new(Duration::from_millis(300)))
            .await
            .unwrap();
        assert!(o.timed_out);
        assert_eq!(o.output, "up\n");
        let argvs = pod.argvs.lock().unwrap();
        assert_eq!(argvs.len(), 2);
        assert_eq!(argvs[1][..4], remote::kill_argv(0)[..4]);
        assert!(o.duration < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn bg_block_stops_and_keeps_output() {
        let pod: Arc<LocalPod> = Arc::default();
        let bg = spawn(pod.clone(), "default", "x", "echo listening; exec sleep 1000", &[]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let o = bg.stop().await;
        assert_eq!(o.output, "listening\n");
        assert_eq!(o.exit, None);
        assert_eq!(pod.argvs.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn bg_block_that_ended_keeps_its_exit_code() {
        let pod: Arc<LocalPod> = Arc::default();
        let bg = spawn(pod.clone(), "default", "x", "echo done; exit 4", &[]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let o = bg.stop().await;
        assert_eq!((o.output.as_str(), o.exit), ("done\n", Some(4)));
        assert_eq!(pod.argvs.lock().unwrap().len(), 1, "nothing to kill");
    }

    #[test]
    fn exit_codes_from_kubelet_statuses() {
        assert_eq!(exit_code(kubelet_status(Some(0)).as_ref()), Ok(0));
        assert_eq!(exit_code(kubelet_status(Some(42)).as_ref()), Ok(42));
        assert_eq!(exit_code(None), Err(ExecStatusError::NoStatus));
        assert!(ExecStatusError::NoStatus.to_string().contains("without a status"));
        let gone = Status {
            status: Some("Failure".into()),
            message: Some("container not found (\"app\")".into()),
            reason: Some("InternalError".into()),
            ..Default::default()
        };
        assert_eq!(exit_code(Some(&gone)).unwrap_err().to_string(), "container not found (\"app\")");
    }

    /// The real transport against kube's mock service: the request is the exec subresource with
    /// the wrapper's argv, and an API error becomes a message naming the pod.
    #[tokio::test]
    async fn kube_transport_sends_the_exec_request_and_explains_404() {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(svc, "default");
        let server = tokio::spawn(async move {
            let (req, send) = handle.next_request().await.expect("a request");
            let uri = req.uri().to_string();
            assert_eq!(req.uri().path(), "/api/v1/namespaces/kube-system/pods/cilium-abcde/exec");
            assert!(uri.contains("command=sh&command=-c"), "{uri}");
            assert!(
                uri.contains("stdout=true") && !uri.contains("stderr=true") && !uri.contains("stdin=true"),
                "{uri}"
            );
            assert_eq!(req.headers()["upgrade"], "websocket");
            let body = serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "pods \"cilium-abcde\" not found", "reason": "NotFound", "code": 404
            });
            send.send_response(
                Response::builder().status(404).body(Body::from(body.to_string().into_bytes())).unwrap(),
            );
        });
        let transport = KubeTransport { client };
        let err = exec(
            &transport,
            "kube-system",
            "cilium-abcde",
            "cilium-dbg status",
            &[],
            Deadline::new(Duration::from_secs(5)),
        )
        .await
        .expect_err("an error");
        server.await.unwrap();
        let msg = err.to_string();
        assert_eq!(msg, "pod `cilium-abcde` not found in namespace `kube-system`");
    }

    /// The real transport end to end: kube's exec client against the fake API server, whose
    /// "pod" is this machine. Output, exit code (kubelet status on channel 3), timeout with the
    /// kill exec, a missing pod.
    #[tokio::test]
    async fn kube_transport_over_a_real_websocket() {
        let api = super::super::fake_kube::FakeApiServer::start().await;
        let transport = KubeTransport { client: api.client().await };
        let env = [("GREETING".to_string(), "hi there".to_string())];
        let o = exec(
            &transport,
            "default",
            "tiefighter",
            "echo $GREETING; echo err >&2; exit 3",
            &env,
            Deadline::new(Duration::from_secs(10)),
        )
        .await
        .unwrap();
        assert_eq!((o.output.as_str(), o.exit, o.timed_out), ("hi there\nerr\n", Some(3), false));
        let o = exec(&transport, "default", "tiefighter", "true", &[], Deadline::new(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(o.exit, Some(0));

        let o = exec(
            &transport,
            "kube-system",
            "cilium-x",
            "echo up; sleep 1000",
            &[],
            Deadline::new(Duration::from_millis(500)),
        )
        .await
        .unwrap();
        assert!(o.timed_out);
        assert_eq!(o.output, "up\n");
        let execs = api.execs.lock().unwrap().clone();
        assert_eq!(execs.len(), 4, "{execs:?}");
        assert_eq!((execs[3].0.as_str(), execs[3].1.as_str()), ("kube-system", "cilium-x"));
        assert_eq!(execs[3].2[..4], remote::kill_argv(0)[..4]);

        let err = exec(&transport, "default", "missing", "true", &[], Deadline::new(Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "pod `missing` not found in namespace `default`");
    }

    #[tokio::test]
    async fn kube_bg_block_over_a_real_websocket() {
        let api = super::super::fake_kube::FakeApiServer::start().await;
        let transport = Arc::new(KubeTransport { client: api.client().await });
        let bg = spawn(transport, "default", "web", "echo serving; exec sleep 1000", &[]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let o = bg.stop().await;
        assert_eq!((o.output.as_str(), o.exit), ("serving\n", None));
        assert_eq!(api.execs.lock().unwrap().len(), 2);
    }
}
