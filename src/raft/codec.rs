//! How raftinel stores values in sled and carries openraft messages over gRPC: a format-version
//! byte, then bincode. A value that does not decode is corruption, never "absent".

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bumped whenever a stored or transmitted type changes shape incompatibly.
/// 2: a failover records the grant it revoked (leases).
/// 3: VIP readiness (`MasterRecord.vip_problems`).
/// 4: `MasterRecord.tls`; version 3 is still read (see `raft::format_v3`).
/// 5: `MasterRecord.min_replicas`, `min_failover_interval_ms` and `retry_cleared_epoch`; version 4
/// is still read (see `raft::format_v4`).
/// 6: `Member.incarnation` (in log entries, the state and snapshots), `SmData.retired`, each lease
/// grant's voter set and superseded grants (`TopologyState.grant_voters`, `superseded`,
/// `voter_addrs`), `Command::LeaseSettled`; version 5 is still read (see `raft::format_v5`).
/// 7: events are typed (`topology::event::Event`); stored events of older versions are dropped
/// when the state machine opens (`state_machine::drop_untyped_events`).
pub const FORMAT_VERSION: u8 = 7;

/// The first version whose stored events are typed.
pub const TYPED_EVENTS: u8 = 7;

/// The oldest version still read. Only the state machine's data, what holds a `Member` and the
/// stored events changed shape since: the first two are decoded by `state_machine::decode_data`
/// and `format_v5::{decode_entry, decode_snapshot}`, which upgrade them, and old events are
/// dropped; everything else decodes as is.
pub const OLDEST_READ: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    #[error("format version {found} is not supported (this build reads versions {OLDEST_READ} to {FORMAT_VERSION})")]
    Version { found: u8 },
    #[error("bincode: {0}")]
    Bincode(#[from] bincode::Error),
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serialize_into(&mut out, value)?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (_, body) = versioned(bytes)?;
    Ok(bincode::deserialize(body)?)
}

/// The format version and the body, for a readable version.
pub fn versioned(bytes: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if !(OLDEST_READ..=FORMAT_VERSION).contains(&version) {
        return Err(CodecError::Version { found: version });
    }
    Ok((version, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejects_garbage() {
        let v = (7u64, "x".to_string());
        let bytes = encode(&v).unwrap();
        assert_eq!(decode::<(u64, String)>(&bytes).unwrap(), v);
        assert!(matches!(decode::<u64>(&[]), Err(CodecError::Empty)));
        assert!(matches!(
            decode::<u64>(&[9, 0]),
            Err(CodecError::Version { found: 9 })
        ));
        assert!(decode::<(u64, String)>(&[FORMAT_VERSION, 1, 2]).is_err());
        assert!(matches!(
            decode::<u64>(&[OLDEST_READ - 1, 0]),
            Err(CodecError::Version { found: 2 })
        ));
        for old in OLDEST_READ..FORMAT_VERSION {
            let mut older = bytes.clone();
            older[0] = old;
            assert_eq!(decode::<(u64, String)>(&older).unwrap(), v);
        }
    }
}
