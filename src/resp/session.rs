//! One client connection's state: protocol version, authentication, name and library info,
//! and its pub/sub subscriptions. No I/O.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use super::access;
use super::reply::Proto;
use crate::admin::Principal;
use crate::config::SentinelAuth;
use crate::raft::SmData;

pub struct Session {
    pub id: u64,
    pub proto: Proto,
    /// The user this connection authenticated as; `None` until AUTH when a password is required.
    pub user: Option<String>,
    /// What `user` may do from `peer`, decided once at login (`access::principal`).
    pub principal: Principal,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    pub channels: BTreeSet<Bytes>,
    pub patterns: BTreeSet<Bytes>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub since: Instant,
    pub last_command: Instant,
    /// QUIT was received: reply, flush, close.
    pub closing: bool,
    /// GET-MASTER-ADDR-BY-NAME replies, encoded, for the applied state they were built from:
    /// the one request every client repeats, answered without allocating.
    pub addr_cache: AddrCache,
}

#[derive(Default)]
pub struct AddrCache {
    pub view: Option<Arc<SmData>>,
    pub replies: HashMap<Bytes, Bytes>,
}

impl AddrCache {
    /// The cached reply for `name`, if the cache was built from `view`; otherwise the cache is
    /// emptied for `view`.
    pub fn get(&mut self, view: &Arc<SmData>, name: &Bytes) -> Option<Bytes> {
        match &self.view {
            Some(v) if Arc::ptr_eq(v, view) => self.replies.get(name).cloned(),
            _ => {
                self.view = Some(view.clone());
                self.replies.clear();
                None
            }
        }
    }

    /// Remembers a reply; a client asking for ever new names cannot grow the cache past a bound.
    pub fn put(&mut self, name: Bytes, reply: Bytes) {
        if self.replies.len() < 64 {
            self.replies.insert(name, reply);
        }
    }
}

impl Session {
    pub fn new(id: u64, peer: SocketAddr, local: SocketAddr, auth: &SentinelAuth) -> Session {
        let now = Instant::now();
        let user = (!auth.required()).then(|| "default".to_owned());
        Session {
            id,
            proto: Proto::Resp2,
            principal: access::principal(auth, user.as_deref(), peer.ip()),
            user,
            name: None,
            lib_name: None,
            lib_ver: None,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            peer,
            local,
            since: now,
            last_command: now,
            closing: false,
            addr_cache: AddrCache::default(),
        }
    }

    /// A successful AUTH or HELLO AUTH as `user`.
    pub fn login(&mut self, auth: &SentinelAuth, user: String) {
        self.principal = access::principal(auth, Some(&user), self.peer.ip());
        self.user = Some(user);
    }

    /// `Ok` when this connection may run the write `full_name` (`sentinel|monitor`, …); else
    /// Redis's NOPERM refusal.
    pub fn permit_write(&self, full_name: &str) -> Result<(), super::reply::Reply> {
        access::permit_write(&self.principal, self.user.as_deref(), full_name)
    }

    pub fn authenticated(&self) -> bool {
        self.user.is_some()
    }

    pub fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// In RESP2 a subscribed connection may only (un)subscribe, PING, QUIT and RESET.
    pub fn in_subscribe_mode(&self) -> bool {
        self.proto == Proto::Resp2 && self.subscriptions() > 0
    }

    /// `CLIENT INFO`'s line for this connection.
    pub fn info_line(&self, now: Instant, last_cmd: &str) -> String {
        let text = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let flags = if self.subscriptions() > 0 { "P" } else { "N" };
        let resp = match self.proto {
            Proto::Resp2 => 2,
            Proto::Resp3 => 3,
        };
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={flags} db=0 sub={} psub={} ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={last_cmd} user={} redir=-1 resp={resp} lib-name={} lib-ver={}",
            self.id,
            self.peer,
            self.local,
            text(&self.name),
            now.duration_since(self.since).as_secs(),
            now.duration_since(self.last_command).as_secs(),
            self.channels.len(),
            self.patterns.len(),
            self.user.as_deref().unwrap_or("default"),
            text(&self.lib_name),
            text(&self.lib_ver),
        )
    }
}
