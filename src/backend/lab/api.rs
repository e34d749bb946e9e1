//! A Kubernetes client for a lab's real API server, from processes outside the lab (the
//! runner's pod blocks, `tutor run` on the lab backend): the API server listens on the
//! control-plane node's address on the lab's bridge (172.18.0.2:6443), which only the lab's own
//! namespaces reach — nothing of the lab is in the machine's root namespace. So each TCP
//! connection is made by a thread that entered the lab host's network namespace (the socket
//! stays in that namespace when the thread ends); TLS, authentication and the rest are kube's,
//! from the lab host's kubeconfig, as for any cluster.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::client::{Body, ConfigExt};

use crate::backend::BackendError;

/// Connects TCP from the network namespace at `netns` (`/proc/<pid>/task/<tid>/ns/net`).
#[derive(Clone, Debug)]
pub struct NetnsConnector {
    netns: PathBuf,
}

impl tower::Service<http::Uri> for NetnsConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let netns = self.netns.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
            let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
            let stream = tokio::task::spawn_blocking(move || connect_in(&netns, &host, port))
                .await
                .map_err(std::io::Error::other)??;
            stream.set_nonblocking(true)?;
            Ok(TokioIo::new(tokio::net::TcpStream::from_std(stream)?))
        })
    }
}

fn connect_in(netns: &Path, host: &str, port: u16) -> std::io::Result<std::net::TcpStream> {
    crate::lb::netns::in_netns(netns, || std::net::TcpStream::connect((host, port)))
        .map_err(|e| std::io::Error::other(e.to_string()))?
}

/// A client for the cluster of `kubeconfig` (its current context), connecting from `netns`.
pub async fn client(kubeconfig: &Path, netns: &Path) -> Result<kube::Client, BackendError> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| BackendError::Other(format!("reading {}: {e}", kubeconfig.display())))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| BackendError::Other(format!("kubeconfig {}: {e}", kubeconfig.display())))?;
    let bad = |e: kube::Error| BackendError::Other(format!("Kubernetes client for {}: {e}", kubeconfig.display()));
    let https =
        config.rustls_https_connector_with_connector(NetnsConnector { netns: netns.to_path_buf() }).map_err(bad)?;
    let http: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(bad)?)
        .map_err(tower::BoxError::from)
        .service(http);
    Ok(kube::Client::new(service, config.default_namespace))
}
