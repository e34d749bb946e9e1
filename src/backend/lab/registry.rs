//! Where running labs are found: `/run/tutor/labs/<name>/` holds `lab.json` (the supervisor's
//! pid and its targets' thread ids), the control socket, the shims and per-target /etc files.
//! It is the only thing a lab writes outside its namespaces; `gc` removes entries whose
//! supervisor is gone.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabError;
use super::config::Role;

/// Prefix of every kernel object name tutor may create in the root namespace (it creates none
/// today; `gc` still sweeps the prefix so that older or foreign tools' leftovers go too).
pub const PREFIX: &str = "tutor-";

pub fn root() -> PathBuf {
    std::env::var_os("TUTOR_LAB_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/run/tutor/labs"))
}

pub fn dir(name: &str) -> PathBuf {
    root().join(name)
}

pub fn socket(name: &str) -> PathBuf {
    dir(name).join("sock")
}

pub fn shim_dir(name: &str) -> PathBuf {
    dir(name).join("bin")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub role: Role,
    pub ip: Ipv4Addr,
    pub pod_cidr: String,
    pub tid: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub ip: Option<Ipv4Addr>,
    pub tid: Option<i32>,
}

/// What other processes need to know about a running lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabInfo {
    pub name: String,
    pub pid: i32,
    /// Kernel start time of `pid` (to tell a reused pid from the supervisor).
    pub start_time: u64,
    /// The process whose exit tears the lab down (the runner), if any.
    pub owner: Option<i32>,
    pub host_tid: i32,
    pub cluster: Option<String>,
    pub nodes: Vec<NodeInfo>,
    pub pods: Vec<PodInfo>,
    /// Inodes of the lab's network namespaces: `down` and `gc` kill processes left inside.
    #[serde(default)]
    pub netns_inodes: Vec<u64>,
    /// The lab host's kubeconfig when the lab runs the real control plane (`KUBECONFIG` of
    /// every command run on the lab host).
    #[serde(default)]
    pub kubeconfig: Option<String>,
}

impl LabInfo {
    /// The thread whose namespaces are `target`.
    pub fn target_tid(&self, target: &super::super::Target) -> Result<i32, LabError> {
        use super::super::Target;
        match target {
            Target::Host => Ok(self.host_tid),
            Target::Node(n) => self
                .nodes
                .iter()
                .find(|x| &x.name == n)
                .map(|x| x.tid)
                .ok_or_else(|| LabError::UnknownTarget(format!("no node `{n}` in lab {}", self.name))),
            Target::Pod { namespace, name } => {
                let pod = self.pods.iter().find(|p| &p.namespace == namespace && &p.name == name).ok_or_else(|| {
                    LabError::UnknownTarget(format!("no pod `{namespace}/{name}` in lab {}", self.name))
                })?;
                pod.tid.ok_or_else(|| {
                    LabError::UnknownTarget(format!("pod `{namespace}/{name}` is not running (Pending)"))
                })
            }
        }
    }

    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }
}

/// Field 22 of /proc/<pid>/stat, `None` when the process is gone or a zombie.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

pub fn write_info(info: &LabInfo) -> Result<(), LabError> {
    let d = dir(&info.name);
    let tmp = d.join("lab.json.tmp");
    let json = serde_json::to_vec_pretty(info).expect("serialisable");
    std::fs::write(&tmp, json).and_then(|_| std::fs::rename(&tmp, d.join("lab.json"))).map_err(|e| LabError::io(&d, e))
}

pub fn read_info(name: &str) -> Result<LabInfo, LabError> {
    check_name(name)?;
    let path = dir(name).join("lab.json");
    let text = std::fs::read_to_string(&path).map_err(|_| LabError::NoSuchLab(name.to_string()))?;
    let info: LabInfo =
        serde_json::from_str(&text).map_err(|source| LabError::Json { what: path.display().to_string(), source })?;
    if !info.alive() {
        return Err(LabError::NoSuchLab(format!("{name} (its supervisor is gone: run `tutor lab gc`)")));
    }
    Ok(info)
}

/// A registry entry as another process sees it.
#[derive(Debug, Clone)]
pub enum Entry {
    /// The supervisor published `lab.json` and is alive.
    Live(Box<LabInfo>),
    /// The supervisor claimed the name and is alive but has not published yet.
    Starting { name: String, pid: i32 },
    /// Its supervisor is gone: `gc` removes it.
    Dead { name: String },
}

impl Entry {
    pub fn name(&self) -> &str {
        match self {
            Entry::Live(i) => &i.name,
            Entry::Starting { name, .. } | Entry::Dead { name } => name,
        }
    }
}

/// Who claimed an entry: the supervisor's pid and kernel start time. Written into the entry
/// before it becomes visible under its name, so an entry never exists without its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub pid: i32,
    pub start_time: u64,
}

impl Claim {
    fn me() -> Claim {
        let pid = std::process::id() as i32;
        Claim { pid, start_time: start_time(pid).unwrap_or_default() }
    }

    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }
}

const CLAIM: &str = "claim.json";

fn read_claim(d: &Path) -> Option<Claim> {
    let text = std::fs::read_to_string(d.join(CLAIM)).ok()?;
    serde_json::from_str(&text).ok()
}

fn read_lab_json(d: &Path) -> Option<LabInfo> {
    serde_json::from_str(&std::fs::read_to_string(d.join("lab.json")).ok()?).ok()
}

/// The state of entry `name` (`None`: there is none).
pub fn entry(name: &str) -> Option<Entry> {
    check_name(name).ok()?;
    let d = dir(name);
    if !d.is_dir() {
        return None;
    }
    let info = read_lab_json(&d);
    // The claim is the owner; `lab.json` of an entry from before claims existed also names it.
    let owner = read_claim(&d).or_else(|| info.as_ref().map(|i| Claim { pid: i.pid, start_time: i.start_time }));
    Some(match (owner, info) {
        (Some(c), Some(i)) if c.alive() && i.pid == c.pid => Entry::Live(Box::new(i)),
        (Some(c), _) if c.alive() => Entry::Starting { name: name.to_string(), pid: c.pid },
        _ => Entry::Dead { name: name.to_string() },
    })
}

/// Every entry, by name (live, starting and dead).
pub fn entries() -> Vec<Entry> {
    let mut names: Vec<String> = std::fs::read_dir(root())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // `.lock`, `.claim-*`: the registry's own files.
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names.iter().filter_map(|n| entry(n)).collect()
}

/// Live labs, by name.
pub fn list() -> Vec<LabInfo> {
    entries()
        .into_iter()
        .filter_map(|e| match e {
            Entry::Live(i) => Some(*i),
            _ => None,
        })
        .collect()
}

/// Lab names: letters, digits, `-` and `_` (they name a folder and prefix kernel objects).
pub fn check_name(name: &str) -> Result<(), LabError> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(LabError::Input(format!("invalid lab name `{name}` (up to 64 letters, digits, - and _)")));
    }
    Ok(())
}

/// Refuse a name that a live or starting lab holds, before anything is created (`lab up`
/// checks here before starting a supervisor; [`claim`] is what decides).
pub fn check_free(name: &str) -> Result<(), LabError> {
    check_name(name)?;
    match entry(name) {
        Some(Entry::Live(_)) => Err(LabError::AlreadyUp(name.to_string())),
        Some(Entry::Starting { pid, .. }) => Err(LabError::Starting { name: name.to_string(), pid }),
        _ => Ok(()),
    }
}

/// The registry's lock: held while an entry is claimed and while `gc` removes dead ones, so a
/// dead entry is never removed twice nor a fresh claim removed as dead. Released on drop (and
/// by the kernel when the process dies).
struct RootLock(std::fs::File);

fn lock_root() -> Result<RootLock, LabError> {
    let r = root();
    std::fs::create_dir_all(&r).map_err(|e| LabError::io(&r, e))?;
    let path = r.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LabError::io(&path, e))?;
    f.lock().map_err(|e| LabError::io(&path, e))?;
    Ok(RootLock(f))
}

impl Drop for RootLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Claim the registry entry of a new lab for this process (its supervisor). Atomic: the entry
/// appears under its name with its owner already in it (a prepared folder renamed with
/// `RENAME_NOREPLACE`, under the registry's lock). A name held by a live or starting lab is
/// refused with [`LabError::AlreadyUp`] and nothing of the holder is touched; a dead holder's
/// entry is removed first.
pub fn claim(name: &str) -> Result<PathBuf, LabError> {
    check_name(name)?;
    let _lock = lock_root()?;
    let d = dir(name);
    match entry(name) {
        None => {}
        Some(Entry::Live(_)) => return Err(LabError::AlreadyUp(name.to_string())),
        Some(Entry::Starting { pid, .. }) => return Err(LabError::Starting { name: name.to_string(), pid }),
        Some(Entry::Dead { .. }) => remove_entry(&d)?,
    }
    let me = Claim::me();
    let tmp = root().join(format!(".claim-{}-{name}", me.pid));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| LabError::io(&tmp, e))?;
    let json = serde_json::to_vec(&me).expect("serialisable");
    if let Err(e) = std::fs::write(tmp.join(CLAIM), json) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(LabError::io(&tmp, e));
    }
    let cwd = nix::fcntl::AT_FDCWD;
    match nix::fcntl::renameat2(cwd, &tmp, cwd, &d, nix::fcntl::RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(d),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            if e == nix::errno::Errno::EEXIST || e == nix::errno::Errno::ENOTEMPTY {
                // Only a tutor without the lock (an older one) gets here.
                Err(LabError::AlreadyUp(name.to_string()))
            } else {
                Err(LabError::io(&d, std::io::Error::from(e)))
            }
        }
    }
}

/// Remove entry `name` if this process claimed it (a supervisor that failed to start).
pub fn release_mine(name: &str) {
    if check_name(name).is_err() {
        return;
    }
    let d = dir(name);
    if read_claim(&d) == Some(Claim::me()) {
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// Remove entry `name` once the supervisor `info` describes is dead (`lab down`), unless the
/// name has been claimed again since.
pub fn release_dead(info: &LabInfo) {
    let Ok(_lock) = lock_root() else { return };
    let d = dir(&info.name);
    let owner = read_claim(&d).or_else(|| read_lab_json(&d).map(|i| Claim { pid: i.pid, start_time: i.start_time }));
    if let Some(c) = owner
        && c.pid == info.pid
        && c.start_time == info.start_time
        && !c.alive()
    {
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// Remove a dead lab's entry, ending first whatever a block left running inside its namespaces
/// (which keeps them alive).
fn remove_entry(p: &Path) -> Result<(), LabError> {
    if let Some(cg) = p.file_name().and_then(|n| crate::backend::cgroup::Cgroup::lab(&n.to_string_lossy())) {
        cg.remove()
            .map_err(|source| LabError::Io { what: format!("removing cgroup {}", cg.path().display()), source })?;
    }
    if let Some(info) = read_lab_json(p) {
        super::supervisor::kill_inside(&info.netns_inodes);
    }
    match if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) } {
        // Gone meanwhile (its supervisor finished its own teardown): nothing left to remove.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.map_err(|e| LabError::io(p, e)),
    }
}

/// A supervisor's own entry, removed at teardown: renamed to a hidden name first (atomically,
/// without the lock), so `gc` and `list` see the whole entry or none of it, never one half
/// deleted; `gc` removes what a supervisor killed in the middle left under that name.
pub fn remove_own(d: &Path) {
    let gone = root().join(format!(".gone-{}", std::process::id()));
    let d = if std::fs::rename(d, &gone).is_ok() { gone.as_path() } else { d };
    let _ = std::fs::remove_dir_all(d);
}

/// What `gc` removed.
#[derive(Debug, Default)]
pub struct GcReport {
    pub entries: Vec<String>,
    pub netns: Vec<String>,
    pub links: Vec<String>,
    pub pins: Vec<String>,
    /// Cgroups of labs that are gone (`labs/<name>`), with how many processes were killed.
    pub cgroups: Vec<(String, usize)>,
}

/// Remove the registry entries of dead labs (never a live or starting one: only an entry whose
/// claimed supervisor — pid and kernel start time — is gone) and every root-namespace object
/// carrying tutor's prefix that no live lab owns.
pub fn gc() -> Result<GcReport, LabError> {
    let mut report = GcReport::default();
    let live: Vec<String> = {
        let _lock = lock_root()?;
        // Claims a claimer died in the middle of (the lock is held for a whole claim), entries a
        // supervisor was removing (`remove_own`).
        for e in std::fs::read_dir(root()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".claim-") || name.starts_with(".gone-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let mut live = Vec::new();
        for e in entries() {
            match e {
                Entry::Dead { name } => {
                    if let Some(cg) = crate::backend::cgroup::Cgroup::lab(&name).filter(|c| c.exists()) {
                        let n = cg.remove().map_err(|source| LabError::Io {
                            what: format!("removing cgroup {}", cg.path().display()),
                            source,
                        })?;
                        report.cgroups.push((format!("labs/{name}"), n));
                    }
                    remove_entry(&dir(&name))?;
                    report.entries.push(name);
                }
                other => live.push(other.name().to_string()),
            }
        }
        // Cgroups of labs without a registry entry (a claim comes before its cgroup, and a
        // cgroup is removed before its entry, so under the lock these are orphans).
        for (name, cg) in crate::backend::cgroup::list("labs") {
            if !live.contains(&name) {
                let n = cg.remove().map_err(|source| LabError::Io {
                    what: format!("removing cgroup {}", cg.path().display()),
                    source,
                })?;
                report.cgroups.push((format!("labs/{name}"), n));
            }
        }
        live
    };
    let owned = |obj: &str| live.iter().any(|l| obj.starts_with(&format!("{PREFIX}{l}-")));
    for ns in std::fs::read_dir("/run/netns").into_iter().flatten().flatten() {
        let n = ns.file_name().to_string_lossy().into_owned();
        if n.starts_with(PREFIX) && !owned(&n) {
            let _ = super::sandbox::run_command(&["ip".into(), "netns".into(), "delete".into(), n.clone()], "");
            report.netns.push(n);
        }
    }
    for link in std::fs::read_dir("/sys/class/net").into_iter().flatten().flatten() {
        let n = link.file_name().to_string_lossy().into_owned();
        if n.starts_with(PREFIX) && !owned(&n) {
            let _ = super::sandbox::run_command(&["ip".into(), "link".into(), "delete".into(), n.clone()], "");
            report.links.push(n);
        }
    }
    for pin in std::fs::read_dir("/sys/fs/bpf").into_iter().flatten().flatten() {
        let n = pin.file_name().to_string_lossy().into_owned();
        if n.starts_with(PREFIX) && !owned(&n) {
            let p = pin.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            report.pins.push(n);
        }
    }
    Ok(report)
}

/// The file in which `tutor run --keep` names the kept run this lab was left up for (its entry
/// in the run record's `envs/`), so that `tutor lab exec` starts with that run's shell state
/// wherever it is called from. It goes with the lab's folder.
fn kept_run_file(name: &str) -> PathBuf {
    dir(name).join("kept-run")
}

/// Record that the lab `name` is the environment of the kept run described by `env_file`.
pub fn set_kept_run(name: &str, env_file: &Path) -> Result<(), LabError> {
    use std::os::unix::ffi::OsStrExt;
    check_name(name)?;
    let path = kept_run_file(name);
    std::fs::write(&path, env_file.as_os_str().as_bytes())
        .map_err(|source| LabError::Io { what: format!("writing {}", path.display()), source })
}

/// The kept run's entry the lab `name` was left up for, if any.
pub fn kept_run(name: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    check_name(name).ok()?;
    let bytes = std::fs::read(kept_run_file(name)).ok()?;
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}
