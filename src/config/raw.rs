//! The configuration as written: every key optional, unknown keys refused.
//!
//! This is only the shape of the TOML file (and of `REINDEXD__SECTION__KEY`
//! variables); meaning, defaults and checks live in [`super::validate`].

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub elasticsearch: RawCluster,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub migration: RawMigration,
    #[serde(default)]
    pub copy: RawCopy,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub indexes: Vec<RawIndex>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub url: Option<String>,
    pub urls: Option<Vec<String>>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub api_key: Option<String>,
    pub api_key_file: Option<String>,
    pub ca_file: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub listen: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub allow_remote_without_token: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMigration {
    pub prefix: Option<String>,
    pub retention: Option<String>,
    pub state_index: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCopy {
    pub slices: Option<u32>,
    pub page_size: Option<u32>,
    pub batch_bytes: Option<RawBytes>,
    pub max_concurrency: Option<u32>,
    pub requests_per_second: Option<f64>,
    pub checkpoint_interval: Option<String>,
    pub scroll_keep_alive: Option<String>,
    pub gc_deletes: Option<String>,
    pub max_retries: Option<u32>,
    /// `normal` or `background`.
    pub priority: Option<String>,
    /// A JSON search body (text).
    pub search_probe: Option<String>,
}

/// A byte size: a plain number or a string such as `"8MiB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawBytes {
    Number(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIndex {
    pub name: Option<String>,
    pub mapping: Option<String>,
    /// `client` (reindexd copies), `server` (the cluster's `_reindex`) or
    /// `external` (the application refills the new generation).
    pub engine: Option<String>,
    /// An ingest pipeline the copy's writes run.
    pub pipeline: Option<String>,
    /// How far the new generation's count may differ from the old one's
    /// when an external refill is declared done.
    pub fill_tolerance: Option<i64>,
    /// Fields the source's `_source` filtering loses, accepted as lost.
    pub accept_lost_fields: Option<Vec<String>>,
}
