//! The database endpoint the nodes connect to: an HAProxy in TCP mode on 127.0.0.1 whose one
//! backend server is the current primary. Promotion repoints it through the admin socket the
//! way a managed database flips its DNS name: the new primary enabled, the old one put in
//! maintenance and its sessions shut, so every node reconnects to the new primary. sqlx cannot
//! fail over between hosts by itself; one stable endpoint is what a node sees in production too.
//!
//! No health checks: which server is the primary is the harness's decision (as DNS is the
//! operator's), never HAProxy's guess.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::haproxy::admin_command;
use super::layout::Context;
use super::process::Launch;
use super::supervised::{self, Supervised};
use crate::infra::InfraError;

/// The process name (and log).
pub const NAME: &str = "db-endpoint";
const BACKEND: &str = "db";

/// A running database endpoint.
pub struct DbEndpoint {
    pub address: SocketAddr,
    socket: PathBuf,
    pub process: Supervised,
}

impl DbEndpoint {
    /// Starts the endpoint with `servers` (process name, port on 127.0.0.1), routing to the
    /// first; the others wait in maintenance.
    pub fn start(context: &Context, servers: &[(&str, u16)]) -> Result<Self, InfraError> {
        let port = crate::infra::probe::free_port()?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let socket = context.socket(NAME);
        let config = context.config_file(NAME, "cfg");
        std::fs::write(&config, config_text(address, &socket, servers))?;
        let launch = Launch::new(NAME, "haproxy", context.log_file(NAME))
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .cgroup(context.cgroup(NAME)?);
        let mut endpoint = Self {
            address,
            socket,
            process: Supervised::new(launch, &context.pids),
        };
        endpoint.process.start(context.spawner)?;
        endpoint.wait_ready(context)?;
        // The others go into maintenance through the admin socket, not the config's `disabled`
        // (which `set server … state ready` cannot undo). No node connects before this.
        if let Some((first, _)) = servers.first() {
            endpoint.repoint(first)?;
        }
        Ok(endpoint)
    }

    /// Waits until the admin socket answers and the endpoint accepts connections.
    pub fn wait_ready(&mut self, context: &Context) -> Result<(), InfraError> {
        let (socket, address) = (self.socket.clone(), self.address);
        supervised::wait_ready(NAME, context.timeout, Some(&mut self.process), || {
            admin_command(&socket, "show servers state")?;
            std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(1))
                .map(|_| true)
                .map_err(|e| format!("connect {address}: {e}"))
        })
    }

    /// The URL of `database` through the endpoint.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@{}/{database}", self.address)
    }

    /// Routes new connections to `server` only and shuts every session to the others.
    pub fn repoint(&self, server: &str) -> Result<(), InfraError> {
        let others: Vec<String> = self
            .servers()?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| name != server)
            .collect();
        let mut commands = vec![format!("set server {BACKEND}/{server} state ready")];
        for other in &others {
            commands.push(format!("set server {BACKEND}/{other} state maint"));
            commands.push(format!("shutdown sessions server {BACKEND}/{other}"));
        }
        for command in commands {
            let answer = admin_command(&self.socket, &command).map_err(failed)?;
            // Success is silence; anything else is HAProxy refusing.
            if !answer.trim().is_empty() {
                return Err(failed(format!("`{command}`: {}", answer.trim())));
            }
        }
        Ok(())
    }

    /// The server new connections go to (the one not in maintenance).
    pub fn target(&self) -> Result<String, InfraError> {
        let servers = self.servers()?;
        servers
            .iter()
            .find(|(_, ready)| *ready)
            .map(|(name, _)| name.clone())
            .ok_or_else(|| failed(format!("no server is ready: {servers:?}")))
    }

    /// (server name, whether it takes connections) for each server.
    fn servers(&self) -> Result<Vec<(String, bool)>, InfraError> {
        admin_command(&self.socket, &format!("show servers state {BACKEND}"))
            .map(|answer| parse_servers_state(&answer))
            .map_err(failed)
    }
}

fn failed(detail: String) -> InfraError {
    InfraError::Failed {
        what: "database endpoint".into(),
        detail,
    }
}

fn config_text(address: SocketAddr, socket: &std::path::Path, servers: &[(&str, u16)]) -> String {
    let mut text = format!(
        "global\n    maxconn 4096\n    stats socket {socket} mode 600 level admin\n\n\
         defaults\n    mode tcp\n    timeout connect 2s\n\
         \x20   # Pooled and LISTEN connections sit idle for long.\n\
         \x20   timeout client 24h\n    timeout server 24h\n\n\
         frontend {BACKEND}\n    bind {address}\n    default_backend {BACKEND}\n\n\
         backend {BACKEND}\n",
        socket = socket.display(),
    );
    for (name, port) in servers {
        text.push_str(&format!("    server {name} 127.0.0.1:{port}\n"));
    }
    text
}

/// `show servers state BACKEND` → (server name, whether it takes connections). The answer is a
/// version line, a `#` header naming the fields, then one line per server; `srv_admin_state` is
/// a bit field where any set bit means maintenance.
fn parse_servers_state(answer: &str) -> Vec<(String, bool)> {
    let mut lines = answer.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.find(|l| l.starts_with('#')) else {
        return Vec::new();
    };
    let fields: Vec<&str> = header.trim_start_matches('#').split_whitespace().collect();
    let (Some(name), Some(admin)) = (
        fields.iter().position(|f| *f == "srv_name"),
        fields.iter().position(|f| *f == "srv_admin_state"),
    ) else {
        return Vec::new();
    };
    lines
        .filter_map(|line| {
            let values: Vec<&str> = line.split_whitespace().collect();
            let server = values.get(name)?.to_string();
            let admin: u32 = values.get(admin)?.parse().ok()?;
            Some((server, admin == 0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_every_server() {
        let text = config_text(
            "127.0.0.1:7000".parse().unwrap(),
            std::path::Path::new("/w/db.sock"),
            &[("postgresql", 5001), ("postgresql-standby", 5002)],
        );
        assert!(text.contains("mode tcp"));
        assert!(text.contains("bind 127.0.0.1:7000"));
        assert!(text.contains("    server postgresql 127.0.0.1:5001\n"));
        assert!(text.contains("    server postgresql-standby 127.0.0.1:5002\n"));
    }

    #[test]
    fn servers_state_tells_which_server_takes_connections() {
        let answer = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state \
                      srv_uweight\n3 db 1 postgresql 127.0.0.1 2 0 1\n\
                      3 db 2 postgresql-standby 127.0.0.1 0 1 1\n";
        assert_eq!(
            parse_servers_state(answer),
            [
                ("postgresql".to_string(), true),
                ("postgresql-standby".to_string(), false)
            ]
        );
    }
}
