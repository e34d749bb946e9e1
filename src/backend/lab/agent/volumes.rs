//! Pod volumes, the kubelet volume manager's role: each volume of a pod resolved on the node
//! (`emptyDir`, `hostPath`, and the API-backed `configMap`, `secret`, `downwardAPI` and
//! `projected`, with its service-account token from the TokenRequest API), written under the
//! pod's directory the way the kubelet's atomic writer does (a timestamped directory, `..data`
//! pointing at it, one link per top-level name), and mounted where the containers'
//! `volumeMounts` say (see `sandbox::Rootfs`). Content is rewritten when its source changes;
//! the mounts themselves are made once, when the pod's sandbox is created.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Pod, Secret, ServiceAccount, Volume};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::backend::lab::sandbox::VolumeMount;

/// A volume that cannot be set up; the pod waits in `ContainerCreating` with a `FailedMount`
/// event carrying this message, as with the kubelet.
#[derive(Debug, Clone, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {cause}")]
pub struct MountError {
    pub volume: String,
    // The cause is part of the event's message, not a `source()`, so chains print it once.
    pub cause: MountCause,
}

/// Why one volume cannot be set up, in the kubelet's words where it has them. Errors of other
/// crates are shared (`Arc`) so that sync inputs stay cloneable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MountCause {
    #[error("{0}")]
    Api(Arc<kube::Error>),
    /// `kind` is `configmap` or `secret`, as the kubelet writes it.
    #[error("{kind} \"{name}\" not found")]
    NoSource { kind: &'static str, name: String },
    #[error("references non-existent secret key: {0}")]
    NoSecretKey(String),
    #[error("configmap references non-existent config key: {0}")]
    NoConfigKey(String),
    #[error(transparent)]
    Field(#[from] super::env::EnvError),
    #[error("{0}: only fieldRef items are supported on the lab")]
    NotFieldRef(String),
    #[error("the lab has no volume plugin for {0}")]
    NoPlugin(String),
    #[error("failed to fetch token: {0}")]
    Token(Arc<kube::Error>),
    #[error("failed to fetch token: the API server returned no token")]
    NoToken,
    /// A file operation on the node; `path` as the message names it.
    #[error("{path}: {source}")]
    Io { path: String, source: Arc<std::io::Error> },
    #[error("hostPath type check failed: {path} is not {what}")]
    NotType { path: String, what: &'static str },
    #[error("hostPath type check failed: {0} does not exist")]
    Missing(String),
    #[error("container {container}: volumeMount refers to an unknown volume \"{volume}\"")]
    UnknownVolume { container: String, volume: String },
    #[error("subPath \"{0}\" must be a relative path without ..")]
    BadSubPath(String),
}

fn io(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> MountCause {
    move |e| MountCause::Io { path: path.to_string(), source: Arc::new(e) }
}

/// One file of an API-backed volume: path inside the volume, bytes, mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// What a volume is made of, once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Files written by the agent (configMap, secret, downwardAPI, projected).
    Files(Vec<File>),
    /// An empty directory of the pod's own.
    EmptyDir,
    /// A path of the node's (`hostPath`), with its type check.
    HostPath { path: String, type_: String },
}

/// Service-account tokens handed out per pod volume, renewed at 80 % of their life (the
/// kubelet's rule).
#[derive(Default)]
pub struct Tokens {
    cache: Mutex<HashMap<TokenKey, Issued>>,
}

/// Pod UID, volume, path in the volume.
type TokenKey = (String, String, String);

/// The token, when it was issued, when it expires.
type Issued = (String, SystemTime, SystemTime);

impl Tokens {
    /// Forget a pod's tokens (it was deleted).
    pub fn forget(&self, uid: &str) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| k.0 != uid);
    }
}

const DEFAULT_MODE: i32 = 0o644;

fn mode_of(item: Option<i32>, default: Option<i32>) -> u32 {
    (item.or(default).unwrap_or(DEFAULT_MODE) & 0o777) as u32
}

/// The API object a `configMap` or `secret` volume (or projected source) takes its keys from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyed {
    ConfigMap,
    Secret,
}

impl Keyed {
    /// As the kubelet's messages name it.
    fn word(self) -> &'static str {
        match self {
            Keyed::ConfigMap => "configmap",
            Keyed::Secret => "secret",
        }
    }
}

/// Fetch ConfigMap or Secret `name` and select its keys into files ([`select`]); an object
/// that does not exist is an error unless `optional` (then there are no files).
async fn fetch_keys(
    client: &Client,
    namespace: &str,
    kind: Keyed,
    name: &str,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Vec<File>, MountCause> {
    let api = |e| MountCause::Api(Arc::new(e));
    let data = match kind {
        Keyed::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(api)?
            .map(|o| config_map_data(&o)),
        Keyed::Secret => Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(api)?
            .map(|o| secret_data(&o)),
    };
    match data {
        Some(data) => select(kind, &data, items, default_mode, optional),
        None if optional => Ok(vec![]),
        None => Err(MountCause::NoSource { kind: kind.word(), name: name.to_string() }),
    }
}

/// Select keys of a ConfigMap or Secret into files: all of them, or `items` (a key missing
/// from the object is an error unless `optional`).
fn select(
    kind: Keyed,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Vec<File>, MountCause> {
    match items.filter(|i| !i.is_empty()) {
        None => Ok(data
            .iter()
            .map(|(k, v)| File { path: k.clone(), data: v.clone(), mode: mode_of(None, default_mode) })
            .collect()),
        Some(items) => {
            let mut out = vec![];
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        out.push(File { path: it.path.clone(), data: v.clone(), mode: mode_of(it.mode, default_mode) })
                    }
                    None if optional => {}
                    None if kind == Keyed::Secret => {
                        return Err(MountCause::NoSecretKey(it.key.clone()));
                    }
                    None => return Err(MountCause::NoConfigKey(it.key.clone())),
                }
            }
            Ok(out)
        }
    }
}

fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut m: BTreeMap<String, Vec<u8>> =
        cm.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    m.extend(cm.binary_data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
    m
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut m: BTreeMap<String, Vec<u8>> =
        s.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    m.extend(s.string_data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())));
    m
}

/// A `downwardAPI` file's content for a `fieldRef` path: labels and annotations as
/// `key="value"` lines, sorted; other fields as the environment gets them.
fn downward_field(pod: &Pod, path: &str, pod_ip: Option<&str>, host_ip: &str) -> Result<String, super::env::EnvError> {
    let map = match path {
        "metadata.labels" => Some(&pod.metadata.labels),
        "metadata.annotations" => Some(&pod.metadata.annotations),
        _ => None,
    };
    if let Some(map) = map {
        let lines: Vec<String> =
            map.iter().flatten().map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone()))).collect();
        return Ok(lines.join("\n"));
    }
    super::env::field(pod, path, pod_ip, host_ip)
}

/// Where to fetch API objects for a pod's volumes.
pub struct Source<'a> {
    pub client: &'a Client,
    pub tokens: &'a Tokens,
    pub host_ip: String,
}

/// Resolve every volume of `pod` into its content, fetching what it needs from the API.
pub async fn resolve(pod: &Pod, src: &Source<'_>) -> Result<BTreeMap<String, Content>, MountError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
    let mut out = BTreeMap::new();
    for v in pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        let fail = |cause: MountCause| MountError { volume: v.name.clone(), cause };
        let content = if v.empty_dir.is_some() {
            Content::EmptyDir
        } else if let Some(h) = &v.host_path {
            Content::HostPath { path: h.path.clone(), type_: h.type_.clone().unwrap_or_default() }
        } else if let Some(c) = &v.config_map {
            let optional = c.optional.unwrap_or(false);
            let (items, mode) = (c.items.as_ref(), c.default_mode);
            Content::Files(
                fetch_keys(src.client, &ns, Keyed::ConfigMap, &c.name, items, mode, optional).await.map_err(fail)?,
            )
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.as_deref().unwrap_or_default();
            let optional = s.optional.unwrap_or(false);
            let (items, mode) = (s.items.as_ref(), s.default_mode);
            Content::Files(fetch_keys(src.client, &ns, Keyed::Secret, name, items, mode, optional).await.map_err(fail)?)
        } else if let Some(d) = &v.downward_api {
            let mut files = vec![];
            for it in d.items.iter().flatten() {
                let text = match &it.field_ref {
                    Some(f) => downward_field(pod, &f.field_path, pod_ip.as_deref(), &src.host_ip)
                        .map_err(|e| fail(e.into()))?,
                    None => return Err(fail(MountCause::NotFieldRef(it.path.clone()))),
                };
                files.push(File {
                    path: it.path.clone(),
                    data: text.into_bytes(),
                    mode: mode_of(it.mode, d.default_mode),
                });
            }
            Content::Files(files)
        } else if let Some(p) = &v.projected {
            let mut files = vec![];
            for s in p.sources.iter().flatten() {
                if let Some(t) = &s.service_account_token {
                    let token = token(pod, &v.name, t, src).await.map_err(fail)?;
                    files.push(File {
                        path: t.path.clone(),
                        data: token.into_bytes(),
                        mode: mode_of(None, p.default_mode),
                    });
                }
                let keyed = [
                    s.config_map.as_ref().map(|c| (Keyed::ConfigMap, &c.name, c.items.as_ref(), c.optional)),
                    s.secret.as_ref().map(|c| (Keyed::Secret, &c.name, c.items.as_ref(), c.optional)),
                ];
                for (kind, name, items, optional) in keyed.into_iter().flatten() {
                    let optional = optional.unwrap_or(false);
                    files.extend(
                        fetch_keys(src.client, &ns, kind, name, items, p.default_mode, optional).await.map_err(fail)?,
                    );
                }
                if let Some(d) = &s.downward_api {
                    for it in d.items.iter().flatten() {
                        let Some(f) = &it.field_ref else {
                            return Err(fail(MountCause::NotFieldRef(it.path.clone())));
                        };
                        let text = downward_field(pod, &f.field_path, pod_ip.as_deref(), &src.host_ip)
                            .map_err(|e| fail(e.into()))?;
                        files.push(File {
                            path: it.path.clone(),
                            data: text.into_bytes(),
                            mode: mode_of(it.mode, p.default_mode),
                        });
                    }
                }
            }
            Content::Files(files)
        } else {
            return Err(fail(MountCause::NoPlugin(volume_kind(v))));
        };
        out.insert(v.name.clone(), content);
    }
    Ok(out)
}

/// The volume source's field name (`persistentVolumeClaim`, `nfs`, …) for messages.
fn volume_kind(v: &Volume) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_object().and_then(|o| o.keys().find(|k| k.as_str() != "name").cloned()))
        .unwrap_or_else(|| "this volume".into())
}

/// A token for the pod's service account from the TokenRequest API, bound to the pod, reused
/// until 80 % of its life has passed.
async fn token(
    pod: &Pod,
    volume: &str,
    p: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection,
    src: &Source<'_>,
) -> Result<String, MountCause> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let key = (uid.clone(), volume.to_string(), p.path.clone());
    let now = SystemTime::now();
    if let Some((t, issued, expires)) = src.tokens.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        let life = expires.duration_since(*issued).unwrap_or_default();
        if now < *issued + life.mul_f64(0.8) {
            return Ok(t.clone());
        }
    }
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let sa = pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into());
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: p.audience.iter().cloned().collect(),
            expiration_seconds: Some(p.expiration_seconds.unwrap_or(3600)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: Some(uid),
            }),
        },
        ..Default::default()
    };
    let got = Api::<ServiceAccount>::namespaced(src.client.clone(), &ns)
        .create_token_request(&sa, &PostParams::default(), &req)
        .await
        .map_err(|e| MountCause::Token(Arc::new(e)))?;
    let status = got.status.ok_or(MountCause::NoToken)?;
    let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(status.expiration_timestamp.0.timestamp().max(0) as u64);
    src.tokens.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (status.token.clone(), now, expires));
    Ok(status.token)
}

/// Where a pod's volume lives on the node (the kubelet's layout under the pod's directory).
pub fn volume_dir(pod_dir: &Path, name: &str, content: &Content) -> PathBuf {
    let plugin = match content {
        Content::EmptyDir => "kubernetes.io~empty-dir",
        _ => "kubernetes.io~projected",
    };
    pod_dir.join("volumes").join(plugin).join(name)
}

/// Write (or refresh) each volume under `pod_dir`. `node_dir` keeps the paths that `hostPath`
/// volumes ask to create, so that the lab never writes into the machine's own filesystem.
pub fn write_all(pod_dir: &Path, node_dir: &Path, contents: &BTreeMap<String, Content>) -> Result<(), MountError> {
    for (name, content) in contents {
        let fail = |cause: MountCause| MountError { volume: name.clone(), cause };
        let dir = volume_dir(pod_dir, name, content);
        match content {
            Content::EmptyDir => std::fs::create_dir_all(&dir).map_err(|e| fail(io(dir.display())(e)))?,
            Content::Files(files) => {
                write_payload(&dir, files, SystemTime::now()).map_err(|e| fail(io(dir.display())(e)))?
            }
            Content::HostPath { path, type_ } => {
                host_source(node_dir, path, type_).map_err(fail)?;
            }
        }
    }
    Ok(())
}

/// The node path a `hostPath` volume mounts, after its type check: the node's own path when it
/// exists (or was created before by a pod of this node), else, for the `…OrCreate` types, a
/// path created under the node's directory.
pub fn host_source(node_dir: &Path, path: &str, type_: &str) -> Result<PathBuf, MountCause> {
    let private = node_dir.join("hostpath").join(path.trim_start_matches('/'));
    let existing = [private.clone(), PathBuf::from(path)].into_iter().find(|p| p.symlink_metadata().is_ok());
    use std::os::unix::fs::FileTypeExt;
    let check = |p: &Path| -> Result<(), MountCause> {
        let t = std::fs::metadata(p).map_err(io(path))?.file_type();
        let ok = match type_ {
            "Directory" | "DirectoryOrCreate" => t.is_dir(),
            "File" | "FileOrCreate" => t.is_file(),
            "Socket" => t.is_socket(),
            "CharDevice" => t.is_char_device(),
            "BlockDevice" => t.is_block_device(),
            _ => true,
        };
        let what = match type_ {
            "Directory" | "DirectoryOrCreate" => "a directory",
            "File" | "FileOrCreate" => "a file",
            "Socket" => "a socket file",
            "CharDevice" => "a character device",
            "BlockDevice" => "a block device",
            _ => "",
        };
        if ok { Ok(()) } else { Err(MountCause::NotType { path: path.to_string(), what }) }
    };
    match existing {
        Some(p) => check(&p).map(|_| p),
        None => match type_ {
            "DirectoryOrCreate" => {
                std::fs::create_dir_all(&private).map_err(io(path))?;
                Ok(private)
            }
            "FileOrCreate" => {
                if let Some(parent) = private.parent() {
                    std::fs::create_dir_all(parent).map_err(io(path))?;
                }
                std::fs::File::create(&private).map_err(io(path))?;
                Ok(private)
            }
            // No type: the runtime creates a missing directory (here, under the node's).
            "" => {
                std::fs::create_dir_all(&private).map_err(io(path))?;
                Ok(private)
            }
            _ => Err(MountCause::Missing(path.to_string())),
        },
    }
}

/// The kubelet's atomic writer: files go to a new timestamped directory, `..data` is switched to
/// it in one rename, each top-level name links through `..data`, and the old directory goes.
/// Nothing happens when the content is unchanged.
pub fn write_payload(dir: &Path, files: &[File], now: SystemTime) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    let old = std::fs::read_link(&data_link).ok();
    if let Some(old) = &old
        && same_payload(&dir.join(old), files)
    {
        return Ok(());
    }
    let stamp = k8s_openapi::chrono::DateTime::<k8s_openapi::chrono::Utc>::from(now)
        .format("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let ts = dir.join(&stamp);
    std::fs::create_dir(&ts)?;
    for f in files {
        let p = ts.join(&f.path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, &f.data)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode))?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, &data_link)?;
    let top: std::collections::BTreeSet<String> =
        files.iter().filter_map(|f| f.path.split('/').next().map(str::to_string)).collect();
    for name in &top {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            if name != "..data" && name != stamp {
                std::fs::remove_dir_all(entry.path())?;
            }
        } else if !top.contains(&name) && entry.file_type()?.is_symlink() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn same_payload(dir: &Path, files: &[File]) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mut on_disk = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { return false };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => on_disk += 1,
                Err(_) => return false,
            }
        }
    }
    on_disk == files.len()
        && files.iter().all(|f| {
            let p = dir.join(&f.path);
            std::fs::read(&p).is_ok_and(|d| d == f.data)
                && std::fs::metadata(&p).is_ok_and(|m| m.permissions().mode() & 0o777 == f.mode)
        })
}

/// The mounts of a pod: every `volumeMounts[]` of its init and app containers (the pod's
/// containers share one mount namespace on the lab: a path mounted by one container is seen by
/// all; the first mount of a path wins), with `subPath` resolved inside the volume.
/// API-backed volumes are always read-only, as the kubelet mounts them.
pub fn mounts(
    pod: &Pod,
    pod_dir: &Path,
    node_dir: &Path,
    contents: &BTreeMap<String, Content>,
) -> Result<Vec<VolumeMount>, MountError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out: Vec<VolumeMount> = vec![];
    let containers = spec.init_containers.iter().flatten().chain(spec.containers.iter());
    for c in containers {
        for m in c.volume_mounts.iter().flatten() {
            let fail = |cause: MountCause| MountError { volume: m.name.clone(), cause };
            let content = contents
                .get(&m.name)
                .ok_or_else(|| fail(MountCause::UnknownVolume { container: c.name.clone(), volume: m.name.clone() }))?;
            let base = match content {
                Content::HostPath { path, type_ } => host_source(node_dir, path, type_).map_err(fail)?,
                other => volume_dir(pod_dir, &m.name, other),
            };
            let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    if Path::new(sub).is_absolute() || Path::new(sub).components().any(|c| c.as_os_str() == "..") {
                        return Err(fail(MountCause::BadSubPath(sub.to_string())));
                    }
                    let p = base.join(sub);
                    if p.symlink_metadata().is_err() && matches!(content, Content::EmptyDir | Content::HostPath { .. })
                    {
                        std::fs::create_dir_all(&p).map_err(|e| fail(io(format!("subPath {sub}"))(e)))?;
                    }
                    p
                }
                None => base,
            };
            let target = PathBuf::from(&m.mount_path);
            if out.iter().any(|v| v.target == target) {
                continue;
            }
            let read_only = m.read_only.unwrap_or(false) || matches!(content, Content::Files(_));
            out.push(VolumeMount { source, target, read_only });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn files(list: &[(&str, &str)]) -> Vec<File> {
        list.iter().map(|(p, d)| File { path: p.to_string(), data: d.as_bytes().to_vec(), mode: 0o644 }).collect()
    }

    #[test]
    fn the_atomic_writer_switches_data_and_links() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        write_payload(&dir, &files(&[("a", "1"), ("sub/b", "2")]), t0).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert_eq!(std::fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
        let first = std::fs::read_link(dir.join("..data")).unwrap();
        assert!(first.to_string_lossy().starts_with("..2027_01_15_"), "{first:?}");
        // Unchanged: nothing moves.
        write_payload(&dir, &files(&[("a", "1"), ("sub/b", "2")]), t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(std::fs::read_link(dir.join("..data")).unwrap(), first);
        // Changed: a new directory, a link removed, the old directory gone.
        write_payload(&dir, &files(&[("a", "3")]), t0 + Duration::from_secs(9)).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
        assert!(dir.join("sub").symlink_metadata().is_err());
        assert!(!dir.join(&first).exists());
        let names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn items_select_keys_and_missing_keys_fail_unless_optional() {
        let data: BTreeMap<String, Vec<u8>> = [("k".to_string(), b"v".to_vec())].into();
        let item = |key: &str| KeyToPath { key: key.into(), path: format!("p/{key}"), mode: Some(0o400) };
        let got = select(Keyed::ConfigMap, &data, Some(&vec![item("k")]), None, false).unwrap();
        assert_eq!(got, vec![File { path: "p/k".into(), data: b"v".to_vec(), mode: 0o400 }]);
        let err = select(Keyed::Secret, &data, Some(&vec![item("x")]), None, false).unwrap_err();
        assert!(matches!(&err, MountCause::NoSecretKey(k) if k == "x"), "{err:?}");
        assert_eq!(err.to_string(), "references non-existent secret key: x");
        assert!(select(Keyed::ConfigMap, &data, Some(&vec![item("x")]), None, true).unwrap().is_empty());
        let all = select(Keyed::ConfigMap, &data, None, Some(0o600), false).unwrap();
        assert_eq!(all[0].mode, 0o600);
    }

    #[test]
    fn downward_labels_are_quoted_lines() {
        let p = pod("metadata: {name: a, labels: {app: web, tier: \"front end\"}}\nspec: {containers: []}\n");
        assert_eq!(downward_field(&p, "metadata.labels", None, "").unwrap(), "app=\"web\"\ntier=\"front end\"");
        assert_eq!(downward_field(&p, "metadata.name", None, "").unwrap(), "a");
    }

    #[test]
    fn host_paths_are_checked_and_created_under_the_node() {
        let tmp = tempfile::tempdir().unwrap();
        let node = tmp.path().join("node");
        let missing = tmp.path().join("nowhere/data");
        let m = missing.to_str().unwrap();
        let err = host_source(&node, m, "Directory").unwrap_err();
        assert!(matches!(err, MountCause::Missing(_)), "{err:?}");
        assert!(err.to_string().contains("does not exist"), "{err}");
        let made = host_source(&node, m, "DirectoryOrCreate").unwrap();
        assert!(made.starts_with(&node) && made.is_dir(), "{made:?}");
        assert!(!missing.exists(), "the machine's own path stays untouched");
        // A second pod finds the same directory.
        assert_eq!(host_source(&node, m, "Directory").unwrap(), made);
        let err = host_source(&node, tmp.path().to_str().unwrap(), "File").unwrap_err().to_string();
        assert!(err.ends_with("is not a file"), "{err}");
    }

    #[test]
    fn mounts_union_containers_resolve_sub_paths_and_refuse_escapes() {
        let p = pod(concat!(
            "metadata: {name: a}\n",
            "spec:\n",
            "  volumes: [{name: cfg, configMap: {name: c}}, {name: scratch, emptyDir: {}}]\n",
            "  initContainers: [{name: i, volumeMounts: [{name: scratch, mountPath: /work}]}]\n",
            "  containers:\n",
            "  - {name: a, volumeMounts: [{name: cfg, mountPath: /etc/cfg}, {name: scratch, mountPath: /work}]}\n",
            "  - {name: b, volumeMounts: [{name: scratch, mountPath: /data/x, subPath: x}]}\n",
        ));
        let tmp = tempfile::tempdir().unwrap();
        let contents: BTreeMap<String, Content> =
            [("cfg".to_string(), Content::Files(vec![])), ("scratch".to_string(), Content::EmptyDir)].into();
        let ms = mounts(&p, tmp.path(), tmp.path(), &contents).unwrap();
        let targets: Vec<_> = ms.iter().map(|m| (m.target.to_str().unwrap(), m.read_only)).collect();
        assert_eq!(targets, vec![("/work", false), ("/etc/cfg", true), ("/data/x", false)]);
        assert!(ms[2].source.ends_with("kubernetes.io~empty-dir/scratch/x") && ms[2].source.is_dir());
        let bad = pod(concat!(
            "metadata: {name: a}\n",
            "spec:\n",
            "  volumes: [{name: scratch, emptyDir: {}}]\n",
            "  containers: [{name: a, volumeMounts: [{name: scratch, mountPath: /x, subPath: ../../etc}]}]\n",
        ));
        let err = mounts(&bad, tmp.path(), tmp.path(), &contents).unwrap_err();
        assert_eq!(err.volume, "scratch");
        let unknown =
            pod("metadata: {name: a}\nspec:\n  containers: [{name: a, volumeMounts: [{name: nope, mountPath: /x}]}]\n");
        assert!(
            mounts(&unknown, tmp.path(), tmp.path(), &contents)
                .unwrap_err()
                .cause
                .to_string()
                .contains("unknown volume")
        );
    }
}
