//! Raw ARP on a device of the current network namespace: the gratuitous ARP an L2 announcer
//! sends when it takes an address over, and the probes tests send to see who answers.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// A broadcast ARP request (Ethernet + ARP, 42 bytes) from `sender` asking for `target`.
/// With `sender_ip == target` it is a gratuitous ARP.
pub fn request(sender_mac: [u8; 6], sender_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(42);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&sender_mac);
    // EtherType ARP; hardware Ethernet, protocol IPv4, lengths 6 and 4, operation 1 (request).
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    frame.extend_from_slice(&sender_mac);
    frame.extend_from_slice(&sender_ip.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target.octets());
    frame
}

/// The sender MAC of `frame` if it is an ARP reply (operation 2) from `ip`.
pub fn reply_from(frame: &[u8], ip: Ipv4Addr) -> Option<[u8; 6]> {
    let is_reply = frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && frame[20..22] == [0, 2];
    (is_reply && frame[28..32] == ip.octets()).then(|| frame[22..28].try_into().expect("6 bytes"))
}

/// An `AF_PACKET` socket bound to one device for ARP frames.
pub struct ArpSocket {
    fd: OwnedFd,
    addr: libc::sockaddr_ll,
}

impl ArpSocket {
    pub fn open(device: &str) -> io::Result<ArpSocket> {
        let name = std::ffi::CString::new(device).map_err(|_| io::Error::other("device name with NUL"))?;
        // SAFETY: a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let proto = (libc::ETH_P_ARP as u16).to_be();
        // SAFETY: plain socket(2); the fd is owned right away.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto as i32) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh, valid descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; zeroed is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        let sock = ArpSocket { fd, addr };
        // Bound to the device so that `recv` only sees its frames.
        // SAFETY: addr is live for the call; the length matches.
        if unsafe { libc::bind(sock.fd.as_raw_fd(), sock.addr_ptr(), Self::ADDR_LEN) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }

    const ADDR_LEN: u32 = std::mem::size_of::<libc::sockaddr_ll>() as u32;

    fn addr_ptr(&self) -> *const libc::sockaddr {
        (&self.addr as *const libc::sockaddr_ll).cast()
    }

    /// Broadcast `frame` on the device.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame and addr are live for the call; lengths match.
        let n = unsafe {
            libc::sendto(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0, self.addr_ptr(), Self::ADDR_LEN)
        };
        match n {
            n if n < 0 => Err(io::Error::last_os_error()),
            n if n as usize != frame.len() => Err(io::Error::other("short send")),
            _ => Ok(()),
        }
    }

    /// Wait at most `timeout` for one frame; `Ok(0)` when none came.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let tv = libc::timeval { tv_sec: timeout.as_secs() as _, tv_usec: timeout.subsec_micros() as _ };
        // SAFETY: tv is live for the call; the length matches.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        // SAFETY: buf is live and writable for its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        match io::Error::last_os_error() {
            e if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Ok(0),
            e => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_and_reply_parsing() {
        let mac = [2, 0x42, 0xac, 0x12, 0, 3];
        let f = request(mac, Ipv4Addr::new(172, 18, 0, 1), Ipv4Addr::new(172, 18, 250, 1));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[28..32], &[172, 18, 0, 1]);
        assert_eq!(&f[38..42], &[172, 18, 250, 1]);
        assert_eq!(reply_from(&f, Ipv4Addr::new(172, 18, 0, 1)), None, "a request is not a reply");
        let mut reply = f.clone();
        reply[21] = 2;
        assert_eq!(reply_from(&reply, Ipv4Addr::new(172, 18, 0, 1)), Some(mac));
        assert_eq!(reply_from(&reply, Ipv4Addr::new(172, 18, 0, 2)), None);
    }
}
