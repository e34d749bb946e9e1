//! The world outside the cluster, as the article's laptop sees it: the lab host's uplink
//! (`wlp2s0`, 192.168.1.63/24) to a LAN router (192.168.1.1) that also plays "the internet".
//! The router serves an HTTP(S) API on every address that echoes the client's source address —
//! which shows whether and how the cluster masqueraded a request — and holds public-looking
//! addresses from TEST-NET-3 (203.0.113.0/24), which exist only inside the lab.
//!
//! Unlike a real home router, it does not NAT the lab's private addresses: that is what lets
//! the echo server see a node address (masqueraded) versus a pod address (not masqueraded,
//! and then unroutable back, as on the real internet).
//!
//! It also stands in for the rest of the internet (docs/architecture.md, "Offline content"):
//! its DNS gives every public-looking name the web server's address, and the web server answers
//! a tutorial's `offline:` URLs with their content ([`Outside::serve`]), over http and https
//! (a certificate per name from the lab's CA, `tls::Certs`), and every other URL with a 404 that
//! says how to declare it.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use super::LabError;
use super::apps::{self, Reply, Request, Server};
use super::dns::{self, DnsServer, Policy, Zone};
use super::sandbox::{Mounts, NsThread};
use super::topology::{BRIDGE_NET, BRIDGE_PREFIX};
use crate::backend::Served;

pub const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
pub const UPLINK: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 63);
/// The external API (`swapi.dev` in the lab's DNS).
pub const API: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// Cloudflare's resolver addresses, which `cilium connectivity test` reaches as "the world"
/// (`one.one.one.one`, `https://1.1.1.1`): the router holds them too, and its web server
/// answers there.
pub const ONE_ONE: [Ipv4Addr; 2] = [Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(1, 0, 0, 1)];
pub const ONE_ONE_NAME: &str = "one.one.one.one";
/// Public names the router's DNS answers, and their addresses.
/// `helm.cilium.io` is the lab's chart repository, served by the same web server (by `Host`).
pub const PUBLIC_NAMES: &[(&str, Ipv4Addr)] =
    &[("swapi.dev", API), ("api.example.com", API), (super::charts::HOST, API), (ONE_ONE_NAME, ONE_ONE[0])];

/// The names of the fixed server certificate (`tls/server.pem`); others get the lab CA's.
pub const FIXED_TLS_NAMES: &[&str] = &["swapi.dev", "api.example.com", super::charts::HOST];

/// The names the echoing API answers for (besides bare addresses).
const ECHO_NAMES: &[&str] = &["swapi.dev", "api.example.com"];

/// A tutorial's content, by (host, path and query).
type Content = Arc<RwLock<HashMap<(String, String), Page>>>;

struct Page {
    content_type: String,
    body: Vec<u8>,
}

pub struct Outside {
    pub router: NsThread,
    pub servers: Vec<Server>,
    pub dns: DnsServer,
    zone: Zone,
    content: Content,
}

impl Outside {
    /// Serve `files` from now on (a tutorial's `offline:` URLs), replacing what a URL served
    /// before; their names resolve to the web server whatever their domain.
    pub fn serve(&self, files: Vec<Served>) {
        let mut zone = self.zone.write().unwrap_or_else(|e| e.into_inner());
        let mut content = self.content.write().unwrap_or_else(|e| e.into_inner());
        for f in files {
            zone.insert(f.host.clone(), API);
            let content_type = f.content_type.unwrap_or_else(|| content_type(&f.target, &f.body).to_string());
            content.insert((f.host, f.target), Page { content_type, body: f.body });
        }
    }
}

impl Outside {
    /// What the outside world serves for `url` from a tutorial's `offline:` map (the emulated
    /// `kubectl apply -f URL` reads it here instead of over the network).
    pub fn fetch(&self, url: &str) -> Option<Vec<u8>> {
        let (host, target) = crate::tutorial::offline::split_url(url).ok()?;
        self.content.read().unwrap_or_else(|e| e.into_inner()).get(&(host, target)).map(|p| p.body.clone())
    }
}

/// A Content-Type from the path's extension, else from whether the body is text.
pub fn content_type(target: &str, body: &[u8]) -> &'static str {
    let path = target.split('?').next().unwrap_or(target).to_ascii_lowercase();
    let ext = path.rsplit_once('.').map(|(_, e)| e).filter(|e| !e.contains('/')).unwrap_or("");
    match ext {
        "json" => "application/json",
        "yaml" | "yml" => "application/yaml",
        "tgz" | "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "zip" => "application/zip",
        "html" | "htm" => "text/html; charset=utf-8",
        "sh" => "text/x-shellscript; charset=utf-8",
        "txt" | "md" | "conf" | "toml" | "ini" | "pem" | "crt" => "text/plain; charset=utf-8",
        _ if std::str::from_utf8(body).is_ok() => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The web server: a tutorial's content first, then the chart repository and the echoing API
/// by name (and the API for bare addresses), then the 404 that says how to serve the URL.
fn answer(content: &Content, scheme: &str, req: &Request) -> Reply {
    let page = content.read().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = page.get(&(req.host.clone(), req.path.clone())) {
        return if matches!(req.method.as_str(), "GET" | "HEAD") {
            Reply { status: 200, content_type: p.content_type.clone(), body: p.body.clone() }
        } else {
            Reply { status: 405, content_type: "text/plain".into(), body: b"Method Not Allowed\n".to_vec() }
        };
    }
    drop(page);
    let fixed = |(status, ctype, body): (u16, &str, Vec<u8>)| Reply { status, content_type: ctype.into(), body };
    if req.host == super::charts::HOST {
        return fixed(super::charts::serve(&req.path));
    }
    if req.host == ONE_ONE_NAME && matches!(req.path.as_str(), "/" | "/index.html") {
        return fixed((200, "text/html; charset=utf-8", ONE_ONE_PAGE.into()));
    }
    if req.host.is_empty() || req.host.parse::<Ipv4Addr>().is_ok() || ECHO_NAMES.contains(&req.host.as_str()) {
        return fixed(apps::echo(req, "swapi"));
    }
    let url = format!("{scheme}://{}{}", req.host, req.path);
    Reply { status: 404, content_type: "text/plain; charset=utf-8".into(), body: not_served(&url).into_bytes() }
}

/// The page `one.one.one.one` answers with: the lab's stand-in, saying what it is.
const ONE_ONE_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>1.1.1.1</title></head>\n<body><p>one.one.one.one \
    in the tutor lab: the outside world's stand-in for Cloudflare's resolver page.</p></body></html>\n";

/// What a URL the tutorial did not declare answers: how to declare it.
pub fn not_served(url: &str) -> String {
    format!(
        "tutor lab: {url} is not served: the lab has no internet. Declare it in the tutorial's front \
         matter, with its content in a file beside the tutorial or in a file= block:\n\n\
         offline:\n  {url}: FILE\n  # or {url}: {{file: NAME}}\n"
    )
}

pub fn build(host: &NsThread, lab: &str, certs: Arc<super::tls::Certs>) -> Result<Outside, LabError> {
    let router = NsThread::new(&format!("{lab}-router"), Some("router"), Mounts::default())?;
    // The laptop of the article: Wi-Fi uplink managed by NetworkManager (metric 600, the
    // link-local route), and Docker's default bridge, idle.
    host.ip(&[
        format!("link add wlp2s0 type veth peer name eth0 netns {}", router.tid()),
        format!("addr add {UPLINK}/24 dev wlp2s0 metric 600"),
        "link set wlp2s0 up".into(),
        format!("route add default via {ROUTER} dev wlp2s0 proto dhcp src {UPLINK} metric 600"),
        "route add 169.254.0.0/16 dev wlp2s0 scope link metric 1000".into(),
        "link add docker0 type bridge".into(),
        "addr add 172.17.0.1/16 dev docker0".into(),
        "link set docker0 up".into(),
        // A bridge that never had a port claims a carrier; one that lost its last port does
        // not, which is how Docker's idle docker0 shows up (`linkdown`).
        "link add docker0-tmp type veth peer name docker0-tmq".into(),
        "link set docker0-tmp master docker0".into(),
        "link del docker0-tmp".into(),
    ])?;
    router.ip(&[
        "link set lo up".into(),
        format!("addr add {ROUTER}/24 dev eth0"),
        "link set eth0 up".into(),
        format!("addr add {API}/32 dev lo"),
        format!("addr add {}/32 dev lo", ONE_ONE[0]),
        format!("addr add {}/32 dev lo", ONE_ONE[1]),
        format!("route add {BRIDGE_NET}/{BRIDGE_PREFIX} via {UPLINK} dev eth0"),
    ])?;
    router.sysctl("net.ipv4.ip_forward", "1")?;
    let content: Content = Arc::default();
    let web = |scheme: &'static str| -> apps::Respond {
        let content = content.clone();
        Arc::new(move |req: &Request, _: &str| answer(&content, scheme, req))
    };
    let servers = vec![
        apps::listen(&router, 80, "swapi", web("http"), None)?,
        apps::listen(&router, 443, "swapi", web("https"), Some(certs.picker()))?,
    ];
    let zone: Zone = Arc::new(RwLock::new(PUBLIC_NAMES.iter().map(|(n, ip)| (n.to_string(), *ip)).collect()));
    let policy = Policy { zone: zone.clone(), authoritative_suffix: None, upstream: None, catch_all: Some(API) };
    let dns = dns::serve(&router, SocketAddr::from((ROUTER, 53)), policy)?;
    Ok(Outside { router, servers, dns, zone, content })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(content: &Content, host: &str, path: &str) -> Reply {
        let req = Request {
            method: "GET".into(),
            path: path.into(),
            host: host.into(),
            peer: SocketAddr::from(([172, 18, 0, 2], 40000)),
        };
        answer(content, "https", &req)
    }

    #[test]
    fn declared_urls_first_then_the_fixed_sites_then_how_to_declare() {
        let content: Content = Arc::default();
        let mut page = HashMap::new();
        page.insert(
            ("raw.githubusercontent.com".to_string(), "/o/r/main/app.yaml".to_string()),
            Page { content_type: "application/yaml".into(), body: b"kind: Pod\n".to_vec() },
        );
        *content.write().unwrap() = page;
        let r = get(&content, "raw.githubusercontent.com", "/o/r/main/app.yaml");
        assert_eq!(
            (r.status, r.content_type.as_str(), r.body.as_slice()),
            (200, "application/yaml", &b"kind: Pod\n"[..])
        );
        let r = get(&content, "raw.githubusercontent.com", "/o/r/main/other.yaml");
        assert_eq!(r.status, 404);
        let body = String::from_utf8(r.body).unwrap();
        assert!(body.contains("https://raw.githubusercontent.com/o/r/main/other.yaml is not served"), "{body}");
        assert!(body.contains("offline:\n  https://raw.githubusercontent.com/o/r/main/other.yaml: FILE"), "{body}");
        assert_eq!(get(&content, "swapi.dev", "/ip").status, 200);
        assert_eq!(get(&content, "203.0.113.10", "/").status, 200);
        assert_eq!(get(&content, "helm.cilium.io", "/index.yaml").status, 200);
    }

    #[test]
    fn content_types_follow_the_name_then_the_bytes() {
        assert_eq!(content_type("/a/deploy.yaml", b""), "application/yaml");
        assert_eq!(content_type("/a/x.JSON?raw=1", b""), "application/json");
        assert_eq!(content_type("/charts/app-1.0.0.tgz", b"\x1f\x8b"), "application/gzip");
        assert_eq!(content_type("/v1.2/install", b"#!/bin/sh\n"), "text/plain; charset=utf-8");
        assert_eq!(content_type("/bin/tool", &[0xff, 0xfe, 0]), "application/octet-stream");
    }
}
