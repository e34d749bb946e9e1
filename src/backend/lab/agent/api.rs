//! The agent's local socket, for the kubelet API server (`tutor-kubelet`, a small Go program
//! built on the kubelet's CRI streaming server; see docs/architecture.md): where a container
//! runs (its namespaces, environment, working directory), its logs, its stdin.
//!
//! Protocol: one JSON request line; one JSON answer line (`{"error": …}` or the answer); for
//! `logs` and `stdin` the raw stream follows on the same connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::logs::{self, LogOptions};
use super::runtime::Runtime;

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Where a container runs (exec, attach).
    Container { namespace: String, pod: String, container: String },
    /// A pod's network namespace (port-forward).
    Sandbox { namespace: String, pod: String },
    Logs {
        namespace: String,
        pod: String,
        container: String,
        #[serde(default)]
        follow: bool,
        #[serde(default)]
        previous: bool,
        #[serde(flatten)]
        options: LogOptions,
    },
    /// Copy the rest of the connection into the container's stdin (attach -i).
    Stdin { namespace: String, pod: String, container: String },
}

#[derive(Debug, Serialize, Default)]
pub struct Answer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `/proc/PID/task/TID/ns/` of the pod's sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
}

fn error(message: String) -> Answer {
    Answer { error: Some(message), ..Default::default() }
}

/// Serve `path` on a thread of its own.
pub fn serve(path: &Path, rt: Arc<Runtime>) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::thread::Builder::new().name("agent-api".into()).spawn(move || {
        for conn in listener.incoming().flatten() {
            let rt = rt.clone();
            std::thread::spawn(move || handle(conn, &rt));
        }
    })?;
    Ok(())
}

fn answer(conn: &mut UnixStream, a: &Answer) -> bool {
    let mut line = serde_json::to_vec(a).unwrap_or_default();
    line.push(b'\n');
    conn.write_all(&line).is_ok()
}

fn handle(mut conn: UnixStream, rt: &Runtime) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let req: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            answer(&mut conn, &error(format!("bad request: {e}")));
            return;
        }
    };
    let missing =
        |ns: &str, pod: &str, c: &str| error(format!("container \"{c}\" in pod {ns}/{pod} is not on this node"));
    match req {
        Request::Container { namespace, pod, container } => {
            let a = match rt.container(&namespace, &pod, &container) {
                None => missing(&namespace, &pod, &container),
                Some(h) if h.pid.is_none() => {
                    error(format!("container {container} is not running in pod {namespace}/{pod}"))
                }
                Some(h) => Answer {
                    ns_dir: Some(format!("/proc/{}/task/{}/ns", std::process::id(), h.sandbox_tid)),
                    pid: h.pid,
                    env: h.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    cwd: Some(h.cwd.clone()),
                    tty: Some(h.tty),
                    ..Default::default()
                },
            };
            answer(&mut conn, &a);
        }
        Request::Sandbox { namespace, pod } => {
            let a = match rt.sandbox_tid(&namespace, &pod) {
                Some(tid) => {
                    Answer { ns_dir: Some(format!("/proc/{}/task/{tid}/ns", std::process::id())), ..Default::default() }
                }
                None => error(format!("pod {namespace}/{pod} has no sandbox on this node")),
            };
            answer(&mut conn, &a);
        }
        Request::Stdin { namespace, pod, container } => {
            let Some(mut stdin) = rt.stdin(&namespace, &pod, &container) else {
                answer(&mut conn, &error(format!("container {container} in pod {namespace}/{pod} has no stdin open")));
                return;
            };
            if answer(&mut conn, &Answer::default()) {
                let _ = std::io::copy(&mut reader, &mut stdin);
                drop(stdin);
                rt.attach_ended(&namespace, &pod, &container);
            }
        }
        Request::Logs { namespace, pod, container, follow, previous, options } => {
            let Some(h) = rt.container(&namespace, &pod, &container) else {
                answer(&mut conn, &missing(&namespace, &pod, &container));
                return;
            };
            let path = if previous { h.previous_log.clone() } else { h.log.clone() };
            let Some(path) = path else {
                let msg = if previous {
                    format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
                } else {
                    format!("container \"{container}\" in pod \"{pod}\" is waiting to start")
                };
                answer(&mut conn, &error(msg));
                return;
            };
            if !answer(&mut conn, &Answer::default()) {
                return;
            }
            let _ = stream_logs(&mut conn, rt, &path, &options, follow && !previous, (&namespace, &pod, &container));
        }
    }
}

/// Write the log at `path`, then (with `follow`) what the container adds until it exits.
fn stream_logs(
    conn: &mut UnixStream,
    rt: &Runtime,
    path: &Path,
    opts: &LogOptions,
    follow: bool,
    (ns, pod, c): (&str, &str, &str),
) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    // Complete lines now; a partial last line waits for its end.
    let cut = data.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
    let mut budget = opts.limit_bytes.filter(|l| *l >= 0).map(|l| l as usize);
    let mut send = |conn: &mut UnixStream, mut bytes: Vec<u8>| -> std::io::Result<bool> {
        if let Some(b) = budget.as_mut() {
            bytes.truncate(*b);
            *b -= bytes.len();
        }
        conn.write_all(&bytes)?;
        Ok(budget != Some(0))
    };
    let first = LogOptions { limit_bytes: None, ..opts.clone() };
    if !send(conn, logs::format(&data[..cut], &first))? || !follow {
        return Ok(());
    }
    let mut pending = data[cut..].to_vec();
    let later = LogOptions { tail: None, limit_bytes: None, ..opts.clone() };
    loop {
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk)?;
        pending.extend_from_slice(&chunk);
        if let Some(i) = pending.iter().rposition(|b| *b == b'\n') {
            let rest = pending.split_off(i + 1);
            if !send(conn, logs::format(&pending, &later))? {
                return Ok(());
            }
            pending = rest;
        }
        let same_run = rt.container(ns, pod, c).is_some_and(|h| h.pid.is_some() && h.log.as_deref() == Some(path));
        if !same_run && chunk.is_empty() {
            return Ok(());
        }
        if chunk.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
