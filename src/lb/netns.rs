//! Running code inside another network namespace. `setns` changes only the calling thread, so
//! the work runs on a dedicated thread that is dropped afterwards (`ip netns exec` remounts /sys
//! and would hide the bpffs pins: docs/architecture.md, "Platform facts"). Objects created there
//! (links, sockets) keep their namespace after the thread ends.

use std::fs::File;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

use super::error::{LbError, Result};

/// Runs `f` on a new thread whose network namespace is the one at `netns` (e.g.
/// `/run/netns/NAME` or `/proc/PID/ns/net`).
pub fn in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let file = File::open(netns)
        .map_err(|cause| LbError::Io { what: format!("opening network namespace {}", netns.display()), cause })?;
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| LbError::Io {
                what: format!("entering network namespace {}", netns.display()),
                cause: e.into(),
            })?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// MAC of `lbin` in [`in_scratch_netns`], and of its next hop 192.168.50.2.
#[cfg(feature = "lb-testing")]
pub const SCRATCH_DEV_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
#[cfg(feature = "lb-testing")]
pub const SCRATCH_NEXT_HOP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Runs `f` on a thread inside a fresh anonymous network namespace (it vanishes with the
/// thread: nothing to clean up) where `bpf_fib_lookup` finds next hops: device `lbin`
/// (SCRATCH_DEV_MAC, 192.168.50.1/24, peer `lbout`), 10.1.0.0/16 routed via 192.168.50.2
/// (SCRATCH_NEXT_HOP_MAC, permanent neighbour), forwarding on. `f` gets lbin's ifindex.
/// For BPF_PROG_TEST_RUN runs that should see a real forwarding decision.
#[cfg(feature = "lb-testing")]
pub fn in_scratch_netns<T: Send>(f: impl FnOnce(u32) -> T + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| LbError::Io { what: "creating a network namespace".into(), cause: e.into() })?;
            let steps: [&[&str]; 7] = [
                &["ip", "link", "set", "lo", "up"],
                &["ip", "link", "add", "lbin", "address", "02:00:00:00:00:01", "type", "veth", "peer", "name", "lbout"],
                &["ip", "link", "set", "lbin", "up"],
                &["ip", "link", "set", "lbout", "up"],
                &["ip", "addr", "add", "192.168.50.1/24", "dev", "lbin"],
                &[
                    "ip",
                    "neigh",
                    "add",
                    "192.168.50.2",
                    "lladdr",
                    "02:00:00:00:00:02",
                    "dev",
                    "lbin",
                    "nud",
                    "permanent",
                ],
                &["ip", "route", "add", "10.1.0.0/16", "via", "192.168.50.2", "dev", "lbin"],
            ];
            for args in steps {
                run_command(args)?;
            }
            enable_forwarding()?;
            Ok(f(super::iface::ifindex("lbin")?))
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Turns IPv4 forwarding on in the calling thread's network namespace (/proc/sys/net follows
/// the namespace of the thread that opens it).
pub fn enable_forwarding() -> Result<()> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|cause| LbError::Io { what: "enabling IPv4 forwarding".into(), cause })
}

/// Runs `args` (program first) and turns a failure into an [`LbError`] that names the command and
/// carries its stderr.
pub(crate) fn run_command(args: &[&str]) -> Result<(), LbError> {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|cause| LbError::Io { what: format!("running {}", args[0]), cause })?;
    if !out.status.success() {
        return Err(LbError::Invalid(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Names of the namespaces a packet-rate benchmark run (`tutor lb bench --traffic`) creates:
/// `lbpps-<pid>-<role>`. Not `tutor-…`: `tutor lab gc` deletes every `tutor-…` namespace no live
/// lab owns, which would pull the node from under a running benchmark.
pub const BENCH_PREFIX: &str = "lbpps-";

/// The namespaces of benchmark runs that did not end cleanly (their process is gone: killed,
/// or interrupted before it could delete them): deleted by the next run and by `tutor lab gc`.
/// The names deleted.
pub fn sweep_stale() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else { return Vec::new() };
    let mut deleted = Vec::new();
    for name in entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()) {
        if stale_owner(&name).is_some() && run_command(&["ip", "netns", "del", &name]).is_ok() {
            deleted.push(name);
        }
    }
    deleted
}

/// The pid in a `lbpps-<pid>-<role>` name whose process no longer exists.
pub(crate) fn stale_owner(name: &str) -> Option<i32> {
    let pid: i32 = name.strip_prefix(BENCH_PREFIX)?.split('-').next()?.parse().ok()?;
    (!Path::new(&format!("/proc/{pid}")).exists()).then_some(pid)
}
