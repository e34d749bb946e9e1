//! The built-in apps that stand in for container images. They are threads of the supervisor
//! whose sockets were opened inside the pod's (or outside world's) network namespace: no extra
//! process to leak, and they die with the lab.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::LabError;
use super::sandbox::NsThread;

/// A running server; dropping the handle stops it.
pub struct Server {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One HTTP request as the apps need it.
pub struct Request {
    pub method: String,
    pub path: String,
    /// The `Host` header without its port (empty when absent).
    pub host: String,
    pub peer: SocketAddr,
}

pub type Handler = fn(&Request, &str) -> (u16, &'static str, Vec<u8>);

/// What a handler with state answers (the outside world's, which serves a tutorial's content).
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

pub type Respond = Arc<dyn Fn(&Request, &str) -> Reply + Send + Sync>;

fn respond(handler: Handler) -> Respond {
    Arc::new(move |req: &Request, name: &str| {
        let (status, content_type, body) = handler(req, name);
        Reply { status, content_type: content_type.to_string(), body }
    })
}

/// Serve HTTP on `port` inside `ns`; `name` is passed to the handler (e.g. the pod name).
pub fn http(ns: &NsThread, port: u16, name: &str, handler: Handler) -> Result<Server, LabError> {
    listen(ns, port, name, respond(handler), None)
}

/// Serve `respond` on `port` inside `ns`, over TLS when `tls` is given (its configuration for
/// the local address each connection reached).
pub fn listen(
    ns: &NsThread,
    port: u16,
    name: &str,
    handler: Respond,
    tls: Option<super::tls::Pick>,
) -> Result<Server, LabError> {
    let listener = ns
        .run(move || TcpListener::bind(("0.0.0.0", port)))?
        .map_err(|source| LabError::Io { what: format!("binding port {port}"), source })?;
    let io = |source| LabError::Io { what: format!("the server on port {port}"), source };
    let addr = listener.local_addr().map_err(io)?;
    listener.set_nonblocking(true).map_err(io)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let name = name.to_string();
    std::thread::Builder::new()
        .name(format!("http-{name}"))
        .spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, peer)) => {
                        let name = name.clone();
                        let tls = tls.clone();
                        let handler = handler.clone();
                        std::thread::spawn(move || {
                            let _ = conn.set_nonblocking(false);
                            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                            let local = conn.local_addr().map(|a| a.ip());
                            match tls.map(|pick| local.ok().and_then(|ip| pick(ip))) {
                                None => serve_one(conn, peer, &name, &*handler),
                                Some(Some(config)) => {
                                    if let Ok(session) = rustls::ServerConnection::new(config) {
                                        serve_one(rustls::StreamOwned::new(session, conn), peer, &name, &*handler)
                                    }
                                }
                                Some(None) => {}
                            }
                        });
                    }
                    // Wait for the next connection (or 50 ms, to see `stop`) without the
                    // latency a sleep would add to every request under load.
                    Err(_) => {
                        use std::os::fd::AsRawFd;
                        let mut pfd = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                        // SAFETY: one valid pollfd for the listener we own.
                        unsafe { libc::poll(&mut pfd, 1, 50) };
                    }
                }
            }
        })
        .map_err(|source| LabError::Io { what: format!("starting the server thread of port {port}"), source })?;
    Ok(Server { stop, addr })
}

/// Serve HTTP on `port` from this process (an image program in its pod's namespaces), until
/// the process is killed.
pub fn serve_blocking(port: u16, name: &str, handler: Handler) -> std::io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    loop {
        let (conn, peer) = listener.accept()?;
        let name = name.to_string();
        let handler = respond(handler);
        std::thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            serve_one(conn, peer, &name, &*handler)
        });
    }
}

fn serve_one(mut conn: impl Read + Write, peer: SocketAddr, name: &str, handler: &dyn Fn(&Request, &str) -> Reply) {
    let mut reader = BufReader::new(&mut conn);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("/").to_string());
    let mut length = 0usize;
    let mut host = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        } else if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("host")
        {
            let v = v.trim();
            host =
                v.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(v, |(h, _)| h).to_ascii_lowercase();
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    let _ = reader.read_exact(&mut body);
    drop(reader);
    let head_only = method == "HEAD";
    let Reply { status, content_type: ctype, body } = handler(&Request { method, path, host, peer }, name);
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nX-Served-By: {name}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    if !head_only {
        let _ = conn.write_all(&body);
    }
    let _ = conn.flush();
}

/// Cilium's `cilium/starwars` image, as far as its http-sw-app demo uses it.
pub fn deathstar(req: &Request, _pod: &str) -> (u16, &'static str, Vec<u8>) {
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/v1/request-landing") => (200, "text/plain", "Ship landed\n".into()),
        ("GET", "/v1") | ("GET", "/v1/") => (
            200,
            "application/json",
            "{\n\t\"name\": \"Death Star\",\n\t\"hostname\": \"deathstar\",\n\t\"model\": \"DS-1 Orbital Battle Station\"\n}\n".into(),
        ),
        (_, "/v1/request-landing") => (405, "text/plain", "Method Not Allowed\n".into()),
        _ => (404, "text/plain", "Not Found\n".into()),
    }
}

/// Cilium's `json-mock` image (json-server over its default data, the echo servers of
/// `cilium connectivity test`): `/` is the server's home page, `/public` and `/private` the
/// two collections, `/public/1` an item of one; anything else is json-server's empty 404.
pub fn json_mock(req: &Request, _pod: &str) -> (u16, &'static str, Vec<u8>) {
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return (404, "application/json", "{}".into());
    }
    let path = req.path.split('?').next().unwrap_or("/");
    let item = |body: &str| format!("{{\n  \"id\": 1,\n  \"body\": \"{body}\"\n}}");
    match path.trim_end_matches('/') {
        "" | "/index.html" => (
            200,
            "text/html; charset=UTF-8",
            "<!DOCTYPE html>\n<html><head><title>JSON Server</title></head>\n<body><h1>JSON Server</h1>\n\
             <p>Resources: <a href=\"public\">/public</a> <a href=\"private\">/private</a></p></body></html>\n"
                .into(),
        ),
        "/public" => (200, "application/json; charset=utf-8", format!("[\n  {}\n]", item("public information")).into()),
        "/private" => {
            (200, "application/json; charset=utf-8", format!("[\n  {}\n]", item("secret information")).into())
        }
        "/public/1" => (200, "application/json; charset=utf-8", item("public information").into()),
        "/private/1" => (200, "application/json; charset=utf-8", item("secret information").into()),
        _ => (404, "application/json; charset=utf-8", "{}".into()),
    }
}

/// netperf's control port as the lab's `netserver` plays it: the port is open, and any
/// request is answered with a refusal (the lab runs no netperf tests).
pub fn refuse_tests(_req: &Request, _name: &str) -> (u16, &'static str, Vec<u8>) {
    (501, "text/plain", "the lab's netserver runs no netperf tests\n".into())
}

/// Envoy's health listener as the cilium-envoy DaemonSet probes it: `/healthz` answers while
/// the process lives.
pub fn envoy_health(req: &Request, _name: &str) -> (u16, &'static str, Vec<u8>) {
    match req.path.as_str() {
        "/healthz" => (200, "text/plain", "OK\n".into()),
        _ => (404, "text/plain", "Not Found\n".into()),
    }
}

/// The outside world's API. `/api/starships` answers what the article prints; every other path
/// (`/ip`, `/`) tells the client which address it came from, which shows whether (and how) the
/// cluster masqueraded the request.
pub fn echo(req: &Request, _name: &str) -> (u16, &'static str, Vec<u8>) {
    if req.path.starts_with("/api/starships") {
        (
            200,
            "application/json",
            "{\"count\":36,\"next\":\"https://swapi.dev/api/starships/?page=2\",\"previous\":null,\"results\":[...]}\n"
                .into(),
        )
    } else {
        (200, "application/json", format!("{{\"origin\":\"{}\"}}\n", req.peer.ip()).into_bytes())
    }
}
