//! Whether the database is reachable, as this node last found it, and which errors
//! mean "the database is gone for now" (retry later) rather than "this request is wrong".
//!
//! Reads consult the state so that, once the database is known to be down, they serve what the
//! node already holds instead of each waiting for a connection that will not come.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What `/__api__/status` reports for the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseState {
    Ok,
    Unavailable,
}

impl DatabaseState {
    pub fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The database's state as last observed; starts available (the node connected to start).
#[derive(Debug)]
pub struct Health {
    available: AtomicBool,
    /// When the database last answered: an error from a call begun before that is stale (a
    /// background query that waited out the outage must not undo a later success).
    answered_at: Mutex<Option<Instant>>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            available: AtomicBool::new(true),
            answered_at: Mutex::new(None),
        }
    }
}

impl Health {
    pub fn state(&self) -> DatabaseState {
        if self.available.load(Ordering::Acquire) {
            DatabaseState::Ok
        } else {
            DatabaseState::Unavailable
        }
    }

    pub fn is_available(&self) -> bool {
        self.state() == DatabaseState::Ok
    }

    /// Records an answer from the database: any answer proves it reachable, an unavailability
    /// error proves it gone. Other errors say nothing about the database as a whole.
    pub fn observe<T>(&self, result: &Result<T, sqlx::Error>) {
        match result {
            Ok(_) => self.mark_available(),
            Err(e) if is_unreachable(e) => self.mark_unavailable(e),
            Err(_) => {}
        }
    }

    /// Records a failed store call: only an unavailability error changes the state.
    pub fn observe_error(&self, error: &super::StoreError) {
        match error {
            super::StoreError::Db(e) | super::StoreError::CommitOutcomeUnknown(e)
                if is_unreachable(e) =>
            {
                self.mark_unavailable(e)
            }
            _ => {}
        }
    }

    /// [`Health::observe`] for a query begun at `began`: an error is ignored when the database
    /// has answered since then (a query that waited out an outage is stale news).
    pub fn observe_begun<T>(&self, result: &Result<T, sqlx::Error>, began: Instant) {
        match result {
            Ok(_) => self.mark_available(),
            Err(e) if is_unreachable(e) && !self.answered_since(began) => self.mark_unavailable(e),
            Err(_) => {}
        }
    }

    fn answered_since(&self, began: Instant) -> bool {
        self.answered_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|answered| answered > began)
    }

    /// [`Health::observe_error`] for a call begun at `began`: ignored when the database has
    /// answered since then.
    pub fn observe_error_begun(&self, error: &super::StoreError, began: Instant) {
        if !self.answered_since(began) {
            self.observe_error(error);
        }
    }

    pub fn mark_available(&self) {
        *self.answered_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        if !self.available.swap(true, Ordering::AcqRel) {
            tracing::info!("the database answers again");
        }
    }

    pub fn mark_unavailable(&self, cause: &sqlx::Error) {
        if self.available.swap(false, Ordering::AcqRel) {
            tracing::warn!(error = %cause, "the database is unavailable; serving what this node holds");
        }
    }
}

/// Whether an error means the database cannot be reached or cannot take writes right now: the
/// connection was refused or lost, the pool found no live connection in time, or PostgreSQL is
/// shutting down, starting, in recovery or read-only. A client should retry such a request
/// later; it is never the client's fault and never a bug in the node.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_unavailable_sqlstate(&code)),
        _ => false,
    }
}

/// Whether an error means the database cannot be reached at all (as opposed to answering but
/// refusing writes, SQLSTATE 25006): only this makes reads stop asking it.
pub fn is_unreachable(error: &sqlx::Error) -> bool {
    let read_only =
        matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("25006"));
    is_unavailable(error) && !read_only
}

/// SQLSTATEs of a database that is away rather than refusing the request: class 08 (connection
/// exception), 25006 (read-only transaction: a standby or a read-only primary), 57P01/57P02/57P03
/// (admin shutdown, crash shutdown, cannot connect now: starting or in recovery).
pub fn is_unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "25006" | "57P01" | "57P02" | "57P03")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_sqlstates() {
        for code in [
            "08000", "08006", "08001", "25006", "57P01", "57P02", "57P03",
        ] {
            assert!(is_unavailable_sqlstate(code), "{code}");
        }
        for code in ["23505", "42P01", "40001", "57014", "P0001"] {
            assert!(!is_unavailable_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn classifies_connection_errors() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(is_unavailable(&sqlx::Error::Io(refused)));
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::ColumnNotFound("x".into())));
    }

    #[test]
    fn state_follows_observations() {
        let health = Health::default();
        assert_eq!(health.state(), DatabaseState::Ok);
        health.observe::<()>(&Err(sqlx::Error::PoolTimedOut));
        assert_eq!(health.state(), DatabaseState::Unavailable);
        health.observe::<()>(&Err(sqlx::Error::RowNotFound));
        assert_eq!(health.state(), DatabaseState::Unavailable);
        health.observe(&Ok(()));
        assert_eq!(health.state(), DatabaseState::Ok);
    }

    #[test]
    fn an_error_from_a_call_begun_before_the_last_answer_is_stale() {
        let health = Health::default();
        let lost = || super::super::StoreError::Db(sqlx::Error::PoolTimedOut);
        let began = Instant::now();
        health.mark_available();
        health.observe_error_begun(&lost(), began);
        assert_eq!(health.state(), DatabaseState::Ok);
        // A call begun after the last answer still counts.
        health.observe_error_begun(&lost(), Instant::now());
        assert_eq!(health.state(), DatabaseState::Unavailable);
        health.mark_available();
        assert_eq!(health.state(), DatabaseState::Ok);
    }
}
