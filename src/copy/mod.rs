//! The copy of every document from the old generation into the new one.
//!
//! ```text
//! slice readers (sliced scroll, _doc order) -> bounded channel -> batcher
//!   (NDJSON cut by bytes) -> bulk writers (permits) -> per-item outcomes
//! ```
//!
//! `encode` builds bodies, `outcome` classifies bulk answers, `adaptive`
//! sets how many bulk requests may be in flight, `reader` and
//! `writer` do the I/O, `pipeline` wires them, `server` delegates to the
//! cluster's `_reindex` instead, `job` claims the copy,
//! checkpoints it and hands the result to the lifecycle. This module
//! changes no alias; it never imports the API.

mod adaptive;
mod control;
mod encode;
mod error;
mod job;
mod outcome;
mod permits;
mod pipeline;
mod read_plan;
mod reader;
mod registry;
mod server;
mod stats;
mod telemetry;
mod writer;

pub use control::Control;
pub use encode::{Batch, Batcher, DocRef, Uncopyable};
pub use error::CopyError;
pub use job::{copy_span, drive, owner_id, run_once, CopyHandle};
pub use registry::Jobs;
pub use stats::CopyStats;
pub use telemetry::{BulkLabels, IndexLabel, IndexTelemetry, Telemetry};
