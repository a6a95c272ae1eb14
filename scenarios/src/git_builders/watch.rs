//! The clients waiting for a new version: goose users that take the next pushed good commit
//! from a shared queue and poll the repository's index through the balancer until the
//! commit's version appears, as a CI job waiting for its package would. Python: the project's
//! PEP 503 page lists a file of that version. R: `PACKAGES.gz` lists the version, or, once a
//! newer one is listed, the version's tarball is in `Archive/`.
//!
//! Each commit's latency is recorded from the moment its push returned to the poll that saw it
//! ([`super::KIND_COMMIT_TO_PUBLISHED`]); a commit still unseen at the deadline is recorded as
//! an error (`not_published`) unless a newer version of its package is listed by then: a
//! builder on commits builds its branch's tip when it polls, so a commit pushed over before the
//! poll is *superseded*, never built ([`super::KIND_COMMIT_SUPERSEDED`], a count). Each poll is
//! recorded too ([`super::KIND_WATCH_POLL`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::goose::GooseResponse;
use goose::prelude::*;
use reports::metrics::{Outcome, Recorder};
use url::Url;

use super::{KIND_COMMIT_SUPERSEDED, KIND_COMMIT_TO_PUBLISHED, KIND_WATCH_POLL};
use crate::corpus::{Ecosystem, pep503_normalize};
use crate::daily_installs::{parse_packages_index, parse_simple_page};
use crate::error::ScenarioError;

/// Where the watchers look: the balancer and the two repositories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchTarget {
    pub base_url: String,
    pub pypi_repo: String,
    pub cran_repo: String,
}

/// A pushed good commit to wait for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchItem {
    pub builder: usize,
    pub package: String,
    pub ecosystem: Ecosystem,
    pub version: String,
    /// When its push returned.
    pub pushed: Instant,
}

/// The commits waiting for a watcher, shared by every goose user.
#[derive(Default)]
pub struct WatchQueue {
    items: Mutex<VecDeque<WatchItem>>,
    ready: tokio::sync::Notify,
}

impl WatchQueue {
    pub fn push(&self, item: WatchItem) {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(item);
        self.ready.notify_one();
    }

    /// The next item, waiting at most `wait` for one.
    pub async fn next(&self, wait: Duration) -> Option<WatchItem> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.ready.notified();
            if let Some(item) = self
                .items
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
            {
                return Some(item);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Items no watcher has taken yet.
    pub fn waiting(&self) -> usize {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Everything a watcher needs; shared by every goose user.
pub struct WatchContext {
    pub target: WatchTarget,
    pub queue: Arc<WatchQueue>,
    pub recorder: Arc<Recorder>,
    /// Time between two polls of one commit.
    pub interval: Duration,
    /// A commit not seen by then is `not_published`.
    pub deadline: Instant,
    /// (builder, version, seen at) of every commit seen published.
    pub seen: Mutex<Vec<(usize, String, Instant)>>,
}

/// The goose scenario: one transaction, `watch`, that waits for one pushed commit's version
/// (or idles briefly when none is waiting).
pub fn scenario(ctx: Arc<WatchContext>) -> Scenario {
    let watch: TransactionFunction = Arc::new(move |user| {
        let ctx = Arc::clone(&ctx);
        Box::pin(async move {
            watch_one(&ctx, user).await;
            Ok(())
        })
    });
    Scenario::new("git_builders").register_transaction(Transaction::new(watch).set_name("watch"))
}

async fn watch_one(ctx: &WatchContext, user: &mut GooseUser) {
    let Some(item) = ctx.queue.next(Duration::from_millis(200)).await else {
        return;
    };
    ctx.recorder
        .scheduled(KIND_COMMIT_TO_PUBLISHED, item.pushed);
    loop {
        let listed = listed(ctx, user, &item).await;
        if listed.mine {
            let now = Instant::now();
            ctx.recorder
                .record(KIND_COMMIT_TO_PUBLISHED, item.pushed, now, Outcome::Ok);
            ctx.seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((item.builder, item.version.clone(), now));
            return;
        }
        if Instant::now() + ctx.interval > ctx.deadline {
            if listed.newer {
                ctx.recorder.scheduled(KIND_COMMIT_SUPERSEDED, item.pushed);
                return;
            }
            ctx.recorder.record(
                KIND_COMMIT_TO_PUBLISHED,
                item.pushed,
                Instant::now(),
                Outcome::Error("not_published".into()),
            );
            return;
        }
        tokio::time::sleep(ctx.interval).await;
    }
}

/// What the index lists of a commit's package.
#[derive(Clone, Copy, Debug, Default)]
struct Listed {
    /// The commit's version.
    mine: bool,
    /// A later version than the commit's.
    newer: bool,
}

/// What the repository lists of `item`'s package now.
async fn listed(ctx: &WatchContext, user: &mut GooseUser, item: &WatchItem) -> Listed {
    let base = ctx.target.base_url.trim_end_matches('/');
    let mine = version_key(&item.version);
    match item.ecosystem {
        Ecosystem::Python => {
            let name = pep503_normalize(&item.package);
            let url = format!("{base}/{}/latest/simple/{name}/", ctx.target.pypi_repo);
            let (Some(page), Ok(page_url)) = (get(ctx, user, &url).await, Url::parse(&url)) else {
                return Listed::default();
            };
            let links = parse_simple_page(&String::from_utf8_lossy(&page), &page_url);
            Listed {
                mine: links
                    .iter()
                    .any(|link| file_is_version(&link.file_name, &item.package, &item.version)),
                newer: links.iter().any(|link| {
                    file_version(&link.file_name).is_some_and(|v| version_key(&v) > mine)
                }),
            }
        }
        Ecosystem::R => {
            let cran = format!("{base}/{}/latest/src/contrib", ctx.target.cran_repo);
            let Some(gz) = get(ctx, user, &format!("{cran}/PACKAGES.gz")).await else {
                return Listed::default();
            };
            let current =
                parse_packages_index(&gz).and_then(|index| index.get(&item.package).cloned());
            match current {
                Some(version) if version == item.version => Listed {
                    mine: true,
                    newer: false,
                },
                // A newer version is current: ours, if published, is in the archive.
                Some(version) if version_key(&version) > mine => {
                    let (pkg, version) = (&item.package, &item.version);
                    let archived = format!("{cran}/Archive/{pkg}/{pkg}_{version}.tar.gz");
                    Listed {
                        mine: get(ctx, user, &archived).await.is_some(),
                        newer: true,
                    }
                }
                _ => Listed::default(),
            }
        }
    }
}

/// A dotted version as numbers, for ordering (`1.0.10` > `1.0.9`).
fn version_key(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|part| {
            part.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap_or(0)
        })
        .collect()
}

/// The version in a wheel or sdist file name (`name-1.0.3-py3…`, `name-1.0.3.tar.gz`).
fn file_version(file_name: &str) -> Option<String> {
    let stem = file_name
        .strip_suffix(".tar.gz")
        .or_else(|| file_name.strip_suffix(".zip"))
        .or_else(|| file_name.strip_suffix(".whl"))?;
    let parts: Vec<&str> = stem.split('-').collect();
    // Wheels: name-version-pytag-abitag-platform (the name has no `-`); sdists: the last part.
    let version = if file_name.ends_with(".whl") {
        parts.get(1)?
    } else {
        parts.last()?
    };
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| version.to_string())
}

/// Whether a distribution file name (wheel or sdist, any spelling of the name) is of `version`
/// of `package`: `gb_x_1-1.0.1-py3-none-any.whl` and `gb-x-1-1.0.1.tar.gz` are `1.0.1` of
/// `gb-x-1`; `…-1.0.10…` is not `1.0.1`.
pub fn file_is_version(file_name: &str, package: &str, version: &str) -> bool {
    let file = file_name.to_ascii_lowercase().replace('_', "-");
    let prefix = format!(
        "{}-{}",
        pep503_normalize(package),
        version.to_ascii_lowercase()
    );
    let Some(rest) = file.strip_prefix(&prefix) else {
        return false;
    };
    rest.starts_with('-') || rest == ".tar.gz" || rest == ".zip"
}

/// The body of a successful GET through goose, recorded as a poll; `None` on any failure
/// (a 404 before the first publication is the normal case).
async fn get(ctx: &WatchContext, user: &mut GooseUser, url: &str) -> Option<Vec<u8>> {
    let began = Instant::now();
    ctx.recorder.scheduled(KIND_WATCH_POLL, began);
    let body = match user.get_named(url, KIND_WATCH_POLL).await {
        Ok(GooseResponse {
            response: Ok(response),
            ..
        }) if response.status().is_success() => response.bytes().await.ok().map(|b| b.to_vec()),
        _ => None,
    };
    // A 404 is an answer, not a server error: only transport failures count as errors.
    ctx.recorder
        .record(KIND_WATCH_POLL, began, Instant::now(), Outcome::Ok);
    body
}

/// Runs the watchers with goose: `users` users, for `run_time`, quiet, configured in code.
pub async fn execute(
    ctx: Arc<WatchContext>,
    users: usize,
    run_time: Duration,
) -> Result<GooseMetrics, ScenarioError> {
    if users == 0 || run_time.is_zero() {
        return Err(ScenarioError::EmptyRun { users, run_time });
    }
    let mut config = GooseConfiguration::default();
    config.host = Some(ctx.target.base_url.trim_end_matches('/').to_string());
    config.users = Some(users);
    config.increase_rate = Some((users.max(1) * 1_000).to_string());
    config.run_time = Some(run_time.as_secs_f64().ceil().max(1.0).to_string());
    config.timeout = Some("30".into());
    config.quiet = 1;
    config.no_print_metrics = true;
    config.no_error_summary = true;
    config.no_telnet = true;
    config.no_reset_metrics = true;
    config.no_transaction_metrics = true;
    config.no_scenario_metrics = true;
    GooseAttack::initialize_with_config(config)
        .map_err(|e| ScenarioError::Goose(e.to_string()))?
        .register_scenario(scenario(ctx))
        .execute()
        .await
        .map_err(|e| ScenarioError::Goose(e.to_string()))
}
