//! Interface index and MAC address in the calling thread's network namespace. Both come from
//! the kernel (ioctl on a socket), not from /sys, which shows the namespace /sys was mounted in.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::error::{LbError, Result};

pub fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name).map_err(|_| LbError::Invalid(format!("bad interface name {name:?}")))?;
    // SAFETY: c is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(LbError::Invalid(format!("interface {name} does not exist in this network namespace")));
    }
    Ok(index)
}

pub fn mac(name: &str) -> Result<[u8; 6]> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(LbError::Invalid(format!("interface name too long: {name}")));
    }
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(LbError::Io { what: "socket".into(), cause: std::io::Error::last_os_error() });
    }
    // SAFETY: fd is a fresh, valid descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills req.ifr_ifru.ifru_hwaddr.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if rc < 0 {
        return Err(LbError::Io {
            what: format!("reading the MAC address of {name}"),
            cause: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: the union member written by SIOCGIFHWADDR.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *dst = *src as u8;
    }
    Ok(mac)
}
