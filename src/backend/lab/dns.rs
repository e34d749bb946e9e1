//! The lab's DNS servers, built on hickory's DNS message types: the router's LAN resolver,
//! Docker's embedded DNS in every node (127.0.0.11 behind kind's `DOCKER_OUTPUT` DNAT), and
//! the CoreDNS stand-in in the coredns pods. Each answers the names it owns and forwards the
//! rest to its upstream, with the upstream socket opened in its own network namespace — so a
//! query takes the same datapath (routes, DNAT, masquerade) as the real server's would.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{RData, Record, RecordType};

use super::LabError;
use super::sandbox::NsThread;

/// Names a server answers itself (lower-case, without the final dot) → address.
pub type Zone = Arc<RwLock<HashMap<String, Ipv4Addr>>>;

/// What a server does with a name it does not hold.
#[derive(Clone)]
pub struct Policy {
    pub zone: Zone,
    /// Names under this suffix are authoritative: unknown ones get NXDOMAIN, not forwarded.
    pub authoritative_suffix: Option<String>,
    pub upstream: Option<SocketAddr>,
    /// The outside router's "internet": any other public-looking name ([`public_name`]) has
    /// this address, where the outside world's web server says how to serve its URLs.
    pub catch_all: Option<Ipv4Addr>,
}

/// Top-level domains the outside router answers for with its catch-all: every two-letter
/// (country) domain and the common generic ones. Names under others (`.local`, `.internal`,
/// `.test`, `.invalid`, `.svc`, a bare host name) are NXDOMAIN, as on the internet.
const GENERIC_TLDS: &[&str] = &[
    "com", "net", "org", "io", "dev", "app", "sh", "cloud", "info", "biz", "ai", "xyz", "tech", "site", "online",
    "page", "run", "gov", "edu", "mil", "int", "name", "pro", "blog", "systems", "network", "software", "tools",
    "services", "digital", "global", "host", "website", "space", "store", "zone",
];

/// A name that could exist on the internet: two or more labels of letters, digits and `-`,
/// under a known top-level domain.
pub fn public_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    let valid = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let tld = labels.last().copied().unwrap_or_default();
    labels.len() >= 2
        && labels.iter().all(valid)
        && ((tld.len() == 2 && tld.chars().all(|c| c.is_ascii_lowercase())) || GENERIC_TLDS.contains(&tld))
}

/// A running DNS server (UDP and TCP, each on its own port like Docker's); dropping it stops it.
pub struct DnsServer {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Serve DNS on `bind` (port 0: a random port per protocol) inside `ns`.
pub fn serve(ns: &NsThread, bind: SocketAddr, policy: Policy) -> Result<DnsServer, LabError> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (udp, tcp) = ns.run(move || -> Result<(SocketAddr, SocketAddr), LabError> {
        let sys = |source| LabError::Io { what: format!("DNS on {bind}"), source };
        let sock = UdpSocket::bind(bind).map_err(sys)?;
        let listener = TcpListener::bind(bind).map_err(sys)?;
        let (udp, tcp) = (sock.local_addr().map_err(sys)?, listener.local_addr().map_err(sys)?);
        sock.set_read_timeout(Some(Duration::from_millis(200))).map_err(sys)?;
        listener.set_nonblocking(true).map_err(sys)?;
        // Spawned from the namespace thread, so their upstream sockets live in the same netns.
        let (p, f) = (policy.clone(), flag.clone());
        std::thread::Builder::new()
            .name(format!("dns-udp-{udp}"))
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while !f.load(Ordering::SeqCst) {
                    if let Ok((n, peer)) = sock.recv_from(&mut buf)
                        && let Some(reply) = answer(&buf[..n], &p)
                    {
                        let _ = sock.send_to(&reply, peer);
                    }
                }
            })
            .map_err(sys)?;
        std::thread::Builder::new()
            .name(format!("dns-tcp-{tcp}"))
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => serve_tcp(conn, &policy),
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
            .map_err(sys)?;
        Ok((udp, tcp))
    })??;
    Ok(DnsServer { udp, tcp, stop })
}

/// DNS over TCP: each message behind a two-byte length.
fn serve_tcp(mut conn: TcpStream, policy: &Policy) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut len = [0u8; 2];
    while conn.read_exact(&mut len).is_ok() {
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if conn.read_exact(&mut msg).is_err() {
            return;
        }
        let Some(reply) = answer(&msg, policy) else { return };
        let mut out = (reply.len() as u16).to_be_bytes().to_vec();
        out.extend(reply);
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

fn answer(query: &[u8], policy: &Policy) -> Option<Vec<u8>> {
    let req = Message::from_vec(query).ok()?;
    let q = req.queries().first()?.clone();
    let name = q.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
    let known =
        policy.zone.read().ok()?.get(&name).copied().or_else(|| policy.catch_all.filter(|_| public_name(&name)));
    let owned = policy.authoritative_suffix.as_ref().is_some_and(|s| name == *s || name.ends_with(&format!(".{s}")));
    if known.is_none()
        && !owned
        && let Some(up) = policy.upstream
    {
        // An unreachable upstream is SERVFAIL, as CoreDNS and Docker's resolver answer.
        if let Some(reply) = forward(query, up) {
            return Some(reply);
        }
        let mut fail = response_to(&req, q);
        fail.set_response_code(ResponseCode::ServFail);
        return fail.to_vec().ok();
    }
    let mut resp = response_to(&req, q.clone());
    resp.set_authoritative(true);
    match known {
        Some(ip) if q.query_type() == RecordType::A => {
            resp.add_answer(Record::from_rdata(q.name().clone(), 30, RData::A(A(ip))));
        }
        Some(_) => {}
        None => {
            resp.set_response_code(ResponseCode::NXDomain);
        }
    }
    resp.to_vec().ok()
}

fn response_to(req: &Message, q: Query) -> Message {
    let mut resp = Message::new();
    resp.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true)
        .add_query(q);
    resp
}

fn forward(query: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    sock.send_to(query, upstream).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

/// The upstream of a CoreDNS Corefile's `forward . X` (the first address), where
/// `/etc/resolv.conf` means the pod's resolver (`resolv`).
pub fn corefile_upstream(corefile: &str, resolv: Ipv4Addr) -> Result<Ipv4Addr, LabError> {
    let line = corefile
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("forward "))
        .ok_or_else(|| LabError::Input("coredns ConfigMap: the Corefile has no `forward` line".into()))?;
    let target = line
        .split_whitespace()
        .nth(2)
        .ok_or_else(|| LabError::Input(format!("coredns Corefile: bad line `{line}`")))?;
    if target == "/etc/resolv.conf" {
        return Ok(resolv);
    }
    let host = target.trim_start_matches("dns://").split(':').next().unwrap_or(target);
    host.parse()
        .map_err(|_| LabError::Input(format!("coredns Corefile: `{line}`: the lab forwards to IPv4 addresses only")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corefile_forward_targets() {
        let gw = Ipv4Addr::new(172, 18, 0, 1);
        let cf = super::super::seed::COREFILE;
        assert_eq!(corefile_upstream(cf, gw).unwrap(), gw);
        let fixed = cf.replace("forward . /etc/resolv.conf", "forward . 192.168.1.1");
        assert_eq!(corefile_upstream(&fixed, gw).unwrap(), Ipv4Addr::new(192, 168, 1, 1));
        assert!(corefile_upstream("errors\n", gw).is_err());
    }

    #[test]
    fn answers_its_zone_and_refuses_unknown_cluster_names() {
        let zone: Zone = Arc::new(RwLock::new(
            [("deathstar.default.svc.cluster.local".to_string(), Ipv4Addr::new(10, 96, 0, 20))].into(),
        ));
        let policy =
            Policy { zone, authoritative_suffix: Some("cluster.local".into()), upstream: None, catch_all: None };
        let mut q = Message::new();
        q.set_id(7).add_query(hickory_server::proto::op::Query::query(
            "deathstar.default.svc.cluster.local.".parse().unwrap(),
            RecordType::A,
        ));
        let r = Message::from_vec(&answer(&q.to_vec().unwrap(), &policy).unwrap()).unwrap();
        assert_eq!(r.id(), 7);
        assert_eq!(r.answers()[0].data(), &RData::A(A(Ipv4Addr::new(10, 96, 0, 20))));
        q.queries_mut()[0].set_name("nope.default.svc.cluster.local.".parse().unwrap());
        let r = Message::from_vec(&answer(&q.to_vec().unwrap(), &policy).unwrap()).unwrap();
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
    }

    #[test]
    fn the_outside_router_answers_public_names_with_its_catch_all() {
        let api = Ipv4Addr::new(203, 0, 113, 10);
        let zone: Zone = Arc::new(RwLock::new([("swapi.dev".to_string(), api)].into()));
        let policy = Policy { zone, authoritative_suffix: None, upstream: None, catch_all: Some(api) };
        let ask = |name: &str| {
            let mut q = Message::new();
            q.set_id(1).add_query(Query::query(format!("{name}.").parse().unwrap(), RecordType::A));
            Message::from_vec(&answer(&q.to_vec().unwrap(), &policy).unwrap()).unwrap()
        };
        for name in ["raw.githubusercontent.com", "charts.example.io", "Get.Helm.SH", "example.de"] {
            assert_eq!(ask(name).answers()[0].data(), &RData::A(A(api)), "{name}");
        }
        for name in ["kind-control-plane", "web.default", "x.cluster.local", "nope.invalid", "a.internal", "b.test"] {
            let r = ask(name);
            assert_eq!(r.response_code(), ResponseCode::NXDomain, "{name}");
            assert!(r.answers().is_empty(), "{name}");
        }
    }
}
