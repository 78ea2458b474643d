//! Who a Sentinel-port connection is, as the admin module's [`Principal`], and the refusal a
//! write gets when [`authorize`] says no. Pure: no I/O.
//!
//! Users and roles come from `[sentinel]` (see `config::SentinelAuth`). With no credentials
//! configured the port is in protected mode, as Redis's: every client is the `default` user, but
//! only a loopback client is an admin.

use std::net::IpAddr;

use crate::admin::{authorize, Action, Principal};
use crate::config::{SentinelAuth, SentinelRole};
use crate::resp::reply::Reply;

/// The principal of a connection from `peer` logged in as `user` (`None`: not authenticated).
pub fn principal(auth: &SentinelAuth, user: Option<&str>, peer: IpAddr) -> Principal {
    let Some(user) = user else {
        return Principal::Client;
    };
    if user == "default" {
        return if auth.requirepass.is_some() || (!auth.required() && is_loopback(peer)) {
            Principal::Admin("default".to_owned())
        } else {
            Principal::Client
        };
    }
    match auth.users.get(user).map(|u| u.role) {
        Some(SentinelRole::Admin) => Principal::Admin(user.to_owned()),
        Some(SentinelRole::Client) | None => Principal::Client,
    }
}

/// Loopback, including an IPv4 loopback address seen through an IPv6 socket.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// `Ok` when `who` may write; otherwise Redis 7.2's ACL refusal naming the user and the command
/// in its `command|subcommand` form, e.g. `sentinel|monitor`.
pub fn permit_write(who: &Principal, user: Option<&str>, full_name: &str) -> Result<(), Reply> {
    authorize(who, Action::Write).map_err(|_| noperm(user.unwrap_or("default"), full_name))
}

pub fn noperm(user: &str, full_name: &str) -> Reply {
    Reply::error(format!(
        "NOPERM User {user} has no permissions to run the '{full_name}' command"
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::SentinelUser;

    const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const LAN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9));

    fn auth(requirepass: Option<&str>, users: &[(&str, SentinelRole)]) -> SentinelAuth {
        SentinelAuth {
            requirepass: requirepass.map(str::to_owned),
            users: users
                .iter()
                .map(|(n, role)| {
                    let u = SentinelUser {
                        password: "pw".to_owned(),
                        role: *role,
                    };
                    ((*n).to_owned(), u)
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn admin(name: &str) -> Principal {
        Principal::Admin(name.to_owned())
    }

    #[test]
    fn protected_mode_makes_only_loopback_an_admin() {
        let none = auth(None, &[]);
        assert_eq!(principal(&none, Some("default"), LO), admin("default"));
        assert_eq!(principal(&none, Some("default"), LAN), Principal::Client);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(principal(&none, Some("default"), mapped), admin("default"));
        assert_eq!(
            principal(&none, Some("default"), "::1".parse().unwrap()),
            admin("default")
        );
    }

    #[test]
    fn requirepass_makes_default_an_admin_from_anywhere() {
        let a = auth(Some("s"), &[]);
        assert_eq!(principal(&a, Some("default"), LAN), admin("default"));
        assert_eq!(principal(&a, None, LO), Principal::Client);
    }

    #[test]
    fn users_get_their_role_and_default_is_disabled_without_requirepass() {
        let a = auth(
            None,
            &[("ops", SentinelRole::Admin), ("app", SentinelRole::Client)],
        );
        assert_eq!(principal(&a, Some("ops"), LAN), admin("ops"));
        assert_eq!(principal(&a, Some("app"), LO), Principal::Client);
        // Credentials are configured: loopback is no longer trusted by itself.
        assert_eq!(principal(&a, Some("default"), LO), Principal::Client);
        assert_eq!(principal(&a, Some("ghost"), LO), Principal::Client);
    }

    #[test]
    fn refusals_use_redis_noperm_wording() {
        assert!(permit_write(&admin("ops"), Some("ops"), "sentinel|set").is_ok());
        let Err(Reply::Error(e)) = permit_write(&Principal::Client, Some("app"), "sentinel|set")
        else {
            panic!("a client wrote");
        };
        assert_eq!(
            e,
            "NOPERM User app has no permissions to run the 'sentinel|set' command"
        );
        let Err(Reply::Error(e)) = permit_write(&Principal::Client, None, "sentinel|reset") else {
            panic!("a client wrote");
        };
        assert!(e.starts_with("NOPERM User default "));
    }
}
