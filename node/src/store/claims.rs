//! Content claims: who may write or remove the blob at a content address right now.
//!
//! An upload writes its bytes straight to their content address before its database change, so
//! that no object-store request runs under the `transactions` lock. The address is claimed
//! first and the claim is held until the change commits: while one upload holds a sha256, no
//! other upload can find its blob, write it or remove it. That is what lets a failed upload remove
//! the blob it created — nobody else can have seen it — and what keeps a row from ever pointing at
//! bytes a failing upload removed.
//!
//! On PostgreSQL a claim is a transaction-scoped advisory lock per sha256 (so it excludes across
//! nodes), taken in an open transaction that later becomes the change itself: one connection,
//! and the claim ends exactly when the change commits or rolls back, or when the connection
//! dies. On SQLite (a single node) it is an in-process lock, one of [`SQLITE_STRIPES`] picked by
//! the sha256.

use std::sync::Arc;

use sqlx::Row;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Backend, Change, Store, StoreError};

/// In-process claim locks of a SQLite store; two sha256s may share one (harmless: a little waiting).
pub const SQLITE_STRIPES: usize = 64;

/// The in-process claim locks of one SQLite store, shared by its clones.
#[derive(Debug)]
pub(crate) struct Stripes(Vec<Arc<Mutex<()>>>);

impl Default for Stripes {
    fn default() -> Self {
        Self((0..SQLITE_STRIPES).map(|_| Arc::default()).collect())
    }
}

/// A claim on one or more content addresses, held until dropped or turned into the change that
/// publishes them ([`Store::claimed_change`]).
pub struct ContentClaim {
    held: Held,
}

enum Held {
    /// The open transaction holding `pg_advisory_xact_lock` per sha256.
    Postgres(sqlx::Transaction<'static, sqlx::Any>),
    Sqlite(Vec<OwnedMutexGuard<()>>),
}

/// The advisory-lock key of a sha256: its first 64 bits. A collision only makes two uploads
/// wait for each other.
fn advisory_key(sha256: &str) -> i64 {
    let prefix = sha256.get(..16).unwrap_or(sha256);
    u64::from_str_radix(prefix, 16).unwrap_or_else(|_| {
        // Not hex (a corrupt address is refused later): any stable key will do.
        prefix
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
    }) as i64
}

impl Store {
    /// Claims the content addresses `sha256s`, waiting for whoever holds one of them. Claims are
    /// taken in one order, so two claimants of overlapping sets never deadlock.
    pub async fn claim_content(&self, sha256s: &[&str]) -> Result<ContentClaim, StoreError> {
        let held = match self.backend {
            Backend::Postgres => {
                let mut keys: Vec<i64> = sha256s.iter().map(|s| advisory_key(s)).collect();
                keys.sort_unstable();
                keys.dedup();
                let mut tx = self.pool.begin().await?;
                for key in keys {
                    // `pg_advisory_xact_lock` returns void, which the `Any` driver cannot decode.
                    sqlx::query("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock($1)) AS claim")
                        .bind(key)
                        .fetch_one(&mut *tx)
                        .await?;
                }
                Held::Postgres(tx)
            }
            Backend::Sqlite => {
                let mut stripes: Vec<usize> = sha256s
                    .iter()
                    .map(|s| advisory_key(s) as u64 as usize % SQLITE_STRIPES)
                    .collect();
                stripes.sort_unstable();
                stripes.dedup();
                let mut guards = Vec::with_capacity(stripes.len());
                for stripe in stripes {
                    guards.push(self.claims.0[stripe].clone().lock_owned().await);
                }
                Held::Sqlite(guards)
            }
        };
        Ok(ContentClaim { held })
    }

    /// Opens the change that publishes what `claim` covers; the claim ends with the change. On
    /// PostgreSQL the claim's own transaction becomes the change (it takes the `transactions`
    /// lock only now, after the object-store work).
    pub async fn claimed_change(
        &self,
        claim: ContentClaim,
        kind: &str,
        description: &str,
    ) -> Result<Change, StoreError> {
        match claim.held {
            Held::Postgres(tx) => self.open_change(tx, kind, description, Vec::new()).await,
            Held::Sqlite(guards) => {
                let tx = self.begin_write().await?;
                self.open_change(tx, kind, description, guards).await
            }
        }
    }
}

impl ContentClaim {
    /// Whether a committed package file row refers to `sha256`. Asked through the claim's own
    /// connection on PostgreSQL, so an answer also proves the claim is still held (a claim dies
    /// with its connection).
    pub async fn referenced(&mut self, store: &Store, sha256: &str) -> Result<bool, StoreError> {
        const QUERY: &str = "SELECT COUNT(*) FROM packages WHERE sha256 = $1";
        let row = match &mut self.held {
            Held::Postgres(tx) => sqlx::query(QUERY).bind(sha256).fetch_one(&mut **tx).await?,
            Held::Sqlite(_) => {
                sqlx::query(QUERY)
                    .bind(sha256)
                    .fetch_one(store.pool())
                    .await?
            }
        };
        let count: i64 = row.try_get(0)?;
        Ok(count > 0)
    }

    /// Ends the claim now (dropping it ends it too, a moment later on PostgreSQL).
    pub async fn release(self) {
        if let Held::Postgres(tx) = self.held {
            let _ = tx.rollback().await;
        }
    }

    /// Whether the claim is still held: its connection still answers (PostgreSQL).
    pub async fn still_held(&mut self) -> bool {
        match &mut self.held {
            Held::Postgres(tx) => sqlx::query("SELECT 1").fetch_one(&mut **tx).await.is_ok(),
            Held::Sqlite(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sha256_names_one_key_and_junk_still_has_one() {
        let sha = format!("{}{}", "0123456789abcdef", "f".repeat(48));
        assert_eq!(advisory_key(&sha), 0x0123_4567_89ab_cdef);
        assert_eq!(
            advisory_key("not hex at all!!"),
            advisory_key("not hex at all!!")
        );
        assert_eq!(advisory_key(""), 0);
    }
}
