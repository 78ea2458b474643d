//! How the gRPC port authenticates (invariant 11): certificates, an admin token, or — only where
//! every gRPC address is loopback, or the operator said `insecure = true` — plaintext. A node on a
//! network address with neither certificates nor `insecure` refuses to start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError, ServeArgs};

/// What the gRPC port trusts, beyond the TLS files in [`Config::tls`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// `insecure = true` / `--insecure`: plaintext on a network address, every caller trusted.
    /// Reported in every startup log line, `ctl status` and the health endpoint.
    pub insecure: bool,
    /// The admin token read from `admin-token-file` (`--admin-token-file`), for automation that
    /// holds no admin certificate: `authorization: Bearer TOKEN`.
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("insecure", &self.insecure)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "******"))
            .finish()
    }
}

/// The shortest token accepted: 128 bits as hex, what `openssl rand -hex 16` prints.
const MIN_TOKEN_LEN: usize = 32;

pub(super) fn resolve(
    args: &ServeArgs,
    file_insecure: &Option<bool>,
    file_token: &Option<PathBuf>,
    config: &Config,
) -> Result<Security, ConfigError> {
    let insecure = args.insecure || file_insecure.unwrap_or(false);
    if config.tls.is_none() && !insecure {
        let exposed = network_addresses(config);
        if !exposed.is_empty() {
            return Err(ConfigError::Plaintext {
                addrs: exposed.join(", "),
            });
        }
    }
    let token_path = args.admin_token_file.as_ref().or(file_token.as_ref());
    let admin_token = token_path.map(|p| read_token(p)).transpose()?;
    Ok(Security {
        insecure,
        admin_token,
    })
}

/// The gRPC addresses (this node's, its peers', the one it joins through) that are not loopback:
/// plaintext there would let anyone on the network act as a peer or an admin.
fn network_addresses(config: &Config) -> Vec<String> {
    let all = std::iter::once(config.listen)
        .chain(config.peers.values().copied())
        .chain(config.join);
    let mut out: Vec<String> = Vec::new();
    for a in all.filter(|a: &SocketAddr| !a.ip().is_loopback()) {
        if !out.contains(&a.to_string()) {
            out.push(a.to_string());
        }
    }
    out
}

fn read_token(path: &Path) -> Result<String, ConfigError> {
    let bad = |reason: String| ConfigError::TokenFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let token = text.trim();
    if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(format!(
            "the token must be at least {MIN_TOKEN_LEN} printable characters without spaces"
        )));
    }
    Ok(token.to_owned())
}
