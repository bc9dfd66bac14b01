//! The `[elasticsearch]` and `[api]` sections: where the cluster is, how
//! reindexd authenticates to it and how long a call may take, and where
//! the API listens and who may use it. Secrets stay where they are written
//! (inline or a file path); files are read later, not here.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use url::Url;

use super::units::duration;
use super::{resolve, Problems};
use crate::config::bounds;
use crate::config::raw::RawConfig;
use crate::config::{ApiConfig, ClusterAuth, ClusterConfig, SecretSource};
use crate::secret::Secret;

/// What `elasticsearch.timeout` is when unset.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn cluster(raw: &RawConfig, base: &Path, p: &mut Problems) -> ClusterConfig {
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
            DEFAULT_TIMEOUT,
            &bounds::TIMEOUT,
            p,
        ),
    }
}

pub(super) fn api(raw: &RawConfig, base: &Path, p: &mut Problems) -> ApiConfig {
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

#[cfg(test)]
mod tests {
    use super::super::tests::{problems, raw, valid};
    use super::super::validate;
    use super::*;

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
    fn timeouts_outside_one_second_to_ten_minutes_are_refused() {
        for text in ["0s", "0", "999ms", "10m 1s", "1y", "18446744073709551615s"] {
            let found = problems(&format!("[elasticsearch]\ntimeout = \"{text}\"\n"));
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            assert_eq!(found[0].0, "elasticsearch.timeout");
            assert!(
                found[0].1.starts_with("expected 1s to 10m, found"),
                "{text}: {found:?}"
            );
        }
        let found = problems("[elasticsearch]\ntimeout = \"soon\"\n");
        assert!(found[0].1.contains("expected a duration"), "{found:?}");
        for (text, secs) in [("1s", 1), ("3s", 3), ("10m", 600)] {
            let c = valid(&format!("[elasticsearch]\ntimeout = \"{text}\"\n"));
            assert_eq!(c.cluster.timeout, Duration::from_secs(secs));
        }
    }
}
