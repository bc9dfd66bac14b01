//! Configuration: the TOML file, under `REINDEXD__SECTION__KEY` environment
//! variables, under command-line flags.
//!
//! Loading is two steps: `raw` is the serde shape of what was written;
//! `validate` turns it into a checked [`Config`] without I/O, holding
//! every duration, size and count to its range in [`bounds`]. Files the
//! config names (secrets, CA) are read afterwards, when they are needed, by
//! `es::ConnectOptions::from_config` and [`SecretSource::read`]. This
//! module never talks to the cluster and knows nothing of HTTP clients.
//! `reload` says what a SIGHUP may change live.

pub mod bounds;
mod raw;
mod reload;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::secret::Secret;

pub use reload::Tuning;

/// Where the daemon looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/reindexd/reindexd.toml";

/// The checked configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub cluster: ClusterConfig,
    pub api: ApiConfig,
    pub migration: MigrationConfig,
    /// Copy defaults for every index.
    pub copy: CopyConfig,
    pub indexes: Vec<IndexConfig>,
    pub log_level: String,
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterConfig {
    pub urls: Vec<Url>,
    pub auth: ClusterAuth,
    pub ca_file: Option<PathBuf>,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterAuth {
    None,
    Basic {
        username: String,
        password: SecretSource,
    },
    ApiKey(SecretSource),
}

/// A secret written in the config, or the path of a file that holds it
/// (systemd `LoadCredential=` puts such files under `$CREDENTIALS_DIRECTORY`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    Inline(#[serde(serialize_with = "redacted")] Secret),
    File(PathBuf),
}

impl SecretSource {
    /// The secret's value; a file's trailing newline is dropped.
    pub fn read(&self, key: &str) -> Result<Secret, ConfigError> {
        match self {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::key(
                        format!("{key}_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let value = text.trim_end_matches(['\n', '\r']);
                if value.is_empty() {
                    return Err(ConfigError::key(
                        format!("{key}_file"),
                        format!("{} is empty", path.display()),
                    ));
                }
                Ok(Secret::new(value))
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub token: Option<SecretSource>,
    pub allow_remote_without_token: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationConfig {
    /// Put before every index and alias name reindexd makes.
    pub prefix: String,
    /// How long the previous generation is kept after a flip.
    #[serde(with = "humantime_serde_compat")]
    pub retention: Duration,
    /// The hidden index holding one state document per logical index.
    pub state_index: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopyConfig {
    /// Source slices read in parallel; `None` = one per primary shard.
    pub slices: Option<u32>,
    /// Documents per search page.
    pub page_size: u32,
    /// A bulk body is cut when it reaches this many bytes.
    pub batch_bytes: u64,
    /// Upper bound of bulk requests in flight.
    pub max_concurrency: u32,
    /// Documents per second; `None` = as fast as the cluster takes.
    pub requests_per_second: Option<f64>,
    /// How often per-slice cursors are saved to the state document.
    #[serde(with = "humantime_serde_compat")]
    pub checkpoint_interval: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub scroll_keep_alive: Duration,
    /// `index.gc_deletes` of the target during the copy: how long a delete's
    /// tombstone keeps beating the copy of that document.
    #[serde(with = "humantime_serde_compat")]
    pub gc_deletes: Duration,
    /// Attempts of one bulk item on 429/5xx before the copy stops with an error.
    pub max_retries: u32,
    /// How client copies start: at full speed, or yielding to live search.
    pub priority: Priority,
    /// The search body a background copy sends to the read alias to
    /// gauge live search latency (`size` 0 is added when unset).
    pub search_probe: serde_json::Value,
}

/// Whose turn it is when the cluster is busy: the copy's (`normal`, as
/// fast as the cluster takes), or live search's (`background`: the copy
/// backs off while searches slow down, and grows back when they recover).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Normal,
    Background,
}

impl Priority {
    pub fn name(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::Background => "background",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let all = [Priority::Normal, Priority::Background];
        all.into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("expected \"normal\" or \"background\", found {s:?}"))
    }
}

/// The probe a background copy sends when `copy.search_probe` is unset:
/// the cheapest search that still waits in the search thread pool.
pub fn default_search_probe() -> serde_json::Value {
    serde_json::json!({"size": 0, "query": {"match_all": {}}})
}

impl Default for CopyConfig {
    fn default() -> Self {
        CopyConfig {
            slices: None,
            page_size: 1000,
            batch_bytes: 8 << 20,
            max_concurrency: 8,
            requests_per_second: None,
            checkpoint_interval: Duration::from_secs(5),
            scroll_keep_alive: Duration::from_secs(300),
            gc_deletes: Duration::from_secs(48 * 3600),
            max_retries: 12,
            priority: Priority::Normal,
            search_probe: default_search_probe(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyEngine {
    Client,
    Server,
    /// The application refills the new generation; reindexd copies nothing.
    External,
}

impl CopyEngine {
    /// The name the configuration and requests use.
    pub fn name(self) -> &'static str {
        match self {
            CopyEngine::Client => "client",
            CopyEngine::Server => "server",
            CopyEngine::External => "external",
        }
    }
}

impl std::str::FromStr for CopyEngine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let all = [CopyEngine::Client, CopyEngine::Server, CopyEngine::External];
        all.into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| format!("expected \"client\", \"server\" or \"external\", found {s:?}"))
    }
}

/// Whether `name` can name an ingest pipeline here: 1-255 characters of
/// letters, digits, `_`, `-` and `.` (safe in a URL as it is).
pub fn check_pipeline(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a pipeline name reindexd accepts: 1-255 letters, digits, '_', '-' or '.'"
        ))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IndexConfig {
    pub name: String,
    pub mapping: PathBuf,
    pub engine: CopyEngine,
    /// The ingest pipeline the copy's writes run (`?pipeline=` on each
    /// bulk request, `dest.pipeline` of a server copy).
    pub pipeline: Option<String>,
    /// External refill: how many documents the new generation may have
    /// more or fewer than the old one when `filled` verifies it.
    pub fill_tolerance: u64,
    /// Fields missing from the source's `_source` (its `includes` or
    /// `excludes`) that the operator accepts to lose in the copy; preflight
    /// refuses stage 1 while any lost field is not listed here.
    pub accept_lost_fields: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// One configuration problem, with the key it is about when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: Some(key.into()),
            message: message.into(),
        }
    }

    fn general(message: impl Into<String>) -> Self {
        ConfigError {
            key: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|e| format!("config: {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// Values given on the command line; they win over file and environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub es_url: Option<String>,
    pub listen: Option<String>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
}

impl Config {
    /// Reads the file at `path`, then the environment, then `overrides`,
    /// and validates the result.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
        let one = |e: ConfigError| ConfigErrors(vec![e]);
        let text = std::fs::read_to_string(path).map_err(|e| {
            one(ConfigError::general(format!(
                "cannot read config file {}: {e}",
                path.display()
            )))
        })?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
        Self::from_toml(&text, &base, std::env::vars(), overrides).map_err(|mut e| {
            for err in &mut e.0 {
                if err.key.is_none() {
                    err.message = format!("{}: {}", path.display(), err.message);
                }
            }
            e
        })
    }

    /// [`Config::load`] without the file system: TOML text, its directory,
    /// the environment to read `REINDEXD__*` from, and flags.
    pub fn from_toml(
        text: &str,
        base_dir: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigErrors> {
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("REINDEXD__"))
            .collect();
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("REINDEXD")
                    .prefix_separator("__")
                    .separator("__")
                    .source(Some(env)),
            );
        let set = |b: config::ConfigBuilder<_>, key: &str, v: &Option<String>| match v {
            Some(v) => b.set_override(key, v.as_str()),
            None => Ok(b),
        };
        let general =
            |e: config::ConfigError| ConfigErrors(vec![ConfigError::general(e.to_string())]);
        builder = set(builder, "elasticsearch.url", &overrides.es_url).map_err(general)?;
        builder = set(builder, "api.listen", &overrides.listen).map_err(general)?;
        builder = set(builder, "log.level", &overrides.log_level).map_err(general)?;
        builder = set(builder, "log.format", &overrides.log_format).map_err(general)?;
        let raw: raw::RawConfig = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(general)?;
        validate::validate(raw, base_dir).map_err(ConfigErrors)
    }

    /// The configured logical index called `name`.
    pub fn index(&self, name: &str) -> Option<&IndexConfig> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The API bearer token, read from its file if need be.
    pub fn api_token(&self) -> Result<Option<Secret>, ConfigError> {
        self.api
            .token
            .as_ref()
            .map(|t| t.read("api.token"))
            .transpose()
    }

    /// The effective configuration as TOML-ish JSON, secrets redacted.
    pub fn redacted_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("config serialises")
    }
}

fn redacted<S: serde::Serializer>(_: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

/// Durations print as `"24h"`, like they are written.
mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[elasticsearch]\nurl = \"http://127.0.0.1:9200\"\npassword = \"s3cret\"\nusername = \"ops\"\n[[indexes]]\nname = \"wiki\"\nmapping = \"mappings/wiki.json\"\n";

    #[test]
    fn environment_beats_file_and_flags_beat_environment() {
        let env = vec![
            (
                "REINDEXD__API__LISTEN".to_owned(),
                "127.0.0.1:9700".to_owned(),
            ),
            ("REINDEXD__MIGRATION__RETENTION".to_owned(), "2h".to_owned()),
            ("REINDEXD_TEST_ES_URL".to_owned(), "ignored".to_owned()),
        ];
        let overrides = Overrides {
            listen: Some("127.0.0.1:9800".into()),
            ..Default::default()
        };
        let c =
            Config::from_toml(BASE, Path::new("/x"), env.clone(), &Overrides::default()).unwrap();
        assert_eq!(c.api.listen.port(), 9700);
        assert_eq!(c.migration.retention, Duration::from_secs(7200));
        let c = Config::from_toml(BASE, Path::new("/x"), env, &overrides).unwrap();
        assert_eq!(c.api.listen.port(), 9800);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Config::from_toml(
            "[api]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n",
            Path::new("/"),
            [],
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }

    #[test]
    fn secrets_never_show() {
        let c = Config::from_toml(BASE, Path::new("/x"), [], &Overrides::default()).unwrap();
        let shown = format!("{c:?} {}", c.redacted_json());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
