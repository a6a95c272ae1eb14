//! The record of issued tokens: what each grants, when it expires, and whether it was revoked.
//! The signature proves a token was issued with the key; this table decides whether it still
//! counts, so a revocation holds on every node sharing the database from its next request on.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now_ms};

/// One issued token (never the token text itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// The token's id (its `jti` claim).
    pub guid: String,
    /// `sources:write` or `repos:read`.
    pub scope: String,
    pub source: Option<String>,
    pub repo: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// What `revoke_token` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked now.
    Now(TokenRecord),
    /// It had been revoked before, at `revoked_at_ms`; nothing changed.
    Already(TokenRecord),
}

const TOKEN_COLUMNS: &str =
    "guid, scope, source, repo, created_at_ms, expires_at_ms, revoked_at_ms";

impl Store {
    /// Records a token about to be handed out.
    pub async fn record_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL)"
        ))
        .bind(&token.guid)
        .bind(&token.scope)
        .bind(token.source.as_deref())
        .bind(token.repo.as_deref())
        .bind(token.created_at_ms)
        .bind(token.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token with this id, if it was recorded: one primary-key lookup.
    pub async fn token(&self, guid: &str) -> Result<Option<TokenRecord>, StoreError> {
        let began = std::time::Instant::now();
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE guid = $1"
        ))
        .bind(guid)
        .fetch_optional(&self.pool)
        .await;
        self.health.observe_begun(&row, began);
        row?.as_ref().map(token_from_row).transpose()
    }

    /// Every recorded token, newest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at_ms DESC, guid"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token for good. Revoking one already revoked changes nothing.
    pub async fn revoke_token(&self, guid: &str) -> Result<Revoked, StoreError> {
        let updated = sqlx::query(
            "UPDATE tokens SET revoked_at_ms = $1 WHERE guid = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(guid)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let record = self.token(guid).await?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "no token with id {guid}; `pkgnode list tokens` shows the ids"
            ))
        })?;
        Ok(if updated == 1 {
            Revoked::Now(record)
        } else {
            Revoked::Already(record)
        })
    }
}

fn token_from_row(row: &AnyRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        guid: row.try_get("guid")?,
        scope: row.try_get("scope")?,
        source: row.try_get("source")?,
        repo: row.try_get("repo")?,
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
    })
}
