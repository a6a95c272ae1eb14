//! The cluster definition: what the first node writes and every later node must match — the
//! secure key's fingerprint, the protocol, the version and the configuration digest. As in
//! Workbench, the configuration must be identical on every node except the options that give the
//! node's own address (`listen`, `www_host_name`) and its own data directory.

use sha2::{Digest, Sha256};

use super::status::NodeStatus;
use crate::config::Config;
use crate::store::cluster::ClusterRow;

/// How nodes talk to each other.
pub const PROTOCOL: &str = "http";

/// Test hook, compiled only with the cargo feature `version-override` (which release builds
/// leave out): makes the node report another version, to exercise Version mismatch and the
/// HA checklist's version rule. Without the feature the variable is ignored, so a release
/// binary cannot be made to lie about its version.
pub const VERSION_OVERRIDE_ENV: &str = "PKGNODE_VERSION_OVERRIDE";

/// The version this node runs: the crate's (or, in a build with the `version-override`
/// feature, `PKGNODE_VERSION_OVERRIDE` when set).
pub fn node_version() -> String {
    #[cfg(feature = "version-override")]
    if let Some(version) = std::env::var(VERSION_OVERRIDE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        return version;
    }
    env!("CARGO_PKG_VERSION").to_string()
}

/// Options that differ from node to node, left out of the digest.
const NODE_OWN_OPTIONS: [(&str, &str); 3] = [
    ("", "listen"),
    ("", "data_dir"),
    ("cluster", "www_host_name"),
];

/// sha256 of the configuration in canonical form (defaults filled in, keys sorted), without the
/// node's own address options.
pub fn config_digest(config: &Config) -> String {
    let mut value = serde_json::to_value(config).unwrap_or(serde_json::Value::Null);
    for (section, key) in NODE_OWN_OPTIONS {
        let table = if section.is_empty() {
            Some(&mut value)
        } else {
            value.get_mut(section)
        };
        if let Some(serde_json::Value::Object(map)) = table {
            map.remove(key);
        }
    }
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// JSON with object keys sorted at every level, whatever order serde_json keeps.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The definition this node would write.
pub fn candidate(key_fingerprint: &str, config: &Config, uid: &str) -> ClusterRow {
    ClusterRow {
        key_fingerprint: key_fingerprint.to_string(),
        protocol: PROTOCOL.to_string(),
        version: node_version(),
        config_digest: config_digest(config),
        defined_by: uid.to_string(),
        defined_at_ms: 0,
    }
}

/// Why this node does not match the cluster, if it does not.
pub fn mismatch(cluster: &ClusterRow, mine: &ClusterRow) -> Option<(NodeStatus, String)> {
    if cluster.key_fingerprint != mine.key_fingerprint {
        return Some((
            NodeStatus::InvalidSecureKey,
            format!(
                "this node's secure key (fingerprint {}…) is not the cluster's ({}…)",
                short(&mine.key_fingerprint),
                short(&cluster.key_fingerprint)
            ),
        ));
    }
    if cluster.version != mine.version {
        return Some((
            NodeStatus::VersionMismatch,
            format!(
                "this node runs version {}, the cluster {}",
                mine.version, cluster.version
            ),
        ));
    }
    if cluster.protocol != mine.protocol {
        return Some((
            NodeStatus::ConfigMismatch,
            format!(
                "this node speaks {}, the cluster {}",
                mine.protocol, cluster.protocol
            ),
        ));
    }
    if cluster.config_digest != mine.config_digest {
        return Some((
            NodeStatus::ConfigMismatch,
            format!(
                "this node's configuration (digest {}…) differs from the cluster's ({}…) in more than the node's own address options",
                short(&mine.config_digest),
                short(&cluster.config_digest)
            ),
        ));
    }
    None
}

fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_only_the_nodes_own_options() {
        let base = Config::default();
        let mut other_address = base.clone();
        other_address.listen = "127.0.0.22:9999".parse().unwrap();
        other_address.data_dir = "/elsewhere".into();
        other_address.cluster.www_host_name = Some("node-b".into());
        assert_eq!(config_digest(&base), config_digest(&other_address));
        let mut other_heartbeat = base.clone();
        other_heartbeat.cluster.heartbeat = std::time::Duration::from_secs(7);
        assert_ne!(config_digest(&base), config_digest(&other_heartbeat));
        let mut other_db = base.clone();
        other_db.database.url = Some("postgres://x@127.0.0.1/other".into());
        assert_ne!(config_digest(&base), config_digest(&other_db));
    }

    #[test]
    fn key_is_checked_before_version_and_config() {
        let config = Config::default();
        let cluster = candidate("aa", &config, "n1");
        assert_eq!(mismatch(&cluster, &candidate("aa", &config, "n2")), None);
        let (status, _) = mismatch(&cluster, &candidate("bb", &config, "n2")).unwrap();
        assert_eq!(status, NodeStatus::InvalidSecureKey);
        let mut older = cluster.clone();
        older.version = "0.0.1".into();
        let (status, reason) = mismatch(&older, &candidate("aa", &config, "n2")).unwrap();
        assert_eq!(status, NodeStatus::VersionMismatch, "{reason}");
        let mut different = cluster.clone();
        different.config_digest = "ff".into();
        let (status, _) = mismatch(&different, &candidate("aa", &config, "n2")).unwrap();
        assert_eq!(status, NodeStatus::ConfigMismatch);
    }
}
