//! `GET /load-balancer/status`: every member's address and load, in plain text like Workbench's,
//! answered only to members — a request signed with the shared key, or one coming from a
//! member's address. Everyone else gets 403, and a single node 404.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState};
use crate::cluster::{report, signing};

pub const STATUS_PATH: &str = "/load-balancer/status";

pub fn router() -> Router<AppState> {
    Router::new().route(STATUS_PATH, get(status))
}

async fn status(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    if !state.config.cluster.enabled {
        return Err(ApiError::NotFound(
            "load balancing is not enabled on this node (cluster.enabled = false)".into(),
        ));
    }
    let signed = request
        .headers()
        .get(signing::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| signing::verify(&state.key, STATUS_PATH, v, crate::store::now_ms()));
    let from_member = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| state.members.is_member_address(peer.ip()));
    if !(signed || from_member) {
        return Err(ApiError::Forbidden(
            "the load balancer status is only shown to cluster members".into(),
        ));
    }
    let (nodes, now) = state.members.current();
    let missed = state.config.cluster.missed_check_in_after.as_millis() as i64;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        report::load_balancer_status(&nodes, now, missed),
    )
        .into_response())
}
