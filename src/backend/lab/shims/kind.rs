//! `kind create|delete cluster`, `kind get clusters|nodes`, `kind load docker-image`.

use std::path::Path;

use super::super::LabError;
use super::super::config::{Cluster, Role};
use super::super::state::Lab;
use super::{Args, Outcome, resolve, unsupported};

pub fn run(lab: &mut Lab, argv: &[String], cwd: &Path) -> Result<Outcome, LabError> {
    let a = Args::parse(
        argv,
        &["--config", "--name", "-n", "--image", "--wait", "--kubeconfig", "--nodes"],
        &["-q", "--quiet", "--retain"],
    )?;
    let pos: Vec<&str> = a.positional.iter().map(String::as_str).collect();
    let name = a.value(&["--name", "-n"]);
    match pos.as_slice() {
        ["create", "cluster"] => {
            let config = match a.value(&["--config"]) {
                Some(f) => Cluster::load_as(&resolve(&lab.host_root(), cwd, f), &cwd.join(f))?,
                None => Cluster::default(),
            };
            let no_cni = config.networking.disable_default_cni;
            // The emulation shows the article's node image; the real control plane its own release.
            let image = if lab.upstream {
                format!("kindest/node:{}", super::super::upstream::kubernetes_version())
            } else {
                "kindest/node:v1.29.2".to_string()
            };
            let c = lab.create_cluster(config, name)?;
            let cname = c.plan.cluster.clone();
            let workers = c.plan.nodes.iter().any(|n| n.role == Role::Worker);
            let boxes = " 📦".repeat(c.plan.nodes.len());
            let mut s = format!(
                "Creating cluster \"{cname}\" ...\n ✓ Ensuring node image ({image}) 🖼\n ✓ Preparing nodes{boxes}  \n ✓ Writing configuration 📜 \n ✓ Starting control-plane 🕹️ \n"
            );
            if !no_cni {
                s.push_str(" ✓ Installing CNI 🔌 \n");
            }
            s.push_str(" ✓ Installing StorageClass 💾 \n");
            if workers {
                s.push_str(" ✓ Joining worker nodes 🚜 \n");
            }
            s.push_str(&format!(
                "Set kubectl context to \"kind-{cname}\"\nYou can now use your cluster with:\n\nkubectl cluster-info --context kind-{cname}\n\nHave a nice day! 👋\n"
            ));
            Ok(Outcome::err(s))
        }
        ["delete", "cluster"] => {
            let want = name.unwrap_or("kind");
            let exists = lab.cluster.as_ref().is_some_and(|c| c.plan.cluster == want);
            let nodes: Vec<String> = if exists {
                lab.cluster.as_ref().unwrap().plan.nodes.iter().map(|n| format!("\"{}\"", n.name)).collect()
            } else {
                vec![]
            };
            if exists {
                lab.delete_cluster();
                lab.images.loaded.clear();
            }
            Ok(Outcome::err(format!("Deleting cluster \"{want}\" ...\nDeleted nodes: [{}]\n", nodes.join(" "))))
        }
        ["get", "clusters"] => Ok(match &lab.cluster {
            Some(c) => Outcome::out(format!("{}\n", c.plan.cluster)),
            None => Outcome::err("No kind clusters found.\n"),
        }),
        ["get", "nodes"] => {
            let c = lab.cluster.as_ref().filter(|c| name.is_none_or(|n| n == c.plan.cluster));
            Ok(match c {
                Some(c) => Outcome::out(c.plan.nodes.iter().map(|n| format!("{}\n", n.name)).collect::<String>()),
                None => Outcome::err(format!("No kind nodes found for cluster \"{}\".\n", name.unwrap_or("kind"))),
            })
        }
        ["load", "docker-image", images @ ..] if !images.is_empty() => {
            load(lab, images, name.unwrap_or("kind"), a.value(&["--nodes"]))
        }
        _ => Err(unsupported("kind", argv)),
    }
}

/// `kind load docker-image IMAGE… [--name N] [--nodes A,B]`: each image `docker pull` put in
/// the lab host's store, marked loaded on the nodes that lack it, in kind's words. The lab's
/// nodes run every catalogued image without it; what loading changes is what kind reports
/// the next time.
fn load(lab: &mut Lab, images: &[&str], cluster: &str, only: Option<&str>) -> Result<Outcome, LabError> {
    let failed = |m: String| Outcome::Print { stdout: String::new(), stderr: format!("ERROR: {m}\n"), code: 1 };
    let Some(c) = lab.cluster.as_ref().filter(|c| c.plan.cluster == cluster) else {
        return Ok(failed(format!("no nodes found for cluster \"{cluster}\"")));
    };
    let all: Vec<String> = c.plan.nodes.iter().map(|n| n.name.clone()).collect();
    let nodes: Vec<String> = match only {
        None => all,
        Some(list) => {
            let mut chosen = Vec::new();
            for n in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if !all.iter().any(|a| a == n) {
                    return Ok(failed(format!("unknown node: {n}")));
                }
                chosen.push(n.to_string());
            }
            chosen
        }
    };
    let mut found = Vec::new();
    for image in images {
        match lab.images.find(image) {
            Some(d) => found.push((image.to_string(), d.id.clone())),
            None => return Ok(failed(format!("image: \"{image}\" not present locally"))),
        }
    }
    let mut err = String::new();
    for (image, id) in found {
        let missing: Vec<&String> =
            nodes.iter().filter(|n| !lab.images.loaded.contains(&((*n).clone(), id.clone()))).collect();
        if missing.is_empty() {
            err.push_str(&format!("Image: \"{image}\" with ID \"{id}\" found to be already present on all nodes.\n"));
        }
        for n in missing {
            err.push_str(&format!("Image: \"{image}\" with ID \"{id}\" not yet present on node \"{n}\", loading...\n"));
            lab.images.loaded.insert((n.clone(), id.clone()));
        }
    }
    Ok(Outcome::err(err))
}
