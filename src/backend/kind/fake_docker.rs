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
            let id = {
                let mut s = state.lock().unwrap();
                s.execs.push(ExecRecord { container: name.to_string(), cmd });
                s.execs.len() - 1
            };
            respond(&mut conn, "201 Created", &format!("{{\"Id\":\"{id}\"}}")).await
        }
        ("POST", ["exec", id, "start"]) => {
            let id: usize = id.parse().unwrap_or(usize::MAX);
            let Some(cmd) = state.lock().unwrap().execs.get(id).map(|e| e.cmd.clone()) else {
                return respond(&mut conn, "404 Not Found", "{\"message\":\"no such exec\"}").await;
            };
            let head = "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
            let _ = conn.write_all(head.as_bytes()).await;
            state.lock().unwrap().exit.insert(id, None);
            let code = run_framed(&cmd, &mut conn).await;
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

/// Run `cmd` locally and stream its stdout in Docker's multiplexed framing.
async fn run_framed(cmd: &[String], conn: &mut UnixStream) -> Option<i32> {
    let mut child = tokio::process::Command::new(cmd.first()?)
        .args(&cmd[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let mut out = child.stdout.take()?;
    let mut buf = [0u8; 4096];
    loop {
        let n = out.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        let mut frame = vec![1, 0, 0, 0];
        frame.extend_from_slice(&(n as u32).to_be_bytes());
        frame.extend_from_slice(&buf[..n]);
        if conn.write_all(&frame).await.is_err() {
            break;
        }
    }
    child.wait().await.ok()?.code()
}
