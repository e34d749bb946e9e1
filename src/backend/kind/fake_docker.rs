//! A Docker engine for tests: a tiny HTTP/1.1 server on a Unix socket that answers the calls
//! the backend makes (ping, exec create/start/inspect, container list) and runs each exec's
//! command as a real local process, so the exec plumbing — output framing, exit codes, the pid
//! marker and killing through a second exec — is exercised for real.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bollard::Docker;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub container: String,
    pub cmd: Vec<String>,
    /// The exec asked for stdin (then the connection's bytes after the upgrade go to it) and
    /// stderr (framed as stream 2; without it stderr is dropped, as the engine does).
    pub stdin: bool,
    pub stderr: bool,
}

#[derive(Default)]
struct State {
    execs: Vec<ExecRecord>,
    exit: HashMap<usize, Option<i32>>,
    /// `GET /containers/json` answer.
    containers: serde_json::Value,
    /// When set, the answer is read from this file instead (a fake `kind` writes it).
    containers_file: Option<std::path::PathBuf>,
}

pub struct FakeDocker {
    dir: tempfile::TempDir,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDocker {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeDocker {
    pub async fn start() -> FakeDocker {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("docker.sock")).unwrap();
        let state = Arc::new(Mutex::new(State { containers: serde_json::json!([]), ..State::default() }));
        let shared = state.clone();
        let server = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, shared.clone()));
            }
        });
        FakeDocker { dir, state, server }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    pub fn client(&self) -> Docker {
        Docker::connect_with_unix(&self.host(), 30, bollard::API_DEFAULT_VERSION).unwrap()
    }

    pub fn execs(&self) -> Vec<ExecRecord> {
        self.state.lock().unwrap().execs.clone()
    }

    pub fn set_containers(&self, list: serde_json::Value) {
        self.state.lock().unwrap().containers = list;
    }

    pub fn containers_from(&self, file: &std::path::Path) {
        self.state.lock().unwrap().containers_file = Some(file.to_path_buf());
    }
}

async fn respond(conn: &mut UnixStream, status: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(body.as_bytes()).await;
    let _ = conn.shutdown().await;
}

async fn serve(conn: UnixStream, state: Arc<Mutex<State>>) {
    let mut reader = BufReader::new(conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body).await;
    // Bytes the client sent past the request (stdin of an attached exec) must not be lost.
    let early = reader.buffer().to_vec();
    let mut conn = reader.into_inner();

    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    // bollard prefixes the API version: /v1.49/...
    let path = target.split('?').next().unwrap_or_default();
    let path = match path.strip_prefix("/v1.") {
        Some(rest) => &rest[rest.find('/').unwrap_or(rest.len())..],
        None => path,
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => respond(&mut conn, "200 OK", "OK").await,
        ("GET", ["containers", "json"]) => {
            let list = {
                let s = state.lock().unwrap();
                match &s.containers_file {
                    Some(f) => std::fs::read_to_string(f).unwrap_or_else(|_| "[]".into()),
                    None => s.containers.to_string(),
                }
            };
            respond(&mut conn, "200 OK", &list).await
        }
        ("POST", ["containers", name, "exec"]) => {
            if !name.starts_with("tutor-") {
                let msg = format!("{{\"message\":\"No such container: {name}\"}}");
                return respond(&mut conn, "404 Not Found", &msg).await;
            }
            let cfg: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let cmd =
                cfg["Cmd"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect();
            let stdin = cfg["AttachStdin"].as_bool() == Some(true);
            let stderr = cfg["AttachStderr"].as_bool() == Some(true);
            let id = {
                let mut s = state.lock().unwrap();
                s.execs.push(ExecRecord { container: name.to_string(), cmd, stdin, stderr });
                s.execs.len() - 1
            };
            respond(&mut conn, "201 Created", &format!("{{\"Id\":\"{id}\"}}")).await
        }
        ("POST", ["exec", id, "start"]) => {
            let id: usize = id.parse().unwrap_or(usize::MAX);
            let Some(exec) = state.lock().unwrap().execs.get(id).cloned() else {
                return respond(&mut conn, "404 Not Found", "{\"message\":\"no such exec\"}").await;
            };
            let head = "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
            let _ = conn.write_all(head.as_bytes()).await;
            state.lock().unwrap().exit.insert(id, None);
            let code = run_framed(&exec, early, &mut conn).await;
            state.lock().unwrap().exit.insert(id, code);
            let _ = conn.shutdown().await;
        }
        ("GET", ["exec", id, "json"]) => {
            let id: usize = id.parse().unwrap_or(usize::MAX);
            let exit = state.lock().unwrap().exit.get(&id).copied();
            let body = match exit {
                Some(Some(code)) => serde_json::json!({"ID": id.to_string(), "Running": false, "ExitCode": code}),
                Some(None) => serde_json::json!({"ID": id.to_string(), "Running": true, "ExitCode": null}),
                None => serde_json::json!({"ID": id.to_string(), "Running": false, "ExitCode": null}),
            };
            respond(&mut conn, "200 OK", &body.to_string()).await
        }
        _ => respond(&mut conn, "404 Not Found", "{\"message\":\"page not found\"}").await,
    }
}

/// Run the exec's command locally and stream its stdout (and stderr, when attached) in Docker's
/// multiplexed framing; with stdin attached, what the client writes on the connection goes to
/// the command's stdin. The stream ends when the command has exited and its output is read.
async fn run_framed(exec: &ExecRecord, early: Vec<u8>, conn: &mut UnixStream) -> Option<i32> {
    use std::process::Stdio;
    let cmd = &exec.cmd;
    let mut child = tokio::process::Command::new(cmd.first()?)
        .args(&cmd[1..])
        .stdin(if exec.stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(if exec.stderr { Stdio::piped() } else { Stdio::null() })
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let (mut from_client, mut to_client) = conn.split();
    let stdin = child.stdin.take();
    let feed = async move {
        let Some(mut stdin) = stdin else { return std::future::pending().await };
        if stdin.write_all(&early).await.is_err() {
            return std::future::pending().await;
        }
        let _ = tokio::io::copy(&mut from_client, &mut stdin).await;
        // The client closed its side: the command's stdin closes too; the output goes on.
        drop(stdin);
        std::future::pending::<()>().await
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u8, Vec<u8>)>(16);
    let pump = |kind: u8, mut r: Box<dyn tokio::io::AsyncRead + Send + Unpin>, tx: tokio::sync::mpsc::Sender<_>| async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 || tx.send((kind, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    tokio::spawn(pump(1, Box::new(child.stdout.take()?), tx.clone()));
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(2, Box::new(err), tx.clone()));
    }
    drop(tx);
    let forward = async {
        while let Some((kind, bytes)) = rx.recv().await {
            let mut frame = vec![kind, 0, 0, 0];
            frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            frame.extend_from_slice(&bytes);
            if to_client.write_all(&frame).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = forward => {}
        _ = feed => {}
    }
    child.wait().await.ok()?.code()
}
