//! Errors of lifecycle operations; the API maps each variant to a status
//! and a stable code in one place.

use crate::es::EsError;

use super::mapping::MappingError;
use super::phase::IllegalTransition;
use super::preflight::PreflightRefusal;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("unknown logical index {0:?}: it is not in the configuration's [[indexes]]")]
    UnknownIndex(String),
    #[error("{0} is not initialised: run `reindexd init {0}` first")]
    NotInitialized(String),
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// Another request or daemon changed the state first.
    #[error("{0}: another request changed the state of this index first; nothing was changed, look at `reindexd status` and retry")]
    Conflict(String),
    /// Aliases are not where the state says they must be.
    #[error("{0}")]
    AliasConflict(String),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("the cluster rejected the new index {index}: {source}")]
    MappingRejected { index: String, source: EsError },
    /// Stage 1 would silently change or lose something; the refusal's
    /// code says what (`template_conflict`, `source_filtered`, ...).
    #[error(transparent)]
    Preflight(#[from] PreflightRefusal),
    /// A request that makes no sense whatever the state (a name twice).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Cluster(#[from] EsError),
}

impl MigrationError {
    /// The cluster refused to create an index because one of that name exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, MigrationError::Cluster(e) if e.error_type() == Some("resource_already_exists_exception"))
    }

    /// True when the cluster could not be reached: report 503, not a bad request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            MigrationError::Cluster(e) | MigrationError::MappingRejected { source: e, .. } => {
                e.is_unavailable()
            }
            _ => false,
        }
    }
}
