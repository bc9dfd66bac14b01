//! Why a copy run ended without finishing.

use crate::es::EsError;
use crate::migration::MigrationError;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The state no longer asks this process to copy (rolled back, taken
    /// over): stop quietly.
    #[error("copy of {index} stopped: {why}")]
    Stopped { index: String, why: String },
    /// Shutdown asked the copy to stop; checkpoints were saved.
    #[error("copy cancelled by shutdown")]
    Cancelled,
    /// Another live process holds the copy.
    #[error("the copy is run by {owner} until {until}; it takes over when that lease expires")]
    LeaseHeld { owner: String, until: String },
    /// A cluster call failed; a new run resumes from the last checkpoint.
    #[error(transparent)]
    Cluster(#[from] EsError),
    #[error(transparent)]
    Migration(#[from] MigrationError),
    /// The cluster kept refusing some documents with 429/5xx.
    #[error("gave up after {attempts} attempts of a bulk request: {last}")]
    RetriesExhausted { attempts: u32, last: String },
    /// Something no retry can fix; the index goes to `failed`.
    #[error("{reason}")]
    Fatal { reason: String },
}

impl CopyError {
    /// The copy cannot go on: `reason` becomes the `failed` phase's reason.
    pub fn fatal(reason: impl Into<String>) -> Self {
        CopyError::Fatal {
            reason: reason.into(),
        }
    }

    /// The state no longer asks this process to copy `index`.
    pub fn stopped(index: impl Into<String>, why: impl Into<String>) -> Self {
        CopyError::Stopped {
            index: index.into(),
            why: why.into(),
        }
    }

    /// Whether a new run from the last checkpoint may succeed. A cluster
    /// error that will not go away by itself (a 400, 401/403, 404 of an
    /// index, 405 of a missing endpoint, an unreadable answer) is not: the
    /// copy ends `failed` with the cluster's answer rather than retrying it
    /// for ever.
    pub fn is_transient(&self) -> bool {
        match self {
            CopyError::Cluster(e) => transient_cluster_error(e),
            CopyError::RetriesExhausted { .. } | CopyError::LeaseHeld { .. } => true,
            CopyError::Migration(MigrationError::Conflict(_)) => true,
            // A server error on a state write: retried from the checkpoint.
            CopyError::Migration(MigrationError::Cluster(e)) => transient_cluster_error(e),
            CopyError::Migration(e) => e.is_unavailable(),
            _ => false,
        }
    }

    /// Whether the copy must end `failed` on this error (rather than stop
    /// quietly: shutdown, a rollback, another owner).
    pub fn is_permanent(&self) -> bool {
        !self.is_transient() && !matches!(self, CopyError::Stopped { .. } | CopyError::Cancelled)
    }
}

/// No answer, busy, a server error, or a read context or shard that moved
/// or expired (a new run reopens it): worth another run.
fn transient_cluster_error(e: &EsError) -> bool {
    const MOVING: [&str; 6] = [
        "search_context_missing_exception",
        // Elasticsearch 8.19+: the point in time names a node that left.
        "search_context_missing_nodes_exception",
        "no_shard_available_action_exception",
        "unavailable_shards_exception",
        "shard_not_found_exception",
        "illegal_index_shard_state_exception",
    ];
    // The engine wraps lost read contexts of a whole search (a node left
    // with them) as a 404 search_phase_execution_exception.
    let lost_contexts =
        e.status() == Some(404) && e.error_type() == Some("search_phase_execution_exception");
    e.is_unavailable()
        || e.is_ambiguous()
        || e.status() == Some(408)
        || lost_contexts
        || e.error_type().is_some_and(|t| MOVING.contains(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, error_type: &str) -> CopyError {
        CopyError::Cluster(EsError::Status {
            call: "GET /".into(),
            status,
            error_type: Some(error_type.into()),
            reason: "x".into(),
        })
    }

    #[test]
    fn what_waiting_can_fix_is_transient_and_the_rest_is_not() {
        for (code, ty) in [
            (429, "es_rejected_execution_exception"),
            (500, "exception"),
            (503, "unavailable_shards_exception"),
            (404, "search_context_missing_exception"),
            (404, "search_context_missing_nodes_exception"),
            (404, "search_phase_execution_exception"),
        ] {
            assert!(status(code, ty).is_transient(), "{code} {ty}");
        }
        for (code, ty) in [
            (405, "method_not_allowed"),
            (400, "illegal_argument_exception"),
            (401, "security_exception"),
            (403, "security_exception"),
            (404, "index_not_found_exception"),
            (400, "search_phase_execution_exception"),
        ] {
            let e = status(code, ty);
            assert!(!e.is_transient() && e.is_permanent(), "{code} {ty}");
        }
        assert!(!CopyError::Cancelled.is_permanent());
        assert!(CopyError::fatal("x").is_permanent());
    }
}
