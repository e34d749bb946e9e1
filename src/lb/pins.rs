//! The bpf filesystem side: making sure one is mounted, removing pins.

use std::fs;
use std::path::Path;

use aya::programs::links::PinnedLink;

use super::balancer::{LINK_TC, LINK_XDP, MAP_NAMES, SHARED_MAPS};
use super::error::{LbError, Result, io_err};

/// Pins need a bpf filesystem. Under /sys/fs/bpf, mount it there when missing (as bpftool and
/// Cilium do; some containers do not have it); elsewhere the caller must have mounted one.
pub(crate) fn ensure_bpffs(dir: &Path) -> Result<()> {
    use nix::sys::statfs::{BPF_FS_MAGIC, statfs};
    let mut probe = dir;
    while !probe.exists() {
        probe = probe.parent().unwrap_or(Path::new("/"));
    }
    let on_bpffs = |p: &Path| statfs(p).map(|s| s.filesystem_type() == BPF_FS_MAGIC).unwrap_or(false);
    if on_bpffs(probe) {
        return Ok(());
    }
    let root = Path::new("/sys/fs/bpf");
    if dir.starts_with(root) && !on_bpffs(root) {
        nix::mount::mount(Some("bpf"), root, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>).map_err(|e| {
            LbError::Io { what: format!("mounting a bpf filesystem on {}", root.display()), cause: e.into() }
        })?;
        return Ok(());
    }
    Err(LbError::Invalid(format!(
        "{} is not on a bpf filesystem: mount one (mount -t bpf bpf DIR) or pin under /sys/fs/bpf",
        dir.display()
    )))
}

/// Removes the shared maps pinned in `dir` (after every instance using them is detached).
pub fn remove_shared_pins(dir: &Path) -> Result<()> {
    for name in SHARED_MAPS {
        let path = dir.join(name);
        if path.exists() {
            fs::remove_file(&path).map_err(io_err(format!("removing {}", path.display())))?;
        }
    }
    fs::remove_dir(dir).map_err(io_err(format!("removing {}", dir.display())))
}

/// Removes the pinned links (which detaches the programs) and maps of `pin_dir`.
pub fn detach_pinned(pin_dir: &Path) -> Result<()> {
    if !pin_dir.exists() {
        return Err(LbError::NotAttached(pin_dir.to_path_buf()));
    }
    let mut links = vec![pin_dir.join(LINK_XDP), pin_dir.join(LINK_TC)];
    if let Ok(entries) = fs::read_dir(pin_dir) {
        links.extend(
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("link_pass_"))),
        );
    }
    for path in links {
        if path.exists() {
            let pinned = PinnedLink::from_pin(&path).map_err(|e| LbError::Io {
                what: format!("opening {}", path.display()),
                cause: std::io::Error::other(e.to_string()),
            })?;
            drop(pinned.unpin().map_err(io_err(format!("unpinning {}", path.display())))?);
        }
    }
    for name in MAP_NAMES {
        let path = pin_dir.join(name);
        if path.exists() {
            fs::remove_file(&path).map_err(io_err(format!("removing {}", path.display())))?;
        }
    }
    fs::remove_dir(pin_dir).map_err(io_err(format!("removing {}", pin_dir.display())))?;
    // Leave /sys/fs/bpf/tutor when it is the last user of it; ignore "not empty".
    if let Some(parent) = pin_dir.parent().filter(|p| p.file_name().is_some_and(|n| n == "tutor")) {
        let _ = fs::remove_dir(parent);
    }
    Ok(())
}
