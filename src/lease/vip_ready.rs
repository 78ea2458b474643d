//! Whether this node can carry a master's VIP (issue 5 §1): the capabilities to add the address
//! and announce it, the interface, and a Redis that listens on it. A node that cannot says why
//! in its report; the leader records it in the log and that node is never given the VIP. Pure
//! rules, plus one read of this process's effective capabilities.

use std::net::Ipv4Addr;

/// Capability bits in `CapEff` (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;

/// The effective capability set from the text of /proc/self/status.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// This process's effective capabilities, if /proc says.
pub fn cap_eff() -> Option<u64> {
    parse_cap_eff(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// Whether Redis's `bind` list (CONFIG GET bind, split on spaces) accepts connections to `vip`:
/// no list, an IPv4 wildcard, or the VIP itself (a leading `-` marks an optional address).
pub fn bind_covers(bind: &[String], vip: Ipv4Addr) -> bool {
    let vip = vip.to_string();
    bind.is_empty()
        || bind.iter().any(|b| {
            let b = b.strip_prefix('-').unwrap_or(b);
            b == "*" || b == "0.0.0.0" || b == vip
        })
}

/// Everything one check reads.
pub struct Readiness<'a> {
    /// `None` when /proc could not be read: the capabilities are then not held against the node.
    pub cap_eff: Option<u64>,
    /// The interface this node would put the VIP on, if any is configured.
    pub interface: Option<&'a str>,
    pub interface_exists: bool,
    /// The local Redis instance of this master, and its `bind` list.
    pub redis: &'a str,
    pub bind: &'a [String],
    pub vip: Ipv4Addr,
}

/// Why this node cannot carry the VIP, in words an operator can act on; `None` if it can.
pub fn problem(r: &Readiness) -> Option<String> {
    if let Some(caps) = r.cap_eff {
        let missing: Vec<&str> = [
            (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
            (CAP_NET_RAW, "CAP_NET_RAW"),
        ]
        .into_iter()
        .filter(|(bit, _)| caps & (1 << bit) == 0)
        .map(|(_, name)| name)
        .collect();
        if !missing.is_empty() {
            return Some(format!(
                "raftinel lacks {} (add AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW to its unit)",
                missing.join(" and ")
            ));
        }
    }
    let Some(dev) = r.interface else {
        return Some(
            "no vip-interface: set `[masters.NAME] vip-interface` in this node's config or `raftinel ctl set NAME vip-interface DEV`".to_owned(),
        );
    };
    if !r.interface_exists {
        return Some(format!(
            "vip-interface {dev}: no such interface on this host"
        ));
    }
    if !bind_covers(r.bind, r.vip) {
        return Some(format!(
            "Redis {} binds only {}: it would not answer on the VIP (bind 0.0.0.0, or add {} with net.ipv4.ip_nonlocal_bind=1)",
            r.redis,
            r.bind.join(" "),
            r.vip
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u64 = 0x000001ffffffffff;
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 200);

    fn ready<'a>(cap_eff: Option<u64>, bind: &'a [String]) -> Readiness<'a> {
        Readiness {
            cap_eff,
            interface: Some("eth0"),
            interface_exists: true,
            redis: "10.77.0.11:6379",
            bind,
            vip: VIP,
        }
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_cap_eff_from_proc_status() {
        let status = "Name:\traftinel\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffcfff\n";
        assert_eq!(parse_cap_eff(status), Some(0x000001ffffffcfff));
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
        assert_eq!(parse_cap_eff("CapEff:\tnothex\n"), None);
    }

    #[test]
    fn names_each_missing_capability() {
        let bind = words(&["0.0.0.0"]);
        assert_eq!(problem(&ready(Some(ALL), &bind)), None);
        let no_admin = problem(&ready(Some(ALL & !(1 << 12)), &bind)).unwrap();
        assert!(
            no_admin.starts_with("raftinel lacks CAP_NET_ADMIN ("),
            "{no_admin}"
        );
        let neither = problem(&ready(Some(0), &bind)).unwrap();
        assert!(
            neither.contains("CAP_NET_ADMIN and CAP_NET_RAW"),
            "{neither}"
        );
        // Unknown capabilities are not held against the node: adding the VIP will tell.
        assert_eq!(problem(&ready(None, &bind)), None);
    }

    #[test]
    fn bind_must_reach_the_vip() {
        for ok in [
            &[][..],
            &["*"][..],
            &["* -::*"][..],
            &["0.0.0.0"][..],
            &["10.77.0.11", "10.77.0.200"][..],
            &["10.77.0.11", "-10.77.0.200"][..],
            &["*", "-::*"][..],
        ] {
            let bind: Vec<String> = ok
                .iter()
                .flat_map(|s| s.split(' '))
                .map(String::from)
                .collect();
            assert!(bind_covers(&bind, VIP), "{ok:?}");
        }
        for bad in [&["127.0.0.1"][..], &["10.77.0.11", "::1"][..], &["::"][..]] {
            assert!(!bind_covers(&words(bad), VIP), "{bad:?}");
        }
        let bind = words(&["127.0.0.1", "10.77.0.11"]);
        let why = problem(&ready(Some(ALL), &bind)).unwrap();
        assert!(why.contains("binds only 127.0.0.1 10.77.0.11"), "{why}");
    }

    #[test]
    fn interface_must_be_named_and_present() {
        let bind = words(&["0.0.0.0"]);
        let mut r = ready(Some(ALL), &bind);
        r.interface_exists = false;
        assert!(problem(&r).unwrap().contains("no such interface"));
        r.interface = None;
        assert!(problem(&r).unwrap().contains("no vip-interface"));
    }
}
