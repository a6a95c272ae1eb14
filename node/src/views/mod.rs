//! Snapshot views: everything a repository served at one transaction, built once and cached.
//!
//! **Invariant:** a view is a pure function of (repo, transaction id) within one history. Views
//! are never invalidated while the history holds; a new transaction moves `latest` to a new key,
//! and older snapshots keep their exact content. When the database's history is rolled back
//! (`head::Rollback`), [`Views::reset`] drops every view at once: the ids may now name other
//! transactions. Each view carries its transaction's uid, so its ETags differ across histories.

mod content;
mod cran_index;
mod file_index;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDate;

pub use content::{Content, Project};

use crate::store::{Repo, Store, StoreError};

/// Which state of a repository a URL asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    Latest,
    Tx(i64),
    /// The state at the end of this UTC day.
    Date(NaiveDate),
}

impl Snapshot {
    pub fn parse(text: &str) -> Option<Self> {
        if text == "latest" {
            return Some(Self::Latest);
        }
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().ok().map(Self::Tx);
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(Self::Date)
    }
}

/// A repository at one transaction: its content, shared with the views of the transactions
/// that did not change the repository.
#[derive(Debug)]
pub struct RepoView {
    pub repo: Repo,
    pub tx: i64,
    /// The identity of transaction `tx` (`store::TxMark`): names this history in ETags.
    pub tx_uid: String,
    content: Arc<Content>,
}

impl RepoView {
    /// The ETag of what this view renders as `what`: the same bytes on every node, and never the
    /// same tag for two histories that reuse a transaction id.
    pub fn etag(&self, what: &str) -> String {
        let uid = self.tx_uid.get(..8).unwrap_or(&self.tx_uid);
        format!("{}-{}-{uid}-{what}", self.repo.id, self.tx)
    }
}

impl std::ops::Deref for RepoView {
    type Target = Content;

    fn deref(&self) -> &Content {
        &self.content
    }
}

impl RepoView {
    /// Builds the view from every file visible at `tx`.
    pub async fn build(store: &Store, repo: Repo, tx: i64) -> Result<Self, StoreError> {
        let tx_uid = tx_uid(store, tx).await?;
        let rows = store.repo_files_at(repo.id, tx).await?;
        let (kind, name) = (repo.kind, repo.name.clone());
        let content = on_blocking_thread(move || Content::full(kind, rows, &name)).await?;
        Ok(Self {
            repo,
            tx,
            tx_uid,
            content: Arc::new(content),
        })
    }

    /// Builds the view at `tx` from `base` (an older view of the same repo) plus the files the
    /// transactions in between added; when one of them did anything else to the repo, from
    /// scratch. The flag says whether `base` was used.
    pub async fn build_after(
        store: &Store,
        base: &RepoView,
        tx: i64,
    ) -> Result<(Self, bool), StoreError> {
        let repo = base.repo.clone();
        let tx_uid = tx_uid(store, tx).await?;
        let Some(rows) = store.repo_additions(repo.id, base.tx, tx).await? else {
            return Ok((Self::build(store, repo, tx).await?, false));
        };
        let content = if rows.is_empty() {
            Arc::clone(&base.content)
        } else {
            let previous = Arc::clone(&base.content);
            let (kind, name) = (repo.kind, repo.name.clone());
            Arc::new(
                on_blocking_thread(move || Content::with_additions(&previous, kind, rows, &name))
                    .await?,
            )
        };
        Ok((
            Self {
                repo,
                tx,
                tx_uid,
                content,
            },
            true,
        ))
    }
}

/// The uid of transaction `tx`, read first: a view is only ever labelled with the identity of
/// the history its rows were read from (a rollback between the two reads is caught by the head).
async fn tx_uid(store: &Store, tx: i64) -> Result<String, StoreError> {
    Ok(store.tx_uid(tx).await?.unwrap_or_default())
}

/// Rendering and compressing take tens of milliseconds at CRAN's scale: off the async workers,
/// so that other requests go on being served meanwhile.
async fn on_blocking_thread<T: Send + 'static>(
    build: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(build)
        .await
        .map_err(|e| StoreError::Corrupt(format!("building a view failed: {e}")))
}

/// The view cache, keyed by (repo id, transaction id), plus the newest view built of each repo:
/// what `latest` falls back to while the database is unavailable, and what the next
/// transaction's view is built from.
#[derive(Clone)]
pub struct Views {
    /// Keyed by (history epoch, repo id, tx): a build under way when the history was rolled back
    /// lands under the old epoch, where nothing looks for it.
    cache: moka::future::Cache<(u64, i64, i64), Arc<RepoView>>,
    newest: Arc<std::sync::Mutex<HashMap<i64, EpochView>>>,
    /// Moves on at each rollback of the database's history.
    epoch: Arc<AtomicU64>,
    builds: Arc<BuildCounts>,
}

/// A view with the history epoch it was built in.
type EpochView = (u64, Arc<RepoView>);

/// How the views this node built were built.
#[derive(Debug, Default)]
struct BuildCounts {
    full: AtomicU64,
    incremental: AtomicU64,
}

impl Views {
    pub fn new(capacity: u64) -> Self {
        Self {
            // Least recently used goes first. Moka's default admission (TinyLFU) turns away a
            // new key seen once when the cache is full — every new head's view — so `latest`
            // would rebuild it on each request.
            cache: moka::future::Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build(),
            newest: Arc::default(),
            epoch: Arc::default(),
            builds: Arc::default(),
        }
    }

    /// Forgets every view: the database's history was rolled back, so a transaction id this node
    /// built a view of may now name another transaction (or none). Views built from then on read
    /// only what the database holds.
    pub fn reset(&self) {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        newest.clear();
        self.cache.invalidate_all();
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The newest view of `repo_id` this node has built, whatever its transaction.
    pub fn newest(&self, repo_id: i64) -> Option<Arc<RepoView>> {
        let newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let epoch = self.epoch();
        newest
            .get(&repo_id)
            .filter(|(built_in, _)| *built_in == epoch)
            .map(|(_, view)| view.clone())
    }

    /// The view of (repo, tx) if this node holds it, without building it.
    pub async fn cached(&self, repo_id: i64, tx: i64) -> Option<Arc<RepoView>> {
        self.cache.get(&(self.epoch(), repo_id, tx)).await
    }

    /// Applies the cache's pending admissions and evictions now (it otherwise does so a little
    /// later, in batches): what a test needs to see the cache as it will be.
    pub async fn settle(&self) {
        self.cache.run_pending_tasks().await;
    }

    /// Views built from every visible file.
    pub fn full_builds(&self) -> u64 {
        self.builds.full.load(Ordering::Relaxed)
    }

    /// Views built from an older view plus the files added since.
    pub fn incremental_builds(&self) -> u64 {
        self.builds.incremental.load(Ordering::Relaxed)
    }

    /// Keeps `view` as its repo's newest, when it was built in the current history.
    fn remember(&self, epoch: u64, view: &Arc<RepoView>) {
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        if epoch != self.epoch() {
            return;
        }
        let entry = newest
            .entry(view.repo.id)
            .or_insert_with(|| (epoch, view.clone()));
        if entry.0 != epoch || entry.1.tx < view.tx {
            *entry = (epoch, view.clone());
        }
    }

    /// The cached view, or one built now (concurrent callers share one build) — from the newest
    /// older view this node holds when there is one. The flag says whether it came from the
    /// cache.
    pub async fn get(
        &self,
        store: &Store,
        repo: Repo,
        tx: i64,
    ) -> Result<(Arc<RepoView>, bool), Arc<StoreError>> {
        // The epoch is read before the base: a base from an older history is never used.
        let epoch = self.epoch();
        let key = (epoch, repo.id, tx);
        if let Some(view) = self.cache.get(&key).await {
            return Ok((view, true));
        }
        let base = self
            .newest(repo.id)
            .filter(|view| view.tx < tx && epoch == self.epoch());
        let builds = Arc::clone(&self.builds);
        let view = self
            .cache
            .try_get_with(key, async move {
                let started = std::time::Instant::now();
                let (view, from_base) = match &base {
                    Some(base) => RepoView::build_after(store, base, tx).await?,
                    None => (RepoView::build(store, repo, tx).await?, false),
                };
                let counter = if from_base {
                    &builds.incremental
                } else {
                    &builds.full
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    repo = %view.repo.name,
                    tx,
                    from = base.as_ref().filter(|_| from_base).map(|b| b.tx),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "built a view"
                );
                Ok::<_, StoreError>(Arc::new(view))
            })
            .await?;
        self.remember(epoch, &view);
        Ok((view, false))
    }

    /// A view of `repo` at `tx` or at a later transaction of this history: what `latest` needs,
    /// since every commit up to `tx` is in it. The newest view this node holds when it is that
    /// recent, without a cache lookup or a build; otherwise [`Views::get`] at `tx`. A request
    /// whose head read was overtaken by a newer view (built for a later request) never waits
    /// for an older view to be built in full.
    pub async fn at_least(
        &self,
        store: &Store,
        repo: Repo,
        tx: i64,
    ) -> Result<(Arc<RepoView>, bool), Arc<StoreError>> {
        if let Some(view) = self.newest(repo.id).filter(|view| view.tx >= tx) {
            return Ok((view, true));
        }
        self.get(store, repo, tx).await
    }

    /// Builds `tx`'s view of every repository this node has served, so that the first request
    /// after a new transaction finds it built or under way (and joins that build).
    pub async fn warm(&self, store: &Store, tx: i64) {
        let held: Vec<Repo> = {
            let newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
            let epoch = self.epoch();
            newest
                .values()
                .filter(|(built_in, _)| *built_in == epoch)
                .map(|(_, view)| view.repo.clone())
                .collect()
        };
        // After a rollback (or before any request) no view is held: every repository then.
        let repos = if held.is_empty() {
            store.repos().await.unwrap_or_default()
        } else {
            held
        };
        // A repository whose newest view is already at `tx` or later is left alone.
        let builds = repos.into_iter().map(|repo| async move {
            let name = repo.name.clone();
            if let Err(e) = self.at_least(store, repo, tx).await {
                tracing::debug!(repo = %name, tx, error = %e, "could not build a view ahead of requests");
            }
        });
        futures::future::join_all(builds).await;
    }

    /// Builds every repository's view at the current head, then warms the views of each new
    /// head as this node learns of it. Heads that arrive during a build are folded into the
    /// next one: the views follow the newest head, never a queue.
    pub fn spawn_warmer(
        &self,
        store: Store,
        mut heads: tokio::sync::watch::Receiver<i64>,
    ) -> tokio::task::JoinHandle<()> {
        let views = self.clone();
        tokio::spawn(async move {
            // Every repository at start, so that the first requests after a (re)start do not
            // each wait for a full build.
            let tx = *heads.borrow_and_update();
            match store.repos().await {
                Ok(repos) => {
                    let builds = repos.into_iter().map(|repo| views.get(&store, repo, tx));
                    for built in futures::future::join_all(builds).await {
                        if let Err(e) = built {
                            tracing::debug!(error = %e, "could not build a view at start");
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "could not list the repositories at start"),
            }
            while heads.changed().await.is_ok() {
                let tx = *heads.borrow_and_update();
                views.warm(&store, tx).await;
            }
        })
    }
}
