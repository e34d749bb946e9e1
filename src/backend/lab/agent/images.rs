//! The node agent's images: a catalogue of the images the lab can run, each with the
//! entrypoint and command its real image declares and the program on this machine that plays
//! it. Nothing is pulled: an image outside the catalogue, or whose program is not installed,
//! fails the way an offline node fails (`ErrImagePull`, then `ImagePullBackOff`).

use std::path::{Path, PathBuf};

use crate::backend::lab::upstream::Binary;

/// A parsed image reference (`[registry/]repository[:tag][@digest]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `docker.io`, `registry.k8s.io`, `quay.io`, …
    pub registry: String,
    /// Repository inside the registry (`library/nginx`, `e2e-test-images/agnhost`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parse as the container runtimes do: the first path component is a registry when it has a
    /// `.` or a `:` or is `localhost`; Docker Hub's official images live under `library/`.
    pub fn parse(image: &str) -> Result<ImageRef, InvalidImage> {
        let bad = |why| InvalidImage { image: image.to_string(), why };
        if image.is_empty() {
            return Err(bad(Malformation::Empty));
        }
        if image.chars().any(|c| c.is_whitespace() || c.is_ascii_uppercase()) {
            return Err(bad(Malformation::Case));
        }
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (image, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if tag.as_deref() == Some("") || name.is_empty() || name.ends_with('/') || name.contains("//") {
            return Err(bad(Malformation::Shape));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), path.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        Ok(ImageRef { registry, repository, tag, digest })
    }

    /// The fully qualified reference (`docker.io/library/nginx:latest`), as `kubectl describe`
    /// shows it in a container's `Image ID`-less pull message.
    pub fn canonical(&self) -> String {
        let mut s = format!("{}/{}", self.registry, self.repository);
        match (&self.tag, &self.digest) {
            (_, Some(d)) => {
                if let Some(t) = &self.tag {
                    s.push(':');
                    s.push_str(t);
                }
                s.push('@');
                s.push_str(d);
            }
            (Some(t), None) => {
                s.push(':');
                s.push_str(t);
            }
            (None, None) => s.push_str(":latest"),
        }
        s
    }

    /// The short name the catalogue knows images by: `nginx`, `hashicorp/http-echo`,
    /// `registry.k8s.io/pause`.
    pub fn key(&self) -> String {
        match (self.registry.as_str(), self.repository.strip_prefix("library/")) {
            ("docker.io", Some(official)) => official.to_string(),
            ("docker.io", None) => self.repository.clone(),
            (reg, _) => format!("{reg}/{}", self.repository),
        }
    }
}

/// What a catalogued image runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The canonical reference (for status `image` and events).
    pub reference: String,
    /// The image's ENTRYPOINT and CMD, as its real image declares them (programs by name,
    /// looked up on PATH at start).
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// Programs that must be installed for the image to run (checked at "pull").
    pub needs: Vec<String>,
    /// Busybox-based images: their commands are busybox's applets, found first on PATH.
    pub busybox: bool,
    /// Environment the image sets (PATH is set by the agent).
    pub env: Vec<(String, String)>,
}

/// An image reference that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference \"{image}\": {why}")]
pub struct InvalidImage {
    pub image: String,
    pub why: Malformation,
}

/// What is wrong with an image reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformation {
    #[error("empty")]
    Empty,
    #[error("must be lowercase, without spaces")]
    Case,
    #[error("malformed")]
    Shape,
}

/// Why an image cannot be "pulled".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Invalid(#[from] InvalidImage),
    #[error(
        "the lab cannot pull images from a registry, and \"{image}\" is not in its image catalogue \
         (known: {known})"
    )]
    Unknown { image: String, known: String },
    #[error(
        "the lab plays \"{image}\" with {program}, which is not installed on this machine (.ci/install installs it)"
    )]
    Missing { image: String, program: String },
}

struct Entry {
    keys: &'static [&'static str],
    entrypoint: &'static [&'static str],
    cmd: &'static [&'static str],
    needs: &'static [&'static str],
    busybox: bool,
    /// Symbolic links the real image has in its layers that matter to users (nginx's logs go
    /// to the container's output through them), or that put a program where the real image
    /// has it (a target starting with `@built/` is a program of `<image dir>/built`; `@tutor`
    /// is the tutor executable, for the programs tutor plays).
    links: &'static [(&'static str, &'static str)],
}

/// The catalogue. ENTRYPOINT/CMD are those of the real images (facts of their image configs).
const CATALOGUE: &[Entry] = &[
    Entry {
        keys: &["nginx"],
        entrypoint: &[],
        // The image runs nginx in the foreground; Debian's nginx serves its own welcome page.
        cmd: &["nginx", "-g", "daemon off;"],
        needs: &["nginx"],
        busybox: false,
        links: &[("/var/log/nginx/access.log", "/dev/stdout"), ("/var/log/nginx/error.log", "/dev/stderr")],
    },
    Entry {
        keys: &["busybox", "alpine"],
        entrypoint: &[],
        cmd: &["sh"],
        needs: &["busybox"],
        busybox: true,
        links: &[],
    },
    Entry {
        keys: &["debian", "ubuntu", "nicolaka/netshoot"],
        entrypoint: &[],
        cmd: &["bash"],
        needs: &["bash"],
        busybox: false,
        links: &[],
    },
    Entry { keys: &["curlimages/curl"], entrypoint: &["curl"], cmd: &[], needs: &["curl"], busybox: false, links: &[] },
    Entry {
        keys: &["registry.k8s.io/pause", "k8s.gcr.io/pause"],
        entrypoint: &["sleep", "infinity"],
        cmd: &[],
        needs: &["sleep"],
        busybox: false,
        links: &[],
    },
    Entry {
        keys: &["registry.k8s.io/e2e-test-images/agnhost"],
        entrypoint: &["agnhost"],
        cmd: &["pause"],
        needs: &["agnhost"],
        busybox: false,
        links: &[],
    },
    Entry {
        keys: &["registry.k8s.io/kube-proxy"],
        entrypoint: &[],
        cmd: &["/usr/local/bin/kube-proxy"],
        needs: &["kube-proxy"],
        busybox: false,
        links: &[("/usr/local/bin/kube-proxy", "@built/kube-proxy")],
    },
    Entry {
        keys: &["registry.k8s.io/coredns/coredns", "registry.k8s.io/coredns", "coredns/coredns"],
        entrypoint: &["/coredns"],
        cmd: &[],
        needs: &["coredns"],
        busybox: false,
        links: &[("/coredns", "@built/coredns")],
    },
    Entry {
        // Cilium's agent image: its programs are tutor's (`backend/lab/cilium`); the shell
        // tools its init containers use are the machine's.
        keys: &["quay.io/cilium/cilium"],
        entrypoint: &[],
        cmd: &["/usr/bin/cilium-agent"],
        needs: &["bash", "mount", "grep"],
        busybox: false,
        links: &[("/usr/bin/cilium-agent", "@tutor"), ("/usr/bin/cilium-dbg", "@tutor")],
    },
    Entry {
        // Cilium's operator (the generic build the chart runs): tutor plays it
        // (`backend/lab/cilium/operator`), started by the name the image gives it.
        keys: &["quay.io/cilium/operator-generic", "quay.io/cilium/operator"],
        entrypoint: &["/usr/bin/cilium-operator-generic"],
        cmd: &[],
        needs: &[],
        busybox: false,
        links: &[("/usr/bin/cilium-operator-generic", "@tutor"), ("/usr/bin/cilium-operator", "@tutor")],
    },
    Entry {
        // The cilium-envoy DaemonSet's image (charts from 1.16): the lab plays no L7 proxy; the
        // starter is tutor's, serving the health endpoint the DaemonSet probes (`programs.rs`).
        keys: &["quay.io/cilium/cilium-envoy"],
        entrypoint: &["/usr/bin/cilium-envoy-starter"],
        cmd: &[],
        needs: &[],
        busybox: false,
        links: &[("/usr/bin/cilium-envoy-starter", "@tutor")],
    },
    Entry {
        // The http-sw-app demo's Death Star: no registry has its program, so it is the
        // project's own (`apps::deathstar`, HTTP on port 80).
        keys: &["cilium/starwars"],
        entrypoint: &["/usr/bin/deathstar"],
        cmd: &[],
        needs: &[],
        busybox: false,
        links: &[("/usr/bin/deathstar", "@tutor")],
    },
    Entry {
        // netperf's image with curl: the machine's curl and tools; its `netserver -D` is the
        // lab's (the port is open, no netperf test runs: netperf is not packaged here).
        keys: &["tgraf/netperf"],
        entrypoint: &[],
        cmd: &["netserver", "-D"],
        needs: &["curl"],
        busybox: false,
        links: &[("/usr/bin/netserver", "@tutor")],
    },
    Entry {
        // The client image of `cilium connectivity test`: Alpine's busybox (ping, nslookup)
        // and curl; the CLI runs its pods with `/usr/bin/pause`, which tutor plays.
        keys: &["quay.io/cilium/alpine-curl"],
        entrypoint: &[],
        cmd: &["sh"],
        needs: &["busybox", "curl"],
        busybox: true,
        links: &[("/usr/bin/pause", "@tutor")],
    },
    Entry {
        // The echo servers of `cilium connectivity test`: json-server over its default data on
        // $PORT. The real image starts it from a shell script (`bash /run.sh`); here the
        // entrypoint is the server itself, which tutor plays (`apps::json_mock`).
        keys: &["quay.io/cilium/json-mock"],
        entrypoint: &["/usr/local/bin/json-server"],
        cmd: &[],
        needs: &["curl"],
        busybox: false,
        links: &[("/usr/local/bin/json-server", "@tutor")],
    },
    Entry {
        keys: &["hashicorp/http-echo"],
        entrypoint: &["/http-echo"],
        cmd: &[],
        needs: &["http-echo"],
        busybox: false,
        links: &[("/http-echo", "@built/http-echo")],
    },
];

/// Resolve `image` against the catalogue; `path` is where its programs are looked up.
pub fn resolve(image: &str, path: &str) -> Result<Image, PullError> {
    let r = ImageRef::parse(image).map_err(PullError::Invalid)?;
    let key = r.key();
    let entry = CATALOGUE.iter().find(|e| e.keys.contains(&key.as_str())).ok_or_else(|| PullError::Unknown {
        image: image.to_string(),
        known: CATALOGUE.iter().flat_map(|e| e.keys.iter().copied()).collect::<Vec<_>>().join(", "),
    })?;
    for program in entry.needs {
        if which(program, path).is_none() {
            return Err(PullError::Missing { image: image.to_string(), program: program.to_string() });
        }
    }
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Ok(Image {
        reference: r.canonical(),
        entrypoint: strings(entry.entrypoint),
        cmd: strings(entry.cmd),
        needs: strings(entry.needs),
        busybox: entry.busybox,
        env: vec![],
    })
}

/// A catalogued image as a registry describes it, made from what plays it on this machine:
/// one layer per program file the image needs or links (its SHA-256 and size), the image
/// config (ENTRYPOINT, CMD, the layer links, the layers' digests) whose SHA-256 is the image
/// ID, and the manifest (config and layers) whose SHA-256 is the digest. The same programs give
/// the same values; an upgraded program gives new ones, as a rebuilt image would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageData {
    /// `docker.io/library/nginx:latest`.
    pub reference: String,
    /// The repository inside its registry (`library/nginx`), as `docker pull` names it.
    pub repository: String,
    /// `(sha256:…, size)` of each layer.
    pub layers: Vec<(String, u64)>,
    /// `sha256:…` of the config.
    pub id: String,
    /// `sha256:…` of the manifest.
    pub digest: String,
}

/// [`ImageData`] of `image`: its programs found on `path` (a `:`-separated list), `@built/X`
/// links in `built`, `@tutor` links at `tutor`.
pub fn data(image: &str, path: &str, built: &Path, tutor: &Path) -> Result<ImageData, PullError> {
    let r = ImageRef::parse(image).map_err(PullError::Invalid)?;
    let resolved = resolve(image, path)?;
    let key = r.key();
    let entry = CATALOGUE.iter().find(|e| e.keys.contains(&key.as_str())).expect("resolve found it");
    let mut files: Vec<PathBuf> = Vec::new();
    for program in entry.needs {
        let file = which(program, path).expect("resolve found it");
        files.push(std::fs::canonicalize(&file).unwrap_or(file));
    }
    // Links to programs (`@tutor`, `@built/…`); links to paths of the image (nginx's log to
    // `/dev/stdout`) are part of the config.
    for (_, target) in entry.links.iter().filter(|(_, t)| t.starts_with('@')) {
        let file = match target.strip_prefix("@built/") {
            Some(program) => built.join(program),
            None => tutor.to_path_buf(),
        };
        if file.is_file() {
            files.push(std::fs::canonicalize(&file).unwrap_or(file));
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    let mut layers = Vec::new();
    for f in &files {
        let (digest, size) = file_digest(f)
            .map_err(|e| PullError::Missing { image: image.to_string(), program: format!("{} ({e})", f.display()) })?;
        layers.push((digest, size));
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Entrypoint": resolved.entrypoint,
            "Cmd": resolved.cmd,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": { "io.tutor.lab.links": entry.links.iter().map(|(l, t)| format!("{l} -> {t}")).collect::<Vec<_>>() },
        },
        "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>() },
    })
    .to_string();
    let id = sha256(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": id, "size": config.len() },
        "layers": layers.iter().map(|(d, n)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": d,
            "size": n,
        })).collect::<Vec<_>>(),
    })
    .to_string();
    Ok(ImageData {
        reference: r.canonical(),
        repository: r.repository.clone(),
        layers,
        id,
        digest: sha256(manifest.as_bytes()),
    })
}

impl ImageData {
    /// The image ID a container status reports (`imageID`), as containerd gives it:
    /// `docker.io/library/nginx@sha256:…`, the repository and the manifest's digest.
    pub fn status_id(&self) -> String {
        let repo = self.reference.split('@').next().unwrap_or(&self.reference);
        let last_slash = repo.rfind('/').map(|i| i + 1).unwrap_or(0);
        let repo = match repo[last_slash..].rfind(':') {
            Some(i) => &repo[..last_slash + i],
            None => repo,
        };
        format!("{repo}@{}", self.digest)
    }
}

fn sha256(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    format!("sha256:{}", d.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// `sha256:…` and size of a file, kept per (path, size, modification time): the programs are
/// large (the tutor executable) and do not change while a lab runs.
fn file_digest(path: &Path) -> std::io::Result<(String, u64)> {
    use std::collections::HashMap;
    use std::io::Read;
    use std::sync::Mutex;
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    static SEEN: Mutex<Option<HashMap<Key, String>>> = Mutex::new(None);
    let meta = std::fs::metadata(path)?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(d) = SEEN.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_default().get(&key) {
        return Ok((d.clone(), meta.len()));
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let d = format!("sha256:{}", ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>());
    SEEN.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_default().insert(key, d.clone());
    Ok((d, meta.len()))
}

/// A catalogue entry as other backends see it: the kind backend builds real images from the
/// same programs (`backend/kind/workload.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Catalogued {
    /// The entry's first key (`nginx`, `hashicorp/http-echo`): names its built image.
    pub key: &'static str,
    pub entrypoint: &'static [&'static str],
    pub cmd: &'static [&'static str],
    pub needs: &'static [&'static str],
    pub busybox: bool,
    /// As in the catalogue: `@built/NAME` and `@tutor` targets are programs, others link targets.
    pub links: &'static [(&'static str, &'static str)],
}

/// The catalogue entry `image` resolves to, whatever its tag (the lab plays every tag of an
/// image with the same program).
pub fn catalogued(image: &str) -> Option<Catalogued> {
    let key = ImageRef::parse(image).ok()?.key();
    CATALOGUE.iter().find(|e| e.keys.contains(&key.as_str())).map(|e| Catalogued {
        key: e.keys[0],
        entrypoint: e.entrypoint,
        cmd: e.cmd,
        needs: e.needs,
        busybox: e.busybox,
        links: e.links,
    })
}

/// The links an image's layers hold (none for images outside the catalogue); `built` is
/// `<image dir>/built`, `tutor` the tutor executable.
pub fn layer_links(image: &str, built: &Path, tutor: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(r) = ImageRef::parse(image) else { return vec![] };
    let key = r.key();
    let target = |t: &str| match (t, t.strip_prefix("@built/")) {
        ("@tutor", _) => tutor.to_path_buf(),
        (_, Some(program)) => built.join(program),
        (t, None) => PathBuf::from(t),
    };
    CATALOGUE
        .iter()
        .find(|e| e.keys.contains(&key.as_str()))
        .map(|e| e.links.iter().map(|(l, t)| (PathBuf::from(l), target(t))).collect())
        .unwrap_or_default()
}

/// The argv a container runs: Kubernetes' rule over the image's ENTRYPOINT and CMD
/// (`command` replaces ENTRYPOINT and drops CMD; `args` replaces CMD).
pub fn argv(image: &Image, command: &[String], args: &[String]) -> Vec<String> {
    match (command.is_empty(), args.is_empty()) {
        (false, _) => command.iter().chain(args).cloned().collect(),
        (true, false) => image.entrypoint.iter().chain(args).cloned().collect(),
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    }
}

/// The tutor executable as pods see it, for `@tutor` links: itself, or, when it lives under
/// /tmp or /run (which every pod has of its own, and a volume may cover), a hard link (a copy
/// across filesystems) in `<image dir>/tutor/`, refreshed atomically.
pub fn link_tutor(image_dir: &Path, exe: &Path) -> std::io::Result<PathBuf> {
    if !["/tmp", "/run"].iter().any(|d| exe.starts_with(d)) {
        return Ok(exe.to_path_buf());
    }
    let dir = image_dir.join("tutor");
    std::fs::create_dir_all(&dir)?;
    let link = dir.join("tutor");
    let tmp = dir.join(format!(".tutor.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(exe, &tmp).is_err() {
        std::fs::copy(exe, &tmp)?;
    }
    std::fs::rename(&tmp, &link)?;
    Ok(link)
}

/// Image programs built with the lab's Kubernetes (`k8s/build.sh`), made visible to pods
/// through a directory of their own (`<image dir>/built`, first on the containers' PATH) so
/// that pods see these programs and not the rest of the build (kubectl, the control plane).
pub const BUILT: &[Binary] = &[Binary::Agnhost, Binary::KubeProxy, Binary::Coredns, Binary::HttpEcho];

/// Link the built image programs that exist into `<image_dir>/built` (replacing older links
/// atomically); the directory to put first on the containers' PATH.
pub fn link_built(image_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = image_dir.join("built");
    std::fs::create_dir_all(&dir)?;
    for b in BUILT {
        let target = crate::backend::lab::upstream::path(*b);
        if !target.exists() {
            continue;
        }
        let link = dir.join(b.file_name());
        if std::fs::read_link(&link).is_ok_and(|t| t == target) {
            continue;
        }
        let tmp = dir.join(format!(".{}.{}", b.file_name(), std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)?;
        std::fs::rename(&tmp, &link)?;
    }
    Ok(dir)
}

/// First executable named `program` on `path` (a `:`-separated list); absolute names as is.
pub fn which(program: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable =
        |p: &Path| p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    path.split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join(program)).find(|p| executable(p))
}

/// A directory of busybox applet links (`wget`, `nslookup`, `sh` → busybox), made once per
/// agent: busybox images put it first on PATH, so their commands print busybox's formats.
pub fn busybox_dir(state: &Path, path: &str) -> std::io::Result<PathBuf> {
    let dir = state.join("images/busybox/bin");
    if dir.join("busybox").exists() {
        return Ok(dir);
    }
    let busybox = which("busybox", path).ok_or_else(|| std::io::Error::other("busybox is not installed"))?;
    let out = std::process::Command::new(&busybox).arg("--list").output()?;
    std::fs::create_dir_all(&dir)?;
    for applet in String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|a| !a.is_empty()) {
        let link = dir.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink(&busybox, &link)?;
        }
    }
    let link = dir.join("busybox");
    if !link.exists() {
        std::os::unix::fs::symlink(&busybox, &link)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutor_under_tmp_is_linked_where_pods_see_it() {
        let images = tempfile::Builder::new().tempdir_in("/var/tmp").unwrap();
        assert_eq!(link_tutor(images.path(), Path::new("/usr/bin/tutor")).unwrap(), Path::new("/usr/bin/tutor"));
        let build = tempfile::Builder::new().tempdir_in("/tmp").unwrap();
        let exe = build.path().join("tutor");
        std::fs::write(&exe, b"#!/bin/sh\n").unwrap();
        let l = link_tutor(images.path(), &exe).unwrap();
        assert_eq!(l, images.path().join("tutor/tutor"));
        assert_eq!(std::fs::read(&l).unwrap(), b"#!/bin/sh\n");
        // Again (an agent restart): replaced, not an error.
        assert_eq!(link_tutor(images.path(), &exe).unwrap(), l);
    }

    #[test]
    fn references_parse_like_the_runtimes() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("docker.io", "library/nginx"));
        assert_eq!(r.canonical(), "docker.io/library/nginx:latest");
        let r = ImageRef::parse("registry.k8s.io/e2e-test-images/agnhost:2.39").unwrap();
        assert_eq!(r.registry, "registry.k8s.io");
        assert_eq!(r.repository, "e2e-test-images/agnhost");
        assert_eq!(r.tag.as_deref(), Some("2.39"));
        let r = ImageRef::parse("localhost:5000/x/y@sha256:abc").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(r.canonical(), "localhost:5000/x/y@sha256:abc");
        assert_eq!(ImageRef::parse("hashicorp/http-echo:1.0").unwrap().key(), "hashicorp/http-echo");
        assert_eq!(ImageRef::parse("docker.io/library/busybox:1.36").unwrap().key(), "busybox");
        for (bad, why) in [
            ("", Malformation::Empty),
            ("Nginx", Malformation::Case),
            ("nginx:", Malformation::Shape),
            ("a//b", Malformation::Shape),
            ("a b", Malformation::Case),
        ] {
            assert_eq!(ImageRef::parse(bad), Err(InvalidImage { image: bad.into(), why }), "{bad}");
        }
        assert_eq!(
            ImageRef::parse("Nginx").unwrap_err().to_string(),
            "invalid image reference \"Nginx\": must be lowercase, without spaces"
        );
    }

    #[test]
    fn unknown_image_names_itself() {
        let e = resolve("example.com/team/app:1", "/usr/bin:/bin").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, PullError::Unknown { .. }), "{msg}");
        assert!(msg.contains("\"example.com/team/app:1\""), "{msg}");
        assert!(msg.contains("nginx"), "{msg}");
    }

    #[test]
    fn missing_program_is_a_pull_error() {
        let e = resolve("nginx:1.27", "/nonexistent").unwrap_err();
        assert_eq!(e, PullError::Missing { image: "nginx:1.27".into(), program: "nginx".into() });
    }

    #[test]
    fn known_image_resolves_on_a_path_that_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("sleep");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let img = resolve("registry.k8s.io/pause:3.10", &dir.path().display().to_string()).unwrap();
        assert_eq!(img.reference, "registry.k8s.io/pause:3.10");
        assert_eq!(argv(&img, &[], &[]), ["sleep", "infinity"]);
    }

    #[test]
    fn image_data_comes_from_the_programs_that_play_it() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("sleep");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let path = dir.path().display().to_string();
        let (built, tutor) = (dir.path().join("built"), dir.path().join("tutor"));
        let a = data("registry.k8s.io/pause:3.10", &path, &built, &tutor).unwrap();
        assert_eq!(a.reference, "registry.k8s.io/pause:3.10");
        assert_eq!(a.repository, "pause");
        assert_eq!(a.layers, [(sha256(b"#!/bin/sh\n"), 10)]);
        assert!(a.id.starts_with("sha256:") && a.id.len() == 71 && a.digest.len() == 71 && a.id != a.digest);
        // Another tag of the same image is the same image; another program is another image.
        let b = data("registry.k8s.io/pause:3.9", &path, &built, &tutor).unwrap();
        assert_eq!((&a.id, &a.digest), (&b.id, &b.digest));
        std::fs::write(&prog, "#!/bin/sh\n# rebuilt\n").unwrap();
        let c = data("registry.k8s.io/pause:3.10", &path, &built, &tutor).unwrap();
        assert_ne!(a.id, c.id);
        assert!(matches!(data("example.com/x:1", &path, &built, &tutor), Err(PullError::Unknown { .. })));
        assert_eq!(c.status_id(), format!("registry.k8s.io/pause@{}", c.digest));
    }

    #[test]
    fn command_and_args_follow_kubernetes_rules() {
        let img = Image {
            reference: "x".into(),
            entrypoint: vec!["ep".into()],
            cmd: vec!["c1".into()],
            needs: vec![],
            busybox: false,
            env: vec![],
        };
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(argv(&img, &[], &[]), s(&["ep", "c1"]));
        assert_eq!(argv(&img, &[], &s(&["a"])), s(&["ep", "a"]));
        assert_eq!(argv(&img, &s(&["sh", "-c"]), &[]), s(&["sh", "-c"]));
        assert_eq!(argv(&img, &s(&["sh", "-c"]), &s(&["echo hi"])), s(&["sh", "-c", "echo hi"]));
    }
}
