//! Errors of lifecycle operations; the API maps each variant to a status
//! and a stable code in one place.

use crate::es::EsError;

use super::finding::PreflightRefusal;
use super::mapping::MappingError;
use super::phase::IllegalTransition;

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
    /// A bare rollback would drop the application's writes since stage 1.
    #[error("rolling back {name} would lose the application's work since stage 1: {written} documents written{}{}; \
             nothing was changed. Roll back with --replay (API: {{\"writes\": \"replay\"}}) to copy them into the old generation first, \
             or with --discard-writes ({{\"writes\": \"discard\"}}) to drop them",
             match deleted { Some(d) => format!(", {d} deleted"), None => ", and an unknown number deleted".to_owned() },
             detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    WritesWouldBeLost {
        name: String,
        written: u64,
        /// `None`: cannot be known yet.
        deleted: Option<u64>,
        /// Why the deletes are unknown, when they are.
        detail: Option<String>,
    },
    /// Something wrote to the old generation by its name after the copy's
    /// snapshot: the new generation lacks it.
    #[error("{name}: {operations} operations reached the old generation {old} by its name after the copy's snapshot \
             (a writer bypasses the write alias); the new generation lacks them, so this step is refused and nothing changed. \
             Find the writer, then roll back (--replay keeps them in the old generation), or accept the loss with `reindexd accept {name}`")]
    OldGenerationWritten {
        name: String,
        old: String,
        operations: u64,
    },
    /// A state write whose answer was lost, and the state could not be
    /// read back either.
    #[error("{name}: the cluster did not answer a state change ({source}) and the state could not be read back; \
             look at `reindexd status {name}` once the cluster answers")]
    StateUnknown { name: String, source: Box<EsError> },
    /// An alias change whose answer was lost left the aliases in neither
    /// the old nor the new shape.
    #[error("{name}: the cluster did not answer an alias change ({source}) and the aliases are now in neither the old nor the new shape; \
             `reindexd status {name}` shows the drift and `reindexd repair {name}` puts them where the state says")]
    AliasesUnknown { name: String, source: Box<EsError> },
    /// Cleanup could not delete a generation; it stays listed.
    #[error("{name}: cleanup could not delete {index} ({source}); it stays listed as abandoned, run cleanup again")]
    CleanupIncomplete {
        name: String,
        index: String,
        source: Box<EsError>,
    },
    /// The cluster does not say enough to rebuild or align the state.
    #[error("cannot repair {name}: {why}")]
    CannotRepair { name: String, why: String },
    /// Replaying the application's writes into the old generation failed;
    /// the aliases did not move.
    #[error("rollback replay failed, the aliases did not move: {0}")]
    Replay(String),
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
        matches!(self, MigrationError::Cluster(e) if e.is_already_exists())
    }

    /// True when the cluster could not be reached: report 503, not a bad request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            MigrationError::Cluster(e) | MigrationError::MappingRejected { source: e, .. } => {
                e.is_unavailable()
            }
            // The state could not even be read back: the cluster is away.
            MigrationError::StateUnknown { .. } => true,
            _ => false,
        }
    }
}

/// A failed `_aliases` request, settled.
#[derive(Debug)]
pub enum AliasFailure {
    /// The aliases are as they were.
    NotApplied(EsError),
    /// Neither as they were nor as asked: the caller keeps what it has and
    /// reports the drift.
    Unknown(EsError),
}

impl AliasFailure {
    /// The error a caller of `name`'s alias change reports, once it has
    /// done what a change that was not applied asks of it (put the state
    /// back).
    pub(super) fn into_error(self, name: &str) -> MigrationError {
        match self {
            AliasFailure::NotApplied(e) => e.into(),
            AliasFailure::Unknown(e) => MigrationError::AliasesUnknown {
                name: name.to_owned(),
                source: Box::new(e),
            },
        }
    }
}
