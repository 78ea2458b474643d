//! `raftinel certs`: the cluster CA, node and admin certificates as PEM files in one directory,
//! keys 0600, never overwriting a file unless `--force`.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::issue::{Ca, IssueError, Issued};

#[derive(Args, Debug)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Create the cluster CA: DIR/ca.pem and DIR/ca.key (keep ca.key off the nodes).
    Ca {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// A node certificate signed by DIR/ca.*: DIR/node-ID.pem and DIR/node-ID.key.
    Node {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        id: u64,
        /// Every IP the node listens on (gRPC, Sentinel port); repeat the flag.
        #[arg(long = "ip", required = true)]
        ips: Vec<IpAddr>,
        #[arg(long)]
        force: bool,
    },
    /// An admin client certificate signed by DIR/ca.*: DIR/admin-NAME.pem and .key.
    Admin {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        force: bool,
    },
    /// Everything for a cluster at once: the CA (reused if DIR has one), one certificate per
    /// `--node ID=IP` and an admin certificate.
    Cluster {
        #[arg(long)]
        dir: PathBuf,
        /// ID=IP[,IP...]; repeat the flag for every node.
        #[arg(long = "node", required = true, value_parser = parse_node)]
        nodes: Vec<(u64, Vec<IpAddr>)>,
        #[arg(long, default_value = "admin")]
        admin: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} exists; pass --force to replace it", .0.display())]
    Exists(PathBuf),
    #[error("{}: {source}; create the CA first with `raftinel certs ca --dir DIR`", path.display())]
    NoCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Issue(#[from] IssueError),
}

fn parse_node(s: &str) -> Result<(u64, Vec<IpAddr>), String> {
    let (id, ips) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not ID=IP[,IP...]"))?;
    let id: u64 = id
        .trim()
        .parse()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| format!("node id '{id}' is not a positive integer"))?;
    let ips = ips
        .split(',')
        .map(|ip| {
            ip.trim()
                .parse()
                .map_err(|_| format!("'{ip}' is not an IP address"))
        })
        .collect::<Result<Vec<IpAddr>, String>>()?;
    Ok((id, ips))
}

/// Writes `text` to `path` with `mode`, refusing to replace a file unless `force`.
fn write(path: &Path, text: &str, mode: u32, force: bool) -> Result<(), CertsError> {
    if path.exists() && !force {
        return Err(CertsError::Exists(path.to_owned()));
    }
    let io = |source| CertsError::Io {
        path: path.to_owned(),
        source,
    };
    if force {
        // A replaced key must not keep an older, wider mode.
        let _ = std::fs::remove_file(path);
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

fn save(dir: &Path, stem: &str, issued: &Issued, force: bool) -> Result<PathBuf, CertsError> {
    let pem = dir.join(format!("{stem}.pem"));
    write(
        &dir.join(format!("{stem}.key")),
        &issued.key_pem,
        0o600,
        force,
    )?;
    write(&pem, &issued.pem, 0o644, force)?;
    println!("wrote {} and {stem}.key", pem.display());
    Ok(pem)
}

fn load_ca(dir: &Path) -> Result<Ca, CertsError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| CertsError::NoCa { path, source })
    };
    Ok(Ca::load(&read("ca.pem")?, &read("ca.key")?)?)
}

fn create_ca(dir: &Path, force: bool) -> Result<Ca, CertsError> {
    let ca = Ca::create()?;
    write(&dir.join("ca.key"), &ca.key_pem(), 0o600, force)?;
    write(&dir.join("ca.pem"), &ca.pem(), 0o644, force)?;
    println!(
        "wrote {} and ca.key (keep ca.key off the nodes)",
        dir.join("ca.pem").display()
    );
    Ok(ca)
}

fn node(dir: &Path, ca: &Ca, id: u64, ips: &[IpAddr], force: bool) -> Result<(), CertsError> {
    save(dir, &format!("node-{id}"), &ca.node(id, ips)?, force)?;
    let d = dir.display();
    println!("  node {id}'s config:\n    [tls]\n    cert = \"{d}/node-{id}.pem\"\n    key = \"{d}/node-{id}.key\"\n    ca = \"{d}/ca.pem\"");
    Ok(())
}

fn admin(dir: &Path, ca: &Ca, name: &str, force: bool) -> Result<(), CertsError> {
    save(dir, &format!("admin-{name}"), &ca.admin(name)?, force)?;
    let d = dir.display();
    println!("  raftinel ctl --tls-cert {d}/admin-{name}.pem --tls-key {d}/admin-{name}.key --tls-ca {d}/ca.pem ...");
    Ok(())
}

pub fn run(args: CertsArgs) -> Result<(), CertsError> {
    let dir = match &args.command {
        CertsCommand::Ca { dir, .. }
        | CertsCommand::Node { dir, .. }
        | CertsCommand::Admin { dir, .. }
        | CertsCommand::Cluster { dir, .. } => dir.clone(),
    };
    std::fs::create_dir_all(&dir).map_err(|source| CertsError::Io {
        path: dir.clone(),
        source,
    })?;
    match args.command {
        CertsCommand::Ca { force, .. } => create_ca(&dir, force).map(drop),
        CertsCommand::Node { id, ips, force, .. } => node(&dir, &load_ca(&dir)?, id, &ips, force),
        CertsCommand::Admin { name, force, .. } => admin(&dir, &load_ca(&dir)?, &name, force),
        CertsCommand::Cluster {
            nodes,
            admin: name,
            force,
            ..
        } => {
            let ca = if dir.join("ca.pem").exists() && !force {
                load_ca(&dir)?
            } else {
                create_ca(&dir, force)?
            };
            for (id, ips) in &nodes {
                node(&dir, &ca, *id, ips, force)?;
            }
            admin(&dir, &ca, &name, force)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_specs_parse_or_say_why() {
        assert_eq!(
            parse_node("2=10.77.0.12").unwrap(),
            (2, vec!["10.77.0.12".parse::<IpAddr>().unwrap()])
        );
        assert_eq!(parse_node("1=127.0.0.1,::1").unwrap().1.len(), 2);
        assert!(parse_node("0=1.2.3.4").unwrap_err().contains("positive"));
        assert!(parse_node("1=host").unwrap_err().contains("not an IP"));
        assert!(parse_node("1").unwrap_err().contains("ID=IP"));
    }

    #[test]
    fn files_are_private_and_never_replaced_silently() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = create_ca(dir.path(), false).unwrap();
        node(dir.path(), &ca, 1, &["127.0.0.1".parse().unwrap()], false).unwrap();
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!((mode("ca.key"), mode("node-1.key")), (0o600, 0o600));
        assert_eq!(mode("node-1.pem"), 0o644);
        assert!(matches!(
            create_ca(dir.path(), false),
            Err(CertsError::Exists(_))
        ));
        let reloaded = load_ca(dir.path()).unwrap();
        assert!(node(dir.path(), &reloaded, 1, &[], false).is_err());
        node(dir.path(), &reloaded, 1, &[], true).unwrap();
    }
}
