//! The Debian package (`cargo deb`, `[package.metadata.deb]`): installed with `dpkg -i` on this
//! machine, it puts the binary, the unit, the config templates and the docs in place and makes
//! the `raftinel` user; the unit passes `systemd-analyze verify`; `dpkg --purge` takes it all back
//! (the user stays, as Debian leaves system users). scripts/test.sh builds the package first
//! (`RAFTINEL_DEB` names it); root, as CI runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Purges the package when dropped, so a failed check leaves nothing installed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "raftinel"]).output();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deb() -> PathBuf {
    let path = std::env::var("RAFTINEL_DEB").unwrap_or_else(|_| {
        panic!(
            "RAFTINEL_DEB is not set: scripts/test.sh builds the package (`cargo deb`) and sets it"
        )
    });
    let path = PathBuf::from(path);
    assert!(path.is_file(), "{} is not a file", path.display());
    path
}

#[test]
fn the_package_installs_verifies_and_purges() {
    let _g = common::serial();
    let deb = deb();
    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    assert!(info.contains("Package: raftinel"), "{info}");
    let listed = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for file in [
        "./usr/bin/raftinel",
        "./etc/raftinel/raftinel.toml",
        "./etc/default/raftinel",
        "./usr/lib/sysusers.d/raftinel.conf",
        "raftinel.service",
        "./usr/share/doc/raftinel/http-api.md",
        "./usr/share/doc/raftinel/examples/haproxy.cfg",
    ] {
        assert!(
            listed.contains(file),
            "{file} not in the package:\n{listed}"
        );
    }

    // Not installed before (a leftover from a failed run is purged first).
    let _ = Command::new("dpkg").args(["--purge", "raftinel"]).output();
    let installed = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    for path in [
        "/usr/bin/raftinel",
        "/etc/raftinel/raftinel.toml",
        "/etc/default/raftinel",
        "/usr/lib/systemd/system/raftinel.service",
    ] {
        assert!(Path::new(path).exists(), "{path} missing after dpkg -i");
    }
    let conffiles =
        run(Command::new("dpkg-query").args(["--showformat=${Conffiles}", "--show", "raftinel"]));
    assert!(
        conffiles.contains("/etc/raftinel/raftinel.toml"),
        "{conffiles}"
    );
    let user = run(Command::new("getent").args(["passwd", "raftinel"]));
    assert!(user.contains("/var/lib/raftinel"), "{user}");
    let help = run(Command::new("/usr/bin/raftinel").arg("--help"));
    assert!(help.contains("import-sentinel"), "{help}");
    // The shipped template is a valid config once its addresses exist here: its checks pass as
    // far as the file goes (the parser, not the network).
    let template = std::fs::read_to_string("/etc/raftinel/raftinel.toml").unwrap();
    assert!(template.contains("http-listen"), "{template}");
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let verify = Command::new("systemd-analyze")
            .args(["verify", "/usr/lib/systemd/system/raftinel.service"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&verify.stderr);
        assert!(verify.status.success(), "systemd-analyze verify: {said}");
    }

    drop(installed);
    for path in [
        "/usr/bin/raftinel",
        "/etc/raftinel/raftinel.toml",
        "/usr/lib/systemd/system/raftinel.service",
    ] {
        assert!(!Path::new(path).exists(), "{path} left after dpkg --purge");
    }
}
