//! Every API error as `{"error": {"code", "message"}}` with its status —
//! the one place where errors become HTTP.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::migration::MigrationError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, for scripts: `illegal_transition`, `unknown_index`, ...
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<MigrationError> for ApiError {
    fn from(e: MigrationError) -> Self {
        use MigrationError as M;
        let (status, code) = match &e {
            M::Cluster(c) if c.status() == Some(429) => {
                (StatusCode::SERVICE_UNAVAILABLE, "cluster_busy")
            }
            _ if e.is_unavailable() => (StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable"),
            M::UnknownIndex(_) => (StatusCode::NOT_FOUND, "unknown_index"),
            M::NotInitialized(_) => (StatusCode::CONFLICT, "not_initialized"),
            M::IllegalTransition(_) => (StatusCode::CONFLICT, "illegal_transition"),
            M::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            M::AliasConflict(_) => (StatusCode::CONFLICT, "alias_conflict"),
            // The cluster around the index, not the request, is the problem.
            M::Preflight(refusal) => (StatusCode::CONFLICT, refusal.code()),
            M::Mapping(_) => (StatusCode::BAD_REQUEST, "invalid_mapping"),
            M::MappingRejected { .. } => (StatusCode::BAD_REQUEST, "mapping_rejected"),
            M::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_value"),
            M::WritesWouldBeLost { .. } => (StatusCode::CONFLICT, "writes_would_be_lost"),
            M::CleanupIncomplete { .. } => (StatusCode::BAD_GATEWAY, "cleanup_incomplete"),
            M::OldGenerationWritten { .. } => (StatusCode::CONFLICT, "old_generation_written"),
            M::CannotRepair { .. } => (StatusCode::CONFLICT, "cannot_repair"),
            M::StateUnknown { .. } => (StatusCode::BAD_GATEWAY, "state_unknown"),
            M::AliasesUnknown { .. } => (StatusCode::BAD_GATEWAY, "aliases_unknown"),
            M::Replay(_) => (StatusCode::BAD_GATEWAY, "replay_failed"),
            M::Cluster(_) => (StatusCode::BAD_GATEWAY, "cluster_error"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::es::EsError;
    use crate::migration::{Finding, Level, PreflightRefusal};

    #[test]
    fn a_preflight_refusal_is_409_with_the_first_refusals_code() {
        let finding = |code| Finding {
            level: Level::Refuse,
            code,
            message: "m".into(),
        };
        let refusal = PreflightRefusal {
            index: "kb".into(),
            findings: vec![finding("extra_write_alias"), finding("template_conflict")],
        };
        let api = ApiError::from(MigrationError::Preflight(refusal));
        assert_eq!(
            (api.status, api.code),
            (StatusCode::CONFLICT, "extra_write_alias")
        );
        assert!(
            api.message.contains("[template_conflict] m"),
            "{}",
            api.message
        );
    }

    #[test]
    fn unreachable_cluster_is_503_whatever_the_operation() {
        let e = MigrationError::Cluster(EsError::Unreachable {
            call: "GET /".into(),
            url: "http://x".into(),
            detail: "refused".into(),
        });
        let api = ApiError::from(e);
        assert_eq!(
            (api.status, api.code),
            (StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable")
        );
        let api = ApiError::from(MigrationError::UnknownIndex("nope".into()));
        assert_eq!(
            (api.status, api.code),
            (StatusCode::NOT_FOUND, "unknown_index")
        );
    }
}
