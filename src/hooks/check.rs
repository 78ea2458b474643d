//! The checks Sentinel makes when SENTINEL SET names a script (`sentinelSetCommand`): refused
//! outright under `deny-scripts-reconfig`, else the path must exist and be executable. They read
//! this node's configuration and file system, so the API makes them before proposing the SET.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::topology::{parse_option, MasterOption};

/// A refused script option, with Sentinel's exact error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptRefusal {
    #[error("ERR Reconfiguration of scripts path is denied for security reasons. Check the deny-scripts-reconfig configuration directive in your Sentinel configuration")]
    Denied,
    #[error("ERR Notification script seems non existing or non executable")]
    NotificationNotExecutable,
    #[error("ERR Client reconfiguration script seems non existing or non executable")]
    ClientReconfigNotExecutable,
}

/// Checks SET's options in order, as Sentinel does. An option that does not parse ends the
/// checks: the state machine refuses the command with that option's error, which Sentinel would
/// also report first. An empty path (clearing the script) is refused only by `deny`.
pub fn check_set<'a>(
    deny: bool,
    options: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ScriptRefusal> {
    for (option, value) in options {
        let (path, not_executable) = match parse_option(option, value) {
            Err(_) => return Ok(()),
            Ok(MasterOption::NotificationScript(path)) => {
                (path, ScriptRefusal::NotificationNotExecutable)
            }
            Ok(MasterOption::ClientReconfigScript(path)) => {
                (path, ScriptRefusal::ClientReconfigNotExecutable)
            }
            Ok(_) => continue,
        };
        if deny {
            return Err(ScriptRefusal::Denied);
        }
        if let Some(path) = path {
            if !executable(Path::new(&path)) {
                return Err(not_executable);
            }
        }
    }
    Ok(())
}

/// A regular file (after symlinks) with an execute bit. Sentinel asks `access(X_OK)`, which also
/// accepts a directory; a directory can never run, so it is refused here.
pub fn executable(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(m) => m.is_file() && m.permissions().mode() & 0o111 != 0,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs<'a>(v: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        v.iter().copied()
    }

    #[test]
    fn deny_refuses_every_script_option_even_clearing() {
        for opts in [
            &[("notification-script", "/bin/sh")][..],
            &[("CLIENT-RECONFIG-SCRIPT", "")][..],
            &[("quorum", "2"), ("notification-script", "")][..],
        ] {
            assert_eq!(check_set(true, pairs(opts)), Err(ScriptRefusal::Denied));
        }
        assert_eq!(check_set(true, pairs(&[("quorum", "2")])), Ok(()));
        // The unknown option comes first: the state machine refuses it, as Sentinel would.
        assert_eq!(
            check_set(
                true,
                pairs(&[("bogus", "1"), ("notification-script", "/x")])
            ),
            Ok(())
        );
        assert_eq!(
            ScriptRefusal::Denied.to_string(),
            "ERR Reconfiguration of scripts path is denied for security reasons. Check the deny-scripts-reconfig configuration directive in your Sentinel configuration"
        );
    }

    #[test]
    fn allowed_paths_must_be_executable_files() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("ok.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("plain.sh");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (ok, plain) = (script.to_str().unwrap(), plain.to_str().unwrap());
        let missing = dir.path().join("missing.sh");
        let missing = missing.to_str().unwrap();
        let dir_path = dir.path().to_str().unwrap();

        assert_eq!(
            check_set(false, pairs(&[("notification-script", ok)])),
            Ok(())
        );
        assert_eq!(
            check_set(false, pairs(&[("client-reconfig-script", ok)])),
            Ok(())
        );
        assert_eq!(
            check_set(false, pairs(&[("notification-script", "")])),
            Ok(())
        );
        for bad in [plain, missing, dir_path] {
            assert_eq!(
                check_set(false, pairs(&[("notification-script", bad)])),
                Err(ScriptRefusal::NotificationNotExecutable),
                "{bad}"
            );
            assert_eq!(
                check_set(false, pairs(&[("client-reconfig-script", bad)])),
                Err(ScriptRefusal::ClientReconfigNotExecutable),
                "{bad}"
            );
        }
        assert_eq!(
            ScriptRefusal::NotificationNotExecutable.to_string(),
            "ERR Notification script seems non existing or non executable"
        );
        assert_eq!(
            ScriptRefusal::ClientReconfigNotExecutable.to_string(),
            "ERR Client reconfiguration script seems non existing or non executable"
        );
    }
}
