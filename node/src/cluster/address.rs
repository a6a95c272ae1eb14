//! The address other nodes reach this node at, in Workbench's order: `www_host_name`, else the
//! listen address and port, else the host name resolved, else the last non-loopback IPv4 address
//! of an interface. A name that does not resolve gives the status Failed to resolve.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Where this node is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    pub host: String,
    /// Empty when the node is reached over IPv6 only.
    pub ipv4: String,
    pub port: u16,
}

/// A name that did not resolve to an IPv4 address.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot resolve {name:?}: {reason}")]
pub struct ResolveError {
    pub name: String,
    pub reason: String,
}

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

async fn lookup_ipv4(name: &str, port: u16) -> Result<Vec<Ipv4Addr>, String> {
    let lookup = tokio::net::lookup_host((name, port));
    match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => Ok(addrs
            .filter_map(|a| match a.ip() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {LOOKUP_TIMEOUT:?}")),
    }
}

/// The last non-loopback IPv4 address of this machine's interfaces.
pub fn last_interface_ipv4() -> Option<Ipv4Addr> {
    let interfaces = nix::ifaddrs::getifaddrs().ok()?;
    interfaces
        .filter_map(|i| i.address?.as_sockaddr_in().map(|a| a.ip()))
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .last()
}

/// Resolves this node's address.
pub async fn resolve(
    www_host_name: Option<&str>,
    listen: SocketAddr,
) -> Result<NodeAddress, ResolveError> {
    let port = listen.port();
    if let Some(name) = www_host_name.map(str::trim).filter(|n| !n.is_empty()) {
        let (host, port) = match name.rsplit_once(':') {
            Some((host, p)) if p.parse::<u16>().is_ok() => (host, p.parse().unwrap_or(port)),
            _ => (name, port),
        };
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Ok(NodeAddress {
                host: host.to_string(),
                ipv4: ip.to_string(),
                port,
            });
        }
        let found = lookup_ipv4(host, port)
            .await
            .map_err(|reason| ResolveError {
                name: host.to_string(),
                reason,
            })?;
        let ip = found.first().ok_or_else(|| ResolveError {
            name: host.to_string(),
            reason: "it has no IPv4 address".into(),
        })?;
        return Ok(NodeAddress {
            host: host.to_string(),
            ipv4: ip.to_string(),
            port,
        });
    }
    if !listen.ip().is_unspecified() {
        return Ok(NodeAddress {
            host: listen.ip().to_string(),
            ipv4: match listen.ip() {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(_) => String::new(),
            },
            port,
        });
    }
    let hostname = crate::locks::hostname();
    let resolved = lookup_ipv4(&hostname, port).await;
    if let Ok(found) = &resolved
        && let Some(ip) = found.iter().find(|ip| !ip.is_loopback())
    {
        return Ok(NodeAddress {
            host: hostname,
            ipv4: ip.to_string(),
            port,
        });
    }
    match last_interface_ipv4() {
        Some(ip) => Ok(NodeAddress {
            host: hostname,
            ipv4: ip.to_string(),
            port,
        }),
        None => Err(ResolveError {
            reason: match resolved {
                Err(e) => e,
                Ok(_) => {
                    "it resolves to no non-loopback IPv4 address, and no interface has one".into()
                }
            },
            name: hostname,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolution_order() {
        let listen: SocketAddr = "127.0.0.21:4300".parse().unwrap();
        let by_name = resolve(Some("localhost"), listen).await.unwrap();
        assert_eq!(by_name.host, "localhost");
        assert!(by_name.ipv4.starts_with("127."), "{by_name:?}");
        assert_eq!(by_name.port, 4300);
        let with_port = resolve(Some("10.1.2.3:80"), listen).await.unwrap();
        assert_eq!((with_port.ipv4.as_str(), with_port.port), ("10.1.2.3", 80));
        let by_listen = resolve(None, listen).await.unwrap();
        assert_eq!(by_listen.ipv4, "127.0.0.21");
        let err = resolve(Some("no-such-node.invalid"), listen)
            .await
            .unwrap_err();
        assert_eq!(err.name, "no-such-node.invalid");
        let any: SocketAddr = "0.0.0.0:4300".parse().unwrap();
        // Either the host name or an interface gives an address here; never loopback.
        if let Ok(found) = resolve(None, any).await {
            assert!(!found.ipv4.starts_with("127."), "{found:?}");
        }
    }
}
