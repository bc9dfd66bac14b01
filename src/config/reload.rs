//! What a reload (SIGHUP) may change in a running daemon, and what waits
//! for the next start. Pure: the daemon applies the result.

use serde_json::Value;

use super::{ClusterAuth, ClusterConfig, Config, SecretSource};

/// The copy settings a running daemon takes from a reloaded file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// Upper bound of bulk requests in flight, per copy.
    pub max_concurrency: u32,
    /// The default throttle, documents per second; `None` = unthrottled.
    pub requests_per_second: Option<f64>,
}

/// Keys (as `check-config` prints them) that a reload applies at once.
const LIVE_KEYS: [&str; 3] = [
    "copy.max_concurrency",
    "copy.requests_per_second",
    "log_level",
];

impl Config {
    pub fn tuning(&self) -> Tuning {
        Tuning {
            max_concurrency: self.copy.max_concurrency,
            requests_per_second: self.copy.requests_per_second,
        }
    }

    /// Keys that differ between `self` and `next` but only take effect at
    /// the next start, as `check-config` names them (`cluster.urls`,
    /// `copy.batch_bytes`, `indexes`, ...). A secret written inline is
    /// compared by value and named without it; one from a file compares by
    /// path (the file is read at start).
    pub fn restart_only_changes(&self, next: &Config) -> Vec<String> {
        let mut changed = Vec::new();
        diff(
            "",
            &self.redacted_json(),
            &next.redacted_json(),
            &mut changed,
        );
        changed.retain(|k| !LIVE_KEYS.contains(&k.as_str()));
        // Inline secrets print redacted, so compare them here.
        for (key, a, b) in [
            ("cluster.auth", self.cluster.secret(), next.cluster.secret()),
            (
                "api.token",
                self.api.token.as_ref(),
                next.api.token.as_ref(),
            ),
        ] {
            let inline = |s: Option<&SecretSource>| match s {
                Some(SecretSource::Inline(secret)) => Some(secret.expose().to_owned()),
                _ => None,
            };
            if inline(a) != inline(b) && !changed.iter().any(|k| k.starts_with(key)) {
                changed.push(key.to_owned());
            }
        }
        changed
    }
}

impl ClusterConfig {
    fn secret(&self) -> Option<&SecretSource> {
        match &self.auth {
            ClusterAuth::None => None,
            ClusterAuth::Basic { password, .. } => Some(password),
            ClusterAuth::ApiKey(key) => Some(key),
        }
    }
}

/// Collects the paths where `a` and `b` differ, descending into objects;
/// arrays (the index list, URLs) count as one value.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
            for key in keys {
                let null = Value::Null;
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff(
                    &sub,
                    a.get(key).unwrap_or(&null),
                    b.get(key).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(path.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Overrides;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[elasticsearch]\nurl = \"http://127.0.0.1:9200\"\n[[indexes]]\nname = \"wiki\"\nmapping = \"m.json\"\n{extra}"
        );
        Config::from_toml(&text, Path::new("/x"), [], &Overrides::default()).unwrap()
    }

    #[test]
    fn live_settings_are_not_restart_only() {
        let old = config("");
        let new = config(
            "[copy]\nmax_concurrency = 3\nrequests_per_second = 50.0\n[log]\nlevel = \"debug\"\n",
        );
        assert!(old.restart_only_changes(&new).is_empty());
        assert_eq!(
            new.tuning(),
            Tuning {
                max_concurrency: 3,
                requests_per_second: Some(50.0)
            }
        );
        assert_eq!(old.tuning().requests_per_second, None);
    }

    #[test]
    fn everything_else_is_named() {
        let old = config("");
        let new = config(
            "[copy]\nbatch_bytes = \"1MiB\"\n[migration]\nprefix = \"x-\"\n[[indexes]]\nname = \"kb\"\nmapping = \"kb.json\"\n",
        );
        assert_eq!(
            old.restart_only_changes(&new),
            ["copy.batch_bytes", "indexes", "migration.prefix"]
        );
        assert!(old.restart_only_changes(&old.clone()).is_empty());
    }

    #[test]
    fn a_changed_inline_secret_is_named_but_not_shown() {
        let old = config("[api]\ntoken = \"first-token\"\n");
        let new = config("[api]\ntoken = \"second-token\"\n");
        let changed = old.restart_only_changes(&new);
        assert_eq!(changed, ["api.token"]);
        assert!(!format!("{changed:?}").contains("second"));
    }
}
