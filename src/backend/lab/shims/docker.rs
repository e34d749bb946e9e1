//! `docker exec [-t] [-i] NODE CMD…`: the node containers are the lab's node namespaces.
//! `docker pull IMAGE`: an image of the node agent's catalogue "pulled" into the lab's local
//! image store (for `kind load docker-image`), with its layers, ID and digest made from the
//! programs that play it (`agent::images::data`); the lab has no registry to pull from.

use std::collections::{BTreeMap, BTreeSet};

use super::super::LabError;
use super::super::agent::images::{self, ImageData, ImageRef, PullError};
use super::super::state::Lab;
use super::{Args, Outcome, unsupported};

/// The lab host's Docker images: what `docker pull` fetched and `kind load` loaded where.
#[derive(Debug, Default)]
pub struct Images {
    /// By canonical reference (`docker.io/library/nginx:latest`).
    pub pulled: BTreeMap<String, ImageData>,
    /// (node, image ID) loaded by `kind load docker-image`.
    pub loaded: BTreeSet<(String, String)>,
}

impl Images {
    /// The pulled image `image` names, as Docker finds it (`nginx` is `nginx:latest`).
    pub fn find(&self, image: &str) -> Option<&ImageData> {
        let r = ImageRef::parse(image).ok()?;
        self.pulled.get(&r.canonical())
    }
}

pub fn run(lab: &mut Lab, argv: &[String]) -> Result<Outcome, LabError> {
    match argv.first().map(String::as_str) {
        Some("exec") => exec(lab, argv),
        Some("pull") => pull(lab, &argv[1..]),
        Some("image") if argv.get(1).map(String::as_str) == Some("pull") => pull(lab, &argv[2..]),
        _ => Err(unsupported("docker", argv)),
    }
}

fn exec(lab: &mut Lab, argv: &[String]) -> Result<Outcome, LabError> {
    // Options stop at the container name.
    let split =
        argv[1..].iter().position(|a| !a.starts_with('-')).map(|i| i + 1).ok_or_else(|| unsupported("docker", argv))?;
    Args::parse(
        &argv[1..split],
        &["-e", "--env", "-w", "--workdir", "-u", "--user"],
        &["-t", "-i", "--tty", "--interactive"],
    )?;
    let node = &argv[split];
    let cmd: Vec<String> = argv[split + 1..].to_vec();
    if cmd.is_empty() {
        return Err(LabError::Input("\"docker exec\" requires at least 2 arguments.".into()));
    }
    let c = lab
        .cluster
        .as_ref()
        .ok_or_else(|| LabError::Input(format!("Error response from daemon: No such container: {node}")))?;
    let n = c
        .node(node)
        .ok_or_else(|| LabError::Input(format!("Error response from daemon: No such container: {node}")))?;
    Ok(Outcome::Exec { tid: n.ns.tid(), argv: cmd })
}

/// What Docker prints when the daemon refuses: on stderr, exit 1.
fn daemon_error(message: String) -> Outcome {
    Outcome::Print { stdout: String::new(), stderr: format!("Error response from daemon: {message}\n"), code: 1 }
}

/// The image data of a catalogued image, from the programs on this machine: the supervisor's
/// PATH with the built image programs first, as the node agents see them.
pub fn image_data(image: &str) -> Result<ImageData, PullError> {
    let built = super::super::upstream::bin_dir();
    let path = format!(
        "{}:{}",
        built.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())
    );
    images::data(image, &path, &built, &super::super::tutor_exe())
}

fn pull(lab: &mut Lab, argv: &[String]) -> Result<Outcome, LabError> {
    let a = Args::parse(argv, &["--platform"], &["-q", "--quiet", "--disable-content-trust"])?;
    let quiet = a.flags.iter().any(|f| f == "-q" || f == "--quiet");
    let image = match a.positional.as_slice() {
        [image] => image.clone(),
        _ => {
            return Ok(Outcome::Print {
                stdout: String::new(),
                stderr:
                    "\"docker pull\" requires exactly 1 argument.\nSee 'docker pull --help'.\n\nUsage:  docker pull \
                         [OPTIONS] NAME[:TAG|@DIGEST]\n\nDownload an image from a registry\n"
                        .into(),
                code: 1,
            });
        }
    };
    let r = match ImageRef::parse(&image) {
        Ok(r) => r,
        Err(_) => {
            return Ok(Outcome::Print { stdout: String::new(), stderr: "invalid reference format\n".into(), code: 1 });
        }
    };
    let data = match image_data(&image) {
        Ok(d) => d,
        Err(e) => return Ok(daemon_error(e.to_string())),
    };
    // The name as Docker repeats it: the user's, with the default tag added.
    let named = if r.tag.is_none() && r.digest.is_none() { format!("{image}:latest") } else { image.clone() };
    if let Some(d) = &r.digest
        && *d != data.digest
    {
        return Ok(daemon_error(format!(
            "manifest for {image} not found: manifest unknown: the lab's image is {}@{}",
            image.split('@').next().unwrap_or(&image),
            data.digest
        )));
    }
    let mut out = String::new();
    if r.tag.is_none() && r.digest.is_none() {
        out.push_str("Using default tag: latest\n");
    }
    let what = r.digest.clone().or(r.tag.clone()).unwrap_or_else(|| "latest".into());
    out.push_str(&format!("{what}: Pulling from {}\n", data.repository));
    let fresh = lab.images.pulled.get(&data.reference).is_none_or(|d| d.id != data.id);
    if fresh {
        let short = |d: &str| d.trim_start_matches("sha256:").chars().take(12).collect::<String>();
        for (d, _) in &data.layers {
            out.push_str(&format!("{}: Pulling fs layer\n", short(d)));
        }
        for (d, _) in &data.layers {
            out.push_str(&format!("{}: Verifying Checksum\n{0}: Download complete\n", short(d)));
        }
        for (d, _) in &data.layers {
            out.push_str(&format!("{}: Pull complete\n", short(d)));
        }
    }
    out.push_str(&format!("Digest: {}\n", data.digest));
    if fresh {
        out.push_str(&format!("Status: Downloaded newer image for {named}\n"));
    } else {
        out.push_str(&format!("Status: Image is up to date for {named}\n"));
    }
    out.push_str(&format!("{}\n", data.reference));
    let reference = data.reference.clone();
    lab.images.pulled.insert(data.reference.clone(), data);
    Ok(if quiet { Outcome::out(format!("{reference}\n")) } else { Outcome::out(out) })
}
