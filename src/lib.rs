//! reindexd changes an Elasticsearch or OpenSearch index's mapping without
//! search downtime: it owns a read alias and a write alias per logical
//! index, builds the next generation from `mappings/`, copies every
//! document into it, flips reads when told, and can always roll back.
//!
//! # Layout
//!
//! - [`secret`]: a string type that never prints its value.
//! - [`config`]: TOML file, environment and flags into a checked `Config`,
//!   every duration, size and count within its limits.
//! - [`es`]: the only code that speaks HTTP to the cluster.
//! - [`migration`]: lifecycle state machine, persisted state, preflight,
//!   alias moves.
//! - [`copy`]: the document copy pipeline, its checkpoints and controls.
//! - [`metrics`]: Prometheus metrics from copy counters and stored state.
//! - [`api`]: the HTTP API (axum) over `migration` and `copy`.
//! - [`daemon`]: wiring of API, copy jobs and shutdown for `serve`.
//! - [`logging`]: text or JSON logs on stderr, level reloadable.
//! - [`cli`]: the `reindexd` command line over all of the above.

pub mod api;
pub mod cli;
pub mod config;
pub mod copy;
pub mod daemon;
pub mod es;
pub mod logging;
pub mod metrics;
pub mod migration;
pub mod secret;
