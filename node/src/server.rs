//! Starting a node: open the store and blob store, load the key, start the background tasks
//! (head tracking, download flushing) and serve HTTP until a shutdown signal.

use std::sync::Arc;

use crate::auth::{KeyError, SecureKey};
use crate::blobs::{BlobError, Blobs};
use crate::config::Config;
use crate::head::{self, Head};
use crate::http::{self, AppState, NodeState};
use crate::store::{Store, StoreError};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Opens what every command needs: the metadata store and the blob store.
pub async fn open(config: &Config) -> Result<(Store, Blobs), StartError> {
    if !config.is_postgres() {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    let store = Store::connect(
        &config.database_url(),
        config.database.max_connections.unwrap_or(16),
    )
    .await?;
    let blobs = Blobs::from_config(config)?;
    Ok((store, blobs))
}

/// A stable id for this node, kept in the data dir.
fn node_id(config: &Config) -> String {
    let path = config.data_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return id.trim().to_string();
    }
    let id = uuid::Uuid::new_v4().to_string();
    if std::fs::create_dir_all(&config.data_dir).is_ok() {
        let _ = std::fs::write(&path, &id);
    }
    id
}

/// Builds the shared state and starts the background tasks.
pub async fn build_state(config: Config) -> Result<AppState, StartError> {
    let (store, blobs) = open(&config).await?;
    let key = SecureKey::load(&config.key_file(), !config.cluster.enabled)?;
    let head = Arc::new(Head::new(store.head().await?));
    head::spawn_tracker(store.clone(), head.clone(), config.cache.head_poll_interval);
    let id = node_id(&config);
    let state = Arc::new(NodeState::new(config, store, blobs, key, head, id));
    crate::downloads::spawn_flusher(
        state.store.clone(),
        state.downloads.clone(),
        state.config.downloads.flush_interval,
    );
    Ok(state)
}

/// Serves until SIGINT or SIGTERM, then finishes in-flight requests and flushes counts.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let addr = config.listen;
    let state = build_state(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    tracing::info!(%addr, node = %state.node_id, version = http::ops::VERSION, "serving");
    axum::serve(listener, http::app(state.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    state.downloads.flush(&state.store).await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
