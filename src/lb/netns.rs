//! Running code inside another network namespace. `setns` changes only the calling thread, so
//! the work runs on a dedicated thread that is dropped afterwards (DESIGN §8: `ip netns exec`
//! remounts /sys and would hide the bpffs pins). Objects created there (links, sockets) keep
//! their namespace after the thread ends.

use std::fs::File;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

use super::error::{LbError, Result};

/// Runs `f` on a new thread whose network namespace is the one at `netns` (e.g.
/// `/run/netns/NAME` or `/proc/PID/ns/net`).
pub fn in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let file = File::open(netns).map_err(|source| LbError::Io {
        what: format!("opening network namespace {}", netns.display()),
        source,
    })?;
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| LbError::Io {
                what: format!("entering network namespace {}", netns.display()),
                source: e.into(),
            })?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
