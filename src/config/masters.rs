//! `[masters.NAME]` (this host's VIP interface, VIP, own scripts and TLS) and `vip-allowed` (the
//! subnets this node may add a VIP in), checked against each other: a configured VIP must be
//! allowed, a configured script must be an executable file (invariant 12).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::file::FileMaster;
use super::{ConfigError, MasterScripts};
use crate::lease::vip_allow::{self, Cidr};
use crate::topology::Vip;

/// The resolved `[masters.NAME]` tables and `vip-allowed`.
pub(super) struct Masters {
    pub vip_interfaces: BTreeMap<String, String>,
    pub vips: BTreeMap<String, Vip>,
    pub vip_allowed: Vec<Cidr>,
    pub scripts: BTreeMap<String, MasterScripts>,
    /// `[masters.NAME] tls = true`.
    pub tls_masters: BTreeSet<String>,
}

/// `flag` is `--vip-allowed`, `allowed` the file's `vip-allowed`, `masters` its tables.
pub(super) fn resolve(
    flag: Option<&str>,
    allowed: Option<&[String]>,
    masters: Option<&BTreeMap<String, FileMaster>>,
) -> Result<Masters, ConfigError> {
    let mut out = Masters {
        vip_interfaces: BTreeMap::new(),
        vips: BTreeMap::new(),
        vip_allowed: vip_allowed(flag, allowed)?,
        scripts: BTreeMap::new(),
        tls_masters: BTreeSet::new(),
    };
    for (name, m) in masters.into_iter().flatten() {
        if m.tls == Some(true) {
            out.tls_masters.insert(name.clone());
        }
        let own = MasterScripts {
            notification: script(name, "notification-script", &m.notification_script)?,
            client_reconfig: script(name, "client-reconfig-script", &m.client_reconfig_script)?,
        };
        if own != MasterScripts::default() {
            out.scripts.insert(name.clone(), own);
        }
        if let Some(vip) = &m.vip {
            let key = format!("`masters.{name}.vip`");
            let parsed = vip.parse().map_err(|()| ConfigError::Vip {
                key: key.clone(),
                value: vip.clone(),
            })?;
            vip_allow::check(&out.vip_allowed, &parsed)
                .map_err(|why| ConfigError::VipNotAllowed { key, why })?;
            out.vips.insert(name.clone(), parsed);
        }
        if let Some(dev) = &m.vip_interface {
            if !crate::topology::interface_name(dev) {
                return Err(ConfigError::VipInterface {
                    key: format!("`masters.{name}.vip-interface`"),
                    value: dev.clone(),
                });
            }
            out.vip_interfaces.insert(name.clone(), dev.clone());
        }
    }
    Ok(out)
}

/// `[masters.NAME] <option>`: an absolute path to an executable file, as Sentinel checks its
/// config's scripts at load.
fn script(name: &str, option: &str, path: &Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(path) = path else { return Ok(None) };
    let err = |reason| ConfigError::Script {
        key: format!("`masters.{name}.{option}`"),
        value: path.clone(),
        reason,
    };
    if crate::topology::has_control(path) || !Path::new(path).is_absolute() {
        return Err(err("not an absolute path"));
    }
    if !crate::hooks::check::executable(Path::new(path)) {
        return Err(err("not an executable regular file"));
    }
    Ok(Some(path.clone()))
}

/// `--vip-allowed` (comma-separated) over `vip-allowed` (a list); each entry a subnet.
fn vip_allowed(flag: Option<&str>, file: Option<&[String]>) -> Result<Vec<Cidr>, ConfigError> {
    let (entries, key): (Vec<&str>, &str) = match (flag, file) {
        (Some(flag), _) => (flag.split(',').collect(), "`--vip-allowed`"),
        (None, Some(list)) => (list.iter().map(String::as_str).collect(), "`vip-allowed`"),
        (None, None) => return Ok(Vec::new()),
    };
    entries
        .into_iter()
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.parse().map_err(|reason| ConfigError::VipAllowed {
                key: key.to_owned(),
                value: e.to_owned(),
                reason,
            })
        })
        .collect()
}
