//! Background priority: the copy yields to live search. A probe search on
//! the read alias (`copy.search_probe`) every [`PROBE_EVERY`] gauges
//! search latency against a baseline taken before the copy writes, and a
//! rise in the search thread pools' rejections counts too. While searches
//! suffer, the concurrency limit is cut as for a 429 and the copy paces
//! itself: a rate, first three quarters of what it was copying, cut by a
//! quarter at each probe that still finds searches suffering (down to
//! [`MIN_RATE`]) and raised by 5 % at each one that finds them back near
//! the baseline, until the copy no longer reaches it and it is lifted.
//! The throttle's pacer enforces it (the slower of the two counts), so the
//! copy's work reaches the node in small, evenly spaced bulks: measured,
//! bursts at full speed between idle pauses cost live search more than an
//! even pace of the same average. A minute at [`MIN_RATE`] with search
//! still slow makes that latency the new baseline ([`REBASE_AFTER`]): the
//! copy is not what slows it. The decisions are a pure function of the
//! samples ([`Yield`]), unit-tested.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::control::Control;
use super::permits::Concurrency;
use super::stats::CopyStats;
use crate::es::EsClient;

/// How often a background copy looks at search.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// The slowest a yielding copy goes, documents per second: searches that
/// suffer for reasons of their own do not stop it.
pub const MIN_RATE: f64 = 50.0;
/// Each probe that finds searches suffering cuts the pace to this share.
const CUT: f64 = 0.75;
/// Each probe that finds them back near the baseline raises it this much.
const GROW: f64 = 1.05;
/// Weight of the latest probe interval in the copy's observed rate.
const RATE_WEIGHT: f64 = 0.3;
/// Probes whose median is judged: one slow answer is not a trend.
const WINDOW: usize = 3;
/// Probes (a minute of them) at [`MIN_RATE`] after which search that is
/// still slow is taken as the new normal: the copy barely runs, so the
/// slowness is not its doing (the machine got slower, the application's
/// traffic grew), and a copy held at the floor by it would never end.
const REBASE_AFTER: usize = 240;

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
    /// In between: keep the pace as it is.
    Steady,
}

/// The pace a background copy allows itself, from probe latencies against
/// a baseline and the rate the copy achieves.
#[derive(Debug, Clone)]
pub struct Yield {
    baseline: Duration,
    recent: VecDeque<Duration>,
    /// Documents per second the copy got done lately (weighted mean).
    copying: Option<f64>,
    /// `None`: not yielding.
    pace: Option<f64>,
    /// Probe latencies since the pace reached [`MIN_RATE`].
    at_floor: Vec<Duration>,
}

impl Yield {
    pub fn new(baseline: Duration) -> Self {
        Yield {
            baseline,
            recent: VecDeque::with_capacity(WINDOW),
            copying: None,
            pace: None,
            at_floor: Vec::new(),
        }
    }

    /// The latency that counts as search not suffering.
    pub fn baseline(&self) -> Duration {
        self.baseline
    }

    /// Documents per second the copy may send now; `None`: as many as it can.
    pub fn pace(&self) -> Option<f64> {
        self.pace
    }

    /// One probe: its latency (`None`: it failed), whether searches were
    /// rejected since the last one, and the documents per second the copy
    /// got done since the last one. Returns the verdict; the pace follows it.
    pub fn observe(&mut self, latency: Option<Duration>, rejected: bool, done: f64) -> Verdict {
        let copying = match self.copying {
            Some(mean) => mean + RATE_WEIGHT * (done - mean),
            None => done,
        };
        self.copying = Some(copying);
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
        self.pace = match verdict {
            Verdict::Suffering => Some((self.pace.unwrap_or(copying) * CUT).max(MIN_RATE)),
            // Lifted once the copy no longer reaches it: the pace no
            // longer holds it back.
            Verdict::Healthy => self
                .pace
                .map(|pace| pace * GROW)
                .filter(|pace| *pace <= 2.0 * copying + MIN_RATE),
            Verdict::Steady => self.pace,
        };
        self.rebase_at_floor(latency);
        verdict
    }

    /// After [`REBASE_AFTER`] probes with the pace at [`MIN_RATE`], the
    /// median latency of those probes becomes the baseline when it is
    /// higher: what search takes with the copy all but stopped.
    fn rebase_at_floor(&mut self, latency: Option<Duration>) {
        if self.pace != Some(MIN_RATE) {
            self.at_floor.clear();
            return;
        }
        self.at_floor.extend(latency);
        if self.at_floor.len() < REBASE_AFTER {
            return;
        }
        self.at_floor.sort();
        let median = self.at_floor[self.at_floor.len() / 2];
        self.baseline = self.baseline.max(median);
        self.at_floor.clear();
    }
}

/// The running copy's side of background priority: probes while the
/// copy's control says `background`, cuts `concurrency` while searches
/// suffer, and publishes the pace the copy allows itself in `pace`
/// (documents per second, 0 while not yielding; also the copy's
/// `copy_yield_documents_per_second` metric), judging the rate at which
/// the copy gets documents done (`stats`). Ends with `cancel`.
#[allow(clippy::too_many_arguments)]
pub async fn follow_search(
    es: EsClient,
    probe: SearchProbe,
    baseline: Duration,
    mut control: watch::Receiver<Control>,
    concurrency: Arc<Concurrency>,
    stats: Arc<CopyStats>,
    pace: Gauge<f64, AtomicU64>,
    cancel: CancellationToken,
) {
    let mut judge = Yield::new(baseline);
    let mut rejected = es.search_rejections().await.ok();
    let mut ticks = tokio::time::interval(PROBE_EVERY);
    let mut last = (Instant::now(), stats.done());
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if !control.borrow_and_update().background {
            judge = Yield::new(baseline);
            pace.set(0.0);
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = control.changed() => if changed.is_err() { return },
            }
            last = (Instant::now(), stats.done());
            continue;
        }
        let latency = timed(&es, &probe).await;
        let now = es.search_rejections().await.ok();
        let more_rejected = matches!((rejected, now), (Some(before), Some(now)) if now > before);
        rejected = now.or(rejected);
        let here = (Instant::now(), stats.done());
        let seconds = here.0.duration_since(last.0).as_secs_f64();
        let rate = if seconds > 0.0 {
            here.1.saturating_sub(last.1) as f64 / seconds
        } else {
            0.0
        };
        last = here;
        let before = (judge.pace(), judge.baseline());
        if judge.observe(latency, more_rejected, rate) == Verdict::Suffering {
            concurrency.feedback(None);
        }
        if judge.pace() != before.0 {
            debug!(pace = ?judge.pace(), ?latency, "yielding to live search");
        }
        if judge.baseline() != before.1 {
            info!(
                baseline_ms = judge.baseline().as_secs_f64() * 1000.0,
                "search stays slow while the copy barely runs: that is its new normal"
            );
        }
        pace.set(judge.pace().unwrap_or(0.0));
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
    fn the_pace_follows_search_latency() {
        let ms = Duration::from_millis;
        let mut judge = Yield::new(ms(10));
        // (probe latency, searches rejected, docs/s done) -> (verdict, pace after)
        type Row = (Option<u64>, bool, f64, Verdict, Option<f64>);
        let rows: [Row; 14] = [
            (Some(10), false, 4000.0, Verdict::Healthy, None),
            (Some(30), false, 4000.0, Verdict::Healthy, None), // one slow probe: the median holds
            // Suffering: three quarters of what the copy was sending...
            (Some(30), false, 4000.0, Verdict::Suffering, Some(3000.0)),
            // ...then a quarter less at each probe that still suffers.
            (Some(40), false, 3000.0, Verdict::Suffering, Some(2250.0)),
            (Some(13), false, 2250.0, Verdict::Suffering, Some(1687.5)), // median still 30
            (Some(13), false, 1687.5, Verdict::Steady, Some(1687.5)), // 13 ms: between near (12) and slow (14.5)
            (Some(11), true, 1687.5, Verdict::Suffering, Some(1265.625)), // rejections count whatever the latency
            (None, false, 1265.0, Verdict::Suffering, Some(949.21875)), // a failed probe is no good sign
            // Healthy: 5 % more at each probe.
            (Some(10), false, 949.0, Verdict::Healthy, Some(996.68)),
            (Some(10), false, 996.0, Verdict::Healthy, Some(1046.51)),
            // The copy stops reaching the pace (its reads are slow): the
            // pace climbs on while the copy's rate (a weighted mean: 1070,
            // 749, 524) falls, until it is past twice that plus MIN_RATE...
            (Some(10), false, 0.0, Verdict::Healthy, Some(1098.84)),
            (Some(10), false, 0.0, Verdict::Healthy, Some(1153.78)),
            (Some(10), false, 0.0, Verdict::Healthy, None),
            // ...and is lifted; healthy probes keep it so.
            (Some(10), false, 4000.0, Verdict::Healthy, None),
        ];
        let cents = |pace: Option<f64>| pace.map(|p| (p * 100.0).round() as u64);
        for (i, (latency, rejected, done, verdict, pace)) in rows.into_iter().enumerate() {
            assert_eq!(
                judge.observe(latency.map(ms), rejected, done),
                verdict,
                "row {i}"
            );
            assert_eq!(cents(judge.pace()), cents(pace), "row {i}");
        }
    }

    #[test]
    fn the_pace_is_bounded_below_and_lifted_once_searches_recover() {
        let ms = Duration::from_millis;
        let mut judge = Yield::new(ms(5));
        for _ in 0..40 {
            judge.observe(Some(ms(500)), false, 0.0);
        }
        assert_eq!(judge.pace(), Some(MIN_RATE));
        // Healthy while the copy sends what it may: the pace grows, 5 % a
        // probe, and is lifted once the copy no longer keeps up with it.
        let mut steps = 0;
        while let Some(pace) = judge.pace() {
            let done = pace.min(3000.0);
            judge.observe(Some(ms(5)), false, done);
            steps += 1;
            assert!(steps < 200, "the pace never went away: {pace}");
        }
        assert!(
            steps > 80,
            "lifted too soon: {steps} probes from {MIN_RATE} to 3000 docs/s"
        );
        // Healthy probes go on: nothing changes.
        assert_eq!(judge.observe(Some(ms(5)), false, 3000.0), Verdict::Healthy);
        assert_eq!(judge.pace(), None);
    }

    /// A judge whose copy hurt search (40 probes at 500 ms): its pace is
    /// at the floor, and those probes count towards the minute there.
    fn held_at_the_floor(baseline: Duration) -> Yield {
        let mut judge = Yield::new(baseline);
        for _ in 0..40 {
            judge.observe(Some(Duration::from_millis(500)), false, MIN_RATE);
        }
        assert_eq!(judge.pace(), Some(MIN_RATE));
        judge
    }

    #[test]
    fn search_that_stays_slow_with_the_copy_at_the_floor_becomes_the_baseline() {
        let ms = Duration::from_millis;
        let mut judge = held_at_the_floor(ms(5));
        // Then the machine gets slower for good: 20 ms with the copy all
        // but stopped. For a minute of probes nothing changes...
        let mut probes = 0;
        while judge.baseline() == ms(5) {
            assert_eq!(
                judge.observe(Some(ms(20)), false, MIN_RATE),
                Verdict::Suffering
            );
            assert_eq!(judge.pace(), Some(MIN_RATE));
            probes += 1;
            assert!(probes <= REBASE_AFTER, "never took 20 ms as normal");
        }
        // ...counted from the first probe at the floor: the 40 slow ones
        // count too.
        assert_eq!(probes, REBASE_AFTER - 40);
        assert_eq!(judge.baseline(), ms(20));
        // Now 20 ms is near the baseline: the pace grows again.
        assert_eq!(
            judge.observe(Some(ms(20)), false, MIN_RATE),
            Verdict::Healthy
        );
        assert!(judge.pace().unwrap() > MIN_RATE);
    }

    #[test]
    fn the_baseline_never_falls_and_leaving_the_floor_starts_the_count_again() {
        let ms = Duration::from_millis;
        let mut judge = held_at_the_floor(ms(30));
        // Probes in between (Steady: 36 ms) keep the floor; one healthy
        // stretch leaves it and the minute starts again.
        for _ in 0..REBASE_AFTER - 50 {
            assert_ne!(
                judge.observe(Some(ms(36)), false, MIN_RATE),
                Verdict::Healthy
            );
        }
        assert_eq!(judge.pace(), Some(MIN_RATE));
        for _ in 0..3 {
            judge.observe(Some(ms(30)), false, MIN_RATE);
        }
        assert!(judge.pace().unwrap() > MIN_RATE);
        for _ in 0..20 {
            judge.observe(Some(ms(500)), false, MIN_RATE);
        }
        assert_eq!(judge.pace(), Some(MIN_RATE));
        for _ in 0..REBASE_AFTER - 30 {
            judge.observe(Some(ms(40)), false, MIN_RATE);
        }
        assert_eq!(judge.baseline(), ms(30));
        // Fast probes at the floor (held there by rejections) never lower
        // it.
        let mut judge = Yield::new(ms(30));
        for _ in 0..2 * REBASE_AFTER {
            judge.observe(Some(ms(5)), true, MIN_RATE);
        }
        assert_eq!(judge.pace(), Some(MIN_RATE));
        assert_eq!(judge.baseline(), ms(30));
    }
}
