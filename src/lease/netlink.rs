//! The VIP's kernel side over rtnetlink (a NETLINK_ROUTE socket, no `ip` binary): add or replace
//! an IPv4 address with a kernel valid lifetime, delete it, and ask whether it is there. Plus the
//! interface lookups the gratuitous ARP needs. Blocking calls, each answered by the kernel at once.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::topology::Vip;

const NLMSG_HDR: usize = 16;
const IFADDRMSG: usize = 8;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_CACHEINFO: u16 = 6;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const RT_SCOPE_UNIVERSE: u8 = 0;

/// One NETLINK_ROUTE socket.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

/// The kernel index of interface `name`.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid NUL-terminated string; the call only reads it.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl Netlink {
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: a valid timeval of the right size; a kernel that never answers cannot hang us.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        Ok(Netlink { fd, seq: 0 })
    }

    fn request(&mut self, kind: u16, flags: u16, body: &[u8]) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = Vec::with_capacity(NLMSG_HDR + body.len());
        msg.extend_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: sends our own buffer; the kernel is the peer (default sockaddr_nl).
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(self.seq)
    }

    /// Reads replies to `seq`, handing each message (header included) to `each`, until the ACK
    /// (or the end of a dump). A kernel error comes back as its errno.
    fn replies(&mut self, seq: u32, mut each: impl FnMut(u16, &[u8])) -> io::Result<()> {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: reads into our own buffer of the given length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let data = buf.get(..n as usize).unwrap_or_default();
            let mut at = 0;
            while at + NLMSG_HDR <= data.len() {
                let len = ne_u32(data, at).unwrap_or(0) as usize;
                let kind = ne_u16(data, at + 4).unwrap_or(0);
                let msg_seq = ne_u32(data, at + 8).unwrap_or(0);
                if len < NLMSG_HDR || at + len > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad netlink reply",
                    ));
                }
                let msg = &data[at..at + len];
                at += len.next_multiple_of(4);
                if msg_seq != seq {
                    continue;
                }
                match kind {
                    NLMSG_ERROR => {
                        let code = ne_u32(msg, NLMSG_HDR).unwrap_or(0) as i32;
                        return if code == 0 {
                            Ok(())
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    NLMSG_DONE => return Ok(()),
                    _ => each(kind, msg),
                }
            }
        }
    }

    fn ifaddrmsg(index: u32, vip: Vip) -> Vec<u8> {
        let mut body = vec![libc::AF_INET as u8, vip.prefix, 0, RT_SCOPE_UNIVERSE];
        body.extend_from_slice(&index.to_ne_bytes());
        body
    }

    /// Adds `vip` on interface `index`, or refreshes it, with a kernel valid (and preferred)
    /// lifetime of `valid_s` seconds: the kernel removes it then even if raftinel is frozen or dead.
    pub fn replace(&mut self, index: u32, vip: Vip, valid_s: u32) -> io::Result<()> {
        let mut body = Self::ifaddrmsg(index, vip);
        push_attr(&mut body, IFA_LOCAL, &vip.ip.octets());
        push_attr(&mut body, IFA_ADDRESS, &vip.ip.octets());
        let mut cache = Vec::with_capacity(16);
        for v in [valid_s, valid_s, 0, 0] {
            cache.extend_from_slice(&v.to_ne_bytes());
        }
        push_attr(&mut body, IFA_CACHEINFO, &cache);
        let flags = NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        let seq = self.request(libc::RTM_NEWADDR, flags, &body)?;
        self.replies(seq, |_, _| {})
    }

    /// Removes `vip` from interface `index`; already gone is fine.
    pub fn delete(&mut self, index: u32, vip: Vip) -> io::Result<()> {
        let mut body = Self::ifaddrmsg(index, vip);
        push_attr(&mut body, IFA_LOCAL, &vip.ip.octets());
        let seq = self.request(libc::RTM_DELADDR, NLM_F_ACK, &body)?;
        match self.replies(seq, |_, _| {}) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
            r => r,
        }
    }

    /// Whether `ip` is an address of interface `index` now.
    pub fn has(&mut self, index: u32, ip: Ipv4Addr) -> io::Result<bool> {
        let body = [libc::AF_INET as u8, 0, 0, 0, 0, 0, 0, 0];
        let seq = self.request(libc::RTM_GETADDR, NLM_F_DUMP, &body)?;
        let mut found = false;
        self.replies(seq, |kind, msg| {
            if kind != libc::RTM_NEWADDR || ne_u32(msg, NLMSG_HDR + 4) != Some(index) {
                return;
            }
            let mut at = NLMSG_HDR + IFADDRMSG;
            while let (Some(len), Some(attr)) = (ne_u16(msg, at), ne_u16(msg, at + 2)) {
                let len = len as usize;
                if len < 4 {
                    break;
                }
                if attr == IFA_LOCAL && msg.get(at + 4..at + 8) == Some(&ip.octets()[..]) {
                    found = true;
                }
                at += len.next_multiple_of(4);
            }
        })?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let mut buf = Vec::new();
        push_attr(&mut buf, IFA_LOCAL, &[10, 77, 0, 200]);
        assert_eq!(buf.len(), 8);
        push_attr(&mut buf, 9, &[1]);
        assert_eq!(buf.len(), 16);
        assert_eq!(ne_u16(&buf, 8), Some(5));
    }

    #[test]
    fn unknown_interfaces_are_an_error() {
        assert!(ifindex("no-such-if0").is_err());
        assert!(ifindex("bad\0name").is_err());
    }
}
