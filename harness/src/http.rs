//! The HTTP every part of a run shares, below both the run and the nemesis: the client its
//! requests go through, and a node's status read from the node's own address.

use std::time::Duration;

use crate::checkers::cluster::NodeStatusRead;

/// An HTTP client with `timeout` per request.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

/// What keeps each of `nodes` ((name, URL)) from serving with its database: no status
/// answer, not serving, or a database it does not report `ok`. Empty: every node answers,
/// serves and reaches its database.
pub async fn database_unreachable(
    client: &reqwest::Client,
    nodes: &[(String, String)],
) -> Vec<String> {
    let mut waiting = Vec::new();
    for (name, url) in nodes {
        let read = status(client, name, url).await;
        match read.database.as_deref() {
            _ if read.status.is_none() => waiting.push(format!(
                "{name} does not answer its status: {}",
                read.detail
            )),
            _ if !read.serving => waiting.push(format!("{name} is not serving")),
            Some("ok") => {}
            other => waiting.push(format!(
                "{name} reports the database {}",
                other.unwrap_or("(not said)")
            )),
        }
    }
    waiting
}

/// One node's status read from its own address.
pub async fn status(client: &reqwest::Client, name: &str, url: &str) -> NodeStatusRead {
    let answer = client.get(format!("{url}/__api__/status")).send().await;
    let json = match answer {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match json {
        Ok(json) => NodeStatusRead {
            node: name.to_string(),
            // A single node without clustering has no cluster status: it serves or not.
            status: Some(
                json["cluster_status"]
                    .as_str()
                    .unwrap_or("Online")
                    .to_string(),
            ),
            serving: json["serving"].as_bool().unwrap_or(true),
            database: json["database"].as_str().map(str::to_string),
            detail: String::new(),
            id: json["node_id"].as_str().unwrap_or_default().to_string(),
            members: json["members"]
                .as_array()
                .map(|members| {
                    members
                        .iter()
                        .map(|m| {
                            (
                                m["uid"].as_str().unwrap_or_default().to_string(),
                                m["status"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        },
        Err(detail) => NodeStatusRead {
            node: name.to_string(),
            status: None,
            serving: false,
            database: None,
            detail,
            id: String::new(),
            members: Vec::new(),
        },
    }
}
