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
}

impl Control {
    /// The controls stored in a copy's progress.
    pub fn of(copy: &CopyProgress) -> Self {
        Control {
            paused: copy.paused,
            requests_per_second: copy.requests_per_second,
        }
    }
}

/// The longest time one batch may book. The configuration refuses rates
/// under one document a second, but the API and CLI throttle take any
/// positive rate, and at a vanishing one a batch's share of time does not
/// fit a `Duration`: the copy then waits this long (in effect paused, until
/// the next throttle) instead of panicking.
const MAX_SHARE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Spaces out batches so that documents sent stay at or under the rate:
/// before sending `n` documents, wait until the previous ones' share of
/// time has passed.
#[derive(Debug)]
pub struct Pacer {
    next_free: Instant,
}

impl Pacer {
    pub fn new() -> Self {
        Pacer {
            next_free: Instant::now(),
        }
    }

    /// How long to wait before sending `docs` documents at `rate`, and
    /// books their time.
    pub fn reserve(&mut self, docs: usize, rate: Option<f64>, now: Instant) -> Duration {
        let Some(rate) = rate.filter(|r| *r > 0.0) else {
            self.next_free = now;
            return Duration::ZERO;
        };
        let start = self.next_free.max(now);
        let share =
            Duration::try_from_secs_f64(docs as f64 / rate).map_or(MAX_SHARE, |d| d.min(MAX_SHARE));
        self.next_free = start + share;
        start - now
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

/// Waits while the copy is paused. Returns `false` if the sender is gone.
pub async fn wait_unpaused(control: &mut watch::Receiver<Control>) -> bool {
    control.wait_for(|c| !c.paused).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
