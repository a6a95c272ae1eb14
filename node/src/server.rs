//! Starting a node: open the store and blob store, load the key, start the background tasks
//! (head tracking, download flushing, stale-lock scans, cluster membership, git builders) and
//! serve HTTP until a shutdown signal — or, in a cluster, until an operator deletes the node.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::{KeyError, SecureKey};
use crate::blobs::{BlobError, Blobs};
use crate::cluster::membership::Refusal;
use crate::cluster::{self, Membership, NodeStatus};
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
    let store = Store::open(config).await?;
    let blobs = Blobs::from_config(config)?;
    Ok((store, blobs))
}

/// Loads the secure key. A single node creates one when it is missing and stops on a bad one; a
/// cluster node never creates one, and on a bad one still starts — with a throw-away key that
/// nobody else holds — so it can record why it stays out of the cluster.
fn load_key(config: &Config) -> Result<(SecureKey, Option<Refusal>), StartError> {
    if !config.cluster.enabled {
        return Ok((SecureKey::load(&config.key_file(), true)?, None));
    }
    match SecureKey::load(&config.key_file(), false) {
        Ok(key) => Ok((key, None)),
        Err(e) => {
            tracing::error!(error = %e, "the secure key was refused; this node will not come online");
            let status = NodeStatus::from_key_error(&e);
            let throwaway = SecureKey::from_bytes(rand::random::<[u8; 32]>().to_vec());
            Ok((throwaway, Some((status, e.to_string()))))
        }
    }
}

/// Builds the shared state and starts the background tasks. Returns a key problem a cluster
/// node must report.
pub async fn build_state(config: Config) -> Result<(AppState, Option<Refusal>), StartError> {
    let (store, blobs) = open(&config).await?;
    let (key, key_problem) = load_key(&config)?;
    let head = Arc::new(Head::read(&store).await?);
    head::spawn_tracker(store.clone(), head.clone(), config.cache.head_poll_interval);
    let id = cluster::node_uid(&config);
    let state = Arc::new(NodeState::new(config, store, blobs, key, head, id));
    if state.config.cluster.enabled {
        // Nothing is served until the node has joined and checked its clock.
        state
            .serving
            .store(false, std::sync::atomic::Ordering::Release);
        state.status.set(NodeStatus::Starting);
    }
    // Each new head's views are built as soon as the node hears of it, not by the first request.
    if state.config.cache.warm_views {
        state
            .views
            .spawn_warmer(state.store.clone(), state.head.subscribe());
    }
    crate::downloads::spawn_flusher(
        state.store.clone(),
        state.downloads.clone(),
        state.config.downloads.flush_interval,
    );
    spawn_lock_scan(&state.blobs);
    Ok((state, key_problem))
}

/// Reaps the stale locks of dead holders in a directory store, every `timeout_interval`.
fn spawn_lock_scan(blobs: &Blobs) {
    let Some(settings) = blobs.lock_settings() else {
        return;
    };
    let blobs = blobs.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(settings.timeout_interval).await;
            let scan = blobs.clone();
            match tokio::task::spawn_blocking(move || scan.reap_stale_locks()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::warn!(removed = n, "reaped stale file locks"),
                Ok(Err(e)) => tracing::warn!(error = %e, "stale-lock scan failed"),
                Err(e) => tracing::warn!(error = %e, "stale-lock scan stopped"),
            }
        }
    });
}

/// Serves until SIGINT or SIGTERM, then finishes in-flight requests and flushes counts. In a
/// cluster, joins before serving and records its departure after.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let addr = config.listen;
    let signal = shutdown_signal();
    let (state, key_problem) = build_state(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let membership = if state.config.cluster.enabled {
        let membership = Membership::join(state.clone(), state.node_id(), key_problem).await?;
        membership.spawn();
        Some(membership)
    } else {
        None
    };
    // The address bound, not the configured one: a build's pip reaches this node there.
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })?;
    let builders = crate::builders::worker::Runtime::start(state.clone(), bound);
    tracing::info!(%addr, node = %state.node_id(), version = %cluster::definition::node_version(), "serving");
    let stop = membership.clone();
    let draining = state.clone();
    axum::serve(
        listener,
        http::app(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        match &stop {
            Some(membership) => tokio::select! {
                _ = signal => {}
                _ = membership.exit_requested() => {}
            },
            None => signal.await,
        }
        draining
            .serving
            .store(false, std::sync::atomic::Ordering::Release);
    })
    .await?;
    // Builds this node holds go back to the queue for another node to take now.
    builders.shutdown().await;
    state.downloads.flush(&state.store).await;
    if let Some(membership) = membership {
        membership.leave().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives early is not lost (nor fatal).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            (Ok(mut one), Err(_)) | (Err(_), Ok(mut one)) => {
                one.recv().await;
            }
            (Err(_), Err(_)) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
