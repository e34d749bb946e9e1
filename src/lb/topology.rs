//! A client — load balancer — backends setup in network namespaces, for the end-to-end test
//! and the requests/s benchmark. Only traffic between these namespaces; everything is removed
//! on drop.
//!
//! ```text
//!  <p>-cl: cl0 10.0.0.2 ── lbc 10.0.0.1 :<p>-lb: lbb1 10.0.1.1 ── eth0 10.0.1.2 :<p>-b1 (server :8080)
//!                                                 lbb2 10.0.2.1 ── eth0 10.0.2.2 :<p>-b2 …
//! ```
//! The VIP (10.0.100.1) lives nowhere: the client routes it to the LB namespace, where either
//! the XDP program on `lbc` or an nftables DNAT rule sends it to a backend.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::{LbError, Result};
use super::netns::{in_netns, run_command};

pub const VIP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 100, 1), 80);
pub const BACKEND_PORT: u16 = 8080;
/// The device of the LB namespace the clients' packets arrive on.
pub const LB_IFACE: &str = "lbc";

pub struct Topology {
    prefix: String,
    backends: usize,
    /// One per backend namespace, in order.
    pub servers: Vec<Server>,
}

/// A tiny TCP server on `0.0.0.0:BACKEND_PORT` of a network namespace, answering a `GET` with
/// its number; stopped on drop.
pub struct Server {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    /// Connections served.
    pub served: Arc<AtomicU64>,
}

impl Server {
    pub fn start(netns: &std::path::Path, number: usize) -> Result<Server> {
        let listener = in_netns(netns, || TcpListener::bind((Ipv4Addr::UNSPECIFIED, BACKEND_PORT)))?
            .map_err(|cause| LbError::Io { what: format!("listening in {}", netns.display()), cause })?;
        listener.set_nonblocking(true).map_err(|cause| LbError::Io { what: "nonblocking".into(), cause })?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), served.clone());
        let handle = std::thread::spawn(move || serve(listener, number, &s, &n));
        Ok(Server { stop, handle: Some(handle), served })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Topology {
    /// Creates the namespaces (name prefix `prefix`) with `backends` backend namespaces, each
    /// running a tiny TCP server that answers `GET` with its number.
    pub fn create(prefix: &str, backends: usize) -> Result<Topology> {
        let mut t = Topology { prefix: prefix.to_string(), backends, servers: Vec::new() };
        t.build()?;
        for i in 1..=backends {
            t.servers.push(Server::start(&t.ns_path(&format!("b{i}")), i)?);
        }
        Ok(t)
    }

    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    pub fn ns_path(&self, name: &str) -> PathBuf {
        PathBuf::from("/run/netns").join(self.ns(name))
    }

    pub fn backend(i: usize) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, i as u8, 2), BACKEND_PORT)
    }

    fn exec(&self, ns: &str, args: &[&str]) -> Result<()> {
        let ns = self.ns(ns);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        run_command(&full)
    }

    fn build(&mut self) -> Result<()> {
        let (cl, lb) = (self.ns("cl"), self.ns("lb"));
        run_command(&["ip", "netns", "add", &cl])?;
        run_command(&["ip", "netns", "add", &lb])?;
        run_command(&["ip", "link", "add", "cl0", "netns", &cl, "type", "veth", "peer", "name", "lbc", "netns", &lb])?;
        self.exec("cl", &["ip", "link", "set", "lo", "up"])?;
        self.exec("cl", &["ip", "addr", "add", "10.0.0.2/24", "dev", "cl0"])?;
        self.exec("cl", &["ip", "link", "set", "cl0", "up"])?;
        self.exec("cl", &["ip", "route", "add", "default", "via", "10.0.0.1"])?;
        // XDP cannot tell a partial (offloaded) checksum from a full one: send full ones.
        self.exec("cl", &["ethtool", "-K", "cl0", "tx", "off"])?;
        self.exec("lb", &["ip", "link", "set", "lo", "up"])?;
        self.exec("lb", &["ip", "addr", "add", "10.0.0.1/24", "dev", "lbc"])?;
        self.exec("lb", &["ip", "link", "set", "lbc", "up"])?;
        in_netns(&self.ns_path("lb"), super::netns::enable_forwarding)??;
        for i in 1..=self.backends {
            let b = self.ns(&format!("b{i}"));
            let lbb = format!("lbb{i}");
            run_command(&["ip", "netns", "add", &b])?;
            run_command(&[
                "ip", "link", "add", &lbb, "netns", &lb, "type", "veth", "peer", "name", "eth0", "netns", &b,
            ])?;
            self.exec("lb", &["ip", "addr", "add", &format!("10.0.{i}.1/24"), "dev", &lbb])?;
            self.exec("lb", &["ip", "link", "set", &lbb, "up"])?;
            let bns = format!("b{i}");
            self.exec(&bns, &["ip", "link", "set", "lo", "up"])?;
            self.exec(&bns, &["ip", "addr", "add", &format!("10.0.{i}.2/24"), "dev", "eth0"])?;
            self.exec(&bns, &["ip", "link", "set", "eth0", "up"])?;
            self.exec(&bns, &["ip", "route", "add", "default", "via", &format!("10.0.{i}.1")])?;
            // XDP_REDIRECT into a veth delivers only with GRO (NAPI) on the peer
            // (docs/architecture.md, "Platform facts").
            self.exec(&bns, &["ethtool", "-K", "eth0", "gro", "on"])?;
        }
        Ok(())
    }

    /// The DNAT baseline: an nftables rule in the LB namespace spreading the VIP over
    /// `backends` (random, like the XDP program's hash), the same job as the XDP LB.
    pub fn nft_dnat(&self, backends: &[usize]) -> Result<()> {
        let map: Vec<String> =
            backends.iter().enumerate().map(|(k, &i)| format!("{k} : {}", Self::backend(i).ip())).collect();
        let rules = format!(
            "table ip tutor_lb_bench {{\n chain pre {{\n  type nat hook prerouting priority dstnat;\n  ip daddr {} tcp dport {} dnat to numgen random mod {} map {{ {} }} : {}\n }}\n}}\n",
            VIP.ip(),
            VIP.port(),
            backends.len(),
            map.join(", "),
            BACKEND_PORT
        );
        let path = std::env::temp_dir().join(format!("{}.nft", self.prefix));
        std::fs::write(&path, rules).map_err(|cause| LbError::Io { what: "writing nft rules".into(), cause })?;
        let r = self.exec("lb", &["nft", "-f", &path.to_string_lossy()]);
        let _ = std::fs::remove_file(&path);
        r
    }

    pub fn nft_flush(&self) -> Result<()> {
        self.exec("lb", &["nft", "delete", "table", "ip", "tutor_lb_bench"])
    }

    /// Runs `f` on a thread inside the client namespace.
    pub fn in_client<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        in_netns(&self.ns_path("cl"), f)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.servers.clear();
        let mut names = vec![self.ns("cl"), self.ns("lb")];
        names.extend((1..=self.backends).map(|i| self.ns(&format!("b{i}"))));
        for n in names {
            let _ = run_command(&["ip", "netns", "del", &n]);
        }
    }
}

fn serve(listener: TcpListener, i: usize, stop: &Arc<AtomicBool>, served: &Arc<AtomicU64>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                if answer(&s, i, served) {
                    // A keep-alive client gets its own thread for the rest of its requests.
                    let (stop, served) = (stop.clone(), served.clone());
                    std::thread::spawn(move || while !stop.load(Ordering::SeqCst) && answer(&s, i, &served) {});
                }
                // Otherwise the server closes first: the TIME_WAIT stays here, the client's
                // ports free up.
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_micros(200)),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Reads one request and answers it; true when the client asked to keep the connection.
fn answer(mut s: &TcpStream, i: usize, served: &AtomicU64) -> bool {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let keep = got.windows(10).any(|w| w == b"keep-alive");
    let reply = format!("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{i}\n");
    if s.write_all(reply.as_bytes()).is_err() {
        return false;
    }
    served.fetch_add(1, Ordering::Relaxed);
    keep
}

/// One request through `to` on a new connection; returns the backend number that answered.
pub fn request(to: SocketAddrV4) -> std::io::Result<usize> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::V4(to), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    body.rsplit("\r\n\r\n")
        .next()
        .and_then(|b| b.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("unexpected answer {body:?}")))
}

/// A request on a kept-alive connection (the server's answers are 40 bytes).
fn request_on(s: &mut TcpStream) -> std::io::Result<()> {
    s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")?;
    let mut answer = [0u8; 40];
    s.read_exact(&mut answer)?;
    if !answer.starts_with(b"HTTP/1.0 200") {
        return Err(std::io::Error::other("unexpected answer"));
    }
    Ok(())
}

/// How the load generator talks to the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// A new TCP connection per request: the handshake dominates.
    ConnectionPerRequest,
    /// One connection per client, requests back to back: every packet is an established flow.
    KeepAlive,
}

/// Requests/s through `to` from `clients` concurrent loops for `duration` (inside the client
/// namespace). Returns (completed, failed, requests per second).
pub fn load(
    topo: &Topology,
    to: SocketAddrV4,
    workload: Workload,
    clients: usize,
    duration: Duration,
) -> Result<(u64, u64, f64)> {
    topo.in_client(|| {
        let start = Instant::now();
        let results: Vec<(u64, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..clients)
                .map(|_| {
                    s.spawn(|| {
                        let (mut ok, mut failed) = (0u64, 0u64);
                        let mut conn: Option<TcpStream> = None;
                        while start.elapsed() < duration {
                            let result = match workload {
                                Workload::ConnectionPerRequest => request(to).map(drop),
                                Workload::KeepAlive => {
                                    if conn.is_none() {
                                        conn = TcpStream::connect_timeout(&SocketAddr::V4(to), Duration::from_secs(2))
                                            .ok();
                                        if let Some(c) = &conn {
                                            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                                            let _ = c.set_nodelay(true);
                                        }
                                    }
                                    match conn.as_mut() {
                                        Some(c) => request_on(c).inspect_err(|_| conn = None),
                                        None => Err(std::io::Error::other("connect failed")),
                                    }
                                }
                            };
                            match result {
                                Ok(()) => ok += 1,
                                Err(_) => failed += 1,
                            }
                        }
                        (ok, failed)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or((0, 0))).collect()
        });
        let ok: u64 = results.iter().map(|r| r.0).sum();
        let failed: u64 = results.iter().map(|r| r.1).sum();
        (ok, failed, ok as f64 / start.elapsed().as_secs_f64())
    })
}
