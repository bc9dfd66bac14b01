//! The `[copy]` section: how fast and in what pieces documents are copied,
//! how often progress is saved, and how long the source's read context and
//! the target's delete tombstones live. Every number is checked against
//! its [`bounds`] limit here, so the copy never meets a zero interval, an
//! empty page or a throttle it cannot pace.

use std::time::Duration;

use super::units::{bytes, count, duration};
use super::Problems;
use crate::config::bounds::{self, Limit};
use crate::config::raw::RawCopy;
use crate::config::{default_search_probe, CopyConfig, Priority};

/// Checks `raw` (the table at `section`, e.g. `copy`) and fills in
/// defaults. `request_timeout` is the checked `elasticsearch.timeout`:
/// the keep-alive must cover the bulk request a reader may wait for.
pub(super) fn copy(
    raw: &RawCopy,
    section: &str,
    request_timeout: Duration,
    p: &mut Problems,
) -> CopyConfig {
    let d = CopyConfig::default();
    let key = |name: &str| format!("{section}.{name}");
    let bulk_timeout = bounds::bulk_timeout(request_timeout);
    let keep_alive = Limit {
        min: bulk_timeout,
        ..bounds::SCROLL_KEEP_ALIVE
    };
    CopyConfig {
        slices: slices(raw.slices, &key("slices"), p),
        page_size: count(
            raw.page_size,
            &key("page_size"),
            d.page_size,
            &bounds::PAGE_SIZE,
            p,
        ),
        batch_bytes: bytes(
            raw.batch_bytes.as_ref(),
            &key("batch_bytes"),
            d.batch_bytes,
            &bounds::BATCH_BYTES,
            p,
        ),
        max_concurrency: count(
            raw.max_concurrency,
            &key("max_concurrency"),
            d.max_concurrency,
            &bounds::MAX_CONCURRENCY,
            p,
        ),
        requests_per_second: rate(raw.requests_per_second, &key("requests_per_second"), p),
        checkpoint_interval: duration(
            raw.checkpoint_interval.as_deref(),
            &key("checkpoint_interval"),
            d.checkpoint_interval,
            &bounds::CHECKPOINT_INTERVAL,
            p,
        ),
        // Unset, the keep-alive follows a long request timeout, so raising
        // only `elasticsearch.timeout` never makes the default wrong.
        scroll_keep_alive: duration(
            raw.scroll_keep_alive.as_deref(),
            &key("scroll_keep_alive"),
            d.scroll_keep_alive.max(bulk_timeout),
            &keep_alive,
            p,
        ),
        gc_deletes: duration(
            raw.gc_deletes.as_deref(),
            &key("gc_deletes"),
            d.gc_deletes,
            &bounds::GC_DELETES,
            p,
        ),
        max_retries: count(
            raw.max_retries,
            &key("max_retries"),
            d.max_retries,
            &bounds::MAX_RETRIES,
            p,
        ),
        priority: match raw.priority.as_deref().map(str::parse::<Priority>) {
            None => d.priority,
            Some(Ok(priority)) => priority,
            Some(Err(e)) => {
                p.add(key("priority"), e);
                d.priority
            }
        },
        search_probe: search_probe(raw.search_probe.as_deref(), &key("search_probe"), p),
    }
}

/// A JSON object (a search body); `size` 0 unless it says otherwise.
fn search_probe(text: Option<&str>, key: &str, p: &mut Problems) -> serde_json::Value {
    let Some(text) = text else {
        return default_search_probe();
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut body) if body.is_object() => {
            if body.get("size").is_none() {
                body["size"] = serde_json::json!(0);
            }
            body
        }
        _ => {
            p.add(
                key,
                format!(
                    "expected a JSON search body such as '{{\"query\": {{\"match\": {{\"title\": \"help\"}}}}}}', found {text:?}"
                ),
            );
            default_search_probe()
        }
    }
}

/// 0 (or unset) = one slice per primary shard, as the example config
/// documents; otherwise within [`bounds::SLICES`].
fn slices(value: Option<u32>, key: &str, p: &mut Problems) -> Option<u32> {
    match value {
        None | Some(0) => None,
        Some(n) => Some(count(Some(n), key, 1, &bounds::SLICES, p)),
    }
}

/// Unset = unthrottled; otherwise [`bounds::check_rate`].
fn rate(value: Option<f64>, key: &str, p: &mut Problems) -> Option<f64> {
    bounds::check_rate(value?).map_err(|e| p.add(key, e)).ok()
}

#[cfg(test)]
mod tests {
    use super::super::tests::problems;
    use super::*;
    use crate::config::Overrides;

    /// `[copy]` lines that must be refused, the key named, and a word of
    /// the reason.
    const REFUSED: &[(&str, &str, &str)] = &[
        ("slices = 1025", "copy.slices", "1024"),
        ("slices = 4294967295", "copy.slices", "1024"),
        ("page_size = 0", "copy.page_size", "1 to 10000"),
        ("page_size = 10001", "copy.page_size", "1 to 10000"),
        ("batch_bytes = 0", "copy.batch_bytes", "found 0 bytes"),
        (
            "batch_bytes = \"1000\"",
            "copy.batch_bytes",
            "1KiB to 64MiB",
        ),
        ("batch_bytes = \"65MiB\"", "copy.batch_bytes", "found 65MiB"),
        (
            "batch_bytes = \"8 parsecs\"",
            "copy.batch_bytes",
            "8 parsecs",
        ),
        ("max_concurrency = 0", "copy.max_concurrency", "1 to 256"),
        (
            "max_concurrency = 100000",
            "copy.max_concurrency",
            "1 to 256",
        ),
        (
            "requests_per_second = 0.0",
            "copy.requests_per_second",
            "found 0",
        ),
        (
            "requests_per_second = -5.0",
            "copy.requests_per_second",
            "found -5",
        ),
        (
            "requests_per_second = 0.5",
            "copy.requests_per_second",
            "at least 1",
        ),
        (
            "requests_per_second = nan",
            "copy.requests_per_second",
            "NaN",
        ),
        (
            "requests_per_second = inf",
            "copy.requests_per_second",
            "inf",
        ),
        (
            "checkpoint_interval = \"0s\"",
            "copy.checkpoint_interval",
            "1s to 10m",
        ),
        (
            "checkpoint_interval = \"999ms\"",
            "copy.checkpoint_interval",
            "\"999ms\"",
        ),
        (
            "checkpoint_interval = \"11m\"",
            "copy.checkpoint_interval",
            "1s to 10m",
        ),
        (
            "checkpoint_interval = \"600000000years\"",
            "copy.checkpoint_interval",
            "years",
        ),
        (
            "scroll_keep_alive = \"1ms\"",
            "copy.scroll_keep_alive",
            "2m to 24h",
        ),
        (
            "scroll_keep_alive = \"30s\"",
            "copy.scroll_keep_alive",
            "bulk request",
        ),
        (
            "scroll_keep_alive = \"25h\"",
            "copy.scroll_keep_alive",
            "max_keep_alive",
        ),
        ("gc_deletes = \"1s\"", "copy.gc_deletes", "1h to 30d"),
        ("gc_deletes = \"59m\"", "copy.gc_deletes", "tombstone"),
        ("gc_deletes = \"31d\"", "copy.gc_deletes", "1h to 30d"),
        ("max_retries = 0", "copy.max_retries", "1 to 100"),
        ("max_retries = 101", "copy.max_retries", "1 to 100"),
        ("priority = \"urgent\"", "copy.priority", "\"background\""),
        (
            "search_probe = \"match_all\"",
            "copy.search_probe",
            "JSON search body",
        ),
        (
            "search_probe = \"[1]\"",
            "copy.search_probe",
            "JSON search body",
        ),
    ];

    #[test]
    fn footguns_are_refused_with_the_key_and_the_range() {
        for (line, key, needle) in REFUSED {
            let found = problems(&format!("[copy]\n{line}\n"));
            assert_eq!(found.len(), 1, "{line}: {found:?}");
            let (k, message) = &found[0];
            assert_eq!(k, key, "{line}: {message}");
            assert!(message.contains("expected"), "{line}: {message}");
            assert!(message.contains(needle), "{line}: {message}");
        }
    }

    #[test]
    fn the_limits_themselves_are_accepted() {
        let c = super::super::tests::valid(
            "[copy]\nslices = 1024\npage_size = 10000\nbatch_bytes = \"64MiB\"\nmax_concurrency = 256\nrequests_per_second = 1\ncheckpoint_interval = \"10m\"\nscroll_keep_alive = \"24h\"\ngc_deletes = \"30d\"\nmax_retries = 100\n",
        );
        assert_eq!(c.copy.slices, Some(1024));
        assert_eq!(c.copy.batch_bytes, 64 << 20);
        assert_eq!(c.copy.requests_per_second, Some(1.0));
        let c = super::super::tests::valid(
            "[copy]\nslices = 0\npage_size = 1\nbatch_bytes = 1024\nmax_concurrency = 1\ncheckpoint_interval = \"1s\"\nscroll_keep_alive = \"2m\"\ngc_deletes = \"1h\"\nmax_retries = 1\n",
        );
        assert_eq!(c.copy.slices, None, "0 is one slice per primary shard");
        assert_eq!(c.copy.requests_per_second, None);
    }

    #[test]
    fn the_keep_alive_covers_a_long_request_timeout() {
        let base = "[elasticsearch]\ntimeout = \"5m\"\n";
        let found = problems(&format!("{base}[copy]\nscroll_keep_alive = \"4m\"\n"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "copy.scroll_keep_alive");
        assert!(found[0].1.contains("expected 5m to 24h"), "{found:?}");
        // Unset, it follows the timeout instead of being refused.
        let c = super::super::tests::valid("[elasticsearch]\ntimeout = \"10m\"\n");
        assert_eq!(c.copy.scroll_keep_alive, Duration::from_secs(600));
        let c = super::super::tests::valid("");
        assert_eq!(c.copy.scroll_keep_alive, Duration::from_secs(300));
    }

    #[test]
    fn every_problem_of_a_section_is_reported_at_once() {
        let found = problems(
            "[elasticsearch]\ntimeout = \"0s\"\n[copy]\ncheckpoint_interval = \"0s\"\ngc_deletes = \"1s\"\nscroll_keep_alive = \"1ms\"\npage_size = 0\n",
        );
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "elasticsearch.timeout",
                "copy.page_size",
                "copy.checkpoint_interval",
                "copy.scroll_keep_alive",
                "copy.gc_deletes"
            ]
        );
    }

    #[test]
    fn environment_values_are_checked_like_the_file() {
        let env = [(
            "REINDEXD__COPY__CHECKPOINT_INTERVAL".to_owned(),
            "0s".to_owned(),
        )];
        let err = crate::config::Config::from_toml(
            "",
            std::path::Path::new("/"),
            env,
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("copy.checkpoint_interval: expected 1s to 10m"),
            "{err}"
        );
    }
}
