//! Live controls of a running copy: pause and throttle, changeable while
//! it runs, and the pacing that enforces the throttle.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::migration::CopyProgress;

/// What the operator asked for; published through a `watch` channel.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Control {
    pub paused: bool,
    /// Documents per second; `None` = unthrottled.
    pub requests_per_second: Option<f64>,
    /// Yield to live search (background priority).
    pub background: bool,
}

impl Control {
    /// The controls stored in a copy's progress.
    pub fn of(copy: &CopyProgress) -> Self {
        Control {
            paused: copy.paused,
            requests_per_second: copy.requests_per_second,
            background: copy.background,
        }
    }
}

/// The most documents one batch of a background copy holds: small bulk
/// requests leave the node room for searches between them.
pub const BACKGROUND_BATCH_DOCS: usize = 500;

impl Control {
    /// The rate the copy keeps to: the throttle, or the pace a background
    /// copy allows itself while live search suffers (`yielding`),
    /// whichever is slower; `None` = as fast as the cluster takes.
    pub fn rate(&self, yielding: Option<f64>) -> Option<f64> {
        let yielding = yielding.filter(|_| self.background);
        match (positive(self.requests_per_second), positive(yielding)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The most documents the next batch may hold: a quarter second's
    /// worth at [`Control::rate`], and at background priority at most
    /// `BACKGROUND_BATCH_DOCS`.
    pub fn max_docs_per_batch(&self, yielding: Option<f64>) -> usize {
        let paced = max_docs_per_batch(self.rate(yielding));
        if self.background {
            paced.min(BACKGROUND_BATCH_DOCS)
        } else {
            paced
        }
    }
}

/// The longest time one batch may book. The configuration refuses rates
/// under one document a second, but the API and CLI throttle take any
/// positive rate, and at a vanishing one a batch's share of time does not
/// fit a `Duration`: the copy then waits up to this long (in effect
/// paused, until the next throttle re-prices the share: see [`admit`])
/// instead of panicking.
const MAX_SHARE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Spaces out batches so that documents sent stay at or under the rate:
/// a batch may go once the previous one has had its share of time, that
/// share priced at the rate in force when the next one asks. A throttle
/// changed live therefore applies from the next batch on, whichever way
/// it moved (a copy throttled to a crawl speeds up as soon as the rate is
/// raised, instead of serving out the share booked at the crawl).
#[derive(Debug, Default)]
pub struct Pacer {
    /// When the last throttled batch went and how many documents it held;
    /// `None` before the first one or after an unthrottled one (no debt).
    last: Option<(Instant, usize)>,
}

fn positive(rate: Option<f64>) -> Option<f64> {
    rate.filter(|r| *r > 0.0)
}

/// `docs` documents' share of time at `rate`, at most [`MAX_SHARE`].
fn share(docs: usize, rate: f64) -> Duration {
    Duration::try_from_secs_f64(docs as f64 / rate).map_or(MAX_SHARE, |d| d.min(MAX_SHARE))
}

impl Pacer {
    pub fn new() -> Self {
        Pacer::default()
    }

    /// How long from `now` until the next batch may go at `rate`.
    pub fn due(&self, rate: Option<f64>, now: Instant) -> Duration {
        match (positive(rate), self.last) {
            (Some(rate), Some((at, docs))) => {
                (at + share(docs, rate)).saturating_duration_since(now)
            }
            _ => Duration::ZERO,
        }
    }

    /// Records that `docs` documents go at `at` under `rate`.
    pub fn book(&mut self, docs: usize, rate: Option<f64>, at: Instant) {
        self.last = positive(rate).map(|_| (at, docs));
    }

    /// How long to wait before sending `docs` documents at `rate`, and
    /// books them for the end of that wait (what `admit` does, without
    /// the waiting).
    #[cfg(test)]
    pub fn reserve(&mut self, docs: usize, rate: Option<f64>, now: Instant) -> Duration {
        let wait = self.due(rate, now);
        self.book(docs, rate, now + wait);
        wait
    }
}

/// Waits until a batch of `docs` documents may go, and books it: the copy
/// not paused, and the previous batch's share of time passed at the rate
/// in force ([`Control::rate`], with the pace `yielding` returns now). A
/// pause, resume or throttle change during the wait is followed at once,
/// never after a share booked under the old one; a new yielding pace
/// counts from the next look (a wait lasts about a batch's quarter
/// second). Returns `false` if the controls' sender is gone. Cancel-safe:
/// nothing is booked until it returns `true`.
pub async fn admit(
    pacer: &mut Pacer,
    docs: usize,
    control: &mut watch::Receiver<Control>,
    yielding: impl Fn() -> Option<f64>,
) -> bool {
    loop {
        let now = *control.borrow_and_update();
        let (paused, rate) = (now.paused, now.rate(yielding()));
        if !paused {
            let wait = pacer.due(rate, Instant::now());
            if wait.is_zero() {
                pacer.book(docs, rate, Instant::now());
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => continue,
                changed = control.changed() => if changed.is_err() { return false },
            }
        } else if control.changed().await.is_err() {
            return false;
        }
    }
}

/// Most documents one batch may hold at `rate`: a quarter second's worth,
/// so a throttled copy sends small, evenly spaced batches.
pub fn max_docs_per_batch(rate: Option<f64>) -> usize {
    match rate {
        Some(r) if r > 0.0 => ((r / 4.0).ceil() as usize).max(1),
        _ => usize::MAX,
    }
}

#[cfg(test)]
#[path = "pacing_scenarios.rs"]
mod pacing_scenarios;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_share_is_priced_at_the_rate_in_force_when_the_next_one_asks() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // (asked at ms, documents, rate, expected wait, whether the batch
        // then goes: booked for the end of its wait).
        let rows: [(u64, usize, Option<f64>, Duration, bool); 9] = [
            (0, 25, Some(100.0), ms(0), true),
            // The first batch's 25 documents take 250 ms at 100/s.
            (0, 25, Some(100.0), ms(250), true),
            // Throttled down: the batch booked at 250 ms now takes 500 ms.
            (100, 25, Some(50.0), ms(650), true),
            // Throttled up: the batch booked at 750 ms now takes 25 ms.
            (750, 25, Some(1000.0), ms(25), true),
            // Asked late: nothing owed.
            (2000, 10, Some(100.0), ms(0), true),
            // Unthrottled: no wait, and no debt carried over.
            (2000, 1_000_000, None, ms(0), true),
            (2000, 10, Some(100.0), ms(0), true),
            // A crawl: the batch booked at 2000 ms would take a year (at
            // most MAX_SHARE)...
            (2000, 10, Some(1e-9), MAX_SHARE, false),
            // ...until the next throttle re-prices it.
            (2000, 10, Some(100.0), ms(100), true),
        ];
        let mut pacer = Pacer::new();
        for (i, (at, docs, rate, wait, goes)) in rows.into_iter().enumerate() {
            let now = t0 + ms(at);
            assert_eq!(pacer.due(rate, now), wait, "row {i}");
            if goes {
                assert_eq!(pacer.reserve(docs, rate, now), wait, "row {i}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_keeps_the_rate() {
        let mut pacer = Pacer::new();
        let t0 = Instant::now();
        let rate = Some(100.0);
        // 40 batches of 25 documents at 100 docs/s: 10 seconds of sending.
        let mut sent_at = Vec::new();
        for _ in 0..40 {
            let wait = pacer.reserve(25, rate, Instant::now());
            tokio::time::sleep(wait).await;
            sent_at.push(Instant::now() - t0);
        }
        // Documents sent in the first 10 s: at most rate × 10 + one batch.
        let in_ten = sent_at
            .iter()
            .filter(|t| **t < Duration::from_secs(10))
            .count()
            * 25;
        assert!(in_ten <= 1000 + 25, "{in_ten}");
        assert_eq!(sent_at[39], Duration::from_millis(9750));
        // Unthrottled: no wait, and no debt carried over.
        assert_eq!(
            pacer.reserve(1_000_000, None, Instant::now()),
            Duration::ZERO
        );
        assert_eq!(pacer.reserve(10, rate, Instant::now()), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_vanishing_rate_waits_long_but_never_panics() {
        let mut pacer = Pacer::new();
        let now = Instant::now();
        for rate in [1e-300, f64::MIN_POSITIVE, 1e-9] {
            pacer.reserve(1_000_000, Some(rate), now);
            assert_eq!(pacer.reserve(1, Some(rate), now), MAX_SHARE);
            pacer.reserve(1, None, now);
        }
    }

    #[test]
    fn throttled_batches_are_small() {
        assert_eq!(max_docs_per_batch(None), usize::MAX);
        assert_eq!(max_docs_per_batch(Some(100.0)), 25);
        assert_eq!(max_docs_per_batch(Some(1.0)), 1);
    }

    #[test]
    fn background_batches_are_small_and_the_throttle_still_counts() {
        let control = |rate, background| Control {
            paused: false,
            requests_per_second: rate,
            background,
        };
        // (throttle, background, yielding pace) -> docs per batch
        let rows: [(Option<f64>, bool, Option<f64>, usize); 8] = [
            (None, false, None, usize::MAX),
            (None, true, None, BACKGROUND_BATCH_DOCS),
            (Some(100.0), true, None, 25),
            (Some(100_000.0), false, None, 25_000),
            (Some(100_000.0), true, None, BACKGROUND_BATCH_DOCS),
            // Yielding: the slower of the throttle and the pace counts...
            (None, true, Some(400.0), 100),
            (Some(200.0), true, Some(400.0), 50),
            // ...but only at background priority.
            (None, false, Some(400.0), usize::MAX),
        ];
        for (i, (rate, background, yielding, docs)) in rows.into_iter().enumerate() {
            let c = control(rate, background);
            assert_eq!(c.max_docs_per_batch(yielding), docs, "row {i}");
        }
        assert_eq!(control(Some(200.0), true).rate(Some(400.0)), Some(200.0));
        assert_eq!(control(None, true).rate(Some(0.0)), None);
    }
}
