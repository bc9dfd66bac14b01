//! From [`RawConfig`] to a checked [`Config`]: defaults, meaning, and one
//! error per bad key naming its path. Pure: no file is read here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::raw::{RawBytes, RawConfig, RawCopy};
use super::{
    ApiConfig, ClusterAuth, ClusterConfig, Config, ConfigError, CopyConfig, CopyEngine,
    IndexConfig, LogFormat, MigrationConfig, SecretSource,
};
use crate::secret::Secret;

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
    let cluster = cluster(&raw, base_dir, &mut p);
    let api = api(&raw, base_dir, &mut p);
    let migration = migration(&raw, &mut p);
    let copy = copy(&raw.copy, "copy", &mut p);
    let indexes = indexes(&raw, base_dir, &mut p);
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

fn cluster(raw: &RawConfig, base: &Path, p: &mut Problems) -> ClusterConfig {
    let es = &raw.elasticsearch;
    let texts: Vec<(String, &str)> = match (&es.url, &es.urls) {
        (Some(_), Some(_)) => {
            p.add(
                "elasticsearch.urls",
                "set either elasticsearch.url or elasticsearch.urls, not both",
            );
            Vec::new()
        }
        (Some(url), None) => vec![("elasticsearch.url".into(), url.as_str())],
        (None, Some(urls)) if urls.is_empty() => {
            p.add("elasticsearch.urls", "needs at least one URL");
            Vec::new()
        }
        (None, Some(urls)) => urls
            .iter()
            .enumerate()
            .map(|(i, u)| (format!("elasticsearch.urls[{i}]"), u.as_str()))
            .collect(),
        (None, None) => vec![("elasticsearch.url".into(), "http://127.0.0.1:9200")],
    };
    let mut urls = Vec::new();
    for (key, text) in texts {
        match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                if !url.username().is_empty() || url.password().is_some() {
                    p.add(
                        key,
                        "put credentials in elasticsearch.username/password(_file), not in the URL",
                    );
                } else {
                    urls.push(url);
                }
            }
            Ok(_) => p.add(
                key,
                format!("expected an http:// or https:// URL, found {text:?}"),
            ),
            Err(e) => p.add(key, format!("{text:?} is not a URL: {e}")),
        }
    }
    let password = secret_source(
        es.password.as_deref(),
        es.password_file.as_deref(),
        "elasticsearch.password",
        base,
        p,
    );
    let api_key = secret_source(
        es.api_key.as_deref(),
        es.api_key_file.as_deref(),
        "elasticsearch.api_key",
        base,
        p,
    );
    let auth = match (&es.username, password, api_key) {
        (None, None, None) => ClusterAuth::None,
        (Some(username), Some(password), None) => ClusterAuth::Basic {
            username: username.clone(),
            password,
        },
        (None, None, Some(key)) => ClusterAuth::ApiKey(key),
        (Some(_), None, None) => {
            p.add(
                "elasticsearch.password",
                "elasticsearch.username is set: also set password or password_file",
            );
            ClusterAuth::None
        }
        (None, Some(_), None) => {
            p.add(
                "elasticsearch.username",
                "a password is set: also set elasticsearch.username",
            );
            ClusterAuth::None
        }
        (_, _, Some(_)) => {
            p.add(
                "elasticsearch.api_key",
                "use either an API key or username and password, not both",
            );
            ClusterAuth::None
        }
    };
    ClusterConfig {
        urls,
        auth,
        ca_file: es.ca_file.as_deref().map(|f| resolve(base, f)),
        timeout: duration(
            es.timeout.as_deref(),
            "elasticsearch.timeout",
            Duration::from_secs(30),
            p,
        ),
    }
}

fn api(raw: &RawConfig, base: &Path, p: &mut Problems) -> ApiConfig {
    let text = raw.api.listen.as_deref().unwrap_or("127.0.0.1:9600");
    let listen = text.parse::<SocketAddr>().unwrap_or_else(|e| {
        p.add(
            "api.listen",
            format!("expected ADDRESS:PORT such as 127.0.0.1:9600, found {text:?} ({e})"),
        );
        SocketAddr::from(([127, 0, 0, 1], 9600))
    });
    let token = secret_source(
        raw.api.token.as_deref(),
        raw.api.token_file.as_deref(),
        "api.token",
        base,
        p,
    );
    let allow_remote = raw.api.allow_remote_without_token.unwrap_or(false);
    if !listen.ip().is_loopback() && token.is_none() && !allow_remote {
        p.add(
            "api.listen",
            format!("{listen} is reachable from other hosts: set api.token (or api.token_file), or api.allow_remote_without_token = true"),
        );
    }
    ApiConfig {
        listen,
        token,
        allow_remote_without_token: allow_remote,
    }
}

fn migration(raw: &RawConfig, p: &mut Problems) -> MigrationConfig {
    let m = &raw.migration;
    let prefix = m.prefix.clone().unwrap_or_default();
    if !prefix.is_empty() && !valid_name(&prefix) {
        p.add(
            "migration.prefix",
            format!(
                "{prefix:?} may only hold a-z, 0-9, '_' and '-', and not start with '_' or '-'"
            ),
        );
    }
    let state_index = m
        .state_index
        .clone()
        .unwrap_or_else(|| "reindexd-state".into());
    if !valid_name(&state_index) {
        p.add(
            "migration.state_index",
            format!("{state_index:?} is not a valid index name"),
        );
    }
    MigrationConfig {
        prefix,
        retention: duration(
            m.retention.as_deref(),
            "migration.retention",
            Duration::from_secs(24 * 3600),
            p,
        ),
        state_index,
    }
}

fn copy(raw: &RawCopy, section: &str, p: &mut Problems) -> CopyConfig {
    let d = CopyConfig::default();
    let page_size = raw.page_size.unwrap_or(d.page_size);
    if !(1..=10_000).contains(&page_size) {
        p.add(
            format!("{section}.page_size"),
            format!("expected 1 to 10000, found {page_size}"),
        );
    }
    let batch_bytes = match &raw.batch_bytes {
        None => d.batch_bytes,
        Some(RawBytes::Number(n)) => *n,
        Some(RawBytes::Text(t)) => parse_bytes(t).unwrap_or_else(|| {
            p.add(
                format!("{section}.batch_bytes"),
                format!("expected a size such as \"8MiB\", found {t:?}"),
            );
            d.batch_bytes
        }),
    };
    if !(1024..=512 * 1024 * 1024).contains(&batch_bytes) {
        p.add(
            format!("{section}.batch_bytes"),
            format!("expected 1KiB to 512MiB, found {batch_bytes} bytes"),
        );
    }
    let max_concurrency = raw.max_concurrency.unwrap_or(d.max_concurrency);
    if !(1..=256).contains(&max_concurrency) {
        p.add(
            format!("{section}.max_concurrency"),
            format!("expected 1 to 256, found {max_concurrency}"),
        );
    }
    let rps = raw.requests_per_second.or(d.requests_per_second);
    if let Some(r) = rps {
        if !(r.is_finite() && r > 0.0) {
            p.add(
                format!("{section}.requests_per_second"),
                format!("expected a positive number of documents per second, found {r}"),
            );
        }
    }
    CopyConfig {
        slices: raw.slices.or(d.slices).filter(|s| *s > 0),
        page_size,
        batch_bytes,
        max_concurrency,
        requests_per_second: rps,
        checkpoint_interval: duration(
            raw.checkpoint_interval.as_deref(),
            &format!("{section}.checkpoint_interval"),
            d.checkpoint_interval,
            p,
        ),
        scroll_keep_alive: duration(
            raw.scroll_keep_alive.as_deref(),
            &format!("{section}.scroll_keep_alive"),
            d.scroll_keep_alive,
            p,
        ),
        gc_deletes: duration(
            raw.gc_deletes.as_deref(),
            &format!("{section}.gc_deletes"),
            d.gc_deletes,
            p,
        ),
        max_retries: raw.max_retries.unwrap_or(d.max_retries),
    }
}

fn indexes(raw: &RawConfig, base: &Path, p: &mut Problems) -> Vec<IndexConfig> {
    let mut out: Vec<IndexConfig> = Vec::new();
    for (i, index) in raw.indexes.iter().enumerate() {
        let key = |k: &str| format!("indexes[{i}].{k}");
        let Some(name) = index.name.clone() else {
            p.add(key("name"), "every [[indexes]] entry needs a name");
            continue;
        };
        if !valid_name(&name) || name.len() > 100 {
            p.add(key("name"), format!("{name:?} must be 1-100 characters of a-z, 0-9, '_' and '-', not starting with '_' or '-'"));
        }
        if out.iter().any(|o| o.name == name) {
            p.add(
                key("name"),
                format!("logical index {name:?} is configured twice"),
            );
        }
        let mapping = match &index.mapping {
            Some(m) => resolve(base, m),
            None => {
                p.add(
                    key("mapping"),
                    format!("set the mapping file of {name:?}, e.g. \"mappings/{name}.json\""),
                );
                PathBuf::new()
            }
        };
        let engine = match index.engine.as_deref() {
            None | Some("client") => CopyEngine::Client,
            Some("server") => CopyEngine::Server,
            Some(other) => {
                p.add(
                    key("engine"),
                    format!("expected \"client\" or \"server\", found {other:?}"),
                );
                CopyEngine::Client
            }
        };
        let accept_lost_fields = index.accept_lost_fields.clone().unwrap_or_default();
        if accept_lost_fields.iter().any(|f| f.trim().is_empty()) {
            p.add(
                key("accept_lost_fields"),
                "expected field names such as [\"body\", \"meta.secret\"], found an empty one",
            );
        }
        out.push(IndexConfig {
            name,
            mapping,
            engine,
            accept_lost_fields,
        });
    }
    out
}

fn secret_source(
    inline: Option<&str>,
    file: Option<&str>,
    key: &str,
    base: &Path,
    p: &mut Problems,
) -> Option<SecretSource> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            p.add(
                format!("{key}_file"),
                format!("set either {key} or {key}_file, not both"),
            );
            None
        }
        (Some(""), None) => {
            p.add(key, "is empty");
            None
        }
        (Some(value), None) => Some(SecretSource::Inline(Secret::new(value))),
        (None, Some(path)) => Some(SecretSource::File(resolve(base, path))),
        (None, None) => None,
    }
}

fn duration(text: Option<&str>, key: &str, default: Duration, p: &mut Problems) -> Duration {
    match text {
        None => default,
        Some(t) => humantime::parse_duration(t).unwrap_or_else(|e| {
            p.add(
                key,
                format!("expected a duration such as \"30s\" or \"24h\", found {t:?} ({e})"),
            );
            default
        }),
    }
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Index-name rules of the engines, narrowed to what is safe in URLs.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['_', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `"8MiB"`, `"512KiB"`, `"1GiB"`, `"1000"`, `"4MB"` → bytes.
pub(crate) fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> RawConfig {
        config::Config::builder()
            .add_source(config::File::from_str(toml_text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
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
        assert_eq!(c.copy.batch_bytes, 8 << 20);
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
    fn remote_listen_needs_a_token_or_explicit_consent() {
        let ok = validate(
            raw("[api]\nlisten = \"0.0.0.0:9600\"\ntoken_file = \"token\"\n"),
            Path::new("/c"),
        );
        assert!(
            matches!(ok.unwrap().api.token, Some(SecretSource::File(ref f)) if f == Path::new("/c/token"))
        );
        let ok = validate(
            raw("[api]\nlisten = \"0.0.0.0:9600\"\nallow_remote_without_token = true\n"),
            Path::new("/"),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("8MiB"), Some(8 << 20));
        assert_eq!(parse_bytes("512 KiB"), Some(512 << 10));
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("4MB"), Some(4_000_000));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("99999999999999999999GiB"), None);
    }

    #[test]
    fn names() {
        assert!(valid_name("wiki"));
        assert!(valid_name("kb-2_x"));
        assert!(!valid_name("Wiki"));
        assert!(!valid_name("_wiki"));
        assert!(!valid_name("wi*ki"));
        assert!(!valid_name(""));
    }
}
