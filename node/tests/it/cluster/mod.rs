//! Load balancing with real `pkgnode` processes on distinct loopback addresses and one real
//! PostgreSQL: membership and statuses, refusals, clock skew (libfaketime), operator commands
//! and notifications between nodes.

mod clock;
mod drain;
mod identity;
mod lifecycle;
mod refusals;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{NodeDir, Postgres};

/// Intervals that make a test take seconds: check in every 300 ms, missed after 1.5 s.
pub const FAST: &str = "heartbeat = \"300ms\"\nmissed_check_in_after = \"1500ms\"\n";

/// How a test node gets its secure key.
#[derive(Debug, Clone, Copy)]
pub enum Key {
    /// The cluster's key, mode 0600.
    Shared,
    /// Another 256-bit key.
    Other,
    /// The cluster's key with mode 0644.
    WorldReadable,
    /// A 64-bit key.
    Short,
    /// No key file at all.
    Missing,
}

/// One PostgreSQL database, one shared key, and the configuration every node shares.
pub struct Fixture {
    pub pg: Postgres,
    pub db: String,
    pub url: String,
    pub cluster_toml: String,
    key_dir: tempfile::TempDir,
}

pub fn write_key(path: &Path, hex_key: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{hex_key}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Fixture {
    pub fn new(db: &str, cluster_toml: &str) -> Self {
        let pg = Postgres::start();
        let url = pg.database(db);
        let key_dir = tempfile::tempdir().unwrap();
        let key: [u8; 32] = rand::random();
        write_key(
            &key_dir.path().join("cluster.key"),
            &hex::encode(key),
            0o600,
        );
        Self {
            pg,
            db: db.to_string(),
            url,
            cluster_toml: cluster_toml.to_string(),
            key_dir,
        }
    }

    /// The shared key file (mode 0600).
    pub fn key_file(&self) -> PathBuf {
        self.key_dir.path().join("cluster.key")
    }

    pub fn key_hex(&self) -> String {
        std::fs::read_to_string(self.key_file())
            .unwrap()
            .trim()
            .to_string()
    }

    /// A node at `ip` with the shared configuration and key (in its data dir, the default place).
    pub fn node(&self, ip: &str) -> NodeDir {
        self.node_with(ip, "", "", Key::Shared)
    }

    /// A node with extra `[cluster]` lines, extra tables after the shared configuration, and a
    /// key of the given kind.
    pub fn node_with(&self, ip: &str, cluster_extra: &str, tables: &str, key: Key) -> NodeDir {
        let node = NodeDir::at(
            ip,
            &format!(
                "[database]\nurl = \"{}\"\n[cluster]\nenabled = true\n{}{cluster_extra}{tables}",
                self.url, self.cluster_toml
            ),
        );
        let path = node.data_dir().join("pkgnode.key");
        match key {
            Key::Shared => write_key(&path, &self.key_hex(), 0o600),
            Key::Other => write_key(&path, &hex::encode(rand::random::<[u8; 32]>()), 0o600),
            Key::WorldReadable => write_key(&path, &self.key_hex(), 0o644),
            Key::Short => write_key(&path, &hex::encode(rand::random::<[u8; 8]>()), 0o600),
            Key::Missing => std::fs::create_dir_all(node.data_dir()).unwrap(),
        }
        node
    }

    pub fn psql(&self, sql: &str) -> String {
        self.pg.psql(&self.db, sql)
    }
}

/// One line of `pkgnode list-nodes`.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: i64,
    pub host: String,
    pub ipv4: String,
    pub port: u16,
    pub version: String,
    pub status: String,
    pub last_seen: String,
}

/// Runs `list-nodes` through `node`'s configuration and parses the table.
pub fn list_nodes(node: &NodeDir) -> (String, Vec<Listed>) {
    let text = node.admin(&["list-nodes"]);
    let mut rows = Vec::new();
    let mut lines = text.lines().skip_while(|l| !l.starts_with("ID "));
    let header = lines.next().expect("a header line");
    assert!(
        header.contains("Host") && header.contains("IPv4") && header.contains("Last Seen"),
        "{text}"
    );
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(cells.len(), 7, "{line:?} in\n{text}");
        rows.push(Listed {
            id: cells[0].parse().unwrap(),
            host: cells[1].into(),
            ipv4: cells[2].into(),
            port: cells[3].parse().unwrap(),
            version: cells[4].into(),
            status: cells[5].into(),
            last_seen: cells[6].into(),
        });
    }
    (text, rows)
}

/// The status `list-nodes` shows for the node listening on `port`.
pub fn status_of(rows: &[Listed], port: u16) -> Option<String> {
    rows.iter()
        .find(|r| r.port == port)
        .map(|r| r.status.clone())
}

/// Waits until `list-nodes` (run through `cli`) shows `target` with `status`.
pub fn wait_status(cli: &NodeDir, target: &NodeDir, status: &str, timeout: Duration) {
    let mut last = String::new();
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        let (text, rows) = list_nodes(cli);
        if status_of(&rows, target.port).as_deref() == Some(status) {
            return;
        }
        last = text;
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "node {} never showed {status:?}; last list-nodes:\n{last}\nits log:\n{}",
        target.base(),
        target.log()
    );
}

/// A GET of `/load-balancer/status` on `node`, optionally from a local address or signed.
pub fn lb_status(node: &NodeDir, from: Option<&str>, signed_with: Option<&Path>) -> (u16, String) {
    let mut builder = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5));
    if let Some(ip) = from {
        builder = builder.local_address(ip.parse::<std::net::IpAddr>().unwrap());
    }
    let client = builder.build().unwrap();
    let mut request = client.get(format!("{}/load-balancer/status", node.base()));
    if let Some(key_file) = signed_with {
        let key = node::auth::SecureKey::load(key_file, false).unwrap();
        let value = node::cluster::signing::sign_request(
            &key,
            "/load-balancer/status",
            chrono::Utc::now().timestamp_millis(),
        );
        request = request.header(node::cluster::signing::SIGNATURE_HEADER, value);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}
