//! Gratuitous ARP for the VIP: an ARP request "who has VIP? tell VIP" from the interface's own MAC
//! to the broadcast address, on an AF_PACKET socket. Without it an active client keeps talking to
//! the old host for ~35 s after the VIP moves (lab-notes); with it, ~21 ms.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The 42-byte Ethernet + ARP frame announcing that `ip` is at `mac`.
pub fn frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request: every stack updates on it
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    f[32..38].copy_from_slice(&[0; 6]);
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// The MAC address of interface `name` (SIOCGIFHWADDR).
pub fn mac_of(name: &str) -> io::Result<[u8; 6]> {
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // struct ifreq: the name in 16 bytes, then the union holding a struct sockaddr.
    let mut req = [0u8; 40];
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= 16 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    req[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: req is a zeroed buffer as large as struct ifreq; the kernel fills ifr_hwaddr.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, req.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&req[18..24]);
    Ok(mac)
}

fn socket(domain: i32, kind: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends one gratuitous ARP for `ip` out of interface `index` (needs CAP_NET_RAW).
pub fn announce(index: u32, mac: [u8; 6], ip: Ipv4Addr) -> io::Result<()> {
    let proto = (libc::ETH_P_ARP as u16).to_be();
    let sock = socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto))?;
    // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = proto;
    to.sll_ifindex = index as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let f = frame(mac, ip);
    // SAFETY: sends our own buffer to a valid sockaddr_ll of the size given.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            f.as_ptr().cast(),
            f.len(),
            0,
            (&to as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_a_broadcast_arp_request_for_the_vip_from_itself() {
        let mac = [2, 0, 0, 0, 0, 1];
        let f = frame(mac, Ipv4Addr::new(10, 77, 0, 200));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &[10, 77, 0, 200]);
        assert_eq!(&f[38..42], &[10, 77, 0, 200]);
    }
}
