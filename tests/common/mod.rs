//! Shared ground of the integration tests, by responsibility:
//!
//! - `cluster`: where the test nodes are (`REINDEXD_TEST_ES_URL` and the
//!   others, see `.ci/run`), clients of them, and a URL where nothing
//!   listens. With no node there, tests fail and say how to start one.
//! - `guard`: names no other test uses, and [`IndexGuard`], which deletes a
//!   test's indexes when dropped, also when the test panics.
//! - `env`: [`Env`], a throwaway configuration with its own prefix, guarded.
//! - `snapshot`: what a refused operation must leave as it was.
//! - `wait`: waiting for a condition ([`eventually`]) instead of sleeping.
//! - `daemon`: the daemon in this process; `serve`: `reindexd serve` as a
//!   child process on a port the kernel picks.
//! - `app`, an application writing through the aliases and what it
//!   expects; `binary`, one run of the binary and its answer;
//!   `capabilities`, what each engine can do; `clock`, a clock moved by
//!   hand; `proxy`, a fault-injecting HTTP proxy in front of the node;
//!   `tls`, a throwaway PKI and nginx as a TLS-terminating proxy.

#![allow(dead_code, unused_imports)] // each test binary uses a different part of this module

pub mod app;
pub mod binary;
pub mod capabilities;
pub mod clock;
pub mod cluster;
pub mod daemon;
pub mod env;
pub mod guard;
pub mod proxy;
pub mod serve;
pub mod snapshot;
pub mod tls;
pub mod wait;

pub use cluster::{
    cleanup, client, dead_url, es_url, require_node, restartable_port, tiny_queue_url,
    TINY_QUEUE_START,
};
pub use daemon::{metric, metric_sum, Daemon};
pub use env::{
    config_at, detached_handle, ndjson_docs, Access, CopyTask, Env, MAPPING_V1, MAPPING_V2,
};
pub use guard::{unique, IndexGuard};
pub use serve::{serve_command, Served};
pub use snapshot::{code, AliasTargets, Snapshot, StateSummary};
pub use wait::{copied_so_far, copy_ended, eventually, eventually_value, wait_for_progress};
