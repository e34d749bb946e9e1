//! `cilium-operator-generic`, the program of the `quay.io/cilium/operator-generic` image as the
//! lab plays it (docs/architecture.md, "The Cilium operator"): run by the node agent in the
//! chart's `cilium-operator` pods, with the pod's service-account token and the API server from
//! `KUBERNETES_SERVICE_HOST/PORT`, as the real operator runs. At start it registers Cilium's
//! CRDs (`crds`); then, on the replica holding the `cilium-operator-resource-lock` Lease
//! (`lease`), it runs LB IPAM (`lbipam`, `controller`). `/healthz` on 127.0.0.1:9234 answers
//! the chart's probes once the CRDs are established.

pub mod controller;
pub mod crds;
pub mod lbipam;
pub mod lease;
pub mod release;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use release::Release;

/// The program name the image runs (the chart's `command`).
pub const PROGRAM: &str = "cilium-operator-generic";
/// Where the real operator serves its health API.
pub const HEALTH_ADDR: &str = "127.0.0.1:9234";

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("{0}")]
    Usage(String),
    #[error("in-cluster configuration: {0}")]
    InCluster(#[source] kube::config::InClusterError),
    #[error("kubernetes client: {0}")]
    Client(#[source] Box<kube::Error>),
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> OperatorError {
    let what = what.into();
    move |source| OperatorError::Api { what, source: Box::new(source) }
}

/// The operator's flags that matter here (the chart's `--config-dir`, `--debug`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub config_dir: Option<PathBuf>,
    pub debug: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options, OperatorError> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (a.as_str(), None),
            };
            let mut value = |name: &str| -> Result<String, OperatorError> {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| OperatorError::Usage(format!("flag needs an argument: {name}")))
            };
            match flag {
                "--config-dir" => o.config_dir = Some(PathBuf::from(value(flag)?)),
                "--debug" => o.debug = inline.as_deref().is_none_or(|v| v == "true"),
                "-h" | "--help" => {
                    return Err(OperatorError::Usage(format!(
                        "usage: {PROGRAM} [--config-dir=DIR] [--debug[=BOOL]] (the lab's Cilium operator: CRDs and LB IPAM)"
                    )));
                }
                f if f.starts_with('-') => eprintln!("{PROGRAM}: flag {f} is not used by the lab's operator"),
                other => return Err(OperatorError::Usage(format!("unexpected argument {other:?}"))),
            }
        }
        Ok(o)
    }
}

/// The options of the `cilium-config` ConfigMap, as mounted in `--config-dir` (one file per key).
pub fn read_config_dir(dir: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if let Ok(v) = std::fs::read_to_string(e.path()) {
            m.insert(name, v.trim().to_string());
        }
    }
    m
}

/// The program's entry (argv without the program name), on the dispatcher's runtime.
pub async fn main(args: &[String]) -> Result<ExitCode, OperatorError> {
    run(Options::parse(args)?).await?;
    Ok(ExitCode::SUCCESS)
}

/// The release this operator plays: its own pod's image tag (found by node and labels: the
/// chart's pods, one per node), else the newest served. The API may not answer at once (the
/// `kubernetes` Service is programmed by a kube-proxy starting beside us): it is asked again,
/// since guessing would register another release's CRDs.
async fn own_release(client: &Client, namespace: &str, node: Option<&str>) -> Release {
    let mut lp = ListParams::default().labels("io.cilium/app=operator");
    if let Some(n) = node {
        lp = lp.fields(&format!("spec.nodeName={n}"));
    }
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    let mut image = None;
    for attempt in 0..60 {
        match api.list(&lp).await {
            Ok(l) => {
                image = l
                    .items
                    .into_iter()
                    .find_map(|p| p.spec?.containers.into_iter().find(|c| c.name == "cilium-operator")?.image);
                if image.is_some() {
                    break;
                }
            }
            Err(e) if attempt % 10 == 0 => eprintln!("{PROGRAM}: reading its own pod: {e}"),
            Err(_) => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    match image.as_deref().and_then(Release::of_image) {
        Some(r) => r,
        None => {
            eprintln!("{PROGRAM}: no version in the operator image ({image:?}): playing Cilium {}", Release::NEWEST);
            Release::NEWEST
        }
    }
}

async fn serve_health(ready: Arc<AtomicBool>) -> Result<(), OperatorError> {
    let listener = tokio::net::TcpListener::bind(HEALTH_ADDR)
        .await
        .map_err(|source| OperatorError::Io { what: format!("listening on {HEALTH_ADDR}"), source })?;
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            let ready = ready.load(Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (code, body) = match (path, ready) {
                    ("/healthz", true) => ("200 OK", "ok"),
                    ("/healthz", false) => ("503 Service Unavailable", "registering CRDs"),
                    _ => ("404 Not Found", "not found"),
                };
                let answer = format!(
                    "HTTP/1.1 {code}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok(())
}

async fn run(opts: Options) -> Result<(), OperatorError> {
    let config = opts.config_dir.as_deref().map(read_config_dir).unwrap_or_default();
    let namespace = std::env::var("CILIUM_K8S_NAMESPACE").unwrap_or_else(|_| "kube-system".into());
    let node = std::env::var("K8S_NODE_NAME").ok();
    let ready = Arc::new(AtomicBool::new(false));
    serve_health(ready.clone()).await?;
    let mut kube_config = Config::incluster().map_err(OperatorError::InCluster)?;
    // Until kube-proxy has programmed the `kubernetes` Service on this node, a connection to it
    // goes nowhere: give up on it soon and ask again rather than wait out kube's 30 s.
    kube_config.connect_timeout = Some(std::time::Duration::from_secs(2));
    let client = Client::try_from(kube_config).map_err(|e| OperatorError::Client(Box::new(e)))?;
    let release = own_release(&client, &namespace, node.as_deref()).await;
    eprintln!("{PROGRAM}: Cilium {release} operator on {}", node.as_deref().unwrap_or("?"));
    let started = std::time::Instant::now();
    if config.get("skip-crd-creation").map(String::as_str) != Some("true") {
        crds::register(&client, &release).await?;
        eprintln!("{PROGRAM}: CRDs established in {:?}", started.elapsed());
    }
    ready.store(true, Ordering::Relaxed);

    let me = format!("{}-{}", node.as_deref().unwrap_or("operator"), random_suffix());
    let (leader_tx, leader_rx) = tokio::sync::watch::channel(false);
    let election = tokio::spawn(lease::run(client.clone(), namespace.clone(), me, leader_tx));
    let lb_ipam = config.get("enable-lb-ipam").map(String::as_str) != Some("false");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| OperatorError::Io { what: "handling SIGTERM".into(), source })?;
    if lb_ipam {
        tokio::select! {
            _ = controller::run(client.clone(), release, leader_rx) => {}
            _ = term.recv() => {}
        }
    } else {
        let _ = term.recv().await;
    }
    election.abort();
    Ok(())
}

fn random_suffix() -> String {
    use rand::Rng;
    let mut r = rand::rng();
    (0..10).map(|_| char::from(b"bcdfghjklmnpqrstvwxz2456789"[r.random_range(0..27)])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_charts_flags_parse() {
        let args: Vec<String> =
            ["--config-dir=/tmp/cilium/config-map", "--debug=false"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            Options::parse(&args).unwrap(),
            Options { config_dir: Some("/tmp/cilium/config-map".into()), debug: false }
        );
        let e = Options::parse(&["stray".to_string()]).unwrap_err();
        assert_eq!(e.to_string(), "unexpected argument \"stray\"");
        let e = Options::parse(&["--config-dir".to_string()]).unwrap_err();
        assert_eq!(e.to_string(), "flag needs an argument: --config-dir");
    }

    #[test]
    fn the_config_map_reads_as_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("enable-lb-ipam"), "false\n").unwrap();
        std::fs::create_dir(d.path().join("..data")).unwrap();
        let m = read_config_dir(d.path());
        assert_eq!(m.into_iter().collect::<Vec<_>>(), [("enable-lb-ipam".to_string(), "false".to_string())]);
    }
}
