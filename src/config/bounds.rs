//! The ranges every configured duration, size and count must fall in, and
//! why. The validation (`config::validate`) refuses a value outside them,
//! naming its key, so nothing downstream (tick intervals, lease and
//! retention arithmetic, the pacer, settings sent to the cluster) ever sees
//! a zero, a tiny or an absurd value. The README's configuration section
//! lists the same numbers. This module only states limits; it checks
//! nothing itself.

use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// An inclusive range a configured value must fall in.
#[derive(Debug, Clone, Copy)]
pub struct Limit<T> {
    pub min: T,
    pub max: T,
    /// Why a value outside is refused; shown after the value found.
    pub why: &'static str,
}

impl<T: PartialOrd> Limit<T> {
    pub fn contains(&self, value: &T) -> bool {
        self.min <= *value && *value <= self.max
    }
}

/// `elasticsearch.timeout`, the bound of any single call.
pub const TIMEOUT: Limit<Duration> = Limit {
    min: Duration::from_secs(1),
    max: Duration::from_secs(10 * MINUTE),
    why: "shorter turns ordinary calls (creating an index) into unknown outcomes; longer \
          lets a hung node hold a copy up",
};

/// A bulk request gets at least this long, whatever `elasticsearch.timeout`
/// says: a full body on a busy node can take a minute or more, and timing
/// it out early only sends the same body again.
pub const BULK_TIMEOUT_FLOOR: Duration = Duration::from_secs(2 * MINUTE);

/// How long one bulk request may take with this `elasticsearch.timeout`.
pub fn bulk_timeout(request_timeout: Duration) -> Duration {
    request_timeout.max(BULK_TIMEOUT_FLOOR)
}

/// `migration.retention`. Zero is allowed: cleanup is an explicit
/// operator step, so retention only stops a too-early one.
pub const RETENTION: Limit<Duration> = Limit {
    min: Duration::ZERO,
    max: Duration::from_secs(365 * DAY),
    why: "a longer window is not a rollback window; to keep a generation for good, do not \
          run cleanup",
};

/// `copy.page_size`, hits per search page.
pub const PAGE_SIZE: Limit<u32> = Limit {
    min: 1,
    max: 10_000,
    why: "the engines refuse pages larger than index.max_result_window (10000)",
};

/// `copy.batch_bytes`. A body is cut once it reaches this size, so it
/// overruns by up to one document; 64 MiB keeps that under the engines'
/// `http.max_content_length` (100mb by default), which answers 413.
pub const BATCH_BYTES: Limit<u64> = Limit {
    min: 1 << 10,
    max: 64 << 20,
    why: "smaller bodies are mostly per-request overhead; larger ones risk the engines' \
          100mb http.max_content_length",
};

/// `copy.max_concurrency`, bulk requests in flight.
pub const MAX_CONCURRENCY: Limit<u32> = Limit {
    min: 1,
    max: 256,
    why: "at least one bulk request must be in flight; more only queue on the cluster while \
          their bodies fill memory",
};

/// `copy.slices` when not 0 (0 means one slice per primary shard).
pub const SLICES: Limit<u32> = Limit {
    min: 1,
    max: 1024,
    why: "the engines refuse more than index.max_slices_per_scroll (1024) slices; 0 means one \
          per primary shard",
};

/// `copy.requests_per_second`, when set (unset = unthrottled). Below one
/// document a second a copy takes days; pausing is the way to stop one.
pub const MIN_REQUESTS_PER_SECOND: f64 = 1.0;

/// The one check of a throttle rate, wherever it comes from (the file, a
/// request body, the command line): finite and at least
/// [`MIN_REQUESTS_PER_SECOND`] (the pacer divides by it).
pub fn check_rate(rate: f64) -> Result<f64, String> {
    if rate.is_finite() && rate >= MIN_REQUESTS_PER_SECOND {
        Ok(rate)
    } else {
        Err(format!(
            "expected a throttle of at least {MIN_REQUESTS_PER_SECOND} document per second \
             (no throttle: leave it unset, or pause the copy), found {rate}"
        ))
    }
}

/// `copy.checkpoint_interval`. Every checkpoint is a compare-and-set write
/// of the state document; a copy's lease lasts three intervals.
pub const CHECKPOINT_INTERVAL: Limit<Duration> = Limit {
    min: Duration::from_secs(1),
    max: Duration::from_secs(10 * MINUTE),
    why: "shorter loads the state index with writes; longer makes a restart redo more \
          copying, and a dead daemon's copy waits three intervals to be taken over",
};

/// `copy.scroll_keep_alive`: how long a scroll or point in time lives
/// between two pages. A reader sends its next page request only once the
/// pipeline took the previous page, which can wait for one bulk request
/// ([`bulk_timeout`]); so the keep-alive must be at least that, and the
/// validation raises this minimum with `elasticsearch.timeout`. The
/// maximum is the engines' `search.max_keep_alive` default.
pub const SCROLL_KEEP_ALIVE: Limit<Duration> = Limit {
    min: BULK_TIMEOUT_FLOOR,
    max: Duration::from_secs(DAY),
    why: "a reader can wait one bulk request's timeout (2m, or elasticsearch.timeout if longer) \
          between two pages, and the engines refuse more than search.max_keep_alive (24h)",
};

/// `copy.gc_deletes`: the new generation's `index.gc_deletes` during the
/// copy. A delete the application makes during the copy leaves a
/// tombstone that beats the copy of that id (version 0) only while the
/// tombstone lives; once it is collected, a later copy of the id
/// resurrects the document. The tombstone must therefore outlive the
/// copy's lag behind the application, which is up to the whole copy's
/// duration, pauses and restarts included — not something a config check
/// can know. An hour is the floor: a copy worth running as a daemon, once
/// throttled, paused or restarted from a checkpoint, easily lasts that
/// long, while the engine's own default (60s) is what this setting exists
/// to raise. The default, 48h, covers a copy left paused over a night or
/// a weekend day. Beyond 30 days the engine keeps every delete's tombstone
/// in memory for a copy that would not still be running.
pub const GC_DELETES: Limit<Duration> = Limit {
    min: Duration::from_secs(HOUR),
    max: Duration::from_secs(30 * DAY),
    why: "a delete made during the copy is honoured only while its tombstone lives, so \
          gc_deletes must outlast the copy, pauses included",
};

/// `copy.max_retries`: attempts of one bulk item on 429/5xx.
pub const MAX_RETRIES: Limit<u32> = Limit {
    min: 1,
    max: 100,
    why: "a 429 is the cluster's ordinary backpressure and must be retried; past 100 attempts \
          (about 50 minutes of backoff) the run should give up and say so",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CopyConfig;

    #[test]
    fn the_defaults_are_within_the_limits() {
        let d = CopyConfig::default();
        assert!(TIMEOUT.contains(&Duration::from_secs(30)));
        assert!(RETENTION.contains(&Duration::from_secs(DAY)));
        assert!(PAGE_SIZE.contains(&d.page_size));
        assert!(BATCH_BYTES.contains(&d.batch_bytes));
        assert!(MAX_CONCURRENCY.contains(&d.max_concurrency));
        assert!(CHECKPOINT_INTERVAL.contains(&d.checkpoint_interval));
        assert!(SCROLL_KEEP_ALIVE.contains(&d.scroll_keep_alive));
        assert!(GC_DELETES.contains(&d.gc_deletes));
        assert!(MAX_RETRIES.contains(&d.max_retries));
    }

    #[test]
    fn arithmetic_on_the_limits_cannot_overflow() {
        // The lease is three checkpoint intervals, added to a wall clock.
        assert!(CHECKPOINT_INTERVAL.max.checked_mul(3).is_some());
        assert!(chrono::Duration::from_std(RETENTION.max).is_ok());
        assert!(GC_DELETES.min.as_secs() > 0);
    }
}
