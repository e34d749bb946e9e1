//! Cluster health, as `cilium-health` keeps it: every agent answers on its node's address at
//! [`PORT`] (Cilium's health port) and probes every node's, its own included, over the nodes'
//! network; `cilium-dbg status` prints the last round (`Cluster health: 2/3 reachable (time)`).
//! The probe is a TCP connection to the peer's health port with a short time-out: a node whose
//! agent is down, or whose address cannot be reached, counts as unreachable.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `cilium-health`'s port on every node.
pub const PORT: u16 = 4240;
/// Between two rounds of probes (shorter than Cilium's minute: a lab lives for minutes).
const INTERVAL: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The last round of probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    pub reachable: usize,
    pub total: usize,
    pub at: SystemTime,
}

impl Round {
    /// The value of `cilium-dbg status`'s `Cluster health:` line.
    pub fn status_value(&self) -> String {
        format!("{}/{} reachable   ({})", self.reachable, self.total, humantime::format_rfc3339_seconds(self.at))
    }
}

pub type Shared = Arc<Mutex<Option<Round>>>;

/// Serve the health port and probe the nodes until the agent exits.
pub async fn run(nodes: reflector::Store<Node>, last: Shared) {
    match tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT))).await {
        Ok(listener) => {
            tokio::spawn(async move {
                loop {
                    let Ok((mut conn, _)) = listener.accept().await else { continue };
                    tokio::spawn(async move {
                        let mut buf = [0u8; 512];
                        let _ = tokio::time::timeout(PROBE_TIMEOUT, conn.read(&mut buf)).await;
                        let _ =
                            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                    });
                }
            });
        }
        Err(e) => eprintln!("level=error msg=\"health port {PORT}: {e}\""),
    }
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        let addrs: Vec<Ipv4Addr> = nodes.state().iter().filter_map(|n| super::internal_ip(n)).collect();
        if addrs.is_empty() {
            continue;
        }
        let probes = addrs.iter().map(|ip| probe(*ip));
        let reachable = futures_util::future::join_all(probes).await.into_iter().filter(|ok| *ok).count();
        let round = Round { reachable, total: addrs.len(), at: SystemTime::now() };
        *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(round);
    }
}

async fn probe(ip: Ipv4Addr) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(SocketAddr::from((ip, PORT)))).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_value() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let r = Round { reachable: 2, total: 3, at };
        assert_eq!(r.status_value(), "2/3 reachable   (2026-05-28T20:26:40Z)");
    }
}
