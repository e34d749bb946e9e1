//! What the lab needs from the machine, checked once with one clear error.

use super::LabError;

pub fn check() -> Result<(), LabError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(LabError::Preflight(
            "the lab needs root (network namespaces, veth, nftables): run as root or use --backend host".into(),
        ));
    }
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        return Err(LabError::Preflight("this kernel has no network namespaces (/proc/self/ns/net is missing)".into()));
    }
    let mut missing = Vec::new();
    for tool in ["ip", "nft", "nsenter", "iptables-restore"] {
        if which(tool).is_none() {
            missing.push(tool);
        }
    }
    if !missing.is_empty() {
        return Err(LabError::Preflight(format!(
            "the lab needs {} on PATH (apt-get install iproute2 nftables iptables util-linux)",
            missing.join(", ")
        )));
    }
    Ok(())
}

pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file())
}
