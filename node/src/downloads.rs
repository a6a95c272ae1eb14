//! Download counts, gathered in memory on the request path and written in batches off it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::Store;

/// Pending counts per package file id.
#[derive(Debug, Default)]
pub struct Downloads {
    pending: Mutex<HashMap<i64, u64>>,
}

impl Downloads {
    /// Counts one download; a map update under a short lock, no I/O.
    pub fn record(&self, package_id: i64) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending.entry(package_id).or_default() += 1;
        }
    }

    /// Writes what has gathered; on failure the counts go back for the next flush.
    pub async fn flush(&self, store: &Store) {
        let batch: Vec<(i64, u64)> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => return,
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.add_downloads(&batch).await {
            tracing::warn!(error = %e, files = batch.len(), "could not write download counts; keeping them");
            if let Ok(mut pending) = self.pending.lock() {
                for (id, count) in batch {
                    *pending.entry(id).or_default() += count;
                }
            }
        }
    }
}

/// Flushes every `interval`.
pub fn spawn_flusher(
    store: Store,
    downloads: Arc<Downloads>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            downloads.flush(&store).await;
        }
    })
}
