//! Cluster identity (DESIGN invariant 10): an id made once at initialization, stored with the
//! Raft metadata, sent with every Raft and admin RPC, and checked by every receiver. It is not a
//! secret and nothing relies on it being one: who a caller is comes from its certificate
//! (`admin::authn`). Outgoing calls also name this node, which only a loopback-only or
//! `insecure` cluster believes, and carry its incarnation (`raft::incarnation`), which is made
//! here with the data dir.

use std::sync::{Arc, RwLock};

use rand::RngCore;
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::codec::{decode, encode, CodecError};
use super::incarnation;

/// gRPC metadata key carrying the sender's cluster id.
pub const HEADER: &str = "x-raftinel-cluster-id";
/// gRPC metadata key with which a node names itself (believed on plaintext clusters only).
pub const NODE_HEADER: &str = "x-raftinel-node";
const KEY: &[u8] = b"cluster_id";
const INCARNATION: &[u8] = b"incarnation";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cluster id store: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored cluster id is corrupt: {0}")]
    Codec(#[from] CodecError),
    #[error("this node belongs to cluster {ours}, not {theirs}")]
    Mismatch { ours: String, theirs: String },
}

#[derive(Clone)]
pub struct ClusterIdentity {
    node_id: u64,
    incarnation: u64,
    db: sled::Db,
    meta: sled::Tree,
    current: Arc<RwLock<Option<String>>>,
}

impl ClusterIdentity {
    /// Opens the identity, making this data dir's incarnation durably on its first open (a store
    /// from before incarnations gets one too; its members record 0 until re-added).
    pub fn open(db: &sled::Db, node_id: u64) -> Result<Self, IdentityError> {
        let meta = db.open_tree("raft_meta")?;
        let current = meta.get(KEY)?.map(|v| decode::<String>(&v)).transpose()?;
        let incarnation = match meta.get(INCARNATION)? {
            Some(v) => decode::<u64>(&v)?,
            None => {
                let made = incarnation::generate();
                meta.insert(INCARNATION, encode(&made)?)?;
                db.flush()?;
                tracing::info!(
                    incarnation = %incarnation::show(made),
                    "made this data dir's incarnation"
                );
                made
            }
        };
        Ok(ClusterIdentity {
            node_id,
            incarnation,
            db: db.clone(),
            meta,
            current: Arc::new(RwLock::new(current)),
        })
    }

    /// A fresh random id: 128 bits as 32 hex digits.
    pub fn generate() -> String {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// This data dir's incarnation: never 0, never changed.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn get(&self) -> Option<String> {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Records `id` as this node's cluster durably; a node never changes cluster.
    pub async fn adopt(&self, id: &str) -> Result<(), IdentityError> {
        if let Some(ours) = self.get() {
            return if ours == id {
                Ok(())
            } else {
                Err(IdentityError::Mismatch {
                    ours,
                    theirs: id.to_string(),
                })
            };
        }
        self.meta.insert(KEY, encode(&id.to_string())?)?;
        self.db.flush_async().await?;
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = Some(id.to_string());
        Ok(())
    }

    /// Checks a Raft RPC from a peer. A node that has no id yet joins the sender's cluster: that
    /// is how a new member learns it. A peer that sends none, or another one, is refused.
    pub async fn admit_peer(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let theirs = header(metadata).ok_or_else(|| {
            Status::failed_precondition(
                "cluster id missing: the caller is not an initialized raftinel node",
            )
        })?;
        self.adopt(&theirs).await.map_err(refusal)
    }

    /// Checks an admin or client call: the id is optional for clients, but must match if sent.
    pub fn admit_client(&self, metadata: &MetadataMap) -> Result<(), Status> {
        match (header(metadata), self.get()) {
            (Some(theirs), Some(ours)) if theirs != ours => {
                Err(refusal(IdentityError::Mismatch { ours, theirs }))
            }
            _ => Ok(()),
        }
    }

    /// Adds this node's id, incarnation and its cluster's id, if it has one, to an outgoing
    /// request.
    pub fn stamp(&self, metadata: &mut MetadataMap) {
        metadata.insert(NODE_HEADER, self.node_id.into());
        incarnation::put(metadata, incarnation::HEADER, self.incarnation);
        if let Some(id) = self.get() {
            if let Ok(v) = id.parse() {
                metadata.insert(HEADER, v);
            }
        }
    }
}

/// Adds the incarnation the caller's membership records for the callee (0: unknown, not sent).
pub fn stamp_target(metadata: &mut MetadataMap, expected: u64) {
    incarnation::put(metadata, incarnation::TARGET_HEADER, expected);
}

fn header(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

fn refusal(e: IdentityError) -> Status {
    match e {
        IdentityError::Mismatch { .. } => {
            Status::failed_precondition(format!("cluster id mismatch: {e}; refusing the call"))
        }
        other => Status::internal(other.to_string()),
    }
}
