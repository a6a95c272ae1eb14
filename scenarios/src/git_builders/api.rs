//! The node's git builders API, as the harness (or an operator's script) calls it over HTTP:
//! create a builder, ask it to check its remote now, and list its builds. Mutations carry the
//! source's `sources:write` token as a bearer token; reads are open.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ScenarioError;

/// The body of `POST /__api__/sources/{source}/git-builders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBuilder {
    pub name: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub build_trigger: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone_depth: Option<u32>,
}

/// One row of `GET /__api__/sources/{source}/git-builds`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRow {
    pub id: i64,
    pub builder: String,
    pub commit_sha: String,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub state: String,
    #[serde(default)]
    pub attempts: i64,
    #[serde(default)]
    pub node_id: Option<String>,
    /// RFC 3339 times, as the node wrote them (the harness parses them).
    #[serde(default)]
    pub queued_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub transaction_id: Option<i64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// A client of one source's git builders.
#[derive(Clone, Debug)]
pub struct BuilderApi {
    pub base_url: String,
    pub source: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl BuilderApi {
    fn url(&self, path: &str) -> String {
        format!(
            "{}/__api__/sources/{}/{path}",
            self.base_url.trim_end_matches('/'),
            self.source
        )
    }

    /// Creates a builder; 201 (or 409: it exists already, as after a retried create) is fine.
    pub async fn create(&self, builder: &NewBuilder) -> Result<(), ScenarioError> {
        let url = self.url("git-builders");
        let response = self
            .client
            .post(&url)
            .bearer_auth(&self.token)
            .json(builder)
            .send()
            .await
            .map_err(|e| api_error("POST", &url, e.to_string()))?;
        let status = response.status();
        if status.is_success() || status.as_u16() == 409 {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(api_error(
            "POST",
            &url,
            format!(
                "HTTP {status}: {}",
                body.chars().take(300).collect::<String>()
            ),
        ))
    }

    /// Asks the builder to check its remote now (what a poll does).
    pub async fn run(&self, name: &str) -> Result<(), ScenarioError> {
        let url = self.url(&format!("git-builders/{name}/run"));
        let response = self
            .client
            .post(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| api_error("POST", &url, e.to_string()))?;
        if response.status().is_success() {
            return Ok(());
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Err(api_error(
            "POST",
            &url,
            format!(
                "HTTP {status}: {}",
                body.chars().take(300).collect::<String>()
            ),
        ))
    }

    /// Every build of the source (all builders), newest first, read page by page.
    pub async fn all_builds(&self) -> Result<Vec<BuildRow>, ScenarioError> {
        const PAGE: usize = 100;
        let mut all = Vec::new();
        for page in 1..=10_000usize {
            let url = self.url(&format!("git-builds?count={PAGE}&page={page}"));
            let response = self
                .client
                .get(&url)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map_err(|e| api_error("GET", &url, e.to_string()))?;
            let status = response.status();
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                return Err(api_error(
                    "GET",
                    &url,
                    format!(
                        "HTTP {status}: {}",
                        body.chars().take(300).collect::<String>()
                    ),
                ));
            }
            let rows: Vec<BuildRow> = response
                .json()
                .await
                .map_err(|e| api_error("GET", &url, format!("not a build list: {e}")))?;
            let full = rows.len() == PAGE;
            all.extend(rows);
            if !full {
                break;
            }
        }
        Ok(all)
    }
}

fn api_error(method: &'static str, url: &str, detail: String) -> ScenarioError {
    ScenarioError::BuilderApi {
        method,
        url: url.to_string(),
        detail,
    }
}
