//! HAProxy in front of the nodes: round robin with `/__ping__` health checks, and retries with
//! redispatch so a request that finds a dead node is re-sent to a live one (HAProxy re-sends only
//! requests that are safe to repeat). Runs in the foreground (`-db`) as a direct child; its admin
//! socket answers `show stat`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Context;
use super::process::{self, Launch, Supervised};
use crate::infra::InfraError;

const BACKEND: &str = "nodes";

/// A running HAProxy.
pub struct HaProxy {
    pub address: SocketAddr,
    pub socket: PathBuf,
    /// e.g. `2.6.12-1+deb12u4`.
    pub version: String,
    pub process: Supervised,
    servers: usize,
}

impl HaProxy {
    /// Writes the config, starts HAProxy and waits until every server is UP.
    pub fn start(context: &Context, nodes: &[(String, SocketAddr)]) -> Result<Self, InfraError> {
        let version = {
            let launch = Launch::new("haproxy -v", "haproxy", "").arg("-v");
            let out = process::run(
                context.spawner,
                &launch,
                &context.commands_dir,
                "haproxy-version",
                context.timeout,
            )?;
            parse_version(&out)
        };
        let port = super::probe::free_port()?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let socket = context.work_dir.join("haproxy.sock");
        if socket.as_os_str().len() > 100 {
            return Err(InfraError::Failed {
                what: "haproxy".into(),
                detail: format!(
                    "stats socket path {} is too long for a Unix socket: use a shorter work dir",
                    socket.display()
                ),
            });
        }
        let config = context.work_dir.join("haproxy.cfg");
        std::fs::write(&config, config_text(address, &socket, nodes))?;
        let launch = Launch::new("haproxy", "haproxy", context.work_dir.join("haproxy.log"))
            .arg("-db")
            .arg("-f")
            .arg(&config);
        let mut haproxy = Self {
            address,
            socket,
            version,
            process: Supervised::new(launch, &context.pids),
            servers: nodes.len(),
        };
        haproxy.process.start(context.spawner)?;
        haproxy.wait_ready(context.timeout)?;
        Ok(haproxy)
    }

    /// Waits until the load balancer answers `/__ping__` and reports every server UP.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), InfraError> {
        let (address, socket, servers) = (self.address, self.socket.clone(), self.servers);
        process::wait_ready("haproxy", timeout, Some(&mut self.process), || {
            let states = server_states(&socket)?;
            let up = states.iter().filter(|(_, state)| state == "UP").count();
            if up < servers {
                return Err(format!("servers not all UP: {states:?}"));
            }
            super::probe::ping(address)
        })
    }

    /// Waits until a restarted HAProxy answers on its admin socket (its servers may be down:
    /// that is for the health checks to find out).
    pub fn wait_started(&mut self, timeout: Duration) -> Result<(), InfraError> {
        let socket = self.socket.clone();
        process::wait_ready("haproxy", timeout, Some(&mut self.process), || {
            server_states(&socket).map(|states| states.len() == self.servers)
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// `show stat` on the admin socket: (server name, status) for each backend server.
pub fn server_states(socket: &Path) -> Result<Vec<(String, String)>, String> {
    let csv = admin_command(socket, "show stat")?;
    let mut lines = csv.lines();
    let header = lines.next().ok_or("empty `show stat` answer")?;
    let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let column = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .ok_or(format!("`show stat` has no {name} column"))
    };
    let (proxy, server, status) = (column("pxname")?, column("svname")?, column("status")?);
    Ok(lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|fields| {
            fields.get(proxy) == Some(&BACKEND)
                && !matches!(
                    fields.get(server),
                    Some(&"BACKEND") | Some(&"FRONTEND") | None
                )
        })
        .map(|fields| {
            let state = fields.get(status).copied().unwrap_or_default();
            // "UP 1/2" while a check is in transition.
            let state = state.split_whitespace().next().unwrap_or_default();
            (fields[server].to_string(), state.to_string())
        })
        .collect())
}

/// One command on the HAProxy admin socket; the answer text.
pub fn admin_command(socket: &Path, command: &str) -> Result<String, String> {
    let mut stream =
        UnixStream::connect(socket).map_err(|e| format!("connect {}: {e}", socket.display()))?;
    let timeout = Some(Duration::from_secs(2));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(|e| format!("write {}: {e}", socket.display()))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("read {}: {e}", socket.display()))?;
    Ok(answer)
}

fn config_text(address: SocketAddr, socket: &Path, nodes: &[(String, SocketAddr)]) -> String {
    let mut text = format!(
        "global\n\
         \x20   maxconn 4096\n\
         \x20   stats socket {socket} mode 600 level admin\n\
         \n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   option http-keep-alive\n\
         \n\
         frontend lb\n\
         \x20   bind {address}\n\
         \x20   default_backend {BACKEND}\n\
         \n\
         backend {BACKEND}\n\
         \x20   balance roundrobin\n\
         \x20   option httpchk GET /__ping__\n\
         \x20   http-check expect status 200\n\
         \x20   retries 3\n\
         \x20   option redispatch 1\n\
         \x20   retry-on conn-failure empty-response response-timeout 503\n",
        socket = socket.display(),
    );
    for (name, node) in nodes {
        text.push_str(&format!(
            "    server {name} {node} check inter 500ms fall 2 rise 1\n"
        ));
    }
    text
}

/// `HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/` → `2.6.12-1+deb12u4`.
fn parse_version(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default().trim();
    first
        .strip_prefix("HAProxy version ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or(first)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_word_after_the_product() {
        assert_eq!(
            parse_version("HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/\n"),
            "2.6.12-1+deb12u4"
        );
    }

    #[test]
    fn config_lists_every_node_with_health_checks() {
        let nodes = vec![
            ("node-1".to_string(), "127.0.0.11:4000".parse().unwrap()),
            ("node-2".to_string(), "127.0.0.12:4000".parse().unwrap()),
        ];
        let text = config_text(
            "127.0.0.1:5000".parse().unwrap(),
            Path::new("/w/haproxy.sock"),
            &nodes,
        );
        assert!(text.contains("bind 127.0.0.1:5000"));
        assert!(text.contains("server node-2 127.0.0.12:4000 check inter 500ms fall 2 rise 1"));
        assert!(text.contains("retry-on conn-failure empty-response response-timeout 503"));
    }
}
