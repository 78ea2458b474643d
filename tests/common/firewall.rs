//! iptables rules that single out a test process's traffic by owner uid (nodes and Redis run as
//! other users through `setpriv`), removed on drop even when the test fails.

use std::process::Command;

pub struct Firewall(Vec<Vec<String>>);

impl Firewall {
    /// Inserts `rules` (iptables arguments after `-I`); each inserted one is removed on drop.
    pub fn add(rules: Vec<Vec<String>>) -> Firewall {
        let mut fw = Firewall(Vec::new());
        for rule in rules {
            let ok = Command::new("iptables")
                .arg("-I")
                .args(&rule)
                .status()
                .unwrap();
            assert!(
                ok.success(),
                "iptables -I failed (the test needs root and iptables)"
            );
            fw.0.push(rule);
        }
        fw
    }

    /// One rule: TCP from processes of `uid` to 127.0.0.1:`port` is reset.
    pub fn reject(uid: u32, port: u16) -> Vec<String> {
        let (uid, port) = (uid.to_string(), port.to_string());
        [
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            "127.0.0.1",
            "--dport",
            &port,
            "-m",
            "owner",
            "--uid-owner",
            &uid,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        for rule in &self.0 {
            let _ = Command::new("iptables").arg("-D").args(rule).status();
        }
    }
}
