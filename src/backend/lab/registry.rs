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
    std::fs::write(&tmp, json).and_then(|_| std::fs::rename(&tmp, d.join("lab.json"))).map_err(|e| io(&d, e))
}

pub fn read_info(name: &str) -> Result<LabInfo, LabError> {
    let path = dir(name).join("lab.json");
    let text = std::fs::read_to_string(&path).map_err(|_| LabError::NoSuchLab(name.to_string()))?;
    let info: LabInfo =
        serde_json::from_str(&text).map_err(|e| LabError::System(format!("{}: {e}", path.display())))?;
    if !info.alive() {
        return Err(LabError::NoSuchLab(format!("{name} (its supervisor is gone: run `tutor lab gc`)")));
    }
    Ok(info)
}

fn io(path: &Path, e: std::io::Error) -> LabError {
    LabError::System(format!("{}: {e}", path.display()))
}

/// Live labs, by name.
pub fn list() -> Vec<LabInfo> {
    let mut labs: Vec<LabInfo> = std::fs::read_dir(root())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| read_info(&e.file_name().to_string_lossy()).ok())
        .collect();
    labs.sort_by(|a, b| a.name.cmp(&b.name));
    labs
}

/// Claim a registry entry for a new lab: fails when a live lab already has the name; a dead
/// one's entry is removed first.
pub fn claim(name: &str) -> Result<PathBuf, LabError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(LabError::Input(format!("invalid lab name `{name}` (letters, digits, - and _)")));
    }
    let d = dir(name);
    std::fs::create_dir_all(root()).map_err(|e| io(&root(), e))?;
    match std::fs::create_dir(&d) {
        Ok(()) => Ok(d),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if read_info(name).is_ok() {
                return Err(LabError::AlreadyUp(name.to_string()));
            }
            remove_entry(&d)?;
            std::fs::create_dir(&d).map_err(|e| io(&d, e))?;
            Ok(d)
        }
        Err(e) => Err(io(&d, e)),
    }
}

/// Remove a dead lab's entry, ending first whatever a block left running inside its namespaces
/// (which keeps them alive).
fn remove_entry(p: &Path) -> Result<(), LabError> {
    if let Some(info) =
        std::fs::read_to_string(p.join("lab.json")).ok().and_then(|t| serde_json::from_str::<LabInfo>(&t).ok())
    {
        super::supervisor::kill_inside(&info.netns_inodes);
    }
    if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) }.map_err(|e| io(p, e))
}

/// What `gc` removed.
#[derive(Debug, Default)]
pub struct GcReport {
    pub entries: Vec<String>,
    pub netns: Vec<String>,
    pub links: Vec<String>,
    pub pins: Vec<String>,
}

/// Remove the registry entries of dead labs and every root-namespace object carrying tutor's
/// prefix that no live lab owns.
pub fn gc() -> Result<GcReport, LabError> {
    let mut report = GcReport::default();
    let live: Vec<String> = list().into_iter().map(|l| l.name).collect();
    for entry in std::fs::read_dir(root()).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if live.contains(&name) {
            continue;
        }
        // A supervisor that is still starting has not written lab.json yet.
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(|t| t.elapsed().unwrap_or_default().as_secs() < 5)
            .unwrap_or(false);
        if young && !entry.path().join("lab.json").exists() {
            continue;
        }
        remove_entry(&entry.path())?;
        report.entries.push(name);
    }
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
