//! systemd's notify protocol (`sd_notify(3)`), written out: `READY=1` once the node serves,
//! `STOPPING=1` when it shuts down and `WATCHDOG=1` from the lease guard's loop, so a guard that is
//! stuck or a process that is frozen stops the pings and systemd kills it (then `ExecStopPost`
//! fences its Redis). One datagram per message to `$NOTIFY_SOCKET`; nothing at all when it is
//! unset. Sends never block: a systemd that does not read is no reason to stall the guard.
//!
//! No crate: the protocol is three environment variables and a datagram, and a dependency would
//! not save the parsing that decides whether the watchdog is ours (`WATCHDOG_PID`).

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where and how often to tell systemd the node is alive; cheap to clone.
#[derive(Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    socket: UnixDatagram,
    to: SocketAddr,
    /// Half the watchdog period or less; `None`: no watchdog, or one meant for another process.
    ping_every: Option<Duration>,
    last_ping: Mutex<Option<Instant>>,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET={0:?} is neither a path nor an abstract name (@name)")]
    Address(String),
    #[error("NOTIFY_SOCKET: {0}")]
    Io(#[from] std::io::Error),
}

/// The ping period for `WATCHDOG_USEC` / `WATCHDOG_PID` as systemd sets them: a quarter of the
/// watchdog period (sd_watchdog_enabled(3) asks for half or less; a quarter leaves room for a
/// round of the guard that is slow but not stuck). `None` when no watchdog is set, the value is
/// not a positive number, or it is for another process.
pub fn ping_period(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 4).max(Duration::from_millis(1)))
}

/// `@name` is a Linux abstract socket; anything else a path.
fn address(spec: &str) -> Result<SocketAddr, NotifyError> {
    let bad = || NotifyError::Address(spec.to_owned());
    match spec.strip_prefix('@') {
        Some(name) if !name.is_empty() => abstract_address(name).ok_or_else(bad),
        Some(_) => Err(bad()),
        None if spec.starts_with('/') => Ok(SocketAddr::from_pathname(Path::new(spec))?),
        None => Err(bad()),
    }
}

#[cfg(target_os = "linux")]
fn abstract_address(name: &str) -> Option<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name.as_bytes()).ok()
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(_: &str) -> Option<SocketAddr> {
    None
}

impl Notifier {
    /// From the environment systemd gives a `Type=notify` service; a no-op notifier when
    /// `NOTIFY_SOCKET` is unset.
    pub fn from_env() -> Result<Notifier, NotifyError> {
        let Some(spec) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(Notifier::default());
        };
        let spec = spec.to_string_lossy().into_owned();
        let to = address(&spec)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        let ping_every = ping_period(usec.as_deref(), pid.as_deref(), std::process::id());
        Ok(Notifier {
            inner: Some(Arc::new(Inner {
                socket,
                to,
                ping_every,
                last_ping: Mutex::new(None),
            })),
        })
    }

    /// The watchdog period systemd expects pings at (a quarter of `WatchdogSec`), if any.
    pub fn ping_every(&self) -> Option<Duration> {
        self.inner.as_ref().and_then(|i| i.ping_every)
    }

    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=serving");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// `WATCHDOG=1`, at most once per ping period however often it is called.
    pub fn alive(&self) {
        let Some(inner) = &self.inner else { return };
        let Some(every) = inner.ping_every else {
            return;
        };
        let now = Instant::now();
        {
            let mut last = inner.last_ping.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| now.duration_since(t) < every) {
                return;
            }
            *last = Some(now);
        }
        self.send("WATCHDOG=1");
    }

    fn send(&self, msg: &str) {
        let Some(inner) = &self.inner else { return };
        if let Err(e) = inner.socket.send_to_addr(msg.as_bytes(), &inner.to) {
            tracing::warn!(error = %e, msg, "cannot notify systemd");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_ours_only_with_a_period_and_our_pid_or_none() {
        let quarter = Some(Duration::from_millis(500));
        assert_eq!(ping_period(Some("2000000"), None, 7), quarter);
        assert_eq!(ping_period(Some("2000000"), Some("7"), 7), quarter);
        assert_eq!(ping_period(Some("2000000"), Some("8"), 7), None);
        assert_eq!(ping_period(Some("2000000"), Some("x"), 7), None);
        assert_eq!(ping_period(None, Some("7"), 7), None);
        assert_eq!(ping_period(Some("0"), None, 7), None);
        assert_eq!(ping_period(Some("-5"), None, 7), None);
        assert_eq!(ping_period(Some("soon"), None, 7), None);
        assert_eq!(
            ping_period(Some("3"), None, 7),
            Some(Duration::from_millis(1))
        );
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        assert!(address("/run/systemd/notify").is_ok());
        assert!(address("@/org/freedesktop/systemd1/notify/123").is_ok());
        assert!(matches!(address("@"), Err(NotifyError::Address(_))));
        assert!(matches!(address("relative"), Err(NotifyError::Address(_))));
        assert!(matches!(address(""), Err(NotifyError::Address(_))));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_abstract_name_is_reached() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("raftinel-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let socket = UnixDatagram::unbound().unwrap();
        socket
            .send_to_addr(b"READY=1", &address(&format!("@{name}")).unwrap())
            .unwrap();
        let mut buf = [0u8; 16];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
    }

    #[test]
    fn messages_reach_a_bound_socket_and_pings_are_spaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let socket = UnixDatagram::unbound().unwrap();
        let n = Notifier {
            inner: Some(Arc::new(Inner {
                socket,
                to: SocketAddr::from_pathname(&path).unwrap(),
                ping_every: Some(Duration::from_secs(60)),
                last_ping: Mutex::new(None),
            })),
        };
        n.ready();
        n.alive();
        n.alive();
        n.stopping();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        for _ in 0..3 {
            let len = rx.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        assert_eq!(got, ["READY=1\nSTATUS=serving", "WATCHDOG=1", "STOPPING=1"]);
        Notifier::default().ready();
    }
}
