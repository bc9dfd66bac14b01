//! Background priority: the copy yields to live search. A probe search on
//! the read alias (`copy.search_probe`) every [`PROBE_EVERY`] gauges
//! search latency against a baseline taken before the copy writes, and a
//! rise in the search thread pools' rejections counts too. While searches
//! suffer, the concurrency limit is cut as for a 429 and a pause doubles
//! (up to [`MAX_PAUSE`]) that each free bulk slot waits before its next
//! bulk, so the node idles between bulks (which are small at this
//! priority: `Control::max_docs_per_batch`); once searches recover the
//! pause shrinks away and the limit grows back as it always does. The
//! decisions are a pure function of the samples ([`Yield`]), unit-tested.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use serde_json::Value;
use std::sync::atomic::AtomicU64;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::control::Control;
use super::permits::Concurrency;
use crate::es::EsClient;

/// How often a background copy looks at search.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// The longest pause between two batches.
pub const MAX_PAUSE: Duration = Duration::from_secs(2);
/// The first pause once searches suffer.
const MIN_PAUSE: Duration = Duration::from_millis(20);
/// Probes whose median is judged: one slow answer is not a trend.
const WINDOW: usize = 3;

/// The search a background copy probes with.
#[derive(Debug, Clone)]
pub struct SearchProbe {
    /// The read alias: what live searches hit.
    pub index: String,
    pub body: Value,
}

/// What the latest samples say about live search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Slower than the baseline allows, or searches were rejected.
    Suffering,
    /// Back near the baseline.
    Healthy,
    /// In between: keep the pause as it is.
    Steady,
}

/// The pause between batches, from probe latencies against a baseline.
#[derive(Debug, Clone)]
pub struct Yield {
    baseline: Duration,
    recent: VecDeque<Duration>,
    pause: Duration,
}

impl Yield {
    pub fn new(baseline: Duration) -> Self {
        Yield {
            baseline,
            recent: VecDeque::with_capacity(WINDOW),
            pause: Duration::ZERO,
        }
    }

    pub fn pause(&self) -> Duration {
        self.pause
    }

    /// One probe: its latency (`None`: it failed) and whether searches
    /// were rejected since the last one. Returns the verdict; the pause
    /// follows it.
    pub fn observe(&mut self, latency: Option<Duration>, rejected: bool) -> Verdict {
        if let Some(latency) = latency {
            if self.recent.len() == WINDOW {
                self.recent.pop_front();
            }
            self.recent.push_back(latency);
        }
        let mut sorted: Vec<Duration> = self.recent.iter().copied().collect();
        sorted.sort();
        // The lower median: two samples, one slow, are not yet a trend.
        let median = sorted.get(sorted.len().saturating_sub(1) / 2).copied();
        // A margin in absolute terms too: a 1 ms baseline must not turn
        // 2 ms of noise into "suffering".
        let slow = self.baseline.mul_f64(1.25) + Duration::from_millis(2);
        let near = self.baseline.mul_f64(1.1) + Duration::from_millis(1);
        let verdict = match median {
            _ if rejected || latency.is_none() => Verdict::Suffering,
            Some(m) if m > slow => Verdict::Suffering,
            Some(m) if m <= near => Verdict::Healthy,
            _ => Verdict::Steady,
        };
        self.pause = match verdict {
            Verdict::Suffering => (self.pause * 2).clamp(MIN_PAUSE, MAX_PAUSE),
            Verdict::Healthy if self.pause * 3 / 4 < MIN_PAUSE / 2 => Duration::ZERO,
            Verdict::Healthy => self.pause * 3 / 4,
            Verdict::Steady => self.pause,
        };
        verdict
    }
}

/// The running copy's side of background priority: probes while the
/// copy's control says `background`, cuts `concurrency` while searches
/// suffer, and publishes the pause between batches in `pause` (seconds;
/// also the copy's `copy_yield_seconds` metric). Ends with `cancel`.
pub async fn follow_search(
    es: EsClient,
    probe: SearchProbe,
    baseline: Duration,
    mut control: watch::Receiver<Control>,
    concurrency: Arc<Concurrency>,
    pause: Gauge<f64, AtomicU64>,
    cancel: CancellationToken,
) {
    let mut judge = Yield::new(baseline);
    let mut rejected = es.search_rejections().await.ok();
    let mut ticks = tokio::time::interval(PROBE_EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if !control.borrow_and_update().background {
            judge = Yield::new(baseline);
            pause.set(0.0);
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = control.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let latency = timed(&es, &probe).await;
        let now = es.search_rejections().await.ok();
        let more_rejected = matches!((rejected, now), (Some(before), Some(now)) if now > before);
        rejected = now.or(rejected);
        let before = judge.pause();
        if judge.observe(latency, more_rejected) == Verdict::Suffering {
            concurrency.feedback(None);
        }
        if judge.pause() != before {
            debug!(
                pause_ms = judge.pause().as_millis() as u64,
                ?latency,
                "yielding to live search"
            );
        }
        pause.set(judge.pause().as_secs_f64());
    }
}

/// The median of a few probes: taken before the copy reads or writes,
/// whatever its priority (it may be switched to background later).
pub async fn baseline(es: &EsClient, probe: &SearchProbe) -> Duration {
    let mut samples = Vec::new();
    for _ in 0..5 {
        if let Some(latency) = timed(es, probe).await {
            samples.push(latency);
        }
    }
    samples.sort();
    match samples.get(samples.len() / 2) {
        Some(median) => {
            info!(index = %probe.index, baseline_ms = median.as_secs_f64() * 1000.0, "search latency before the copy");
            *median
        }
        None => {
            warn!(index = %probe.index, "the search probe fails: a background copy yields on every probe");
            Duration::ZERO
        }
    }
}

async fn timed(es: &EsClient, probe: &SearchProbe) -> Option<Duration> {
    let started = Instant::now();
    match es.probe_search(&probe.index, &probe.body).await {
        Ok(()) => Some(started.elapsed()),
        Err(e) => {
            debug!(error = %e, "search probe failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_follows_search_latency() {
        let ms = Duration::from_millis;
        let mut judge = Yield::new(ms(10));
        // (probe latency, searches rejected) -> (verdict, pause after)
        let rows: [(Option<u64>, bool, Verdict, u64); 12] = [
            (Some(10), false, Verdict::Healthy, 0),
            (Some(30), false, Verdict::Healthy, 0), // one slow probe: the median holds
            (Some(30), false, Verdict::Suffering, 20),
            (Some(40), false, Verdict::Suffering, 40),
            (Some(40), false, Verdict::Suffering, 80),
            (Some(13), false, Verdict::Suffering, 160), // median still 40
            (Some(13), false, Verdict::Steady, 160),    // 13 ms: between near (12) and slow (14.5)
            (Some(11), false, Verdict::Steady, 160),    // median 13 still
            (Some(11), true, Verdict::Suffering, 320),  // rejections count whatever the latency
            (None, false, Verdict::Suffering, 640),     // a failed probe is no good sign
            (Some(10), false, Verdict::Healthy, 480),
            (Some(10), false, Verdict::Healthy, 360),
        ];
        for (i, (latency, rejected, verdict, pause)) in rows.into_iter().enumerate() {
            assert_eq!(judge.observe(latency.map(ms), rejected), verdict, "row {i}");
            assert_eq!(judge.pause(), ms(pause), "row {i}");
        }
    }

    #[test]
    fn the_pause_is_bounded_and_recovers_to_zero() {
        let ms = Duration::from_millis;
        let mut judge = Yield::new(ms(5));
        for _ in 0..20 {
            judge.observe(Some(ms(500)), false);
        }
        assert_eq!(judge.pause(), MAX_PAUSE);
        let mut steps = 0;
        while judge.pause() > Duration::ZERO {
            judge.observe(Some(ms(5)), false);
            steps += 1;
            assert!(steps < 40, "the pause never went away: {:?}", judge.pause());
        }
        // Healthy probes go on: nothing changes.
        assert_eq!(judge.observe(Some(ms(5)), false), Verdict::Healthy);
        assert_eq!(judge.pause(), Duration::ZERO);
    }
}
