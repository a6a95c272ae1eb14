//! Read-only discovery: the corpus of a deployment the harness must not write to (a production
//! Package Manager), read from what it serves — the PyPI repository's PEP 691 simple index and
//! project pages (wheels, versions, sizes when listed) and the CRAN repository's `PACKAGES.gz`
//! (versions and dependencies). Nothing is uploaded; every request is a GET a client makes.

use std::collections::HashMap;
use std::io::Read;

use flate2::read::GzDecoder;
use futures::{StreamExt, TryStreamExt, stream};
use pep440_rs::Version;
use serde::Deserialize;
use url::Url;

use super::InstallTarget;
use super::index::{
    SIMPLE_ACCEPT, SIMPLE_JSON_TYPE, anchor_hrefs, json_page_files, parse_simple_page,
    wheel_version_text,
};
use crate::corpus::{Corpus, CorpusConfig, PackageVersion, PyPackage, RPackage};
use crate::cran_packages;
use crate::error::ScenarioError;

/// Project pages read at once.
const PAGE_CONCURRENCY: usize = 8;

/// What discovery found, for the run's log and record.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Discovered {
    /// Projects the PyPI index lists.
    pub python_listed: usize,
    /// Of those, the ones taken (with a wheel, within the corpus size).
    pub python_taken: usize,
    /// Packages `PACKAGES` lists.
    pub r_listed: usize,
    /// Of those, the ones taken.
    pub r_taken: usize,
}

/// Reads the corpus `target` serves: up to `config.split()` packages of each ecosystem, in the
/// order the server lists them (popularity is Zipf over that order). Python projects without
/// a wheel are left out (the generator installs wheels, as pip prefers); R dependencies point
/// only at packages taken.
pub async fn discover_corpus(
    client: &reqwest::Client,
    target: &InstallTarget,
    config: &CorpusConfig,
) -> Result<(Corpus, Discovered), ScenarioError> {
    let (python_cap, r_cap) = config.split();
    let mut found = Discovered::default();
    let python = discover_python(client, target, python_cap, &mut found).await?;
    let r = discover_r(client, target, r_cap, &mut found).await?;
    if python.is_empty() && r.is_empty() {
        return Err(ScenarioError::Discovery(format!(
            "{} serves no wheel under /{}/ and no package under /{}/: nothing to install",
            target.base(),
            target.pypi_repo,
            target.cran_repo
        )));
    }
    Ok((Corpus::from_served(config, python, r), found))
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    accept: Option<&str>,
) -> Result<Option<(bytes::Bytes, bool)>, ScenarioError> {
    let mut request = client.get(url);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request
        .send()
        .await
        .map_err(|e| ScenarioError::Discovery(format!("GET {url}: {e}")))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !response.status().is_success() {
        return Err(ScenarioError::Discovery(format!(
            "GET {url} answered {}",
            response.status()
        )));
    }
    let json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(SIMPLE_JSON_TYPE));
    let body = response
        .bytes()
        .await
        .map_err(|e| ScenarioError::Discovery(format!("GET {url}: {e}")))?;
    Ok(Some((body, json)))
}

#[derive(Deserialize)]
struct RootIndex {
    projects: Vec<RootProject>,
}

#[derive(Deserialize)]
struct RootProject {
    name: String,
}

async fn discover_python(
    client: &reqwest::Client,
    target: &InstallTarget,
    cap: usize,
    found: &mut Discovered,
) -> Result<Vec<PyPackage>, ScenarioError> {
    let root_url = target.simple_root_url();
    let Some((body, json)) = get(client, &root_url, Some(SIMPLE_ACCEPT)).await? else {
        return Ok(Vec::new());
    };
    let names = if json {
        serde_json::from_slice::<RootIndex>(&body)
            .map_err(|e| ScenarioError::Discovery(format!("{root_url}: not a PEP 691 index: {e}")))?
            .projects
            .into_iter()
            .map(|p| p.name)
            .collect()
    } else {
        root_names_html(&String::from_utf8_lossy(&body))
    };
    found.python_listed = names.len();
    // Read pages until `cap` projects with a wheel are found (in listing order).
    let mut taken = Vec::new();
    let mut pages = std::pin::pin!(
        stream::iter(names.into_iter().map(|name| {
            let url = target.simple_url(&crate::corpus::pep503_normalize(&name));
            async move {
                let page = get(client, &url, Some(SIMPLE_ACCEPT)).await?;
                Ok::<_, ScenarioError>((name, url, page))
            }
        }))
        .buffered(PAGE_CONCURRENCY)
    );
    while taken.len() < cap {
        let Some((name, url, page)) = pages.try_next().await? else {
            break;
        };
        let Some((body, json)) = page else { continue };
        if let Some(versions) = wheel_versions(&body, json, &url)? {
            taken.push(PyPackage {
                name,
                rank: taken.len() + 1,
                versions,
                deps: Vec::new(),
                requires: Vec::new(),
                // What the target serves: its wheels are the versions' own.
                wheel_pythons: Vec::new(),
            });
        }
    }
    found.python_taken = taken.len();
    Ok(taken)
}

/// The versions of a project's wheels, oldest first, each with its wheel's size when listed;
/// `None` when it has no wheel.
fn wheel_versions(
    body: &[u8],
    json: bool,
    page_url: &str,
) -> Result<Option<Vec<PackageVersion>>, ScenarioError> {
    let base =
        Url::parse(page_url).map_err(|e| ScenarioError::Discovery(format!("{page_url}: {e}")))?;
    let files = if json {
        json_page_files(body, &base)
            .map_err(|e| ScenarioError::Discovery(format!("{page_url}: {e}")))?
    } else {
        parse_simple_page(&String::from_utf8_lossy(body), &base)
            .into_iter()
            .map(|link| (link, None))
            .collect()
    };
    let mut by_version: HashMap<String, u64> = HashMap::new();
    for (link, size) in files {
        if let Some(version) = wheel_version_text(&link.file_name) {
            let entry = by_version.entry(version.to_string()).or_default();
            *entry = (*entry).max(size.unwrap_or(0));
        }
    }
    if by_version.is_empty() {
        return Ok(None);
    }
    let mut versions: Vec<PackageVersion> = by_version
        .into_iter()
        .map(|(version, size_bytes)| PackageVersion {
            version,
            size_bytes,
            content_seed: 0,
        })
        .collect();
    // PEP 440 order; a version that is not PEP 440 goes first.
    versions.sort_by_cached_key(|v| v.version.parse::<Version>().ok());
    Ok(Some(versions))
}

/// Project names of a PEP 503 root page: each link's target without its trailing slash.
fn root_names_html(html: &str) -> Vec<String> {
    anchor_hrefs(html)
        .iter()
        .filter_map(|href| {
            let name = href.trim_end_matches('/');
            let name = name.rsplit('/').next().unwrap_or(name);
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

async fn discover_r(
    client: &reqwest::Client,
    target: &InstallTarget,
    cap: usize,
    found: &mut Discovered,
) -> Result<Vec<RPackage>, ScenarioError> {
    let url = target.packages_gz_url();
    let Some((gz, _)) = get(client, &url, None).await? else {
        return Ok(Vec::new());
    };
    let mut text = String::new();
    GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .map_err(|e| ScenarioError::Discovery(format!("{url}: not a gzipped PACKAGES: {e}")))?;
    let entries = cran_packages::entries(&text)
        .map_err(|e| ScenarioError::Discovery(format!("{url}: {e}")))?;
    found.r_listed = entries.len();
    let taken: Vec<_> = entries.into_iter().take(cap).collect();
    let index: HashMap<&str, usize> = taken
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    let packages: Vec<RPackage> = taken
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let deps: Vec<usize> = entry
                .deps
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .filter(|&d| d != i)
                .collect();
            RPackage {
                name: entry.name.clone(),
                rank: i + 1,
                versions: vec![PackageVersion {
                    version: entry.version.clone(),
                    size_bytes: 0,
                    content_seed: 0,
                }],
                imports: deps.iter().map(|&d| taken[d].name.clone()).collect(),
                deps,
            }
        })
        .collect();
    found.r_taken = packages.len();
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_pages_list_project_names() {
        let html = "<a href=\"numpy/\">numpy</a><br><A HREF=/simple/scikit-learn/>x</A>\
                    <link href=\"style.css\"><a href=\"a&amp;b/\">a&amp;b</a>";
        assert_eq!(root_names_html(html), ["numpy", "scikit-learn", "a&b"]);
    }

    #[test]
    fn wheel_versions_come_oldest_first_with_sizes() {
        let body = br#"{"files":[
            {"filename":"a-1.10.0-py3-none-any.whl","url":"a-1.10.0-py3-none-any.whl","hashes":{},"size":300},
            {"filename":"a-1.9.0-py3-none-any.whl","url":"a-1.9.0-py3-none-any.whl","hashes":{},"size":200},
            {"filename":"a-1.10.0rc1-py3-none-any.whl","url":"a-1.10.0rc1-py3-none-any.whl","hashes":{},"size":250},
            {"filename":"a-2.0.0.tar.gz","url":"a-2.0.0.tar.gz","hashes":{}}]}"#;
        let versions = wheel_versions(body, true, "http://h/pypi/latest/simple/a/")
            .unwrap()
            .unwrap();
        let listed: Vec<(&str, u64)> = versions
            .iter()
            .map(|v| (v.version.as_str(), v.size_bytes))
            .collect();
        assert_eq!(
            listed,
            [("1.9.0", 200), ("1.10.0rc1", 250), ("1.10.0", 300)]
        );
        let sdist_only = br#"{"files":[{"filename":"a-2.0.0.tar.gz","url":"x","hashes":{}}]}"#;
        assert_eq!(
            wheel_versions(sdist_only, true, "http://h/pypi/latest/simple/a/").unwrap(),
            None
        );
    }
}
