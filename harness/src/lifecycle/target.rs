//! The one target prober: an existing deployment (`scenario --target`, `check --target`)
//! checked and read before anything runs on it. Its URLs go only to loopback unless the
//! command allows otherwise; each node's `/__api__/status` names its id and version for the
//! report. Nothing is started or torn down.

use std::time::Duration;

use reports::record::NodeInfo;

use crate::error::HarnessError;
use crate::infra::Endpoints;
use crate::infra::target::Target;

/// Whether a target may be off loopback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteTargets {
    /// Loopback only, whatever is asked (`check --target`).
    Refused,
    /// Loopback only unless `--allow-remote-target` was given (the flag's value).
    AllowedByFlag(bool),
}

/// A deployment as the command line names it.
#[derive(Clone, Debug)]
pub struct TargetProbe {
    /// The balancer (or single entry point).
    pub url: String,
    /// Each node's own URL (`--node`).
    pub node_urls: Vec<String>,
    pub remote: RemoteTargets,
    /// Every node named and at least one answering (the checklist reads each node; without
    /// one there is nothing to check). Otherwise, with no `--node`, the balancer's status
    /// stands for the nodes.
    pub nodes_required: bool,
    /// The command's own problems with its arguments (a missing token), named with the
    /// prober's.
    pub problems: Vec<String>,
    /// The repositories, sources and tokens the run uses (the URLs are filled in here).
    pub endpoints: Endpoints,
}

/// Checks the deployment's URLs (every problem at once), reads each node's status and
/// returns the target. A node that does not answer now is still observed (its status shows
/// as such) and listed with version `unknown`.
pub async fn probe(probe: TargetProbe) -> Result<Target, HarnessError> {
    let base_url = probe.url.trim_end_matches('/').to_string();
    let node_urls: Vec<String> = (probe.node_urls.iter())
        .map(|u| u.trim_end_matches('/').to_string())
        .collect();
    let mut problems: Vec<String> = std::iter::once(&base_url)
        .chain(&node_urls)
        .filter(|u| !is_loopback(u))
        .filter_map(|u| match probe.remote {
            RemoteTargets::Refused => Some(format!(
                "{u}: this harness talks only to loopback addresses (127.0.0.0/8, localhost)"
            )),
            RemoteTargets::AllowedByFlag(true) => None,
            RemoteTargets::AllowedByFlag(false) => Some(format!(
                "{u}: load goes only to loopback addresses (127.0.0.0/8, localhost) unless \
                 --allow-remote-target is given"
            )),
        })
        .collect();
    if probe.nodes_required && node_urls.is_empty() {
        problems.push("--target needs --node URL for every node (each node's own address)".into());
    }
    problems.extend(probe.problems);
    if !problems.is_empty() {
        return Err(HarnessError::Config(problems));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| HarnessError::Internal(e.to_string()))?;
    let mut infos = Vec::new();
    if node_urls.is_empty() {
        infos.push(node_info(&client, &base_url).await?);
    }
    let mut unanswered = Vec::new();
    for node_url in &node_urls {
        match node_info(&client, node_url).await {
            Ok(info) => infos.push(info),
            Err(error) => {
                eprintln!("harness: {error}");
                unanswered.push(error.to_string());
                infos.push(NodeInfo {
                    id: "unknown".into(),
                    address: node_url.clone(),
                    version: "unknown".into(),
                });
            }
        }
    }
    if probe.nodes_required && unanswered.len() == node_urls.len() {
        // Nothing to check: an infrastructure problem (exit 3), not an undecided rule.
        return Err(HarnessError::Target(format!(
            "no node answered: {}",
            unanswered.join("; ")
        )));
    }
    let endpoints = Endpoints {
        base_url,
        nodes: (node_urls.into_iter().enumerate())
            .map(|(i, u)| (format!("node-{}", i + 1), u))
            .collect(),
        ..probe.endpoints
    };
    Ok(Target::new(endpoints, infos))
}

/// A node's id and version from its `/__api__/status`.
async fn node_info(client: &reqwest::Client, base: &str) -> Result<NodeInfo, HarnessError> {
    let value: serde_json::Value = client
        .get(format!("{base}/__api__/status"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| HarnessError::Target(format!("{base}/__api__/status: {e}")))?
        .json()
        .await
        .map_err(|e| HarnessError::Target(format!("{base}/__api__/status is not JSON: {e}")))?;
    Ok(NodeInfo {
        id: value["node_id"].as_str().unwrap_or("unknown").to_string(),
        address: base.to_string(),
        version: value["version"].as_str().unwrap_or("unknown").to_string(),
    })
}

/// Whether `url`'s host is `localhost` or in 127.0.0.0/8.
fn is_loopback(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| {
            h == "localhost"
                || h.parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Endpoints {
        Endpoints {
            base_url: String::new(),
            nodes: Vec::new(),
            pypi_repo: "pypi".into(),
            cran_repo: "cran".into(),
            pypi_source: "pypi-local".into(),
            cran_source: "cran-local".into(),
            pypi_token: String::new(),
            cran_token: String::new(),
        }
    }

    #[tokio::test]
    async fn a_remote_target_is_refused_with_every_problem_named() {
        let refused = probe(TargetProbe {
            url: "http://example.org".into(),
            node_urls: vec!["http://10.0.0.1:4242".into()],
            remote: RemoteTargets::AllowedByFlag(false),
            nodes_required: false,
            problems: vec!["--target needs --token".into()],
            endpoints: endpoints(),
        })
        .await;
        let Err(HarnessError::Config(problems)) = refused else {
            panic!("a remote target accepted: {:?}", refused.err());
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("--allow-remote-target"),
            "{problems:?}"
        );
        let check = probe(TargetProbe {
            url: "http://localhost:1".into(),
            node_urls: Vec::new(),
            remote: RemoteTargets::Refused,
            nodes_required: true,
            problems: Vec::new(),
            endpoints: endpoints(),
        })
        .await;
        let Err(HarnessError::Config(problems)) = check else {
            panic!("a target without nodes accepted for the checklist");
        };
        assert!(problems[0].contains("--node URL"), "{problems:?}");
    }

    #[test]
    fn loopback_is_localhost_or_127_slash_8() {
        assert!(is_loopback("http://localhost:8080"));
        assert!(is_loopback("http://127.0.0.12:4242/"));
        assert!(!is_loopback("http://10.0.0.1"));
        assert!(!is_loopback("not a url"));
    }
}
