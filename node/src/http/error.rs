//! One error type for every handler. Client errors carry a message the user can act on; server
//! errors are logged with their cause and answered with a generic text (no SQL, no storage paths).
//! A database that is away is never a 500: it is a 503 with `Retry-After`, like every 503 here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::TokenError;
use crate::blobs::BlobError;
use crate::ingest::IngestError;
use crate::store::StoreError;

/// What every 503 tells a client to wait before retrying.
pub const RETRY_AFTER_SECONDS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    /// The database cannot be reached or cannot take writes (stopped, failing over, read-only).
    /// The cause is logged, not shown.
    #[error(
        "the package database is unavailable right now; retry in {RETRY_AFTER_SECONDS} seconds"
    )]
    DatabaseUnavailable { cause: String },
    /// The database went away while an upload was committing: it may or may not be stored.
    #[error(
        "the database connection was lost while this upload was being committed, so it may or may \
         not be stored; check the index, or send the same file again: identical bytes are answered \
         'already present' and never stored twice"
    )]
    OutcomeUnknown { cause: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_)
            | Self::DatabaseUnavailable { .. }
            | Self::OutcomeUnknown { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                "internal server error; the cause is in the node's log\n".to_string()
            }
            Self::DatabaseUnavailable { cause } => {
                tracing::warn!(%cause, "answered 503: the database is unavailable");
                format!("{self}\n")
            }
            Self::OutcomeUnknown { cause } => {
                tracing::error!(%cause, "upload outcome unknown: the database went away during its commit");
                format!("{self}\n")
            }
            other => format!("{other}\n"),
        };
        let mut response = (status, body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"pkgnode\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::NotFound(m),
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::from(&other),
        }
    }
}

impl From<&StoreError> for ApiError {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::NotFound(m.clone()),
            StoreError::Conflict(m) => Self::Conflict(m.clone()),
            StoreError::CommitOutcomeUnknown(_) => Self::OutcomeUnknown {
                cause: e.to_string(),
            },
            other if other.is_unavailable() => Self::DatabaseUnavailable {
                cause: other.to_string(),
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<std::sync::Arc<StoreError>> for ApiError {
    fn from(e: std::sync::Arc<StoreError>) -> Self {
        Self::from(e.as_ref())
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Lock(crate::locks::LockError::Timeout { .. }) => {
                tracing::warn!(error = %e, "upload waited too long for a file lock");
                Self::Unavailable("the package store is busy; retry the upload".into())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::WrongScope { .. } => Self::Forbidden(e.to_string()),
            other => Self::Unauthorized(other.to_string()),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Format(crate::formats::FormatError::Inflated { .. }) => {
                Self::TooLarge(e.to_string())
            }
            IngestError::Format(_) | IngestError::Invalid(_) => Self::BadRequest(e.to_string()),
            IngestError::Conflict { .. } => Self::Conflict(e.to_string()),
            IngestError::TooLarge { .. } => Self::TooLarge(e.to_string()),
            IngestError::Store(e) => e.into(),
            IngestError::Blob(e) => e.into(),
            IngestError::Aborted(_) => Self::Conflict(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_database_is_a_503_with_retry_after() {
        let lost = StoreError::Db(sqlx::Error::PoolTimedOut);
        let response = ApiError::from(lost).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(RETRY_AFTER_SECONDS))
        );
        let unknown = StoreError::CommitOutcomeUnknown(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        let api = ApiError::from(unknown);
        assert!(matches!(api, ApiError::OutcomeUnknown { .. }), "{api:?}");
        assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
        let corrupt = ApiError::from(StoreError::Corrupt("x".into()));
        assert_eq!(corrupt.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
