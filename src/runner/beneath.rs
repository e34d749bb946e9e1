//! Writing a `file=` block's text beneath the work directory without ever leaving it: an earlier
//! block may have made `linkdir -> /tmp`, and `file=linkdir/x.txt` must not write `/tmp/x.txt`.
//!
//! Every path is resolved relative to a descriptor of the work directory with `openat2` and
//! `RESOLVE_BENEATH` (symbolic links are followed only while they stay beneath it; `..` cannot
//! climb out). Where the kernel lacks `openat2` (before 5.6), each component is opened with
//! `O_NOFOLLOW` instead, which refuses every symbolic link.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// Why a write was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("`{0}` must be a relative path inside the work directory")]
    NotRelative(String),
    #[error("`{path}` leads out of the work directory through a symbolic link (`{through}`)")]
    Escapes { path: String, through: String },
    #[error("cannot write `{path}`")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// `struct open_how` of linux/openat2.h (libc's is `non_exhaustive`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;

/// `openat2(dir, path, flags, mode, RESOLVE_BENEATH)`; `Err(ENOSYS)` where the kernel lacks it.
fn openat2(dir: &OwnedFd, path: &Path, flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: valid descriptor, NUL-terminated path, `how` of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just gave us this descriptor.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = std::io::Error::last_os_error();
        // openat2 returns EAGAIN when a concurrent rename raced the lookup: try again.
        if e.raw_os_error() != Some(libc::EAGAIN) && e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `openat(dir, name, flags | O_NOFOLLOW)` for one component.
fn openat_nofollow(dir: &OwnedFd, name: &std::ffi::OsStr, flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
    let c = CString::new(name.as_bytes()).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid descriptor and NUL-terminated name.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mkdirat(dir: &OwnedFd, name: &std::ffi::OsStr) -> std::io::Result<()> {
    let c = CString::new(name.as_bytes()).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid descriptor and NUL-terminated name.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o777) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::AlreadyExists { Ok(()) } else { Err(e) }
}

/// Write `contents` to `rel` beneath `root`, creating missing folders, never outside `root`.
pub fn write(root: &Path, rel: &str, contents: &[u8]) -> Result<(), BeneathError> {
    let path = Path::new(rel);
    let parts: Vec<&std::ffi::OsStr> = path
        .components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(BeneathError::NotRelative(rel.to_string())),
        })
        .collect::<Result<_, _>>()?;
    if parts.is_empty() {
        return Err(BeneathError::NotRelative(rel.to_string()));
    }
    let io = |source: std::io::Error| BeneathError::Io { path: rel.to_string(), source };
    let root_fd: OwnedFd = File::open(root).map_err(io)?.into();
    let escapes = |upto: usize| BeneathError::Escapes {
        path: rel.to_string(),
        through: parts[..upto].iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join("/"),
    };
    let file_flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let fd = match beneath_walk(&root_fd, &parts, file_flags) {
        Err(Walk::NoOpenat2) => nofollow_walk(&root_fd, &parts, file_flags).map_err(|e| match e {
            (i, e) if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENOTDIR) => {
                escapes_if_link(root, &parts, i).map(escapes).unwrap_or_else(|| io(e))
            }
            (_, e) => io(e),
        })?,
        Err(Walk::Failed(i, e)) => {
            return Err(if e.raw_os_error() == Some(libc::EXDEV) || e.raw_os_error() == Some(libc::ELOOP) {
                escapes(i + 1)
            } else {
                io(e)
            });
        }
        Ok(fd) => fd,
    };
    File::from(fd).write_all(contents).map_err(io)
}

enum Walk {
    NoOpenat2,
    /// Component `i` failed.
    Failed(usize, std::io::Error),
}

/// With openat2: each folder (created when missing), then the file.
fn beneath_walk(root: &OwnedFd, parts: &[&std::ffi::OsStr], file_flags: i32) -> Result<OwnedFd, Walk> {
    let nosys = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOSYS);
    let mut prefix = std::path::PathBuf::new();
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        let parent = prefix.clone();
        prefix.push(part);
        match openat2(root, &prefix, libc::O_PATH | libc::O_DIRECTORY, 0) {
            Ok(_) => {}
            Err(e) if nosys(&e) => return Err(Walk::NoOpenat2),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Create it inside its (already checked) parent, then check it again.
                let p = if parent.as_os_str().is_empty() {
                    openat2(root, Path::new("."), libc::O_DIRECTORY | libc::O_RDONLY, 0)
                } else {
                    openat2(root, &parent, libc::O_DIRECTORY | libc::O_RDONLY, 0)
                }
                .map_err(|e| Walk::Failed(i, e))?;
                mkdirat(&p, part).map_err(|e| Walk::Failed(i, e))?;
                openat2(root, &prefix, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|e| Walk::Failed(i, e))?;
            }
            Err(e) => return Err(Walk::Failed(i, e)),
        }
    }
    prefix.push(parts[parts.len() - 1]);
    openat2(root, &prefix, file_flags, 0o666)
        .map_err(|e| if nosys(&e) { Walk::NoOpenat2 } else { Walk::Failed(parts.len() - 1, e) })
}

/// Without openat2: component by component with O_NOFOLLOW (every symbolic link refused).
fn nofollow_walk(
    root: &OwnedFd,
    parts: &[&std::ffi::OsStr],
    file_flags: i32,
) -> Result<OwnedFd, (usize, std::io::Error)> {
    let mut dir =
        openat_nofollow(root, std::ffi::OsStr::new("."), libc::O_DIRECTORY | libc::O_RDONLY, 0).map_err(|e| (0, e))?;
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        mkdirat(&dir, part).map_err(|e| (i, e))?;
        dir = openat_nofollow(&dir, part, libc::O_DIRECTORY | libc::O_RDONLY, 0).map_err(|e| (i, e))?;
    }
    let last = parts.len() - 1;
    openat_nofollow(&dir, parts[last], file_flags, 0o666).map_err(|e| (last, e))
}

/// How many components up to and including `i` when component `i` is a symbolic link.
fn escapes_if_link(root: &Path, parts: &[&std::ffi::OsStr], i: usize) -> Option<usize> {
    let p: std::path::PathBuf = std::iter::once(root.as_os_str()).chain(parts[..=i].iter().copied()).collect();
    p.symlink_metadata().ok().filter(|m| m.file_type().is_symlink()).map(|_| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_inside_creating_folders() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a/b/c.txt", b"hi").unwrap();
        assert_eq!(std::fs::read(d.path().join("a/b/c.txt")).unwrap(), b"hi");
        write(d.path(), "a/b/c.txt", b"x").unwrap();
        assert_eq!(std::fs::read(d.path().join("a/b/c.txt")).unwrap(), b"x");
    }

    #[test]
    fn a_symlinked_folder_out_of_the_work_directory_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("linkdir")).unwrap();
        let e = write(d.path(), "linkdir/x.txt", b"hi").unwrap_err();
        assert!(matches!(&e, BeneathError::Escapes { through, .. } if through == "linkdir"), "{e:?}");
        assert!(!outside.path().join("x.txt").exists());
        // Deeper, and through a link further down.
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("../..", d.path().join("sub/up")).unwrap();
        let e = write(d.path(), "sub/up/y.txt", b"hi").unwrap_err();
        assert!(matches!(&e, BeneathError::Escapes { through, .. } if through == "sub/up"), "{e:?}");
    }

    #[test]
    fn a_symlinked_file_out_of_the_work_directory_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&target, d.path().join("f.txt")).unwrap();
        let e = write(d.path(), "f.txt", b"overwritten").unwrap_err();
        assert!(matches!(e, BeneathError::Escapes { .. }), "{e:?}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        // A dangling link out is not created through either.
        std::os::unix::fs::symlink(outside.path().join("new"), d.path().join("g.txt")).unwrap();
        assert!(write(d.path(), "g.txt", b"x").is_err());
        assert!(!outside.path().join("new").exists());
    }

    #[test]
    fn a_symlink_that_stays_inside_is_followed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", d.path().join("alias")).unwrap();
        write(d.path(), "alias/x.txt", b"in").unwrap();
        assert_eq!(std::fs::read(d.path().join("real/x.txt")).unwrap(), b"in");
    }

    #[test]
    fn the_fallback_walk_refuses_every_link() {
        let outside = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("linkdir")).unwrap();
        let root: OwnedFd = File::open(d.path()).unwrap().into();
        let parts = [std::ffi::OsStr::new("linkdir"), std::ffi::OsStr::new("x")];
        let (i, e) = nofollow_walk(&root, &parts, libc::O_WRONLY | libc::O_CREAT).unwrap_err();
        assert_eq!(i, 0);
        assert!(matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)), "{e}");
        assert_eq!(escapes_if_link(d.path(), &parts, 0), Some(1));
        let parts = [std::ffi::OsStr::new("sub"), std::ffi::OsStr::new("x")];
        nofollow_walk(&root, &parts, libc::O_WRONLY | libc::O_CREAT).unwrap();
        assert!(d.path().join("sub/x").exists());
    }
}
