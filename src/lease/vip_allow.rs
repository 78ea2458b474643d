//! `vip-allowed`: the IPv4 subnets this node may put a VIP in (invariant 12). The log says which
//! VIP a master has; this node's own config says whether it may add it. Every node checks its
//! own list before it adds (or touches) a VIP, and the node that receives a SET checks it too,
//! to refuse early. No list: no VIP at all. Pure.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::topology::{parse_option, MasterOption, Vip};

/// An IPv4 subnet, `A.B.C.D/N` with no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: Ipv4Addr,
    prefix: u8,
}

/// Host-bit mask of a prefix length (0 for /32).
fn host_bits(prefix: u8) -> u32 {
    u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0)
}

impl Cidr {
    /// Whether `vip`'s whole subnet lies inside this one: its address, and a prefix at least as
    /// long (a /8 VIP inside an allowed /16 would still claim the /8 route on the interface).
    pub fn covers(&self, vip: &Vip) -> bool {
        let mask = !host_bits(self.prefix);
        vip.prefix >= self.prefix && u32::from(vip.ip) & mask == u32::from(self.net)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl FromStr for Cidr {
    /// Why it is not a subnet, in words.
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s
            .trim()
            .split_once('/')
            .ok_or("the /PREFIX is missing (write A.B.C.D/N)")?;
        let net: Ipv4Addr = ip.parse().map_err(|_| "not an IPv4 address")?;
        let prefix: u8 = match prefix.parse() {
            Ok(p) if p <= 32 => p,
            _ => return Err("the prefix length must be 0 to 32".to_owned()),
        };
        let host = u32::from(net) & host_bits(prefix);
        if host != 0 {
            let base = Ipv4Addr::from(u32::from(net) & !host_bits(prefix));
            return Err(format!("host bits are set; the subnet is {base}/{prefix}"));
        }
        Ok(Cidr { net, prefix })
    }
}

/// Why this node will not carry a VIP; `Display` names the key and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VipRefused {
    #[error("vip {vip} cannot be a host address: {why}")]
    Insane { vip: Vip, why: &'static str },
    #[error("vip {vip} is refused: this node's `vip-allowed` is empty, so it adds no VIP; add a subnet that contains it (e.g. vip-allowed = [\"{}/{}\"]) to the config of every node that may hold it", Ipv4Addr::from(u32::from(vip.ip) & !host_bits(vip.prefix)), vip.prefix)]
    NoneAllowed { vip: Vip },
    #[error("vip {vip} is outside this node's `vip-allowed` ({allowed}); add a subnet that contains it to `vip-allowed` in the config of every node that may hold it, or choose a VIP inside it")]
    Outside { vip: Vip, allowed: String },
}

/// Whether this node, with `allowed` as its `vip-allowed`, may carry `vip`.
pub fn check(allowed: &[Cidr], vip: &Vip) -> Result<(), VipRefused> {
    vip.sane()
        .map_err(|why| VipRefused::Insane { vip: *vip, why })?;
    if allowed.is_empty() {
        return Err(VipRefused::NoneAllowed { vip: *vip });
    }
    if allowed.iter().any(|c| c.covers(vip)) {
        return Ok(());
    }
    let list: Vec<String> = allowed.iter().map(Cidr::to_string).collect();
    Err(VipRefused::Outside {
        vip: *vip,
        allowed: list.join(", "),
    })
}

/// SET's `vip` options, checked against `allowed` by the node that receives the SET. An option
/// that does not parse is left to `apply`, which refuses it in Sentinel's words.
pub fn check_set<'a>(
    allowed: &[Cidr],
    options: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), VipRefused> {
    for (option, value) in options {
        if let Ok(MasterOption::Vip(Some(vip))) = parse_option(option, value) {
            check(allowed, &vip)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(s: &str) -> Vip {
        let (ip, prefix) = s.split_once('/').unwrap();
        Vip {
            ip: ip.parse().unwrap(),
            prefix: prefix.parse().unwrap(),
        }
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn parses_subnets_and_names_the_mistake() {
        for ok in [
            "10.77.0.0/16",
            "0.0.0.0/0",
            "10.77.0.200/32",
            " 192.168.1.0/24 ",
        ] {
            assert!(ok.parse::<Cidr>().is_ok(), "{ok}");
        }
        let table = [
            ("10.77.0.0", "the /PREFIX is missing"),
            ("10.77.0/16", "not an IPv4 address"),
            ("fd00::/8", "not an IPv4 address"),
            ("10.0.0.0/33", "the prefix length must be 0 to 32"),
            ("10.0.0.0/x", "the prefix length must be 0 to 32"),
            (
                "10.77.1.0/16",
                "host bits are set; the subnet is 10.77.0.0/16",
            ),
        ];
        for (text, why) in table {
            let err = text.parse::<Cidr>().unwrap_err();
            assert!(err.starts_with(why), "{text}: {err}");
        }
        assert_eq!(cidrs(&["10.77.0.0/16"])[0].to_string(), "10.77.0.0/16");
    }

    // The VIP's address and its whole subnet must be inside one allowed subnet.
    #[test]
    fn covers_address_and_prefix() {
        let table = [
            ("10.77.0.0/16", "10.77.0.200/24", true),
            ("10.77.0.0/16", "10.77.255.1/16", true),
            ("10.77.0.0/16", "10.77.0.200/32", true),
            ("10.77.0.0/16", "10.78.0.200/24", false),
            ("10.77.0.0/16", "10.77.0.200/8", false),
            ("10.77.0.200/32", "10.77.0.200/32", true),
            ("10.77.0.200/32", "10.77.0.201/32", false),
            ("0.0.0.0/0", "192.168.1.10/24", true),
        ];
        for (cidr, v, covered) in table {
            let c: Cidr = cidr.parse().unwrap();
            assert_eq!(c.covers(&vip(v)), covered, "{cidr} covers {v}");
        }
    }

    // Secure by default: no list, no VIP; the refusal names the key and a fix.
    #[test]
    fn check_refuses_outside_empty_and_insane() {
        let allowed = cidrs(&["10.77.0.0/16", "192.168.7.0/24"]);
        assert_eq!(check(&allowed, &vip("192.168.7.9/24")), Ok(()));
        let outside = check(&allowed, &vip("10.0.0.1/24")).unwrap_err();
        assert_eq!(
            outside.to_string(),
            "vip 10.0.0.1/24 is outside this node's `vip-allowed` (10.77.0.0/16, 192.168.7.0/24); add a subnet that contains it to `vip-allowed` in the config of every node that may hold it, or choose a VIP inside it"
        );
        let none = check(&[], &vip("10.77.0.200/24")).unwrap_err();
        assert!(
            none.to_string()
                .contains("`vip-allowed` is empty, so it adds no VIP; add a subnet that contains it (e.g. vip-allowed = [\"10.77.0.0/24\"])"),
            "{none}"
        );
        let set = |o: &'static str, v: &'static str| check_set(&allowed, [("quorum", "2"), (o, v)]);
        assert_eq!(set("VIP", "10.77.0.200/24"), Ok(()));
        assert_eq!(set("vip", ""), Ok(()), "clearing is always allowed");
        assert_eq!(set("vip", "bogus"), Ok(()), "left to apply");
        assert!(matches!(
            set("vip", "10.0.0.1/24"),
            Err(VipRefused::Outside { .. })
        ));
        // What an older log may hold: refused at the point of use even inside the list.
        let all = cidrs(&["0.0.0.0/0"]);
        for bad in [
            "10.0.0.0/24",
            "10.0.0.255/24",
            "10.0.0.1/4",
            "255.255.255.255/32",
        ] {
            assert!(
                matches!(check(&all, &vip(bad)), Err(VipRefused::Insane { .. })),
                "{bad}"
            );
        }
    }
}
