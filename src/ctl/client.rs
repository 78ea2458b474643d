//! Talking to "the cluster": each listed node in turn, moving on when one is unreachable or has
//! no quorum, stopping at the first definite answer.

use std::future::Future;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use super::{output, CtlError};
use crate::admin::authn::TOKEN_HEADER;
use crate::dial::Dialer;
use crate::pb::topology_client::TopologyClient;
use crate::pb::WatchRequest;
use crate::raft::identity::HEADER;

const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(40);
/// How long past a call's own deadline ctl waits before giving up on that node itself: a frozen
/// (SIGSTOPped) node accepts the TCP connection and then never answers, not even with the
/// deadline it was sent, and the grpc-timeout header binds only the server.
const GRACE: Duration = Duration::from_secs(1);

/// `call`, or DEADLINE_EXCEEDED once `timeout` + GRACE has passed without an answer.
async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(timeout + GRACE, call).await {
        Ok(r) => r,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no answer within {} s (is the node frozen or cut off?)",
            (timeout + GRACE).as_secs()
        ))),
    }
}

/// Builds requests stamped with the cluster id and the admin token (if given) and a timeout.
#[derive(Clone)]
pub struct Stamp {
    cluster_id: Option<MetadataValue<Ascii>>,
    token: Option<MetadataValue<Ascii>>,
    timeout: Duration,
}

impl Stamp {
    pub fn req<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        req.set_timeout(self.timeout);
        self.headers(req.metadata_mut());
        req
    }

    fn headers(&self, md: &mut tonic::metadata::MetadataMap) {
        if let Some(id) = &self.cluster_id {
            md.insert(HEADER, id.clone());
        }
        if let Some(token) = &self.token {
            md.insert(TOKEN_HEADER, token.clone());
        }
    }
}

pub struct Cluster {
    nodes: Vec<(String, Channel)>,
    cluster_id: Option<MetadataValue<Ascii>>,
    token: Option<MetadataValue<Ascii>>,
}

/// The token in `path`, as the header value that carries it; it never appears in argv.
pub fn read_token(path: &std::path::Path) -> Result<String, CtlError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CtlError::Usage(format!("--token-file {}: {e}", path.display())))?;
    Ok(text.trim().to_owned())
}

/// Whether another node might answer where this one could not.
fn try_next(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

impl Cluster {
    pub fn new(
        list: &str,
        dialer: Dialer,
        cluster_id: Option<String>,
        token: Option<String>,
    ) -> Result<Self, CtlError> {
        let mut nodes = Vec::new();
        for addr in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            nodes.push((addr.to_string(), dialer.channel(addr)?));
        }
        if nodes.is_empty() {
            return Err(CtlError::Usage(
                "--cluster needs at least one HOST:PORT".into(),
            ));
        }
        let cluster_id = cluster_id
            .map(|id| {
                id.parse()
                    .map_err(|_| CtlError::Usage(format!("--cluster-id '{id}' is not valid")))
            })
            .transpose()?;
        let token = token
            .map(|t| {
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| CtlError::Usage("the token file holds unusable characters".into()))
            })
            .transpose()?;
        Ok(Cluster {
            nodes,
            cluster_id,
            token,
        })
    }

    fn stamp(&self, timeout: Duration) -> Stamp {
        Stamp {
            cluster_id: self.cluster_id.clone(),
            token: self.token.clone(),
            timeout,
        }
    }

    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, CtlError>
    where
        F: Fn(TopologyClient<Channel>, Stamp) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_with(CALL_TIMEOUT, f).await
    }

    /// For membership changes, which wait for a new node to catch up.
    pub async fn call_long<T, F, Fut>(&self, f: F) -> Result<T, CtlError>
    where
        F: Fn(TopologyClient<Channel>, Stamp) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_with(MEMBERSHIP_TIMEOUT, f).await
    }

    async fn call_with<T, F, Fut>(&self, timeout: Duration, f: F) -> Result<T, CtlError>
    where
        F: Fn(TopologyClient<Channel>, Stamp) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut failures = Vec::new();
        for (addr, channel) in &self.nodes {
            let call = f(TopologyClient::new(channel.clone()), self.stamp(timeout));
            match bounded(timeout, call).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(s) if try_next(&s) => failures.push(format!("{addr}: {}", s.message())),
                Err(s) => return Err(CtlError::Status(s.message().to_string())),
            }
        }
        Err(CtlError::Status(format!(
            "no node answered: {}",
            failures.join("; ")
        )))
    }

    /// Streams events until `count` have been printed (or forever), from the first node that
    /// accepts the stream.
    pub async fn watch(&self, from: u64, count: Option<u64>, json: bool) -> Result<(), CtlError> {
        let mut failures = Vec::new();
        for (addr, channel) in &self.nodes {
            let mut req = Request::new(WatchRequest { from_index: from });
            self.stamp(CALL_TIMEOUT).headers(req.metadata_mut());
            let mut client = TopologyClient::new(channel.clone());
            let mut stream = match bounded(CALL_TIMEOUT, client.watch(req)).await {
                Ok(s) => s.into_inner(),
                Err(s) if try_next(&s) => {
                    failures.push(format!("{addr}: {}", s.message()));
                    continue;
                }
                Err(s) => return Err(CtlError::Status(s.message().to_string())),
            };
            let mut printed = 0u64;
            while count.map_or(true, |c| printed < c) {
                match stream.message().await {
                    Ok(Some(event)) => {
                        output::event(&event, json)?;
                        printed += 1;
                    }
                    Ok(None) => return Err(CtlError::Status(format!("{addr} ended the stream"))),
                    Err(s) => return Err(CtlError::Status(s.message().to_string())),
                }
            }
            return Ok(());
        }
        Err(CtlError::Status(format!(
            "no node answered: {}",
            failures.join("; ")
        )))
    }
}
