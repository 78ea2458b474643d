//! Who gets a connection slot on the Sentinel port: Redis's 10,000 `maxclients` in all, and at
//! most `sentinel.maxclients-per-ip` from one source address, so one host's flood cannot take
//! every slot. Shared by the plain and the TLS listener. No I/O.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Why a connection was refused; the text is what a plaintext client reads before the close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Redis's own wording for `maxclients`.
    Full,
    PerIp,
}

impl Refusal {
    pub fn line(self) -> &'static [u8] {
        match self {
            Refusal::Full => b"-ERR max number of clients reached\r\n",
            Refusal::PerIp => b"-ERR max number of clients per IP address reached\r\n",
        }
    }
}

/// Connections held per source address, against a total and a per-address cap.
#[derive(Debug)]
pub struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    max_total: usize,
    max_per_ip: usize,
}

impl Counts {
    pub fn new(max_total: usize, max_per_ip: usize) -> Counts {
        Counts {
            total: 0,
            per_ip: HashMap::new(),
            max_total,
            max_per_ip,
        }
    }

    /// Takes a slot for `ip`, or says why not.
    pub fn enter(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        if self.total >= self.max_total {
            return Err(Refusal::Full);
        }
        let n = self.per_ip.entry(ip.to_canonical()).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// Gives back a slot taken by [`Counts::enter`]; an address with none left is forgotten.
    pub fn leave(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    pub fn addresses(&self) -> usize {
        self.per_ip.len()
    }
}

/// [`Counts`] shared by every accept loop; a [`Slot`] gives its place back when dropped.
#[derive(Clone)]
pub struct Admission(Arc<Mutex<Counts>>);

pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Admission {
    pub fn new(max_total: usize, max_per_ip: usize) -> Admission {
        Admission(Arc::new(Mutex::new(Counts::new(max_total, max_per_ip))))
    }

    pub fn admit(&self, ip: IpAddr) -> Result<Slot, Refusal> {
        // The counts stay consistent even if a holder panicked: each update is one statement.
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        counts.enter(ip)?;
        Ok(Slot {
            counts: self.0.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.leave(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_cannot_take_every_slot() {
        let mut c = Counts::new(5, 2);
        assert_eq!(c.enter(ip("10.0.0.1")), Ok(()));
        assert_eq!(c.enter(ip("10.0.0.1")), Ok(()));
        assert_eq!(c.enter(ip("10.0.0.1")), Err(Refusal::PerIp));
        // The same host seen through an IPv6 socket is the same address.
        assert_eq!(c.enter(ip("::ffff:10.0.0.1")), Err(Refusal::PerIp));
        assert_eq!(c.enter(ip("10.0.0.2")), Ok(()));
        c.leave(ip("10.0.0.1"));
        assert_eq!(c.enter(ip("10.0.0.1")), Ok(()));
    }

    #[test]
    fn the_total_cap_comes_first_and_slots_come_back() {
        let mut c = Counts::new(2, 2);
        assert_eq!(c.enter(ip("10.0.0.1")), Ok(()));
        assert_eq!(c.enter(ip("10.0.0.2")), Ok(()));
        assert_eq!(c.enter(ip("10.0.0.3")), Err(Refusal::Full));
        c.leave(ip("10.0.0.1"));
        c.leave(ip("10.0.0.2"));
        assert_eq!(c.addresses(), 0);
        // Leaving without having entered changes nothing.
        c.leave(ip("10.0.0.9"));
        assert_eq!(c.enter(ip("10.0.0.3")), Ok(()));
    }

    #[test]
    fn slots_are_returned_on_drop() {
        let a = Admission::new(10, 1);
        let slot = a.admit(ip("127.0.0.1")).unwrap();
        assert!(matches!(a.admit(ip("127.0.0.1")), Err(Refusal::PerIp)));
        drop(slot);
        assert!(a.admit(ip("127.0.0.1")).is_ok());
    }

    #[test]
    fn refusals_are_resp_errors() {
        assert_eq!(
            Refusal::Full.line(),
            b"-ERR max number of clients reached\r\n"
        );
        assert!(Refusal::PerIp.line().starts_with(b"-ERR "));
    }
}
