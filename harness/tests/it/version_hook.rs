//! The version rule cannot be fooled: `PKGNODE_VERSION_OVERRIDE` changes the version a node
//! reports only in a build with the `version-override` feature (the tests' nodes); the
//! release `pkgnode` ignores it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{client, pkgnode, pkgnode_release};

/// The version `bin`'s `/__api__/status` reports when started with the override set.
fn reported_version(bin: &Path, ip: &str) -> String {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind(format!("{ip}:0"))
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let listen = format!("{ip}:{port}");
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _node = Killed(
        Command::new(bin)
            .args(["serve", "--data-dir"])
            .arg(data.path())
            .args(["--listen", &listen])
            .env("PKGNODE_VERSION_OVERRIDE", "0.0.0-other")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pkgnode starts"),
    );
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = http.get(format!("http://{listen}/__api__/status")).send()
            && let Ok(status) = response.json::<serde_json::Value>()
        {
            return status["version"].as_str().unwrap_or_default().to_string();
        }
        assert!(Instant::now() < deadline, "{listen} never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn only_a_build_with_the_test_hook_reports_another_version() {
    assert_eq!(reported_version(&pkgnode(), "127.0.0.61"), "0.0.0-other");
    assert_eq!(
        reported_version(&pkgnode_release(), "127.0.0.62"),
        env!("CARGO_PKG_VERSION"),
        "a release build must ignore PKGNODE_VERSION_OVERRIDE"
    );
}
