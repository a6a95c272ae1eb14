//! HAProxy in front of the nodes (config in [`crate::infra::haproxy_config`]). Runs in the
//! foreground (`-db`) as a direct child; its admin socket answers `show stat`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::layout::Context;
use super::process::{self, Launch};
use super::supervised::{self, Supervised};
use crate::infra::InfraError;
use crate::infra::haproxy_config::{self, parse_version};

/// Its process name, and the name of its config, socket and log in the work dir.
pub const NAME: &str = "haproxy";

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
        let port = crate::infra::probe::free_port()?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let socket = context.socket(NAME);
        if socket.as_os_str().len() > 100 {
            return Err(InfraError::Failed {
                what: "haproxy".into(),
                detail: format!(
                    "stats socket path {} is too long for a Unix socket: use a shorter work dir",
                    socket.display()
                ),
            });
        }
        let config = context.config_file(NAME, "cfg");
        std::fs::write(&config, config_text(address, &socket, nodes))?;
        let launch = Launch::new("haproxy", "haproxy", context.log_file(NAME))
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .cgroup(context.cgroup("haproxy")?);
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
        supervised::wait_ready("haproxy", timeout, Some(&mut self.process), || {
            let states = server_states(&socket)?;
            let up = states.iter().filter(|(_, state)| state == "UP").count();
            if up < servers {
                return Err(format!("servers not all UP: {states:?}"));
            }
            crate::infra::probe::ping(address)
        })
    }

    /// Waits until a restarted HAProxy answers on its admin socket (its servers may be down:
    /// that is for the health checks to find out).
    pub fn wait_started(&mut self, timeout: Duration) -> Result<(), InfraError> {
        let socket = self.socket.clone();
        supervised::wait_ready("haproxy", timeout, Some(&mut self.process), || {
            server_states(&socket).map(|states| states.len() == self.servers)
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// `show stat` on the admin socket: (server name, status) for each backend server.
pub fn server_states(socket: &Path) -> Result<Vec<(String, String)>, String> {
    haproxy_config::server_states(&admin_command(socket, "show stat")?)
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
    let servers: Vec<(String, String)> = nodes
        .iter()
        .map(|(name, address)| (name.clone(), address.to_string()))
        .collect();
    haproxy_config::config_text(&haproxy_config::Layout {
        bind: &address.to_string(),
        global: &[format!(
            "stats socket {} mode 600 level admin",
            socket.display()
        )],
        servers: &servers,
        server_options: "",
        tail: "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(text.contains("stats socket /w/haproxy.sock mode 600 level admin"));
        assert!(text.contains("bind 127.0.0.1:5000"));
        assert!(text.contains("server node-2 127.0.0.12:4000 check inter 500ms fall 2 rise 1\n"));
    }
}
