//! Sentinel's `resolve-hostnames` / `announce-hostnames` on this node: which hosts it takes from
//! a user, what each hostname last resolved to (looked up again at every connect, as Sentinel
//! does on reconnect), which known instance an address reported by Redis names, and how an
//! address is announced to clients. `lookup` is the one I/O; the rest are pure functions over
//! what it remembered.
//!
//! The log keeps an address as it was given (a hostname stays a hostname), so the decisions
//! compare strings; this module makes a reported address take the known spelling first.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::topology::{Addr, TopologyEvent};

/// How long one lookup may take: Sentinel blocks on `getaddrinfo`, raftinel bounds it.
pub const LOOKUP_LIMIT: Duration = Duration::from_secs(2);
/// How old a remembered answer may be when a reported address is matched to a known one.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// The most names remembered at once.
const MAX_SEEN: usize = 4096;
/// The most lookups at once.
const MAX_IN_FLIGHT: usize = 8;

/// The two settings (`[sentinel]` keys, and SENTINEL CONFIG SET at run time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostnameSettings {
    /// Accept hostnames in MONITOR and from replicas (`resolve-hostnames`).
    pub resolve: bool,
    /// Announce hostnames, not their addresses, to clients and in REPLICAOF
    /// (`announce-hostnames`).
    pub announce: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostError {
    #[error("{0} is not an IP address, and resolve-hostnames is off")]
    NotAnAddress(String),
    #[error("{host} does not resolve: {reason}")]
    Unresolved { host: String, reason: String },
}

/// This node's settings and remembered answers; clones share them.
#[derive(Clone, Default)]
pub struct Hostnames(Arc<Inner>);

struct Inner {
    resolve: AtomicBool,
    announce: AtomicBool,
    seen: Mutex<HashMap<String, (IpAddr, Instant)>>,
    /// Names whose last lookup failed, and when: not asked again for `FRESH_FOR`.
    failed: Mutex<HashMap<String, Instant>>,
    /// Lookups in flight: a timed-out `getaddrinfo` keeps its blocking thread, so a DNS outage
    /// must not grow them without bound.
    in_flight: tokio::sync::Semaphore,
}

impl Default for Inner {
    fn default() -> Inner {
        Inner {
            resolve: AtomicBool::new(false),
            announce: AtomicBool::new(false),
            seen: Mutex::default(),
            failed: Mutex::default(),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
        }
    }
}

impl Hostnames {
    pub fn new(settings: HostnameSettings) -> Hostnames {
        let h = Hostnames::default();
        h.set(settings);
        h
    }

    pub fn settings(&self) -> HostnameSettings {
        HostnameSettings {
            resolve: self.0.resolve.load(Ordering::Relaxed),
            announce: self.0.announce.load(Ordering::Relaxed),
        }
    }

    pub fn set(&self, s: HostnameSettings) {
        self.0.resolve.store(s.resolve, Ordering::Relaxed);
        self.0.announce.store(s.announce, Ordering::Relaxed);
    }

    /// A host a user gave (MONITOR): an IP address always; a hostname only with
    /// `resolve-hostnames yes` and if it resolves now, as Sentinel checks.
    pub async fn accept(&self, host: &str) -> Result<(), HostError> {
        if is_ip(host) {
            return Ok(());
        }
        if !self.settings().resolve || !Addr::valid_host(host) {
            return Err(HostError::NotAnAddress(host.to_owned()));
        }
        self.lookup(host).await.map(|_| ())
    }

    /// Resolves `host` now (an IP address is itself) and remembers the answer; a failed lookup
    /// keeps the previous one, as Sentinel keeps an address it cannot re-resolve.
    pub async fn lookup(&self, host: &str) -> Result<IpAddr, HostError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(ip);
        }
        if !Addr::valid_host(host) {
            return Err(HostError::NotAnAddress(host.to_owned()));
        }
        let unresolved = |reason: String| HostError::Unresolved {
            host: host.to_owned(),
            reason,
        };
        let Ok(_permit) = self.0.in_flight.try_acquire() else {
            return Err(unresolved("too many lookups in flight".to_owned()));
        };
        let found = tokio::time::timeout(LOOKUP_LIMIT, tokio::net::lookup_host((host, 0)))
            .await
            .map_err(|_| unresolved(format!("no answer within {LOOKUP_LIMIT:?}")))
            .and_then(|r| r.map_err(|e| unresolved(e.to_string())))
            .and_then(|addrs| {
                addrs
                    .map(|a| a.ip())
                    .min_by_key(IpAddr::is_ipv6)
                    .ok_or_else(|| unresolved("no address".to_owned()))
            });
        let found = match found {
            Ok(ip) => ip,
            Err(e) => {
                let mut failed = self.failed();
                if failed.len() >= MAX_SEEN {
                    failed.retain(|_, at| at.elapsed() <= FRESH_FOR);
                }
                if failed.len() < MAX_SEEN {
                    failed.insert(host.to_ascii_lowercase(), Instant::now());
                }
                return Err(e);
            }
        };
        self.failed().remove(&host.to_ascii_lowercase());
        let mut seen = self.seen();
        if seen.len() >= MAX_SEEN {
            // Names come from Redis too (`replica-announce-ip`): keep the map bounded.
            seen.retain(|_, (_, at)| at.elapsed() <= FRESH_FOR);
        }
        if seen.len() < MAX_SEEN {
            seen.insert(host.to_ascii_lowercase(), (found, Instant::now()));
        }
        Ok(found)
    }

    /// Looks up every hostname among `hosts` whose answer is older than `FRESH_FOR` and that did
    /// not fail within it; failures leave it unknown (the address keeps its spelling).
    pub async fn refresh<'a>(&self, hosts: impl IntoIterator<Item = &'a str>) {
        for host in hosts {
            let failed_lately = || {
                self.failed()
                    .get(&host.to_ascii_lowercase())
                    .is_some_and(|at| at.elapsed() <= FRESH_FOR)
            };
            if !is_ip(host)
                && Addr::valid_host(host)
                && self.ip_within(host, FRESH_FOR).is_none()
                && !failed_lately()
            {
                if let Err(e) = self.lookup(host).await {
                    tracing::debug!(error = %e, "hostname lookup failed");
                }
            }
        }
    }

    /// The address `host` stands for: itself for an IP, else the last answer.
    pub fn ip_of(&self, host: &str) -> Option<IpAddr> {
        host.parse()
            .ok()
            .or_else(|| self.seen().get(&host.to_ascii_lowercase()).map(|s| s.0))
    }

    fn ip_within(&self, host: &str, age: Duration) -> Option<IpAddr> {
        let seen = self.seen();
        let (ip, at) = seen.get(&host.to_ascii_lowercase())?;
        (at.elapsed() <= age).then_some(*ip)
    }

    /// `addr` as this node announces it (Sentinel's `announceSentinelAddr`): a hostname with
    /// `announce-hostnames yes`, else the address it last resolved to (the hostname itself
    /// while it never resolved, where Sentinel would show an empty ip).
    pub fn announce<'a>(&self, addr: &'a Addr) -> Cow<'a, Addr> {
        if self.settings().announce || is_ip(&addr.host) {
            return Cow::Borrowed(addr);
        }
        match self.ip_of(&addr.host) {
            Some(ip) => Cow::Owned(Addr::new(ip.to_string(), addr.port)),
            None => Cow::Borrowed(addr),
        }
    }

    /// `event` with its addresses announced, or `None` when that changes nothing.
    pub fn announce_event(&self, event: &TopologyEvent) -> Option<TopologyEvent> {
        event.respelled(|a| match self.announce(a) {
            Cow::Owned(a) => Some(a),
            Cow::Borrowed(_) => None,
        })
    }

    /// The known instance `reported` names, spelled as the log knows it (see `identify`), by
    /// answers no older than `FRESH_FOR` only: a stale answer could name a reused address.
    pub fn identify(&self, reported: &Addr, known: &[&Addr]) -> Option<Addr> {
        let fresh = |h: &str| h.parse().ok().or_else(|| self.ip_within(h, FRESH_FOR));
        identify(reported, known, fresh)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, (IpAddr, Instant)>> {
        self.0.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn failed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.0.failed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub fn is_ip(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok()
}

/// The known address `reported` stands for: the same host spelled differently (case; the first
/// in `known`, where the log's come first), or the same port at a host that resolves to the same
/// address (a replica that names its master by hostname while the log has its IP, or the other
/// way round). Sentinel's `sentinelAddrEqualsHostname`; `None` when no known one matches, or
/// when several do by address (which one is meant cannot be told).
pub fn identify(
    reported: &Addr,
    known: &[&Addr],
    ip_of: impl Fn(&str) -> Option<IpAddr>,
) -> Option<Addr> {
    let same_port = || known.iter().filter(|k| k.port == reported.port);
    if let Some(k) = same_port().find(|k| k.host.eq_ignore_ascii_case(&reported.host)) {
        return Some((*k).clone());
    }
    let ip = ip_of(&reported.host)?;
    let mut by_address = same_port().filter(|k| ip_of(&k.host) == Some(ip));
    match (by_address.next(), by_address.next()) {
        (Some(k), None) => Some((*k).clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(host: &str, port: u16) -> Addr {
        Addr::new(host, port)
    }

    fn table(host: &str) -> Option<IpAddr> {
        match host.to_ascii_lowercase().as_str() {
            "m.test" => Some("10.0.0.1".parse().unwrap()),
            "r.test" => Some("10.0.0.2".parse().unwrap()),
            other => other.parse().ok(),
        }
    }

    #[test]
    fn a_known_spelling_wins_over_the_reported_one() {
        let (m, r) = (a("m.test", 6379), a("10.0.0.2", 6379));
        let known = [&m, &r];
        assert_eq!(identify(&a("M.Test", 6379), &known, table), Some(m.clone()));
        assert_eq!(
            identify(&a("10.0.0.1", 6379), &known, table),
            Some(m.clone())
        );
        assert_eq!(identify(&a("r.test", 6379), &known, table), Some(r.clone()));
    }

    #[test]
    fn two_known_names_for_one_address_match_neither() {
        let (m, other) = (a("m.test", 6379), a("alias.test", 6379));
        let table = |h: &str| match h {
            "m.test" | "alias.test" => Some("10.0.0.1".parse().unwrap()),
            other => other.parse().ok(),
        };
        assert_eq!(identify(&a("10.0.0.1", 6379), &[&m, &other], table), None);
        assert_eq!(
            identify(&a("M.TEST", 6379), &[&m, &other], table),
            Some(m.clone())
        );
    }

    #[test]
    fn another_port_or_address_is_another_instance() {
        let m = a("m.test", 6379);
        assert_eq!(identify(&a("10.0.0.1", 6380), &[&m], table), None);
        assert_eq!(identify(&a("10.0.0.3", 6379), &[&m], table), None);
        assert_eq!(identify(&a("unknown.test", 6379), &[&m], table), None);
    }

    #[test]
    fn announce_uses_the_last_answer_unless_hostnames_are_announced() {
        let h = Hostnames::default();
        h.seen().insert(
            "m.test".to_owned(),
            ("10.0.0.1".parse().unwrap(), Instant::now()),
        );
        let m = a("m.test", 6379);
        assert_eq!(h.announce(&m).into_owned(), a("10.0.0.1", 6379));
        assert_eq!(h.announce(&a("x.test", 1)).into_owned(), a("x.test", 1));
        h.set(HostnameSettings {
            resolve: true,
            announce: true,
        });
        assert_eq!(h.announce(&m).into_owned(), m);
    }

    // Only /etc/hosts names: a name it lacks would be asked of a DNS server, off this host.
    #[tokio::test]
    async fn hostnames_are_taken_only_with_resolve_hostnames() {
        let h = Hostnames::default();
        assert_eq!(h.accept("10.0.0.1").await, Ok(()));
        assert_eq!(h.accept("::1").await, Ok(()));
        assert!(matches!(
            h.accept("localhost").await,
            Err(HostError::NotAnAddress(_))
        ));
        h.set(HostnameSettings {
            resolve: true,
            announce: false,
        });
        assert_eq!(h.accept("localhost").await, Ok(()));
        assert!(h.ip_of("LOCALHOST").is_some());
        assert!(matches!(
            h.accept("bad..name").await,
            Err(HostError::NotAnAddress(_))
        ));
    }
}
