//! The read of the database's head that every `latest` index request waits for
//! (`head::Head::fresh`), and the connection it is sent on.
//!
//! Through the pool a head read cost two round trips — the pool tests each connection before
//! handing it out (`test_before_acquire`: a ping), then the query — and a task to hand the
//! connection back. On PostgreSQL the shared reads go over a connection kept for them alone:
//! one round trip each. A kept connection that fails (the server restarted, the endpoint moved
//! to a promoted standby) is dropped and the read sent once more on a new connection, which is
//! what the pool's test did for a dead pooled connection; only the new connection's answer is
//! recorded in the store's health.

use std::time::Instant;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Connection, Row};

use super::{Backend, HeadRead, Store, StoreError, TxMark};

/// The newest transaction and whether the held one is still in the database's history.
const HEAD_SQL: &str = "SELECT t.id, t.uid, \
                        (SELECT COUNT(*) FROM transactions h WHERE h.id = $1 AND h.uid = $2) \
                        FROM transactions t ORDER BY t.id DESC LIMIT 1";

/// The connection head reads are sent on (PostgreSQL; SQLite reads through the pool, in
/// process). Opened at the first read, replaced when it fails. Its holder serialises the reads:
/// `Head` keeps it behind the lock that makes concurrent requests share one read.
#[derive(Default)]
pub struct HeadConnection {
    connection: Option<AnyConnection>,
}

impl std::fmt::Debug for HeadConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadConnection")
            .field("open", &self.connection.is_some())
            .finish()
    }
}

/// The `application_name` of the head connection, as `pg_stat_activity` shows it.
pub const HEAD_CONNECTION_NAME: &str = "pkgnode head reads";

fn head_query(held: &TxMark) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(HEAD_SQL).bind(held.id).bind(held.uid.as_str())
}

fn head_read(row: Option<AnyRow>, held: &TxMark) -> Result<HeadRead, StoreError> {
    let Some(row) = row else {
        return Ok(HeadRead {
            head: TxMark::default(),
            holds_held: held.id == 0,
        });
    };
    let uid: Option<String> = row.try_get(1)?;
    let held_count: i64 = row.try_get(2)?;
    Ok(HeadRead {
        head: TxMark {
            id: row.try_get(0)?,
            uid: uid.unwrap_or_default(),
        },
        holds_held: held.id == 0 || held_count > 0,
    })
}

impl Store {
    /// The database's newest transaction with its identity, and whether `held` (the head a node
    /// built its views on) is still in the database's history, read through the pool. An empty
    /// store's head is id 0 with an empty uid, which holds only an id-0 `held`.
    /// Every call records whether the database answered (`health`).
    pub async fn head_holding(&self, held: &TxMark) -> Result<HeadRead, StoreError> {
        let began = Instant::now();
        let row = head_query(held).fetch_optional(&self.pool).await;
        self.health.observe_begun(&row, began);
        head_read(row?, held)
    }

    /// [`Store::head_holding`] on `connection` (PostgreSQL): one round trip while the kept
    /// connection works; a failed one is replaced and the read sent again, once.
    pub async fn head_holding_on(
        &self,
        connection: &mut HeadConnection,
        held: &TxMark,
    ) -> Result<HeadRead, StoreError> {
        if self.backend != Backend::Postgres {
            return self.head_holding(held).await;
        }
        let began = Instant::now();
        let row = self.read_on(connection, held).await;
        self.health.observe_begun(&row, began);
        head_read(row?, held)
    }

    async fn read_on(
        &self,
        slot: &mut HeadConnection,
        held: &TxMark,
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        // Taken out for the read and put back only after an answer: a read dropped half-way (a
        // timeout) or failed leaves no connection in an unknown state behind.
        if let Some(mut kept) = slot.connection.take() {
            match head_query(held).fetch_optional(&mut kept).await {
                Ok(row) => {
                    slot.connection = Some(kept);
                    return Ok(row);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "the head connection failed; reading on a new one");
                }
            }
        }
        let mut fresh = AnyConnection::connect(&self.url).await?;
        // Named, so that an operator (and the tests) can tell it from the pool's connections.
        sqlx::query(&format!("SET application_name = '{HEAD_CONNECTION_NAME}'"))
            .execute(&mut fresh)
            .await?;
        let row = head_query(held).fetch_optional(&mut fresh).await?;
        slot.connection = Some(fresh);
        Ok(row)
    }
}
