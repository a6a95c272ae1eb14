//! The index a Python Git build installs its build requirements from, `[git] python_build_index`:
//! this node's own PEP 503 simple index of that repo (`http://{address}/{repo}/latest/simple/`),
//! reached at the address the node listens on — loopback when it listens on every address — so
//! the build asks the node that runs it, not the load balancer. When the repo is authenticated,
//! the build's pip authenticates as a user's pip would: with a `repos:read` token for that repo
//! alone, issued and recorded for the one build (the node checks it like any client's), valid
//! for the build's time limit and revoked when the build ends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::Node;
use super::toolchain::PythonIndex;
use crate::auth::{Scope, TokenError};
use crate::store::{RepoKind, StoreError, TokenRecord};

/// Why a build's index could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The setting names no repo a build can use: the build fails with this message.
    #[error("{0}")]
    Unusable(String),
    /// The database did not answer: the build is left to run again.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot issue the build's read token: {0}")]
    Token(#[from] TokenError),
}

/// The index of one build, and the token to revoke when the build ends.
#[derive(Debug)]
pub struct BuildIndex {
    pub index: PythonIndex,
    token_guid: Option<String>,
}

/// The address a process on this machine reaches the node at, given the address it is bound
/// to: loopback of the same family when it listens on every address, else that address.
pub fn own_address(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// The index for a build under `[git] python_build_index = repo` on the node bound to `bound`.
pub async fn prepare(node: &Node, repo: &str, bound: SocketAddr) -> Result<BuildIndex, IndexError> {
    let found = node.store().repo_by_name(repo).await?.ok_or_else(|| {
        IndexError::Unusable(format!(
            "[git] python_build_index names repo {repo:?}, which does not exist on this node; \
             create it (`pkgnode create repo --name {repo} --type python`) with the build \
             backends in a source it subscribes to"
        ))
    })?;
    if found.kind != RepoKind::Python {
        return Err(IndexError::Unusable(format!(
            "[git] python_build_index names repo {repo:?}, a {} repository; it must be a Python \
             repository",
            found.kind.as_str()
        )));
    }
    let address = own_address(bound);
    let shown = format!("http://{address}/{repo}/latest/simple/");
    if !found.authenticated {
        return Ok(BuildIndex {
            index: PythonIndex {
                repo: repo.to_string(),
                url: shown.clone(),
                shown,
            },
            token_guid: None,
        });
    }
    let git = &node.config().git;
    let issued = node.key().issue(
        &Scope::ReposRead {
            repo: Some(repo.to_string()),
        },
        git.build_timeout + git.lease_duration,
    )?;
    // Recorded before it is used: the node refuses a token without a record.
    node.store()
        .record_token(&TokenRecord {
            guid: issued.guid.clone(),
            scope: issued.scope,
            source: None,
            repo: issued.repo,
            created_at_ms: issued.issued_at_ms,
            expires_at_ms: issued.expires_at_ms,
            revoked_at_ms: None,
        })
        .await?;
    Ok(BuildIndex {
        index: PythonIndex {
            repo: repo.to_string(),
            url: format!(
                "http://__token__:{}@{address}/{repo}/latest/simple/",
                issued.token
            ),
            shown: format!(
                "{shown} (with a read token for this build, {})",
                issued.guid
            ),
        },
        token_guid: Some(issued.guid),
    })
}

/// Revokes the build's token, if it had one. A revocation that fails leaves the token to expire
/// at the end of the build's time limit.
pub async fn release(node: &Node, index: BuildIndex) {
    let Some(guid) = index.token_guid else {
        return;
    };
    if let Err(e) = node.store().revoke_token(&guid).await {
        tracing::warn!(token = %guid, error = %e, "cannot revoke a build's read token; it expires with the build's time limit");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_on_every_address_is_reached_on_loopback() {
        let own = |a: &str| own_address(a.parse().unwrap()).to_string();
        assert_eq!(own("0.0.0.0:4242"), "127.0.0.1:4242");
        assert_eq!(own("[::]:4242"), "[::1]:4242");
        assert_eq!(own("127.0.0.11:80"), "127.0.0.11:80");
        assert_eq!(own("10.1.2.3:4242"), "10.1.2.3:4242");
    }
}
