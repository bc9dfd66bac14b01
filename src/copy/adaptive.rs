//! The bulk writers' concurrency limit, adapted by additive increase and
//! multiplicative decrease: +1 after a window of healthy answers while the
//! limit was fully used and answers stay close to the fastest seen; ×0.75
//! on backpressure (a 429 or 5xx, whole request or a single item) or on a
//! latency spike. Pure logic, driven by tests.
//!
//! Latency is compared per MiB of request body, so small and large bulk
//! bodies weigh alike. "Close to the fastest seen" is what stops growth on
//! a saturated cluster before it queues: there, one more request in flight
//! makes every answer slower and no more documents per second arrive (on a
//! 2-core node, 8 requests in flight copied 15 % slower than 4).

use std::time::Duration;

/// What one bulk answer says about the cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// A body of `bytes` answered without backpressure in `latency`;
    /// `at_limit` when every permit was in use, i.e. more concurrency was
    /// actually wanted.
    Healthy {
        latency: Duration,
        bytes: usize,
        at_limit: bool,
    },
    /// A 429 or 5xx (for the request or any item), or no answer.
    Backpressure,
}

#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    limit: usize,
    max: usize,
    /// Healthy answers at the limit since the last change.
    healthy_at_limit: usize,
    /// Answers still to come before another decrease may happen: one
    /// decrease per window, not one per answer of the same burst.
    cooldown: usize,
    /// Exponentially weighted mean and mean deviation of the cost
    /// (seconds per MiB), for spikes.
    mean: f64,
    deviation: f64,
    /// A faster-moving mean of the cost, and the lowest cost seen.
    recent: f64,
    fastest: f64,
    samples: u64,
}

const DECREASE: f64 = 0.75;
const WEIGHT: f64 = 0.1;
/// Latency above mean + this many deviations counts as congestion.
const SPIKE: f64 = 3.0;
const WARMUP: u64 = 10;
/// Weight of the latest answer in `recent`.
const RECENT_WEIGHT: f64 = 0.3;
/// Growth stops while recent answers cost more than this times the fastest.
const QUEUEING: f64 = 1.5;
/// Bodies smaller than this are costed as this size (fixed overheads).
const MIN_COST_BYTES: usize = 64 << 10;

impl AdaptiveLimit {
    pub fn new(initial: usize, max: usize) -> Self {
        let max = max.max(1);
        AdaptiveLimit {
            limit: initial.clamp(1, max),
            max,
            healthy_at_limit: 0,
            cooldown: 0,
            mean: 0.0,
            deviation: 0.0,
            recent: 0.0,
            fastest: f64::INFINITY,
            samples: 0,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Changes the upper bound; a limit above it drops to it. Returns the
    /// new limit.
    pub fn set_max(&mut self, max: usize) -> usize {
        self.max = max.max(1);
        if self.limit > self.max {
            self.limit = self.max;
            self.healthy_at_limit = 0;
        }
        self.limit
    }

    /// Takes one answer into account and returns the new limit.
    pub fn observe(&mut self, signal: Signal) -> usize {
        self.cooldown = self.cooldown.saturating_sub(1);
        match signal {
            Signal::Backpressure => self.decrease(),
            Signal::Healthy {
                latency,
                bytes,
                at_limit,
            } => {
                let cost =
                    latency.as_secs_f64() * (1 << 20) as f64 / bytes.max(MIN_COST_BYTES) as f64;
                let spike = self.samples >= WARMUP
                    && cost > self.mean + SPIKE * self.deviation.max(self.mean * 0.05);
                self.learn(cost);
                if spike {
                    self.decrease();
                } else if self.recent > self.fastest * QUEUEING {
                    // Queueing: more in flight would only wait longer.
                    self.healthy_at_limit = 0;
                } else if at_limit {
                    self.healthy_at_limit += 1;
                    if self.healthy_at_limit >= self.limit && self.limit < self.max {
                        self.limit += 1;
                        self.healthy_at_limit = 0;
                    }
                }
            }
        }
        self.limit
    }

    fn decrease(&mut self) {
        if self.cooldown > 0 {
            return;
        }
        self.limit = ((self.limit as f64 * DECREASE).floor() as usize).max(1);
        self.healthy_at_limit = 0;
        self.cooldown = self.limit.max(2);
    }

    fn learn(&mut self, cost: f64) {
        if self.samples == 0 {
            self.mean = cost;
            self.recent = cost;
        } else {
            self.deviation += WEIGHT * ((cost - self.mean).abs() - self.deviation);
            self.mean += WEIGHT * (cost - self.mean);
            self.recent += RECENT_WEIGHT * (cost - self.recent);
        }
        self.fastest = self.fastest.min(cost);
        self.samples += 1;
    }
}

/// Permits for bulk requests in flight, their number following an
/// [`AdaptiveLimit`]. A writer holds a permit for its whole request,
/// retries included, so backpressure is structural.
#[derive(Debug)]
pub struct Concurrency {
    semaphore: std::sync::Arc<tokio::sync::Semaphore>,
    state: std::sync::Mutex<Limits>,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

#[derive(Debug)]
struct Limits {
    adaptive: AdaptiveLimit,
    /// Permits to retire as writers return them, after a decrease.
    debt: usize,
}

impl Concurrency {
    pub fn new(
        initial: usize,
        max: usize,
        gauge: prometheus_client::metrics::gauge::Gauge,
    ) -> Self {
        let adaptive = AdaptiveLimit::new(initial, max);
        gauge.set(adaptive.limit() as i64);
        Concurrency {
            semaphore: std::sync::Arc::new(tokio::sync::Semaphore::new(adaptive.limit())),
            state: std::sync::Mutex::new(Limits { adaptive, debt: 0 }),
            gauge,
        }
    }

    pub async fn acquire(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Feeds one answer to a body of `bytes` to the limit; `latency` is
    /// `None` for backpressure.
    pub fn feedback(&self, latency: Option<Duration>, bytes: usize) {
        let at_limit = self.semaphore.available_permits() == 0;
        let signal = match latency {
            Some(latency) => Signal::Healthy {
                latency,
                bytes,
                at_limit,
            },
            None => Signal::Backpressure,
        };
        let mut state = self.state.lock().expect("limit lock");
        let before = state.adaptive.limit();
        let after = state.adaptive.observe(signal);
        self.resize(&mut state, before, after);
    }

    /// A new upper bound (a reload): the limit drops to it at once if
    /// above, and may grow up to it again.
    pub fn set_max(&self, max: usize) {
        let mut state = self.state.lock().expect("limit lock");
        let before = state.adaptive.limit();
        let after = state.adaptive.set_max(max);
        self.resize(&mut state, before, after);
    }

    /// Adds or takes away permits for a limit change; permits held by
    /// requests in flight are taken back as they are released.
    fn resize(&self, state: &mut Limits, before: usize, after: usize) {
        if after > before {
            let grow = after - before;
            let repaid = grow.min(state.debt);
            state.debt -= repaid;
            self.semaphore.add_permits(grow - repaid);
        } else if after < before {
            let mut shrink = before - after;
            while shrink > 0 {
                match self.semaphore.try_acquire() {
                    Ok(p) => {
                        p.forget();
                        shrink -= 1;
                    }
                    Err(_) => break,
                }
            }
            state.debt += shrink;
        }
        self.gauge.set(after as i64);
    }

    pub fn release(&self, permit: tokio::sync::OwnedSemaphorePermit) {
        let mut state = self.state.lock().expect("limit lock");
        if state.debt > 0 {
            state.debt -= 1;
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy(ms: u64, at_limit: bool) -> Signal {
        Signal::Healthy {
            latency: Duration::from_millis(ms),
            bytes: 1 << 20,
            at_limit,
        }
    }

    /// Drives the limit through `steps` and returns it after each step.
    fn run(limit: &mut AdaptiveLimit, steps: &[(Signal, usize)]) -> Vec<usize> {
        steps
            .iter()
            .flat_map(|(signal, times)| std::iter::repeat_n(*signal, *times))
            .map(|s| limit.observe(s))
            .collect()
    }

    #[test]
    fn scenarios() {
        struct Case {
            name: &'static str,
            initial: usize,
            max: usize,
            steps: Vec<(Signal, usize)>,
            expected_final: usize,
        }
        let cases = [
            Case {
                name: "grows by one per window while used to the limit",
                initial: 1,
                max: 8,
                steps: vec![(healthy(100, true), 1 + 2 + 3)],
                expected_final: 4,
            },
            Case {
                name: "never above max",
                initial: 6,
                max: 8,
                steps: vec![(healthy(100, true), 200)],
                expected_final: 8,
            },
            Case {
                name: "does not grow when the limit is not used",
                initial: 2,
                max: 8,
                steps: vec![(healthy(100, false), 100)],
                expected_final: 2,
            },
            Case {
                name: "backpressure cuts by a quarter",
                initial: 8,
                max: 8,
                steps: vec![(Signal::Backpressure, 1)],
                expected_final: 6,
            },
            Case {
                name: "one cut per burst, not per answer",
                initial: 8,
                max: 8,
                steps: vec![(Signal::Backpressure, 3)],
                expected_final: 6,
            },
            Case {
                name: "a storm drives it to one, never zero",
                initial: 8,
                max: 8,
                steps: vec![(Signal::Backpressure, 100)],
                expected_final: 1,
            },
            Case {
                name: "recovers after the storm",
                initial: 8,
                max: 8,
                steps: vec![
                    (Signal::Backpressure, 100),
                    (healthy(100, true), 1 + 2 + 3 + 4 + 5 + 6 + 7 + 2),
                ],
                expected_final: 8,
            },
            Case {
                name: "a latency spike counts as congestion",
                initial: 4,
                max: 8,
                steps: vec![(healthy(100, false), 20), (healthy(2_000, false), 1)],
                expected_final: 3,
            },
        ];
        for case in cases {
            let mut limit = AdaptiveLimit::new(case.initial, case.max);
            let trace = run(&mut limit, &case.steps);
            assert_eq!(
                *trace.last().unwrap(),
                case.expected_final,
                "{}: {trace:?}",
                case.name
            );
            assert!(
                trace.iter().all(|l| (1..=case.max).contains(l)),
                "{}: {trace:?}",
                case.name
            );
        }
    }

    /// A node that works `capacity` requests at a time: beyond that, each
    /// one more in flight makes every answer wait longer.
    fn saturated(limit: &mut AdaptiveLimit, capacity: usize, answers: usize) -> Vec<usize> {
        (0..answers)
            .map(|_| {
                let queued = limit.limit().max(capacity) as u64;
                limit.observe(Signal::Healthy {
                    latency: Duration::from_millis(100 * queued / capacity as u64),
                    bytes: 8 << 20,
                    at_limit: true,
                })
            })
            .collect()
    }

    #[test]
    fn growth_stops_where_answers_start_to_queue() {
        let mut limit = AdaptiveLimit::new(2, 8);
        let trace = saturated(&mut limit, 2, 500);
        // Twice the node's capacity at most, far from the bound of 8.
        assert!(trace.iter().all(|l| *l <= 4), "{trace:?}");
        assert!((3..=4).contains(trace.last().unwrap()), "{trace:?}");
        // A cluster that keeps up grows to the bound.
        let mut limit = AdaptiveLimit::new(2, 8);
        assert_eq!(saturated(&mut limit, 16, 100).last(), Some(&8));
    }

    #[test]
    fn cost_is_per_mib_so_body_sizes_weigh_alike() {
        let mut limit = AdaptiveLimit::new(1, 8);
        // 8 MiB in 800 ms and 1 MiB in 100 ms cost the same: no queueing.
        for i in 0..40 {
            let (ms, mib) = if i % 2 == 0 { (800, 8) } else { (100, 1) };
            limit.observe(Signal::Healthy {
                latency: Duration::from_millis(ms),
                bytes: mib << 20,
                at_limit: true,
            });
        }
        assert_eq!(limit.limit(), 8);
    }

    #[test]
    fn steady_latency_noise_is_not_a_spike() {
        let mut limit = AdaptiveLimit::new(4, 8);
        for i in 0..200 {
            limit.observe(healthy(100 + (i % 5) * 10, false));
        }
        assert_eq!(limit.limit(), 4);
    }

    #[test]
    fn a_lower_max_caps_the_limit_at_once_and_a_higher_one_lets_it_grow() {
        let mut limit = AdaptiveLimit::new(6, 8);
        assert_eq!(limit.set_max(3), 3);
        assert_eq!(run(&mut limit, &[(healthy(10, true), 20)]).last(), Some(&3));
        assert_eq!(limit.set_max(0), 1, "the bound is at least one");
        assert_eq!(limit.set_max(5), 1, "a higher bound is earned, not given");
        let grown = run(&mut limit, &[(healthy(10, true), 40)]);
        assert_eq!(grown.last(), Some(&5));
    }

    #[tokio::test]
    async fn permits_follow_a_new_max_even_while_held() {
        let gauge = prometheus_client::metrics::gauge::Gauge::default();
        let concurrency = Concurrency::new(4, 8, gauge.clone());
        let held = [
            concurrency.acquire().await,
            concurrency.acquire().await,
            concurrency.acquire().await,
        ];
        concurrency.set_max(2);
        assert_eq!(gauge.get(), 2);
        // One free permit was retired now; one held permit retires on return.
        assert_eq!(concurrency.semaphore.available_permits(), 0);
        for permit in held {
            concurrency.release(permit);
        }
        assert_eq!(concurrency.semaphore.available_permits(), 2);
        concurrency.set_max(8);
        assert_eq!(concurrency.semaphore.available_permits(), 2);
    }
}
