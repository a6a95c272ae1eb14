//! The final reads of a drill: every ledger entry read back from every node directly (not
//! through the balancer), by index page and by file bytes, as a client of that node would.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{LedgerEntry, WriteFormat};

/// What one node showed of one ledger entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadOutcome {
    /// Listed once in the index, and its bytes have the ledger's sha256.
    Present,
    /// Listed more than once in the index (bytes right).
    Duplicated,
    /// Not in the index, or the file is not served.
    Missing,
    /// Served with other bytes than were uploaded.
    Corrupt,
    /// The node did not answer clearly (error, 5xx): this read decides nothing.
    Unreadable,
}

/// One node's read of one ledger entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadBack {
    /// The ledger entry's sequence number.
    pub seq: usize,
    /// The node's name.
    pub node: String,
    pub outcome: ReadOutcome,
    /// Why, when not present.
    pub detail: String,
}

/// Reads every entry of `ledger` back from each of `nodes` ((name, base URL)): the simple
/// page (PEP 691 JSON) or `PACKAGES` of repositories `pypi_repo` / `cran_repo` at `latest`,
/// then the file's bytes. Entries are read one node at a time, a few in flight.
pub async fn read_back(
    client: &reqwest::Client,
    nodes: &[(String, String)],
    pypi_repo: &str,
    cran_repo: &str,
    ledger: &[LedgerEntry],
) -> Vec<ReadBack> {
    use futures::StreamExt;
    let mut reads = Vec::with_capacity(ledger.len() * nodes.len());
    for (node, base) in nodes {
        let base = base.trim_end_matches('/');
        let cran_index = cran_index(
            client,
            &format!("{base}/{cran_repo}/latest/src/contrib/PACKAGES"),
        )
        .await;
        let node_reads: Vec<ReadBack> = futures::stream::iter(ledger)
            .map(|entry| {
                let cran_index = &cran_index;
                async move {
                    let (outcome, detail) = match entry.format {
                        WriteFormat::Python => read_python(client, base, pypi_repo, entry).await,
                        WriteFormat::R => read_r(client, base, cran_repo, cran_index, entry).await,
                    };
                    ReadBack {
                        seq: entry.seq,
                        node: node.clone(),
                        outcome,
                        detail,
                    }
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        reads.extend(node_reads);
    }
    reads.sort_by(|a, b| (a.seq, &a.node).cmp(&(b.seq, &b.node)));
    reads
}

async fn read_python(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    entry: &LedgerEntry,
) -> (ReadOutcome, String) {
    let page = format!(
        "{base}/{repo}/latest/simple/{}/",
        crate::corpus::pep503_normalize(&entry.name)
    );
    let response = client
        .get(&page)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await;
    let json: serde_json::Value = match response {
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
            return (ReadOutcome::Missing, format!("{page}: 404"));
        }
        Ok(r) if r.status().is_success() => match r.json().await {
            Ok(json) => json,
            Err(e) => return (ReadOutcome::Unreadable, format!("{page}: {e}")),
        },
        Ok(r) => {
            return (
                ReadOutcome::Unreadable,
                format!("{page}: HTTP {}", r.status()),
            );
        }
        Err(e) => return (ReadOutcome::Unreadable, format!("{page}: {e}")),
    };
    let listed: Vec<&serde_json::Value> = json["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter(|f| f["filename"].as_str() == Some(entry.file_name.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let Some(first) = listed.first() else {
        return (
            ReadOutcome::Missing,
            format!("{page} does not list {}", entry.file_name),
        );
    };
    if first["hashes"]["sha256"].as_str() != Some(entry.sha256.as_str()) {
        return (
            ReadOutcome::Corrupt,
            format!("{page} lists sha256 {}", first["hashes"]["sha256"]),
        );
    }
    let file_url = match first["url"]
        .as_str()
        .and_then(|u| url::Url::parse(&page).ok()?.join(u).ok())
    {
        Some(url) => url,
        None => {
            return (
                ReadOutcome::Unreadable,
                format!("{page}: no usable file URL"),
            );
        }
    };
    let (outcome, detail) = read_bytes(client, file_url.as_str(), &entry.sha256).await;
    if outcome == ReadOutcome::Present && listed.len() > 1 {
        return (
            ReadOutcome::Duplicated,
            format!("{page} lists {} {} times", entry.file_name, listed.len()),
        );
    }
    (outcome, detail)
}

/// `PACKAGES` as (package, version) → times listed; `Err` when it could not be read.
type CranIndex = Result<HashMap<(String, String), usize>, String>;

async fn cran_index(client: &reqwest::Client, url: &str) -> CranIndex {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let text = response.text().await.map_err(|e| format!("{url}: {e}"))?;
    let mut index = HashMap::new();
    for entry in crate::cran_packages::entries(&text).map_err(|e| format!("{url}: {e}"))? {
        *index.entry((entry.name, entry.version)).or_insert(0) += 1;
    }
    Ok(index)
}

async fn read_r(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    index: &CranIndex,
    entry: &LedgerEntry,
) -> (ReadOutcome, String) {
    let listed = match index {
        Ok(index) => index
            .get(&(entry.name.clone(), entry.version.clone()))
            .copied()
            .unwrap_or(0),
        Err(e) => return (ReadOutcome::Unreadable, e.clone()),
    };
    if listed == 0 {
        return (
            ReadOutcome::Missing,
            format!(
                "{base}/{repo}/latest/src/contrib/PACKAGES does not list {} {}",
                entry.name, entry.version
            ),
        );
    }
    let url = format!("{base}/{repo}/latest/src/contrib/{}", entry.file_name);
    let (outcome, detail) = read_bytes(client, &url, &entry.sha256).await;
    if outcome == ReadOutcome::Present && listed > 1 {
        return (
            ReadOutcome::Duplicated,
            format!(
                "PACKAGES lists {} {} {listed} times",
                entry.name, entry.version
            ),
        );
    }
    (outcome, detail)
}

async fn read_bytes(client: &reqwest::Client, url: &str, sha256: &str) -> (ReadOutcome, String) {
    match client.get(url).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
            (ReadOutcome::Missing, format!("{url}: 404"))
        }
        Ok(r) if r.status().is_success() => match r.bytes().await {
            Ok(bytes) => {
                let got = hex::encode(Sha256::digest(&bytes));
                if got == sha256 {
                    (ReadOutcome::Present, String::new())
                } else {
                    (ReadOutcome::Corrupt, format!("{url}: sha256 {got}"))
                }
            }
            Err(e) => (ReadOutcome::Unreadable, format!("{url}: {e}")),
        },
        Ok(r) => (
            ReadOutcome::Unreadable,
            format!("{url}: HTTP {}", r.status()),
        ),
        Err(e) => (ReadOutcome::Unreadable, format!("{url}: {e}")),
    }
}
