//! The process's liveness, as the lease guard reports it each round: `WATCHDOG=1` to systemd, and
//! the optional Linux watchdog device (`watchdog-device`, Patroni's approach). The device is open
//! and kept alive while this node holds a lease or a local Redis is writable, so a process that
//! dies or freezes then gets its host rebooted by the kernel, taking the writable Redis with it;
//! once the node holds nothing and has fenced its Redis it disarms with the magic close ('V',
//! then close). `want_armed` and `step` are the rule; `Device` the file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::sd_notify::Notifier;

/// The config's `watchdog-device` and `watchdog-timeout-s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    pub path: PathBuf,
    /// Seconds without a keepalive before the kernel reboots the host.
    pub timeout_s: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    #[error("{path}: {what}: {source}")]
    Io {
        path: String,
        what: &'static str,
        source: std::io::Error,
    },
}

/// Armed while a crash would leave a writable Redis behind: a lease is held (the Redis may be
/// unfenced any moment, so the device is armed first) or a monitored local Redis is, or was last
/// seen, an unfenced master (the lease lapsed and the fence has not taken yet, or failed).
pub fn want_armed(lease_held: bool, writable: bool) -> bool {
    lease_held || writable
}

/// What to do with the device this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Open it (the kernel starts counting) and set its timeout.
    Arm,
    KeepAlive,
    /// 'V' then close: the kernel stops counting.
    Disarm,
    Idle,
}

pub fn step(armed: bool, want: bool) -> Step {
    match (armed, want) {
        (false, true) => Step::Arm,
        (true, true) => Step::KeepAlive,
        (true, false) => Step::Disarm,
        (false, false) => Step::Idle,
    }
}

/// `_IOWR('W', 6, int)` from linux/watchdog.h, which the libc crate does not carry.
#[cfg(target_os = "linux")]
const WDIOC_SETTIMEOUT: libc::c_ulong = 0xC004_5706;

/// The watchdog device: open (armed) or closed.
pub struct Device {
    config: DeviceConfig,
    file: Option<File>,
}

impl Device {
    pub fn new(config: DeviceConfig) -> Device {
        Device { config, file: None }
    }

    /// Opens the device once and disarms it at once: a node that cannot reach its configured
    /// watchdog must not start (the caller exits 2).
    pub fn check(config: &DeviceConfig) -> Result<(), WatchdogError> {
        let mut d = Device::new(config.clone());
        d.arm()?;
        d.disarm()
    }

    pub fn armed(&self) -> bool {
        self.file.is_some()
    }

    /// Applies the rule; errors are the caller's to log (the next round tries again).
    pub fn apply(&mut self, want: bool) -> Result<Step, WatchdogError> {
        let s = step(self.armed(), want);
        match s {
            Step::Arm => self.arm()?,
            Step::KeepAlive => self.keepalive()?,
            Step::Disarm => self.disarm()?,
            Step::Idle => {}
        }
        Ok(s)
    }

    fn err(&self, what: &'static str) -> impl FnOnce(std::io::Error) -> WatchdogError + '_ {
        move |source| WatchdogError::Io {
            path: self.config.path.display().to_string(),
            what,
            source,
        }
    }

    fn arm(&mut self) -> Result<(), WatchdogError> {
        // Append: a regular file standing in for the device (tests) keeps every write.
        let file = OpenOptions::new()
            .append(true)
            .open(&self.config.path)
            .map_err(self.err("open"))?;
        self.file = Some(file);
        let set = match &self.file {
            Some(f) => set_timeout(f, &self.config.path, self.config.timeout_s),
            None => Ok(None),
        };
        match set {
            Ok(Some(t)) if t != self.config.timeout_s => tracing::warn!(
                wanted_s = self.config.timeout_s,
                set_s = t,
                "the watchdog driver chose another timeout"
            ),
            Ok(_) => {}
            Err(e) => {
                // Closed with the magic character: an open device left behind would reboot.
                let _ = self.disarm();
                return Err(self.err("set timeout")(e));
            }
        }
        self.keepalive()
    }

    fn keepalive(&mut self) -> Result<(), WatchdogError> {
        let r = match &mut self.file {
            Some(f) => f.write_all(b"1"),
            None => Ok(()),
        };
        r.map_err(self.err("keepalive"))
    }

    /// The magic close. A failed 'V' still closes: the kernel then keeps counting, which errs on
    /// the side of a reboot.
    fn disarm(&mut self) -> Result<(), WatchdogError> {
        let r = match self.file.take() {
            Some(mut f) => f.write_all(b"V"),
            None => Ok(()),
        };
        r.map_err(self.err("magic close"))
    }
}

/// WDIOC_SETTIMEOUT on a real watchdog (a character device): the timeout the driver chose. Other
/// paths (tests) have no timeout: `None`.
fn set_timeout(file: &File, path: &Path, timeout_s: u32) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::FileTypeExt;
    if !std::fs::metadata(path)?.file_type().is_char_device() {
        return Ok(None);
    }
    set_device_timeout(file, timeout_s).map(Some)
}

#[cfg(target_os = "linux")]
fn set_device_timeout(file: &File, timeout_s: u32) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut t = libc::c_int::try_from(timeout_s).unwrap_or(libc::c_int::MAX);
    // SAFETY: WDIOC_SETTIMEOUT reads and writes one int through the pointer, which lives across
    // the call; the descriptor is open for the call's length.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), WDIOC_SETTIMEOUT, &mut t) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u32::try_from(t).unwrap_or(timeout_s))
}

#[cfg(not(target_os = "linux"))]
fn set_device_timeout(_: &File, timeout_s: u32) -> std::io::Result<u32> {
    Ok(timeout_s)
}

/// What the guard loop tells the outside world each round.
#[derive(Default)]
pub struct Alive {
    pub systemd: Notifier,
    /// Behind a lock so the guard can arm it from `&self` right before it unfences.
    pub device: Option<std::sync::Mutex<Device>>,
    /// The last use of the device failed: said once, not every round.
    failing: std::sync::atomic::AtomicBool,
}

impl Alive {
    pub fn new(systemd: Notifier, device: Option<DeviceConfig>) -> Alive {
        Alive {
            systemd,
            device: device.map(|d| std::sync::Mutex::new(Device::new(d))),
            failing: Default::default(),
        }
    }

    fn apply(&self, want: bool, why: &str) -> Result<(), WatchdogError> {
        let Some(device) = &self.device else {
            return Ok(());
        };
        let mut device = device.lock().unwrap_or_else(|p| p.into_inner());
        let r = device.apply(want);
        let was_failing = self
            .failing
            .swap(r.is_err(), std::sync::atomic::Ordering::Relaxed);
        match &r {
            Ok(Step::Arm) => tracing::info!("watchdog device armed: {why}"),
            Ok(Step::Disarm) => tracing::info!("watchdog device disarmed: {why}"),
            Ok(_) if was_failing => tracing::info!("watchdog device usable again"),
            Ok(_) => {}
            Err(e) if !was_failing => {
                tracing::error!(error = %e, "watchdog device: no unfence until it works again");
            }
            Err(_) => {}
        }
        r.map(|_| ())
    }

    /// One guard round went by: ping systemd and arm, keep alive or disarm the device.
    pub fn round(&self, lease_held: bool, writable: bool) {
        self.systemd.alive();
        let want = want_armed(lease_held, writable);
        let why = if want {
            "this node may hold a writable Redis"
        } else {
            "no lease, local Redis fenced"
        };
        let _ = self.apply(want, why);
    }

    /// Right before an unfence: the device must be armed first, or the Redis stays fenced (a
    /// configured device is a requirement, as in Patroni's `mode: required`).
    pub fn may_unfence(&self) -> bool {
        self.apply(true, "unfencing a local Redis").is_ok()
    }

    /// Clean shutdown: the device is disarmed (systemd's `ExecStopPost` fences what is left).
    pub fn stop(&self) {
        let _ = self.apply(false, "shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_while_a_lease_is_held_or_a_redis_is_writable() {
        assert!(!want_armed(false, false));
        assert!(want_armed(true, false));
        assert!(want_armed(false, true));
        assert!(want_armed(true, true));
    }

    #[test]
    fn steps_follow_the_wanted_state() {
        assert_eq!(step(false, false), Step::Idle);
        assert_eq!(step(false, true), Step::Arm);
        assert_eq!(step(true, true), Step::KeepAlive);
        assert_eq!(step(true, false), Step::Disarm);
    }

    #[test]
    fn a_regular_file_sees_keepalives_then_the_magic_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        std::fs::write(&path, "").unwrap();
        let config = DeviceConfig {
            path: path.clone(),
            timeout_s: 5,
        };
        Device::check(&config).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1V");
        let alive = Alive::new(Notifier::default(), Some(config));
        alive.round(false, false);
        alive.round(true, false);
        alive.round(true, true);
        alive.round(false, true);
        alive.round(false, false);
        alive.round(false, false);
        alive.stop();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1V111V");
        alive.round(true, false);
        alive.stop();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1V111V1V");
        // Armed before an unfence; a device that cannot be opened forbids it.
        assert!(alive.may_unfence());
        assert!(alive.may_unfence());
        alive.stop();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1V111V1V11V");
        std::fs::remove_file(&path).unwrap();
        assert!(!alive.may_unfence());
        assert!(Alive::default().may_unfence());
    }

    // A character device that is no watchdog refuses WDIOC_SETTIMEOUT (ENOTTY): an error, and the
    // device is not left open.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_device_that_takes_no_timeout_is_refused() {
        let config = DeviceConfig {
            path: PathBuf::from("/dev/null"),
            timeout_s: 5,
        };
        let mut d = Device::new(config.clone());
        let e = d.apply(true).unwrap_err().to_string();
        assert!(e.starts_with("/dev/null: set timeout:"), "{e}");
        assert!(!d.armed());
        assert!(Device::check(&config).is_err());
    }

    #[test]
    fn a_missing_device_is_an_error_naming_it() {
        let config = DeviceConfig {
            path: PathBuf::from("/nonexistent/watchdog"),
            timeout_s: 5,
        };
        let e = Device::check(&config).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/watchdog: open:"), "{e}");
    }
}
