//! A Kubernetes API server for tests, over plain HTTP on loopback: `/readyz`, an empty pod
//! list, and the `pods/exec` websocket (channel protocol v4/v5) whose commands run as real local
//! processes, with the kubelet's final status on channel 3. It drives kube's real exec client,
//! which kube's mock service cannot (it has no connection to upgrade).

use std::sync::{Arc, Mutex};

use futures_util::SinkExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// One exec the server received: namespace, pod, command.
pub type ExecLog = Arc<Mutex<Vec<(String, String, Vec<String>)>>>;

pub struct FakeApiServer {
    pub port: u16,
    pub execs: ExecLog,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    pub async fn start() -> FakeApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let execs = ExecLog::default();
        let log = execs.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, log.clone()));
            }
        });
        FakeApiServer { port, execs, task }
    }

    /// A kubeconfig (YAML) whose only context points here.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{}'}}}}]\n\
             users: [{{name: fake, user: {{token: t}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n",
            self.port
        )
    }

    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

async fn plain(conn: &mut tokio::net::TcpStream, status: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(body.as_bytes()).await;
}

async fn serve(conn: tokio::net::TcpStream, log: ExecLog) {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    let mut key = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await.unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("sec-websocket-key")
        {
            key = Some(v.trim().to_string());
        }
    }
    let mut conn = reader.into_inner();
    let target = line.split_whitespace().nth(1).unwrap_or_default().to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (segs.as_slice(), key) {
        (["readyz"], _) => plain(&mut conn, "200 OK", "ok").await,
        (["api", "v1", "pods"], _) => {
            plain(&mut conn, "200 OK", r#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}"#).await
        }
        (["api", "v1", "namespaces", ns, "pods", pod, "exec"], Some(key)) => {
            if *pod == "missing" {
                let body = format!(
                    r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"{pod}\" not found","reason":"NotFound","code":404}}"#
                );
                return plain(&mut conn, "404 Not Found", &body).await;
            }
            let cmd: Vec<String> = form_urlencoded::parse(query.as_bytes())
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.into_owned())
                .collect();
            let flag = |name: &str| form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == name && v == "true");
            let (stdin, stderr) = (flag("stdin"), flag("stderr"));
            log.lock().unwrap().push((ns.to_string(), pod.to_string(), cmd.clone()));
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
            );
            if conn.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let ws = WebSocketStream::from_raw_socket(conn, Role::Server, None).await;
            run_over_websocket(cmd, stdin, stderr, ws).await;
        }
        _ => plain(&mut conn, "404 Not Found", r#"{"kind":"Status","status":"Failure","code":404}"#).await,
    }
}

/// Run `cmd` locally; stdout on channel 1, stderr on channel 2 when asked for, the client's
/// channel 0 to the command's stdin when asked for, the kubelet's status on channel 3 once the
/// command exited and its output is read.
async fn run_over_websocket(cmd: Vec<String>, stdin: bool, stderr: bool, ws: WebSocketStream<tokio::net::TcpStream>) {
    use futures_util::StreamExt;
    use std::process::Stdio;
    let Ok(mut child) = tokio::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(if stderr { Stdio::piped() } else { Stdio::null() })
        .kill_on_drop(true)
        .spawn()
    else {
        return;
    };
    let (mut ws, mut from_client) = ws.split();
    let child_stdin = child.stdin.take();
    let feed = async move {
        let Some(mut to) = child_stdin else { return std::future::pending().await };
        while let Some(Ok(msg)) = from_client.next().await {
            if let Message::Binary(data) = msg
                && data.first() == Some(&0)
                && to.write_all(&data[1..]).await.is_err()
            {
                break;
            }
        }
        std::future::pending::<()>().await
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let pump = |channel: u8, mut r: Box<dyn tokio::io::AsyncRead + Send + Unpin>, tx: tokio::sync::mpsc::Sender<_>| async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf).await {
            let mut frame = vec![channel];
            frame.extend_from_slice(&buf[..n]);
            if n == 0 || tx.send(frame).await.is_err() {
                break;
            }
        }
    };
    tokio::spawn(pump(1, Box::new(child.stdout.take().unwrap()), tx.clone()));
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(2, Box::new(err), tx.clone()));
    }
    drop(tx);
    let forward = async {
        while let Some(frame) = rx.recv().await {
            if ws.send(Message::Binary(frame.into())).await.is_err() {
                return false;
            }
        }
        true
    };
    let open = tokio::select! {
        open = forward => open,
        _ = feed => false,
    };
    if !open {
        return;
    }
    let status = child.wait().await.ok();
    let code = status.map(|s| s.code().unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)));
    let json = match code {
        Some(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Some(n) => serde_json::json!({
            "metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {n}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": n.to_string()}]}
        }),
        None => serde_json::json!({"metadata": {}, "status": "Failure", "message": "lost", "reason": "InternalError"}),
    };
    let mut frame = vec![3u8];
    frame.extend_from_slice(json.to_string().as_bytes());
    let _ = ws.send(Message::Binary(frame.into())).await;
    let _ = ws.close().await;
}
