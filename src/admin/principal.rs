//! Principals and the authorization rule. Pure: no I/O.

/// Who made a call, as proven by the facade that received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A cluster member: a node certificate naming this id (or, on a plaintext cluster whose
    /// every address is loopback, the id it declares). A member can append to the Raft log
    /// anyway, so it may also forward an operator's write it has already authorized.
    Node(u64),
    /// An operator: an admin certificate or token, a Sentinel-port user with the admin role, or
    /// any caller where the node runs without credentials on loopback only (or `insecure`).
    Admin(String),
    /// Anyone else: reads, Watch and SUBSCRIBE only.
    Client,
}

/// What a call wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reads, Watch, SUBSCRIBE, status.
    Read,
    /// Topology writes: MONITOR, REMOVE, SET, FAILOVER, switchover, pause, resume, resolve, RESET,
    /// CONFIG SET.
    Write,
    /// Adding or removing a member.
    Membership,
}

/// A refused call: the caller is known, but not allowed this action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{who} may not {what}{hint}")]
pub struct Denied {
    pub who: String,
    pub what: &'static str,
    /// How to become someone who may.
    pub hint: &'static str,
}

impl Principal {
    /// How the principal is named in refusals and logs.
    pub fn describe(&self) -> String {
        match self {
            Principal::Node(id) => format!("node {id}"),
            Principal::Admin(name) => format!("admin '{name}'"),
            Principal::Client => "an unauthenticated client".to_owned(),
        }
    }
}

/// The whole authorization rule.
pub fn authorize(who: &Principal, action: Action) -> Result<(), Denied> {
    let allowed = match (who, action) {
        (_, Action::Read) => true,
        (Principal::Node(_) | Principal::Admin(_), Action::Write | Action::Membership) => true,
        (Principal::Client, Action::Write | Action::Membership) => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Denied {
            hint: match who {
                Principal::Client => {
                    " (present an admin certificate from `raftinel certs admin`, or the admin token)"
                }
                _ => "",
            },
            who: who.describe(),
            what: match action {
                Action::Read => "read",
                Action::Write => "change the topology",
                Action::Membership => "change the membership",
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyone_reads() {
        for who in [
            Principal::Node(1),
            Principal::Admin("ops".into()),
            Principal::Client,
        ] {
            assert_eq!(authorize(&who, Action::Read), Ok(()));
        }
    }

    #[test]
    fn only_admins_and_members_write() {
        for action in [Action::Write, Action::Membership] {
            assert_eq!(authorize(&Principal::Node(2), action), Ok(()));
            assert_eq!(authorize(&Principal::Admin("ops".into()), action), Ok(()));
            let denied = authorize(&Principal::Client, action).unwrap_err();
            assert!(denied
                .to_string()
                .starts_with("an unauthenticated client may not"));
        }
    }
}
