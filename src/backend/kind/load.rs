//! Getting workload images into a fresh kind cluster, right after the tutorial's `kind create
//! cluster` block made it and before its next block runs:
//! - the images the tutorial names (`workload::references`) are built (or taken from the cache)
//!   and loaded into every node with `kind load image-archive`, so pods that may use a present
//!   image (`IfNotPresent`, `Never`) start without any pull;
//! - the run's registry (`registry.rs`) listens on the kind network's gateway and every node's
//!   containerd gets it as the mirror of `docker.io` and `registry.k8s.io`, so pods that must
//!   pull (`Always`: untagged and `:latest` images) pull from it.
//!
//! The images are never put into the Docker engine itself (no `docker load`): an image named
//! `nginx:latest` there would stand in for the real nginx in the user's own work.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::Docker;

use super::cluster::Node;
use super::docker_exec;
use super::registry::Registry;
use super::remote::{Deadline, sh_quote};
use super::workload::Cache;
use crate::backend::BackendError;

/// Registries the run's registry stands in for (those of the images tutor builds).
pub const MIRRORED: &[(&str, &str)] =
    &[("docker.io", "https://registry-1.docker.io"), ("registry.k8s.io", "https://registry.k8s.io")];

/// What preparing the images did (kept in the run's state directory as `images.json`).
#[derive(Debug, Default, serde::Serialize)]
pub struct Prepared {
    pub registry: String,
    /// Loaded with `kind load image-archive`: reference → manifest digest.
    pub loaded: Vec<(String, String)>,
    /// Named by the tutorial but not built here, and why (pulls of them go past the mirror).
    pub not_built: Vec<(String, String)>,
    pub build_ms: u128,
    pub load_ms: u128,
}

/// The gateway address of the Docker network `kind` (the machine, as the nodes reach it).
pub async fn gateway(docker: &Docker) -> Result<IpAddr, BackendError> {
    let net = docker
        .inspect_network("kind", None::<bollard::query_parameters::InspectNetworkOptions>)
        .await
        .map_err(|e| BackendError::Other(format!("inspecting the Docker network `kind`: {e}")))?;
    net.ipam
        .and_then(|i| i.config)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.gateway.as_deref()?.parse::<IpAddr>().ok())
        .find(IpAddr::is_ipv4)
        .ok_or_else(|| BackendError::Other("the Docker network `kind` has no IPv4 gateway".into()))
}

/// Start the registry on the kind network's gateway.
pub async fn start_registry(docker: &Docker, cache: Cache) -> Result<Registry, BackendError> {
    let gw = gateway(docker).await?;
    Registry::start(SocketAddr::new(gw, 0), cache, crate::backend::lab::tutor_exe())
        .await
        .map_err(|source| BackendError::Io { context: format!("starting the image registry on {gw}"), source })
}

/// containerd's `hosts.toml` for `registry`: the run's registry first, the real one after it.
pub fn hosts_toml(server: &str, mirror: SocketAddr) -> String {
    format!(
        "# Written by tutor for this run: its registry serves the workload images tutor builds.\n\
         server = \"{server}\"\n\n[host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    )
}

/// Make every node's containerd use the registry as a mirror.
pub async fn configure_mirrors(docker: &Docker, nodes: &[Node], mirror: SocketAddr) -> Result<(), BackendError> {
    let mut script = String::new();
    for (registry, server) in MIRRORED {
        let dir = format!("/etc/containerd/certs.d/{registry}");
        script.push_str(&format!(
            "mkdir -p {d} && printf '%s' {t} > {d}/hosts.toml\n",
            d = sh_quote(&dir),
            t = sh_quote(&hosts_toml(server, mirror))
        ));
    }
    for node in nodes.iter().filter(|n| n.role != "external-load-balancer") {
        let o = docker_exec::exec(docker, &node.name, &script, &[], Deadline::new(Duration::from_secs(30))).await?;
        if o.exit != Some(0) {
            return Err(BackendError::Other(format!(
                "configuring the image mirror in {}: {}",
                node.name,
                o.output.trim()
            )));
        }
    }
    Ok(())
}

/// Build the images `references` name (those tutor builds) and load them into cluster `name`.
pub async fn load(
    docker: &Docker,
    kind: &Path,
    cluster: &str,
    cache: &Cache,
    references: &[String],
    state_dir: &Path,
) -> Result<Prepared, BackendError> {
    let mut prepared = Prepared::default();
    let t0 = Instant::now();
    let (c, refs) = (cache.clone(), references.to_vec());
    let tutor = crate::backend::lab::tutor_exe();
    let built = tokio::task::spawn_blocking(move || {
        refs.into_iter()
            .map(|r| {
                let b = c.get_or_build(&r, &tutor);
                (r, b)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| BackendError::Other(format!("building workload images: {e}")))?;
    let mut archive = Vec::new();
    let mut from_engine = Vec::new();
    for (r, b) in built {
        match b {
            Ok((b, _)) => {
                // `docker save`'s tags name a tag; an untagged reference is `:latest`.
                let Some(parsed) = crate::backend::lab::agent::images::ImageRef::parse(&r).ok() else { continue };
                if parsed.digest.is_some() {
                    prepared.not_built.push((r, "referenced by digest: pulled from the registry instead".into()));
                    continue;
                }
                let tag = if parsed.tag.is_some() { r.clone() } else { format!("{r}:latest") };
                prepared.loaded.push((tag.clone(), b.manifest.clone()));
                archive.push((b, vec![tag]));
            }
            // The user's own image, in the engine: loaded as it is.
            Err(_) if docker.inspect_image(&r).await.is_ok() => from_engine.push(r),
            // Not an error of the run: a pod of this image fails to pull as it would offline.
            Err(e) => prepared.not_built.push((r, e.to_string())),
        }
    }
    prepared.build_ms = t0.elapsed().as_millis();
    let t1 = Instant::now();
    if !from_engine.is_empty() {
        let mut cmd = tokio::process::Command::new(kind);
        cmd.args(["load", "docker-image"]).args(&from_engine).args(["--name", cluster]);
        run_kind(cmd, "kind load docker-image", &from_engine).await?;
        prepared.loaded.extend(from_engine.iter().map(|r| (r.clone(), "from the Docker engine".to_string())));
    }
    if archive.is_empty() {
        prepared.load_ms = t1.elapsed().as_millis();
        return Ok(prepared);
    }
    let tar = state_dir.join("images.tar");
    let c = cache.clone();
    let (tar2, archive2) = (tar.clone(), archive.clone());
    tokio::task::spawn_blocking(move || c.write_archive(&archive2, &tar2))
        .await
        .map_err(|e| BackendError::Other(format!("writing the image archive: {e}")))?
        .map_err(|source| BackendError::Io { context: format!("writing {}", tar.display()), source })?;
    let mut cmd = tokio::process::Command::new(kind);
    cmd.args(["load", "image-archive"]).arg(&tar).args(["--name", cluster]);
    let names: Vec<String> = archive.iter().flat_map(|(_, r)| r.iter().cloned()).collect();
    let result = run_kind(cmd, "kind load image-archive", &names).await;
    let _ = std::fs::remove_file(&tar);
    result?;
    prepared.load_ms = t1.elapsed().as_millis();
    Ok(prepared)
}

async fn run_kind(mut cmd: tokio::process::Command, what: &str, images: &[String]) -> Result<(), BackendError> {
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .map_err(|_| BackendError::Other(format!("`{what}` did not finish in 600 s")))?
        .map_err(|source| BackendError::Io { context: format!("running {what}"), source })?;
    if !out.status.success() {
        return Err(BackendError::Other(format!(
            "`{what}` of {} failed: {}",
            images.join(", "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Whether the registry `image` comes from answers from this machine (a TCP connection to it
/// within 5 s), and if not why.
pub async fn registry_reachable(image: &str) -> Result<(), String> {
    let r = crate::backend::lab::agent::images::ImageRef::parse(image).map_err(|e| e.to_string())?;
    let host = if r.registry == "docker.io" { "registry-1.docker.io".to_string() } else { r.registry.clone() };
    let addr = if host.contains(':') { host.clone() } else { format!("{host}:443") };
    match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{host}: {e}")),
        Err(_) => Err(format!("{host}: no answer within 5 s")),
    }
}

/// Why the kind backend cannot give pods `images` here, if it cannot: tutor builds none of the
/// missing ones, the Docker engine has none of them, and their registries do not answer.
pub async fn lacking(docker: &Docker, images: &[String]) -> Option<String> {
    let tutor = crate::backend::lab::tutor_exe();
    let mut lacking = Vec::new();
    for image in images {
        if super::workload::recipe(image, &tutor).is_ok() || docker.inspect_image(image).await.is_ok() {
            continue;
        }
        if let Err(why) = registry_reachable(image).await {
            lacking.push(format!("{image} ({why})"));
        }
    }
    (!lacking.is_empty()).then(|| {
        format!(
            "its pods need {}, which tutor does not build, the Docker engine does not have, and whose registry \
             does not answer from this machine",
            lacking.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_registry_is_reachable_when_it_accepts_a_connection() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(registry_reachable(&format!("127.0.0.1:{port}/team/app:1")).await, Ok(()));
        drop(l);
        let e = registry_reachable(&format!("127.0.0.1:{port}/team/app:1")).await.unwrap_err();
        assert!(e.starts_with(&format!("127.0.0.1:{port}: ")) && e.contains("refused"), "{e}");
    }

    #[test]
    fn hosts_toml_puts_the_mirror_before_the_registry() {
        let t = hosts_toml("https://registry-1.docker.io", "172.18.0.1:40000".parse().unwrap());
        assert!(t.contains("server = \"https://registry-1.docker.io\""), "{t}");
        assert!(t.contains("[host.\"http://172.18.0.1:40000\"]\n  capabilities = [\"pull\", \"resolve\"]"), "{t}");
    }
}
