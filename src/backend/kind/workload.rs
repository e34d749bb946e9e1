//! Workload images for kind clusters, made from the programs the lab runs (the lab's image
//! catalogue, `backend/lab/agent/images.rs`): a tutorial's `kubectl create deployment
//! --image=nginx` runs Debian's nginx on kind as on the lab, in a real OCI image.
//!
//! An image is one layer: the catalogue entry's programs (found as the lab finds them: the
//! programs `k8s/build.sh` built, else this machine's PATH) with the shared libraries `ldd`
//! names, the entry's links, the data a program reads (nginx's configuration and pages), a
//! busybox userland where the real image has a shell, and `/etc/passwd`/`/etc/group`. The
//! layer is a deterministic tar (sorted, owner 0, mtime 0), so its digest is a function of its
//! content. Images are kept in a content-addressed cache (`<cache>/tutor/images/blobs/<sha256>`)
//! with an index from the recipe's fingerprint (paths, sizes, modification times of its inputs)
//! to the manifest: an unchanged recipe is not read again.
//!
//! See docs/architecture.md, "Workload images on kind".

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::backend::lab::agent::images::{self, Catalogued, ImageRef};
use crate::backend::lab::upstream;

/// Bumped when the layout of built images changes (part of every fingerprint).
const FORMAT: &str = "tutor-workload-image/1";
/// The PATH of every built image (the real images' PATH).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// Catalogue entries tutor builds images of (by their first key). The others are either in the
/// node image already (pause, kube-proxy, CoreDNS), played by the lab's own emulation (Cilium),
/// or whole distributions (debian, netshoot).
const BUILT: &[&str] = &[
    "nginx",
    "busybox",
    "curlimages/curl",
    "registry.k8s.io/e2e-test-images/agnhost",
    "hashicorp/http-echo",
    "cilium/starwars",
];

/// Images whose real counterpart has no shell (`FROM scratch`): no busybox in them either.
const NO_SHELL: &[&str] = &["hashicorp/http-echo"];

/// Why an image cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("\"{image}\" is not in the lab's image catalogue, so tutor has no program to build it from")]
    NotCatalogued { image: String },
    #[error("tutor does not build \"{image}\" (catalogue entry {key}); it builds {}", BUILT.join(", "))]
    NotBuilt { image: String, key: String },
    #[error("building \"{image}\": {program} is not installed on this machine (.ci/install installs it)")]
    Missing { image: String, program: String },
    #[error("building \"{image}\": {what}: {source}")]
    Io { image: String, what: String, source: std::io::Error },
    #[error("building \"{image}\": {path} cannot be stored in a tar header (path too long)")]
    LongPath { image: String, path: String },
}

/// What goes at one path of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Dir(u32),
    /// A file of this machine (symbolic links followed), with its mode.
    File(PathBuf),
    Link(String),
    Text(Vec<u8>, u32),
}

/// The content of one image, before it is written.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub key: &'static str,
    entries: BTreeMap<String, Source>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
}

/// A built image in the cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Built {
    pub key: String,
    /// Hex sha256 of the manifest, the config and the layer (their blob names).
    pub manifest: String,
    pub config: String,
    pub layer: String,
}

impl Built {
    /// The manifest's bytes, read from the cache.
    pub fn manifest_bytes(&self, cache: &Cache) -> std::io::Result<Vec<u8>> {
        std::fs::read(cache.blob(&self.manifest))
    }
}

fn io(image: &str, what: impl Into<String>) -> impl FnOnce(std::io::Error) -> WorkloadError {
    let (image, what) = (image.to_string(), what.into());
    move |source| WorkloadError::Io { image, what, source }
}

/// The recipe of `image` (any tag: the lab plays every tag of a catalogued image with the same
/// program). `tutor` is the executable `@tutor` links stand for.
pub fn recipe(image: &str, tutor: &Path) -> Result<Recipe, WorkloadError> {
    let c: Catalogued =
        images::catalogued(image).ok_or_else(|| WorkloadError::NotCatalogued { image: image.into() })?;
    if !BUILT.contains(&c.key) {
        return Err(WorkloadError::NotBuilt { image: image.into(), key: c.key.into() });
    }
    let machine_path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into());
    let missing = |program: &str| WorkloadError::Missing { image: image.into(), program: program.into() };
    let mut r = Recipe {
        key: c.key,
        entries: BTreeMap::new(),
        entrypoint: c.entrypoint.iter().map(|s| s.to_string()).collect(),
        cmd: c.cmd.iter().map(|s| s.to_string()).collect(),
    };
    for d in ["/etc", "/root", "/run", "/var", "/usr/local/bin"] {
        r.entries.insert(d.into(), Source::Dir(0o755));
    }
    r.entries.insert("/root".into(), Source::Dir(0o700));
    r.entries.insert("/tmp".into(), Source::Dir(0o1777));
    let mut users = vec!["root:x:0:0:root:/root:/bin/sh".to_string()];
    let mut groups = vec!["root:x:0:".to_string()];
    if !NO_SHELL.contains(&c.key) {
        let busybox = images::which("busybox", &machine_path).ok_or_else(|| missing("busybox"))?;
        r.add_program("/bin/busybox", &busybox, image)?;
        let out = std::process::Command::new(&busybox).arg("--list").output().map_err(io(image, "busybox --list"))?;
        for applet in String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|a| !a.is_empty()) {
            if applet != "busybox" {
                r.entries.entry(format!("/bin/{applet}")).or_insert_with(|| Source::Link("busybox".into()));
            }
        }
    }
    for program in c.needs.iter().filter(|p| **p != "busybox") {
        match built_program(program) {
            Some(p) => r.add_program(&format!("/usr/local/bin/{program}"), &p, image)?,
            None => {
                let p = images::which(program, &machine_path).ok_or_else(|| missing(program))?;
                r.add_program(&p.display().to_string(), &p, image)?;
            }
        }
    }
    for (link, target) in c.links {
        match (*target, target.strip_prefix("@built/")) {
            ("@tutor", _) => r.add_program(link, tutor, image)?,
            (_, Some(program)) => {
                let p = built_program(program).ok_or_else(|| missing(program))?;
                r.add_program(link, &p, image)?;
            }
            (t, None) => {
                r.entries.insert(link.to_string(), Source::Link(t.to_string()));
            }
        }
    }
    if c.key == "nginx" {
        // Debian's nginx as the lab runs it: its configuration, the default site's pages, the
        // directories it writes, and its worker user.
        for tree in ["/etc/nginx", "/usr/share/nginx", "/var/www/html"] {
            r.add_tree(Path::new(tree), image)?;
        }
        for d in ["/var/lib/nginx", "/var/log/nginx"] {
            r.entries.insert(d.into(), Source::Dir(0o755));
        }
        users.push("www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin".into());
        groups.push("www-data:x:33:".into());
    }
    if c.needs.contains(&"curl") {
        let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if bundle.exists() {
            r.entries.insert(bundle.display().to_string(), Source::File(bundle.into()));
        }
    }
    users.push("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin".into());
    groups.push("nogroup:x:65534:".into());
    let lines = |v: Vec<String>| (v.join("\n") + "\n").into_bytes();
    r.entries.insert("/etc/passwd".into(), Source::Text(lines(users), 0o644));
    r.entries.insert("/etc/group".into(), Source::Text(lines(groups), 0o644));
    r.entries.insert(
        "/etc/nsswitch.conf".into(),
        Source::Text(b"passwd: files\ngroup: files\nhosts: files dns\n".to_vec(), 0o644),
    );
    Ok(r)
}

/// A program `k8s/build.sh` built (agnhost, http-echo, …), where it exists.
fn built_program(name: &str) -> Option<PathBuf> {
    images::BUILT.iter().find(|b| b.file_name() == name).map(|b| upstream::path(*b)).filter(|p| p.exists())
}

impl Recipe {
    /// A program at `at`, and the shared libraries (and loader) it loads, at the paths `ldd`
    /// names.
    fn add_program(&mut self, at: &str, file: &Path, image: &str) -> Result<(), WorkloadError> {
        self.entries.insert(at.to_string(), Source::File(file.to_path_buf()));
        for lib in shared_libraries(file).map_err(io(image, format!("ldd {}", file.display())))? {
            self.entries.entry(lib.display().to_string()).or_insert(Source::File(lib));
        }
        Ok(())
    }

    /// A directory of this machine as it is: files, directories and symbolic links.
    fn add_tree(&mut self, root: &Path, image: &str) -> Result<(), WorkloadError> {
        let meta = std::fs::symlink_metadata(root).map_err(io(image, format!("reading {}", root.display())))?;
        let at = root.display().to_string();
        if meta.file_type().is_symlink() {
            let t = std::fs::read_link(root).map_err(io(image, format!("reading {}", root.display())))?;
            self.entries.insert(at, Source::Link(t.display().to_string()));
        } else if meta.is_dir() {
            self.entries.insert(at, Source::Dir(meta.permissions().mode() & 0o7777));
            let rd = std::fs::read_dir(root).map_err(io(image, format!("reading {}", root.display())))?;
            for e in rd {
                let e = e.map_err(io(image, format!("reading {}", root.display())))?;
                self.add_tree(&e.path(), image)?;
            }
        } else if meta.is_file() {
            self.entries.insert(at, Source::File(root.to_path_buf()));
        }
        Ok(())
    }

    /// The image's config: entrypoint, command and PATH from the catalogue, the one layer.
    fn config(&self, layer: &str) -> Vec<u8> {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let list = |v: &[String]| if v.is_empty() { serde_json::Value::Null } else { serde_json::json!(v) };
        let config = serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {
                "Env": [format!("PATH={PATH}")],
                "Entrypoint": list(&self.entrypoint),
                "Cmd": list(&self.cmd),
                "WorkingDir": "/",
            },
            "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer}")] },
            "history": [{ "created_by": format!("tutor: the lab catalogue's {} from this machine's programs", self.key) }],
        });
        serde_json::to_vec(&config).expect("a JSON value serialises")
    }

    /// A digest of everything the layer is made from: paths, kinds, and for files their source
    /// path, size, modification time and mode. Equal fingerprints, equal layers.
    fn fingerprint(&self) -> std::io::Result<String> {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        h.update(FORMAT.as_bytes());
        h.update(&self.config("-"));
        for (path, src) in &self.entries {
            h.update(path.as_bytes());
            match src {
                Source::Dir(m) => h.update(format!("\0d{m}\0").as_bytes()),
                Source::Link(t) => h.update(format!("\0l{t}\0").as_bytes()),
                Source::Text(t, m) => {
                    h.update(format!("\0t{m}:{}\0", t.len()).as_bytes());
                    h.update(t);
                }
                Source::File(p) => {
                    let m = std::fs::metadata(p)?;
                    let line =
                        format!("\0f{}:{}:{}.{}:{}\0", p.display(), m.len(), m.mtime(), m.mtime_nsec(), m.mode());
                    h.update(line.as_bytes());
                }
            }
        }
        Ok(hex(h.finish().as_ref()))
    }
}

/// The libraries `ldd` lists for `file` (none for a static program or a script).
fn shared_libraries(file: &Path) -> std::io::Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd").arg(file).output()?;
    if !out.status.success() {
        return Ok(vec![]);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The image cache: `blobs/<sha256>` (manifests, configs, layers) and `index/<fingerprint>`.
#[derive(Debug, Clone)]
pub struct Cache {
    pub dir: PathBuf,
}

impl Cache {
    /// `${XDG_CACHE_HOME:-$HOME/.cache}/tutor/images`, or `TUTOR_IMAGE_CACHE`.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("TUTOR_IMAGE_CACHE").filter(|d| !d.is_empty()) {
            return PathBuf::from(d);
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| std::env::temp_dir().join("tutor-cache"));
        base.join("tutor/images")
    }

    pub fn blob(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs").join(digest)
    }

    /// The image `image` stands for, from the cache when its recipe is unchanged, else built.
    /// Returns it and whether it was built now.
    pub fn get_or_build(&self, image: &str, tutor: &Path) -> Result<(Built, bool), WorkloadError> {
        let recipe = recipe(image, tutor)?;
        let fp = recipe.fingerprint().map_err(io(image, "reading the image's files"))?;
        let index = self.dir.join("index").join(&fp);
        if let Ok(text) = std::fs::read(&index)
            && let Ok(b) = serde_json::from_slice::<Built>(&text)
            && [&b.manifest, &b.config, &b.layer].iter().all(|d| self.blob(d).exists())
        {
            return Ok((b, false));
        }
        let built = self.build(&recipe, image)?;
        let json = serde_json::to_vec(&built).expect("serialises");
        write_atomic(&index, &json).map_err(io(image, format!("writing {}", index.display())))?;
        Ok((built, true))
    }

    fn build(&self, recipe: &Recipe, image: &str) -> Result<Built, WorkloadError> {
        let blobs = self.dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(io(image, format!("creating {}", blobs.display())))?;
        let tmp = tempfile::NamedTempFile::new_in(&blobs).map_err(io(image, "creating a layer file"))?;
        let mut w = Hashing::new(std::io::BufWriter::new(tmp));
        write_layer(&mut w, recipe, image)?;
        let (layer, size, buf) = w.finish();
        let tmp = buf.into_inner().map_err(|e| io(image, "writing the layer")(e.into_error()))?;
        tmp.persist(self.blob(&layer)).map_err(|e| io(image, "storing the layer")(e.error))?;
        let config = recipe.config(&layer);
        let config_digest = self.put(&config).map_err(io(image, "storing the config"))?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": { "mediaType": CONFIG_TYPE, "digest": format!("sha256:{config_digest}"), "size": config.len() },
            "layers": [{ "mediaType": LAYER_TYPE, "digest": format!("sha256:{layer}"), "size": size }],
        });
        let manifest = serde_json::to_vec(&manifest).expect("serialises");
        let manifest_digest = self.put(&manifest).map_err(io(image, "storing the manifest"))?;
        Ok(Built { key: recipe.key.to_string(), manifest: manifest_digest, config: config_digest, layer })
    }

    /// Store `bytes` as a blob; its digest.
    fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let d = hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
        let p = self.blob(&d);
        if !p.exists() {
            write_atomic(&p, bytes)?;
        }
        Ok(d)
    }

    /// A Docker archive (`docker save`'s format, which `docker load` and `kind load
    /// image-archive` read) of `images`, each `(built image, its references)`, written to `out`.
    pub fn write_archive(&self, images: &[(Built, Vec<String>)], out: &Path) -> std::io::Result<()> {
        let tmp = tempfile::NamedTempFile::new_in(out.parent().unwrap_or(Path::new(".")))?;
        let mut w = std::io::BufWriter::new(tmp);
        let mut manifest = Vec::new();
        let mut done = std::collections::BTreeSet::new();
        for (b, refs) in images {
            if done.insert(b.config.clone()) {
                let config = std::fs::read(self.blob(&b.config))?;
                tar_entry(&mut w, &format!("{}.json", b.config), &TarKind::File(config.len() as u64, 0o644), "")?;
                w.write_all(&config)?;
                pad(&mut w, config.len() as u64)?;
                tar_entry(&mut w, &format!("{}/", b.layer), &TarKind::Dir(0o755), "")?;
                let mut f = std::fs::File::open(self.blob(&b.layer))?;
                let len = f.metadata()?.len();
                tar_entry(&mut w, &format!("{}/layer.tar", b.layer), &TarKind::File(len, 0o644), "")?;
                std::io::copy(&mut f, &mut w)?;
                pad(&mut w, len)?;
            }
            manifest.push(serde_json::json!({
                "Config": format!("{}.json", b.config),
                "RepoTags": refs,
                "Layers": [format!("{}/layer.tar", b.layer)],
            }));
        }
        let m = serde_json::to_vec(&manifest).expect("serialises");
        tar_entry(&mut w, "manifest.json", &TarKind::File(m.len() as u64, 0o644), "")?;
        w.write_all(&m)?;
        pad(&mut w, m.len() as u64)?;
        w.write_all(&[0u8; 1024])?;
        let tmp = w.into_inner().map_err(|e| e.into_error())?;
        tmp.persist(out).map_err(|e| e.error)?;
        Ok(())
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A writer that hashes (sha256) and counts what goes through it.
struct Hashing<W> {
    inner: W,
    ctx: ring::digest::Context,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing { inner, ctx: ring::digest::Context::new(&ring::digest::SHA256), len: 0 }
    }

    fn finish(self) -> (String, u64, W) {
        (hex(self.ctx.finish().as_ref()), self.len, self.inner)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.ctx.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

enum TarKind {
    File(u64, u32),
    Dir(u32),
    Link,
}

/// One ustar header (owner root, mtime 0).
fn tar_entry(w: &mut impl Write, name: &str, kind: &TarKind, link: &str) -> std::io::Result<()> {
    let mut h = [0u8; 512];
    let too_long = || std::io::Error::other(format!("{name}: too long for a tar header"));
    let (prefix, rest) = if name.len() <= 100 {
        ("", name)
    } else {
        let cut = name[..name.len().min(156)].rfind('/').filter(|&i| name.len() - i - 1 <= 100).ok_or_else(too_long)?;
        (&name[..cut], &name[cut + 1..])
    };
    if link.len() > 100 {
        return Err(std::io::Error::other(format!("{name}: link target too long for a tar header")));
    }
    let put = |h: &mut [u8; 512], at: usize, s: &[u8]| h[at..at + s.len()].copy_from_slice(s);
    let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
        let s = format!("{v:0w$o}", w = width - 1);
        h[at..at + width - 1].copy_from_slice(s.as_bytes());
    };
    put(&mut h, 0, rest.as_bytes());
    let (mode, size, flag) = match kind {
        TarKind::File(size, mode) => (*mode, *size, b'0'),
        TarKind::Dir(mode) => (*mode, 0, b'5'),
        TarKind::Link => (0o777, 0, b'2'),
    };
    octal(&mut h, 100, 8, mode as u64);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size);
    octal(&mut h, 136, 12, 0);
    h[156] = flag;
    put(&mut h, 157, link.as_bytes());
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    put(&mut h, 265, b"root");
    put(&mut h, 297, b"root");
    put(&mut h, 345, prefix.as_bytes());
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| b as u64).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    w.write_all(&h)
}

fn pad(w: &mut impl Write, len: u64) -> std::io::Result<()> {
    let rem = (512 - len % 512) % 512;
    w.write_all(&vec![0u8; rem as usize])
}

/// The layer: every entry of the recipe and every parent directory it needs, sorted.
fn write_layer(w: &mut impl Write, recipe: &Recipe, image: &str) -> Result<(), WorkloadError> {
    let mut entries = recipe.entries.clone();
    for path in recipe.entries.keys() {
        let mut p = Path::new(path).parent();
        while let Some(d) = p.filter(|d| *d != Path::new("/")) {
            entries.entry(d.display().to_string()).or_insert(Source::Dir(0o755));
            p = d.parent();
        }
    }
    for (path, src) in &entries {
        let name = path.trim_start_matches('/');
        let e = |what: &str| io(image, format!("{what} {path}"));
        let long = |_| WorkloadError::LongPath { image: image.into(), path: path.clone() };
        match src {
            Source::Dir(m) => tar_entry(w, &format!("{name}/"), &TarKind::Dir(*m), "").map_err(long)?,
            Source::Link(t) => tar_entry(w, name, &TarKind::Link, t).map_err(long)?,
            Source::Text(t, m) => {
                tar_entry(w, name, &TarKind::File(t.len() as u64, *m), "").map_err(long)?;
                w.write_all(t).map_err(e("writing"))?;
                pad(w, t.len() as u64).map_err(e("writing"))?;
            }
            Source::File(p) => {
                let mut f = std::fs::File::open(p).map_err(e("reading"))?;
                let m = f.metadata().map_err(e("reading"))?;
                let len = m.len();
                tar_entry(w, name, &TarKind::File(len, m.permissions().mode() & 0o7777), "").map_err(long)?;
                let copied = std::io::copy(&mut (&mut f).take(len), w).map_err(e("copying"))?;
                if copied != len {
                    return Err(io(image, format!("copying {path}"))(std::io::Error::other("file shrank while read")));
                }
                pad(w, len).map_err(e("writing"))?;
            }
        }
    }
    w.write_all(&[0u8; 1024]).map_err(io(image, "writing the layer"))?;
    Ok(())
}

/// The image references a tutorial's blocks name (`--image=X`, `--image X`, `image: X`), in
/// order, once each: the images the kind backend prepares before the tutorial's pods need them.
pub fn references(texts: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for text in texts {
        let words: Vec<&str> = text.as_ref().split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            let candidate = if let Some(v) = w.strip_prefix("--image=") {
                Some(v)
            } else if *w == "--image" || *w == "image:" || *w == "-image:" {
                words.get(i + 1).copied()
            } else {
                None
            };
            let Some(v) = candidate else { continue };
            let v = v.trim_matches(|c| c == '"' || c == '\'');
            let plain = v.chars().all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
            if plain && ImageRef::parse(v).is_ok() && !out.iter().any(|o| o == v) {
                out.push(v.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_in_commands_and_manifests() {
        let refs = references([
            "kubectl create deployment hello --image=nginx --replicas=2",
            "spec:\n  containers:\n  - name: c\n    image: \"busybox:1.36\"\n    image: nginx\n",
            "kubectl run x --image registry.k8s.io/e2e-test-images/agnhost:2.39 -- pause",
            "image: {{ x }}",
        ]);
        assert_eq!(refs, ["nginx", "busybox:1.36", "registry.k8s.io/e2e-test-images/agnhost:2.39"]);
    }

    #[test]
    fn uncatalogued_and_unbuilt_images_say_why() {
        let t = Path::new("/bin/true");
        assert!(matches!(recipe("example.com/x:1", t), Err(WorkloadError::NotCatalogued { .. })));
        let e = recipe("registry.k8s.io/pause:3.10", t).unwrap_err();
        assert!(e.to_string().contains("does not build \"registry.k8s.io/pause:3.10\""), "{e}");
    }

    /// The layer of the busybox image: the program, its applets as links, the users; a second
    /// build is the cached one, byte for byte the same digest.
    #[test]
    fn busybox_builds_once_and_reads_back_as_a_tar() {
        if images::which("busybox", &std::env::var("PATH").unwrap_or_default()).is_none() {
            eprintln!("busybox is not installed: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache { dir: dir.path().to_path_buf() };
        let (a, fresh) = cache.get_or_build("busybox", Path::new("/bin/true")).unwrap();
        assert!(fresh);
        let (b, fresh) = cache.get_or_build("busybox:1.36", Path::new("/bin/true")).unwrap();
        assert!(!fresh);
        assert_eq!(a, b);
        // The layer is what its name says.
        let layer = std::fs::read(cache.blob(&a.layer)).unwrap();
        assert_eq!(hex(ring::digest::digest(&ring::digest::SHA256, &layer).as_ref()), a.layer);
        // GNU tar reads it: busybox, an applet link, the users.
        let out = std::process::Command::new("tar").arg("-tvf").arg(cache.blob(&a.layer)).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let list = String::from_utf8_lossy(&out.stdout);
        assert!(list.contains(" bin/busybox\n"), "{list}");
        assert!(list.contains(" bin/wget -> busybox\n"), "{list}");
        assert!(list.contains(" etc/passwd\n"), "{list}");
        // The config names the layer and the catalogue's command.
        let config: serde_json::Value = serde_json::from_slice(&std::fs::read(cache.blob(&a.config)).unwrap()).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], format!("sha256:{}", a.layer));
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));
        // A Docker archive of it lists the config, the layer and the manifest.
        let archive = dir.path().join("a.tar");
        cache.write_archive(&[(a.clone(), vec!["busybox:latest".into()])], &archive).unwrap();
        let out = std::process::Command::new("tar").arg("-tf").arg(&archive).output().unwrap();
        let list = String::from_utf8_lossy(&out.stdout);
        assert!(list.contains(&format!("{}/layer.tar", a.layer)) && list.contains("manifest.json"), "{list}");
    }
}
