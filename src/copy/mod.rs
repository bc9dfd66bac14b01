//! The copy of every document from the old generation into the new one.
//!
//! ```text
//! job (drive: retry or fail)  ->  lease (claim, checkpoints, release)
//!   -> engine: client | server
//! client: slice readers (point in time or sliced scroll) -> bounded
//!   channel -> a batch per slice (NDJSON cut by bytes) -> bulk writers
//!   (permits)
//!   -> per-item outcomes
//! server: the cluster's `_reindex` task, followed through `_tasks`
//! ```
//!
//! `job` runs a copy from claim to `ready` and is the only caller of the
//! engines; `lease` is the only writer of a running copy's state; `handle`
//! is how the daemon, CLI and tests control (pause, throttle, cancel) and
//! watch (counters, [`RunState`]) a copy. In the client engine `encode`
//! builds bodies, `slice_batches` keeps each bulk to one source slice,
//! `outcome` classifies bulk answers, `adaptive` sets how many bulk
//! requests may be in flight, `read_plan`, `reader` and `writer`
//! do the I/O and `pipeline` wires them; [`BulkWriter`] offers the same
//! write path to tools outside a copy run. This module changes no alias;
//! it never imports the API.

mod adaptive;
mod client;
mod control;
mod encode;
mod error;
mod handle;
mod job;
mod lease;
mod outcome;
mod permits;
mod pipeline;
mod priority;
mod read_plan;
mod reader;
mod registry;
mod server;
mod slice_batches;
mod stats;
mod telemetry;
mod writer;

pub use control::Control;
pub use encode::{Batch, Batcher};

pub use error::CopyError;
pub use handle::{CopyHandle, RunState};
pub use job::drive;

pub(crate) use lease::owner_id;
pub use registry::Jobs;
pub use stats::CopyStats;
pub use telemetry::Telemetry;
pub use writer::{BulkWriter, RetryPolicy};
