//! The `raftinel serve` process as an operator meets it: bad configs refused with the key named,
//! and a corrupt store stopping the node loudly instead of serving.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::bin;

fn serve(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin())
        .arg("serve")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_configs_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--id",
                "4",
                "--data-dir",
                d,
                "--peers",
                "1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3",
            ],
            "peers",
        ),
        (
            &[
                "--id",
                "1",
                "--data-dir",
                d,
                "--peers",
                "1=localhost:1,2=127.0.0.1:2",
            ],
            "--peers",
        ),
        (
            &[
                "--id",
                "1",
                "--data-dir",
                d,
                "--peers",
                "1=127.0.0.1:1,2=127.0.0.1:1",
            ],
            "127.0.0.1:1",
        ),
        (
            &[
                "--id",
                "1",
                "--data-dir",
                d,
                "--peers",
                "1=127.0.0.1:1,1=127.0.0.1:2",
            ],
            "--peers",
        ),
        (&["--id", "1", "--peers", "1=127.0.0.1:1"], "data-dir"),
    ];
    for (args, key) in cases {
        let (code, err) = serve(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("config error") && err.contains(key),
            "{args:?} should name {key}: {err}"
        );
    }
    let file = dir.path().join("bad.toml");
    for (text, key) in [
        (
            "id = 1\ndata-dir = \"x\"\nbogus = 1\n[peers]\n1 = \"127.0.0.1:1\"\n",
            "bogus",
        ),
        (
            "id = 1\ndata-dir = \"x\"\n[raft]\nheartbeat-ms = 200\n[peers]\n1 = \"127.0.0.1:1\"\n",
            "raft.heartbeat-ms",
        ),
        (
            "id = 1\ndata-dir = \"x\"\n[lease]\nduration-ms = 300\n[peers]\n1 = \"127.0.0.1:1\"\n",
            "lease",
        ),
        (
            "id = 1\ndata-dir = \"x\"\ndefault-down-after-ms = 500\n[peers]\n1 = \"127.0.0.1:1\"\n",
            "down-after",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let (code, err) = serve(&["--config", file.to_str().unwrap()]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(key), "{text} should name {key}: {err}");
    }
}

#[test]
fn corrupt_state_machine_stops_the_node_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let db = sled::open(&data).unwrap();
        db.open_tree("sm")
            .unwrap()
            .insert(b"data", &[1u8, 0xff, 0xff, 0xff][..])
            .unwrap();
        db.flush().unwrap();
    }
    let port = common::free_port();
    let peers = format!("1=127.0.0.1:{port}");
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--id",
            "1",
            "--peers",
            &peers,
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("node kept running on a corrupt store");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("storage"), "{err}");
}

#[test]
fn completions_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["serve", "ctl", "import-sentinel", "switchover", "list"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let bad = Command::new(bin())
        .args(["completions", "cmd.exe"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
