//! The namespace lab of deploy/lab/lab.sh for tests: three hosts and a client on a bridge in its
//! own namespace (10.77.0.0/24), torn down on drop even when the test fails. Processes started
//! here run inside a host namespace; `in_ns` runs a closure on a thread that entered one, so the
//! test's own client sockets live on the client host.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::fault::Fault;
use super::process::Proc;

/// Namespace prefix: `rlt-` unless `RAFTINEL_LAB_PREFIX` names another, so a benchmark's lab
/// and the tests' lab can exist side by side.
pub fn prefix() -> String {
    std::env::var("RAFTINEL_LAB_PREFIX").unwrap_or_else(|_| "rlt-".to_owned())
}

pub struct Lab {
    script: PathBuf,
    /// (host, name, process).
    procs: Vec<(String, String, Proc)>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/lab/lab.sh")
}

impl Lab {
    /// Builds the lab (after removing one a crashed run may have left).
    pub fn up() -> Lab {
        let lab = Lab {
            script: script(),
            procs: Vec::new(),
        };
        lab.sh(&["down"]);
        let out = lab.sh(&["up"]);
        assert!(
            out.status.success(),
            "lab.sh up failed (the lab needs root, iproute2 and iptables): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    pub fn sh(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(&self.script)
            .args(args)
            .env("LAB_PREFIX", prefix())
            .output()
            .expect("bash")
    }

    /// Runs `lab.sh args` and insists it worked.
    pub fn must(&self, args: &[&str]) {
        let out = self.sh(args);
        assert!(
            out.status.success(),
            "lab.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Injects a fault that is a lab.sh verb (a pause, a partition, a host's loss).
    pub fn inject(&self, fault: &Fault) {
        let args = fault
            .lab_args()
            .unwrap_or_else(|| panic!("`{fault}` is not a lab.sh verb"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.must(&args);
    }

    /// Undoes the lab.sh side of `fault` (SIGCONT, heal).
    pub fn undo(&self, fault: &Fault) {
        let args = fault
            .heal_args()
            .unwrap_or_else(|| panic!("`{fault}` has no lab.sh undo"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.must(&args);
    }

    /// Starts `cmd` inside `host` under `name`, its output appended to `log`; killed on drop.
    pub fn spawn(&mut self, host: &str, name: &str, cmd: &[&str], log: &Path) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let err = file.try_clone().unwrap();
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &format!("{}{host}", prefix())])
            .args(cmd)
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err));
        let p = Proc::spawn(name, &mut c);
        self.procs.push((host.to_owned(), name.to_owned(), p));
    }

    /// SIGKILLs the process started as `name` in `host`.
    pub fn kill(&mut self, host: &str, name: &str) {
        for (h, n, p) in &mut self.procs {
            if h == host && n == name {
                p.reap();
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, _, p) in &mut self.procs {
            p.reap();
        }
        let _ = self.sh(&["down"]);
    }
}

/// Runs `f` on a thread that joined `host`'s network namespace.
pub fn in_ns<T: Send>(host: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{}{host}", prefix());
    std::thread::scope(|s| {
        s.spawn(|| {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on this thread only, with a namespace fd we hold open.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    })
}

/// Joins `host`'s network namespace for the rest of this thread's life (a sampler thread).
pub fn enter(host: &str) {
    let path = format!("/var/run/netns/{}{host}", prefix());
    let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // SAFETY: setns on this thread only, with a namespace fd we hold open.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}
