//! The HTTP API (axum): JSON, versioned under `/v1`, plus health probes.
//!
//! Mutating endpoints need `Authorization: Bearer <token>` when a token is
//! configured (compared in constant time). Bodies are size-limited and
//! parsed strictly. Errors are mapped in `error`. This module holds no
//! lifecycle logic: it calls `migration` and starts `copy` jobs.

mod error;
mod indexes;

pub use error::ApiError;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::copy::Jobs;
use crate::metrics::Metrics;
use crate::migration::Migrator;
use crate::secret::Secret;

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub migrator: Migrator,
    pub jobs: Jobs,
    pub token: Option<Arc<Secret>>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/indexes", get(indexes::list))
        .route("/indexes/{name}", get(indexes::get))
        .route("/indexes/{name}/init", post(indexes::init))
        .route("/indexes/{name}/reindex", post(indexes::reindex))
        .route("/indexes/{name}/pause", post(indexes::pause))
        .route("/indexes/{name}/resume", post(indexes::resume))
        .route("/indexes/{name}/throttle", post(indexes::throttle))
        .route("/indexes/{name}/priority", post(indexes::priority))
        .route("/indexes/{name}/accept", post(indexes::accept))
        .route("/indexes/{name}/filled", post(indexes::filled))
        .route("/indexes/{name}/flip", post(indexes::flip))
        .route("/indexes/{name}/rollback", post(indexes::rollback))
        .route("/indexes/{name}/repair", post(indexes::repair))
        .route("/indexes/{name}/cleanup", post(indexes::cleanup))
        .route("/reindex", post(indexes::megapack));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}

/// Refuses mutating requests without the configured bearer token.
async fn authorize(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let mutating = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if let (true, Some(token)) = (mutating, &app.token) {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok: bool = given.as_bytes().ct_eq(token.expose().as_bytes()).into();
        if !ok {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this endpoint needs Authorization: Bearer <api.token>",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    }
    next.run(request).await
}

/// Gives the framework's own refusals (413, 405, ...) the JSON error shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            format!(
                "request bodies are limited to {} KiB",
                MAX_BODY_BYTES / 1024
            ),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not take that method (mutations are POST)".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send JSON".to_owned()),
        other => (
            "bad_request",
            other
                .canonical_reason()
                .unwrap_or("request refused")
                .to_owned(),
        ),
    };
    ApiError::new(status, code, message).into_response()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the cluster answers.
async fn readyz(State(app): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(5), app.migrator.es().info()).await {
        Ok(Ok(info)) => {
            Json(json!({"status": "ready", "cluster": info.to_string()})).into_response()
        }
        Ok(Err(e)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unavailable",
            e.to_string(),
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unavailable",
            "the cluster did not answer within 5s",
        )
        .into_response(),
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    let text = app.metrics.render(&app.migrator, &app.jobs).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /v1/indexes",
    )
}
