//! The lifecycle of logical indexes: the state machine, its persisted
//! state, and the operations that move aliases.
//!
//! `phase` is pure (transitions as functions); `store` persists state with
//! compare-and-set; `ops` combines both with alias changes on the cluster;
//! `stage1` and `rollback` are the two transitions with most to do, and
//! `delta` tells what the application wrote since stage 1; `resolve`
//! settles calls whose answer was lost and `repair` rebuilds a lost state.
//! `preflight` reads what stage 1 would silently change or lose and
//! refuses it before anything changes.
//! This module never copies documents (that is `copy`) and never serves
//! HTTP.

mod delta;
mod error;
mod init;
mod inspect;
mod mapping;
mod names;
mod ops;
mod phase;
mod preflight;
mod progress;
mod repair;
mod resolve;
mod rollback;
mod stage1;
mod store;
mod view;

pub use delta::DeltaCounts;
pub use error::MigrationError;
pub use inspect::PlanEntry;
pub use mapping::{MappingError, MappingFile};
pub use names::Names;
pub use ops::{AliasChangeLabels, Migrator, BULK_SETTING_KEYS};
pub use phase::{Action, IllegalTransition, IndexState, Phase};
pub use preflight::{Finding, Level, PreflightRefusal};
pub use progress::{CopyProgress, DocFailure, Lease, SliceCheckpoint, MAX_RECORDED_FAILURES};
pub use repair::Repaired;
pub use rollback::{RollbackReport, WritesPolicy};
pub use store::{StateStore, Stored};
pub use view::{IndexView, ProgressView};
