//! The run's image registry: the read side of the OCI distribution API (`/v2/`, manifests,
//! blobs), serving the workload images `workload.rs` builds, each built on first request. The
//! kind nodes' containerd uses it as a mirror of `docker.io` and `registry.k8s.io`
//! (`/etc/containerd/certs.d/<registry>/hosts.toml`), so a pod whose image must be pulled —
//! `imagePullPolicy: Always`, which Kubernetes gives every image tagged `:latest` or not
//! tagged at all — is pulled as on a connected machine, from here instead of Docker Hub.
//! Anything it does not have is a 404 and containerd goes on to the real registry, as it does
//! with any mirror. See docs/architecture.md, "Workload images on kind".

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::workload::{self, Built, Cache};

/// A running registry; stopped when dropped.
pub struct Registry {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    state: Arc<State>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct State {
    cache: Cache,
    tutor: PathBuf,
    /// What was served (image reference → built image), for the run's report.
    served: Mutex<Vec<(String, Built)>>,
    /// Builds one at a time (two requests for one image build it once).
    building: tokio::sync::Mutex<()>,
}

impl Registry {
    /// Listen on `bind` (port 0: any free port).
    pub async fn start(bind: SocketAddr, cache: Cache, tutor: PathBuf) -> std::io::Result<Registry> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let state =
            Arc::new(State { cache, tutor, served: Mutex::new(Vec::new()), building: tokio::sync::Mutex::new(()) });
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else { continue };
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, &s).await;
                });
            }
        });
        Ok(Registry { addr, task, state })
    }

    /// The images served so far, by the reference a client asked for.
    pub fn served(&self) -> Vec<(String, Built)> {
        self.state.served.lock().unwrap().clone()
    }
}

struct Reply {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Body,
}

enum Body {
    Bytes(Vec<u8>),
    File(PathBuf, u64),
}

fn not_found(code: &str, message: String) -> Reply {
    let body = serde_json::to_vec(&serde_json::json!({ "errors": [{ "code": code, "message": message }] })).unwrap();
    Reply {
        status: "404 Not Found",
        headers: vec![("Content-Type", "application/json".into())],
        body: Body::Bytes(body),
    }
}

async fn serve(mut conn: TcpStream, state: &State) -> std::io::Result<()> {
    // One request per connection: the head only (clients of this API send no body with GET/HEAD).
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(30), conn.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("request head timed out"))??;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or("/"));
    let reply = if method == "GET" || method == "HEAD" {
        route(target, state).await
    } else {
        Reply { status: "405 Method Not Allowed", headers: vec![], body: Body::Bytes(vec![]) }
    };
    let len = match &reply.body {
        Body::Bytes(b) => b.len() as u64,
        Body::File(_, n) => *n,
    };
    let mut out = format!(
        "HTTP/1.1 {}\r\nDocker-Distribution-API-Version: registry/2.0\r\nContent-Length: {len}\r\nConnection: close\r\n",
        reply.status
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    conn.write_all(out.as_bytes()).await?;
    if method == "GET" {
        match reply.body {
            Body::Bytes(b) => conn.write_all(&b).await?,
            Body::File(p, _) => {
                let mut f = tokio::fs::File::open(p).await?;
                tokio::io::copy(&mut f, &mut conn).await?;
            }
        }
    }
    conn.shutdown().await
}

/// `/v2/<name>/manifests/<tag or digest>?ns=<registry>` and `/v2/<name>/blobs/<digest>`.
async fn route(target: &str, state: &State) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let ns = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("ns="))
        .map(|v| v.to_string())
        .unwrap_or_else(|| "docker.io".into());
    let Some(rest) = path.strip_prefix("/v2") else { return not_found("NOT_FOUND", path.into()) };
    if rest.is_empty() || rest == "/" {
        return Reply {
            status: "200 OK",
            headers: vec![("Content-Type", "application/json".into())],
            body: Body::Bytes(b"{}".to_vec()),
        };
    }
    let rest = rest.trim_start_matches('/');
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        let Some(hex) =
            digest.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            return not_found("BLOB_UNKNOWN", format!("{name}: {digest}"));
        };
        let p = state.cache.blob(hex);
        return match std::fs::metadata(&p) {
            Ok(m) => Reply {
                status: "200 OK",
                headers: vec![
                    ("Content-Type", "application/octet-stream".into()),
                    ("Docker-Content-Digest", digest.into()),
                ],
                body: Body::File(p, m.len()),
            },
            Err(_) => not_found("BLOB_UNKNOWN", format!("{name}: {digest}")),
        };
    }
    let Some((name, reference)) = rest.rsplit_once("/manifests/") else {
        return not_found("NOT_FOUND", path.into());
    };
    let served = |b: &Built| -> Reply {
        match b.manifest_bytes(&state.cache) {
            Ok(bytes) => Reply {
                status: "200 OK",
                headers: vec![
                    ("Content-Type", workload::MANIFEST_TYPE.into()),
                    ("Docker-Content-Digest", format!("sha256:{}", b.manifest)),
                ],
                body: Body::Bytes(bytes),
            },
            Err(e) => not_found("MANIFEST_UNKNOWN", e.to_string()),
        }
    };
    if let Some(hex) = reference.strip_prefix("sha256:") {
        // By digest: only manifests this registry handed out by tag.
        let found = state.served.lock().unwrap().iter().find(|(_, b)| b.manifest == hex).map(|(_, b)| b.clone());
        return match found {
            Some(b) => served(&b),
            None => not_found("MANIFEST_UNKNOWN", format!("{ns}/{name}@{reference}")),
        };
    }
    let image = format!("{ns}/{name}:{reference}");
    let _one = state.building.lock().await;
    let (cache, tutor, img) = (state.cache.clone(), state.tutor.clone(), image.clone());
    match tokio::task::spawn_blocking(move || cache.get_or_build(&img, &tutor)).await {
        Ok(Ok((b, _))) => {
            let mut s = state.served.lock().unwrap();
            if !s.iter().any(|(r, _)| *r == image) {
                s.push((image, b.clone()));
            }
            drop(s);
            served(&b)
        }
        Ok(Err(e)) => not_found("MANIFEST_UNKNOWN", e.to_string()),
        Err(e) => not_found("MANIFEST_UNKNOWN", e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, method: &str, path: &str) -> (String, Vec<u8>) {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all).await.unwrap();
        let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (String::from_utf8_lossy(&all[..at]).into_owned(), all[at + 4..].to_vec())
    }

    /// A client pulls busybox as containerd does through a mirror: manifest by tag (with the
    /// `ns` of the registry it stands in for), then config and layer by digest, each checked
    /// against its digest; an image outside the catalogue is a 404.
    #[tokio::test]
    async fn serves_a_pull_of_a_catalogued_image() {
        if crate::backend::lab::agent::images::which("busybox", &std::env::var("PATH").unwrap_or_default()).is_none() {
            eprintln!("busybox is not installed: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache { dir: dir.path().to_path_buf() };
        let r = Registry::start("127.0.0.1:0".parse().unwrap(), cache, "/bin/true".into()).await.unwrap();
        let (head, body) = get(r.addr, "GET", "/v2/").await;
        assert!(head.starts_with("HTTP/1.1 200") && head.contains("registry/2.0"), "{head}");
        assert_eq!(body, b"{}");
        let (head, manifest) = get(r.addr, "GET", "/v2/library/busybox/manifests/latest?ns=docker.io").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let sha = |b: &[u8]| {
            ring::digest::digest(&ring::digest::SHA256, b)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        assert!(head.contains(&format!("Docker-Content-Digest: sha256:{}", sha(&manifest))), "{head}");
        let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        for d in [&m["config"]["digest"], &m["layers"][0]["digest"]] {
            let d = d.as_str().unwrap();
            let (head, blob) = get(r.addr, "GET", &format!("/v2/library/busybox/blobs/{d}")).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert_eq!(format!("sha256:{}", sha(&blob)), d);
            let (head, none) = get(r.addr, "HEAD", &format!("/v2/library/busybox/blobs/{d}")).await;
            assert!(head.contains(&format!("Content-Length: {}", blob.len())) && none.is_empty(), "{head}");
        }
        // The same manifest by digest, once handed out by tag.
        let (head, again) =
            get(r.addr, "GET", &format!("/v2/library/busybox/manifests/sha256:{}", sha(&manifest))).await;
        assert!(head.starts_with("HTTP/1.1 200") && again == manifest, "{head}");
        let (head, body) = get(r.addr, "GET", "/v2/team/app/manifests/1?ns=example.com").await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("not in the lab's image catalogue"));
        assert_eq!(r.served().len(), 1);
    }
}
