//! The lifecycle of logical indexes: the state machine, its persisted
//! state, and the operations that move aliases.
//!
//! `phase` is pure (transitions as functions); `store` persists state with
//! compare-and-set; `ops` combines both with alias changes on the cluster
//! (flip, and the shared steps). The transitions with most to do have their
//! own files: `init`, `stage1` (after `preflight`), `finish` (the end of a
//! copy, `accept`), `rollback` (with `delta`: what the application wrote
//! since stage 1, and `replay`: putting it back into the old generation),
//! `cleanup` and `repair` (a lost state rebuilt). `resolve` settles calls
//! whose answer was lost and tells drift; `inspect` and `view` answer
//! `status` and `plan`. This module never copies documents (that is
//! `copy`) and never serves HTTP.

mod cleanup;
mod clock;
mod delta;
mod error;
mod fill;
mod fill_plan;
mod finding;
mod finish;
mod init;
mod inspect;
mod mapping;
mod names;
mod ops;
mod phase;
mod preflight;
mod progress;
mod repair;
mod replay;
mod resolve;
mod rollback;
mod stage1;
mod store;
mod view;

pub use clock::{Clock, SystemClock};

pub use error::MigrationError;
pub use fill_plan::{FillPlan, Stage1Options};
pub(crate) use inspect::ClusterLook;
pub(crate) use mapping::MappingFile;
pub use names::Names;
pub use ops::Migrator;

pub(crate) use phase::PhaseKind;
pub use phase::{Action, IllegalTransition, IndexState, Phase};

#[cfg(test)]
pub(crate) use finding::PreflightRefusal;
pub use finding::{Finding, Level};
pub use progress::{
    CopyProgress, DocFailure, Lease, SliceCheckpoint, StoredEngine, MAX_RECORDED_FAILURES,
};
pub use repair::Repaired;
pub(crate) use rollback::RollbackReport;
pub use rollback::WritesPolicy;

pub use store::Stored;
pub(crate) use view::IndexView;
