//! Why a copy run ended without finishing.

use crate::es::EsError;
use crate::migration::MigrationError;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The state no longer asks this process to copy (rolled back, taken
    /// over): stop quietly.
    #[error("copy of {0} stopped: {1}")]
    Stopped(String, String),
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
    #[error("{0}")]
    Fatal(String),
}

impl CopyError {
    /// Whether a new run from the last checkpoint may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            CopyError::Cluster(_)
            | CopyError::RetriesExhausted { .. }
            | CopyError::LeaseHeld { .. } => true,
            CopyError::Migration(MigrationError::Conflict(_)) => true,
            // A server error on a state write: retried from the checkpoint.
            CopyError::Migration(MigrationError::Cluster(e)) if e.is_ambiguous() => true,
            CopyError::Migration(e) => e.is_unavailable(),
            _ => false,
        }
    }
}
