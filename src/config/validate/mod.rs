//! From [`RawConfig`] to a checked [`Config`]: defaults, meaning, and one
//! error per bad key naming its path, every problem at once rather than
//! the first. Pure: no file is read here. Each section has its own file;
//! every duration, size and count is held to its limit in
//! [`super::bounds`] by [`units`], and keys that depend on each other are
//! checked where both are known (the keep-alive against the timeout).
//! `check-config` and daemon start (and a reload) all come through here.

mod connection;
mod copy;
mod migration;
mod units;

use std::path::{Path, PathBuf};

use super::raw::RawConfig;
use super::{Config, ConfigError, LogFormat};

/// Collects every problem instead of stopping at the first.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::key(key, message));
    }
}

/// Checks `raw` and fills in defaults. Relative paths are resolved against
/// `base_dir` (the config file's directory).
pub fn validate(raw: RawConfig, base_dir: &Path) -> Result<Config, Vec<ConfigError>> {
    let mut p = Problems::default();
    let cluster = connection::cluster(&raw, base_dir, &mut p);
    let api = connection::api(&raw, base_dir, &mut p);
    let migration = migration::migration(&raw, &mut p);
    let copy = copy::copy(&raw.copy, "copy", cluster.timeout, &mut p);
    let indexes = migration::indexes(&raw, base_dir, &mut p);
    let log_level = raw.log.level.clone().unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        p.add(
            "log.level",
            format!(
                "{log_level:?} is not a log level or filter (try \"info\" or \"reindexd=debug\")"
            ),
        );
    }
    let log_format = match raw.log.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            p.add(
                "log.format",
                format!("expected \"text\" or \"json\", found {other:?}"),
            );
            LogFormat::Text
        }
    };
    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Config {
        cluster,
        api,
        migration,
        copy,
        indexes,
        log_level,
        log_format,
    })
}

/// `path` as written in the config, made absolute against the config
/// file's directory.
fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::config::{bounds, CopyEngine};

    pub(in crate::config) fn raw(toml_text: &str) -> RawConfig {
        config::Config::builder()
            .add_source(config::File::from_str(toml_text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    /// The (key, message) of every problem in `toml_text`.
    pub(in crate::config) fn problems(toml_text: &str) -> Vec<(String, String)> {
        match validate(raw(toml_text), Path::new("/")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .into_iter()
                .map(|e| (e.key.unwrap_or_default(), e.message))
                .collect(),
        }
    }

    /// `toml_text` validated; panics with the problems otherwise.
    pub(in crate::config) fn valid(toml_text: &str) -> Config {
        validate(raw(toml_text), Path::new("/")).unwrap_or_else(|e| panic!("{toml_text}: {e:?}"))
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = validate(
            raw("[elasticsearch]\nurl = \"http://127.0.0.1:9200\"\n[api]\nlisten = \"127.0.0.1:9600\"\n[[indexes]]\nname = \"wiki\"\nmapping = \"mappings/wiki.json\"\n"),
            Path::new("/etc/reindexd"),
        )
        .unwrap();
        assert_eq!(
            c.indexes[0].mapping,
            Path::new("/etc/reindexd/mappings/wiki.json")
        );
        assert_eq!(c.migration.retention, Duration::from_secs(86_400));
        assert_eq!(c.migration.state_index, "reindexd-state");
        assert_eq!(c.copy, crate::config::CopyConfig::default());
        assert_eq!(c.cluster.timeout, Duration::from_secs(30));
        assert_eq!(c.indexes[0].engine, CopyEngine::Client);
    }

    #[test]
    fn every_bad_key_is_named() {
        let errors = validate(
            raw("[elasticsearch]\nurl = \"ftp://x\"\nusername = \"u\"\n[api]\nlisten = \"0.0.0.0:9600\"\n[migration]\nretention = \"soon\"\n[copy]\nbatch_bytes = \"8 parsecs\"\n[[indexes]]\nname = \"Wiki\"\n[[indexes]]\nname = \"q\"\nmapping = \"q.json\"\nengine = \"warp\"\n"),
            Path::new("/"),
        )
        .unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_deref().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "elasticsearch.url",
                "elasticsearch.password",
                "api.listen",
                "migration.retention",
                "copy.batch_bytes",
                "indexes[0].name",
                "indexes[0].mapping",
                "indexes[1].engine"
            ]
        );
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let c = valid(include_str!("../../../deploy/reindexd.toml"));
        assert_eq!(c.indexes.len(), 2);
    }

    /// Text an operator might write for a duration, and text nobody would.
    fn duration_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{1,25} ?(ns|us|ms|s|sec|m|min|h|d|w|M|y|years)?",
            "[0-9]{1,22}(h|d|y) [0-9]{1,22}(ms|s|ns)",
            "-?[0-9.eE+-]{1,12}[a-z]{0,3}",
            any::<String>(),
        ]
    }

    proptest! {
        /// No text under any duration key makes validation panic; what is
        /// accepted is within its limit, so the arithmetic done on it later
        /// (tick intervals, the lease, the retention deadline) cannot panic
        /// either.
        #[test]
        fn no_duration_text_panics(text in duration_text(), key in 0..5usize) {
            let mut raw = RawConfig::default();
            let slot = match key {
                0 => &mut raw.elasticsearch.timeout,
                1 => &mut raw.migration.retention,
                2 => &mut raw.copy.checkpoint_interval,
                3 => &mut raw.copy.scroll_keep_alive,
                _ => &mut raw.copy.gc_deletes,
            };
            *slot = Some(text);
            if let Ok(c) = validate(raw, Path::new("/")) {
                prop_assert!(bounds::TIMEOUT.contains(&c.cluster.timeout));
                prop_assert!(bounds::RETENTION.contains(&c.migration.retention));
                prop_assert!(bounds::CHECKPOINT_INTERVAL.contains(&c.copy.checkpoint_interval));
                prop_assert!(bounds::SCROLL_KEEP_ALIVE.contains(&c.copy.scroll_keep_alive));
                prop_assert!(bounds::GC_DELETES.contains(&c.copy.gc_deletes));
                prop_assert!(c.copy.scroll_keep_alive >= bounds::bulk_timeout(c.cluster.timeout));
                prop_assert!(!c.copy.checkpoint_interval.is_zero());
                let retention = chrono::Duration::from_std(c.migration.retention).unwrap();
                prop_assert!(chrono::Utc::now().checked_add_signed(retention).is_some());
            }
        }

        /// No number under any count or rate key makes validation panic,
        /// and what is accepted is within its limit.
        #[test]
        fn no_number_panics(n in any::<u32>(), bytes in any::<u64>(), rate in any::<f64>(), key in 0..4usize) {
            let mut raw = RawConfig::default();
            match key {
                0 => raw.copy.slices = Some(n),
                1 => raw.copy.page_size = Some(n),
                2 => raw.copy.max_concurrency = Some(n),
                _ => raw.copy.max_retries = Some(n),
            }
            raw.copy.batch_bytes = Some(crate::config::raw::RawBytes::Number(bytes));
            raw.copy.requests_per_second = Some(rate);
            if let Ok(c) = validate(raw, Path::new("/")) {
                prop_assert!(c.copy.slices.is_none_or(|s| bounds::SLICES.contains(&s)));
                prop_assert!(bounds::PAGE_SIZE.contains(&c.copy.page_size));
                prop_assert!(bounds::MAX_CONCURRENCY.contains(&c.copy.max_concurrency));
                prop_assert!(bounds::MAX_RETRIES.contains(&c.copy.max_retries));
                prop_assert!(bounds::BATCH_BYTES.contains(&c.copy.batch_bytes));
                prop_assert!(c.copy.requests_per_second.is_some_and(|r| r.is_finite() && r >= 1.0));
            }
        }
    }
}
