//! Incarnation ids (issue 11 item 2): a random number made once with a node's data dir, recorded
//! in the membership next to its id, and sent on every node-to-node call with the incarnation the
//! caller expects the callee to have. A node whose data dir was wiped or replaced keeps its id
//! but not its incarnation, so it can no longer pass for the member that voted and acknowledged
//! entries under that id. This file holds the headers and the pure check; the store is
//! `identity::ClusterIdentity`.

use rand::RngCore;
use tonic::metadata::MetadataMap;

/// gRPC metadata key with the caller's own incarnation (16 hex digits).
pub const HEADER: &str = "x-raftinel-incarnation";
/// gRPC metadata key with the incarnation the caller's membership records for the callee.
pub const TARGET_HEADER: &str = "x-raftinel-target-incarnation";

/// A fresh incarnation; never 0, which means "unknown" (recorded before format version 6).
pub fn generate() -> u64 {
    loop {
        let v = rand::thread_rng().next_u64();
        if v != 0 {
            return v;
        }
    }
}

pub fn show(incarnation: u64) -> String {
    format!("{incarnation:016x}")
}

fn parse(md: &MetadataMap, key: &str) -> Option<u64> {
    md.get(key)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .filter(|v| *v != 0)
}

/// Writes `incarnation` under `key`, unless it is unknown.
pub fn put(md: &mut MetadataMap, key: &'static str, incarnation: u64) {
    if incarnation == 0 {
        return;
    }
    if let Ok(v) = show(incarnation).parse() {
        md.insert(key, v);
    }
}

/// What a call claims: the caller's incarnation and the one it expects this node to have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claims {
    pub sender: Option<u64>,
    pub target: Option<u64>,
}

impl Claims {
    pub fn of(md: &MetadataMap) -> Claims {
        Claims {
            sender: parse(md, HEADER),
            target: parse(md, TARGET_HEADER),
        }
    }
}

/// Why a node-to-node call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The caller is not the incarnation this node's membership records for its id.
    #[error("node {id} called as incarnation {}, but the membership records node {id} as incarnation {}: node {id}'s data dir was wiped or replaced, and a node that forgot its votes and log must not take part under its old id; stop it, remove it (`raftinel ctl members remove {id}`) and add it back under a new id with an empty data dir", claimed.map(show).unwrap_or_else(|| "none".into()), show(*recorded))]
    Sender {
        id: u64,
        recorded: u64,
        claimed: Option<u64>,
    },
    /// This node is not the incarnation the caller's membership records for its id.
    #[error("node {by} expects node {id} to be incarnation {}, but this node is incarnation {}: this node's data dir was wiped or replaced since it joined, and it must not take part under its old id; stop it, have it removed (`raftinel ctl members remove {id}`) and rejoin under a new id with an empty data dir", show(*expected), show(*own))]
    Target {
        id: u64,
        by: u64,
        own: u64,
        expected: u64,
    },
}

/// The whole rule. `recorded` is the incarnation this node's membership records for the caller
/// `from` (`None`: no membership yet, or 0: recorded before incarnations; neither is checked).
pub fn check(
    me: u64,
    own: u64,
    from: u64,
    recorded: Option<u64>,
    claims: Claims,
) -> Result<(), Mismatch> {
    if let Some(expected) = claims.target {
        if expected != own {
            return Err(Mismatch::Target {
                id: me,
                by: from,
                own,
                expected,
            });
        }
    }
    match recorded {
        Some(r) if r != 0 && claims.sender != Some(r) => Err(Mismatch::Sender {
            id: from,
            recorded: r,
            claimed: claims.sender,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sender: Option<u64>, target: Option<u64>) -> Claims {
        Claims { sender, target }
    }

    #[test]
    fn matching_or_unknown_incarnations_pass() {
        assert_eq!(
            check(3, 30, 1, Some(10), claims(Some(10), Some(30))),
            Ok(())
        );
        // No membership yet (a node being added): only the target is checked.
        assert_eq!(check(3, 30, 1, None, claims(Some(10), Some(30))), Ok(()));
        assert_eq!(check(3, 30, 1, None, claims(None, None)), Ok(()));
        // Recorded before incarnations existed: not checked.
        assert_eq!(check(3, 30, 1, Some(0), claims(Some(99), None)), Ok(()));
    }

    #[test]
    fn a_wiped_node_is_refused_both_ways() {
        // The leader (1) calls the wiped node 3, which is incarnation 31 now, not 30.
        let e = check(3, 31, 1, None, claims(Some(10), Some(30))).unwrap_err();
        assert_eq!(
            e,
            Mismatch::Target {
                id: 3,
                by: 1,
                own: 31,
                expected: 30
            }
        );
        let text = e.to_string();
        assert!(text.contains("000000000000001e") && text.contains("000000000000001f"));
        assert!(text.contains("wiped") && text.contains("new id"), "{text}");
        // The wiped node 3 calls node 1, which records 3 as incarnation 30.
        let e = check(1, 10, 3, Some(30), claims(Some(31), Some(10))).unwrap_err();
        assert!(matches!(
            e,
            Mismatch::Sender {
                id: 3,
                recorded: 30,
                claimed: Some(31)
            }
        ));
        assert!(e.to_string().contains("members remove 3"));
        // A caller that sends none where one is recorded is refused too.
        assert!(check(1, 10, 3, Some(30), claims(None, None)).is_err());
    }

    #[test]
    fn headers_roundtrip_and_ignore_garbage() {
        let mut md = MetadataMap::new();
        put(&mut md, HEADER, 0xdead_beef);
        put(&mut md, TARGET_HEADER, 0);
        assert_eq!(Claims::of(&md), claims(Some(0xdead_beef), None));
        md.insert(TARGET_HEADER, "not-hex".parse().unwrap());
        assert_eq!(Claims::of(&md).target, None);
        assert_ne!(generate(), 0);
    }
}
