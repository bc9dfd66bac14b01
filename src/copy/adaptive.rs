//! The bulk writers' concurrency limit, adapted by additive increase and
//! multiplicative decrease: +1 after a window of healthy answers while the
//! limit was fully used — and while the last +1 paid off; ×0.75 on
//! backpressure (a 429 or 5xx, whole request or a single item) or on a
//! latency spike. Pure logic, driven by tests.
//!
//! "Paid off": each level's throughput is estimated as limit ÷ cost, the
//! cost being an answer's latency per MiB indexed. A saturated cluster
//! answers every request more slowly when one more is in flight, and no
//! more documents per second arrive (on a 2-core node, 8 in flight copied
//! 15 % slower than 3–4); growth stops at the level that gains less than
//! half of what one more request would give a cluster that scales (+25 %
//! from 2 to 3, +17 % from 3 to 4, +7 % from 7 to 8). Levels are compared
//! only with their neighbour, measured minutes apart at most: every so
//! often a blocked limit steps one down and measures again, so a cluster
//! that changes speed is followed.

use std::time::Duration;

/// One bulk answer without backpressure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    pub latency: Duration,
    /// The request body's size.
    pub bytes: usize,
    /// Bytes of the documents it indexed (superseded ones, answered 409
    /// without indexing, not counted).
    pub indexed: usize,
}

impl Answer {
    /// Seconds per MiB, when the answer says something about the cluster's
    /// indexing speed: a body of real size, nearly all of it indexed.
    fn cost(&self) -> Option<f64> {
        let representative = self.bytes >= MIN_COST_BYTES && self.indexed * 10 >= self.bytes * 9;
        representative.then(|| self.latency.as_secs_f64() * (1 << 20) as f64 / self.bytes as f64)
    }
}

/// What one bulk answer says about the cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// Answered without backpressure; `at_limit` when every permit was in
    /// use, i.e. more concurrency was actually wanted.
    Healthy { answer: Answer, at_limit: bool },
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
    /// Exponentially weighted mean and mean deviation of the cost, for
    /// spikes; `samples` answers had a cost.
    mean: f64,
    deviation: f64,
    samples: u64,
    /// This level's cost (weighted mean), once `level_seen` exceeds the
    /// answers still sent at the previous level.
    level_cost: Option<f64>,
    level_seen: usize,
    /// Throughput (limit ÷ cost) of the level just below, when measured.
    below: Option<f64>,
    /// Answers at the limit whose growth the last step's result refused.
    blocked: usize,
}

const DECREASE: f64 = 0.75;
const WEIGHT: f64 = 0.1;
/// Latency above mean + this many deviations counts as congestion.
const SPIKE: f64 = 3.0;
const WARMUP: u64 = 10;
/// Weight of the latest answer in a level's cost.
const LEVEL_WEIGHT: f64 = 0.3;
/// Answers with a cost a level needs, beyond those sent before it began.
const LEVEL_SAMPLES: usize = 3;
/// A step up must raise throughput by this share of what a cluster that
/// scales would give (+1 of limit − 1), or growth stops there.
const GAIN_SHARE: f64 = 0.5;
/// After this many refused windows at one level, step down and measure again.
const PROBE_WINDOWS: usize = 50;
/// Bodies smaller than this say little about indexing speed.
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
            samples: 0,
            level_cost: None,
            level_seen: 0,
            below: None,
            blocked: 0,
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
            self.set_limit(self.max, None);
        }
        self.limit
    }

    /// Takes one answer into account and returns the new limit.
    pub fn observe(&mut self, signal: Signal) -> usize {
        self.cooldown = self.cooldown.saturating_sub(1);
        match signal {
            Signal::Backpressure => self.decrease(),
            Signal::Healthy { answer, at_limit } => {
                if let Some(cost) = answer.cost() {
                    let spike = self.samples >= WARMUP
                        && cost > self.mean + SPIKE * self.deviation.max(self.mean * 0.05);
                    self.learn(cost);
                    if spike {
                        self.decrease();
                        return self.limit;
                    }
                }
                if at_limit {
                    self.grow_if_it_pays();
                }
            }
        }
        self.limit
    }

    /// One healthy answer at the limit: +1 after a window of them, unless
    /// the measurements say the last step gained nothing.
    fn grow_if_it_pays(&mut self) {
        if self.samples > 0 {
            // Costs are known: wait for this level's, then compare.
            let measured = self.level_seen >= self.limit + LEVEL_SAMPLES;
            let Some(cost) = self.level_cost.filter(|_| measured) else {
                return;
            };
            let here = self.limit as f64 / cost;
            // A cluster that scales gains limit ÷ (limit − 1) from a step;
            // half of that must show, or the step bought only queueing.
            let wanted = 1.0 + GAIN_SHARE / (self.limit.max(2) - 1) as f64;
            if self.below.is_some_and(|below| here < below * wanted) {
                self.healthy_at_limit = 0;
                self.blocked += 1;
                if self.blocked >= PROBE_WINDOWS * self.limit && self.limit > 1 {
                    self.set_limit(self.limit - 1, None);
                }
                return;
            }
        }
        self.healthy_at_limit += 1;
        if self.healthy_at_limit >= self.limit && self.limit < self.max {
            let here = self.level_cost.map(|cost| self.limit as f64 / cost);
            self.set_limit(self.limit + 1, here);
        }
    }

    fn decrease(&mut self) {
        if self.cooldown > 0 {
            return;
        }
        let lower = ((self.limit as f64 * DECREASE).floor() as usize).max(1);
        self.set_limit(lower, None);
        self.cooldown = self.limit.max(2);
    }

    /// Moves to a new level; `below` is the throughput of the level under
    /// it when known.
    fn set_limit(&mut self, limit: usize, below: Option<f64>) {
        self.limit = limit;
        self.below = below;
        self.healthy_at_limit = 0;
        self.blocked = 0;
        self.level_cost = None;
        self.level_seen = 0;
    }

    fn learn(&mut self, cost: f64) {
        if self.samples == 0 {
            self.mean = cost;
        } else {
            self.deviation += WEIGHT * ((cost - self.mean).abs() - self.deviation);
            self.mean += WEIGHT * (cost - self.mean);
        }
        self.samples += 1;
        // Answers to requests sent before this level began come first.
        self.level_seen += 1;
        if self.level_seen > self.limit {
            self.level_cost = Some(match self.level_cost {
                Some(c) if self.level_seen > self.limit + LEVEL_SAMPLES => {
                    c + LEVEL_WEIGHT * (cost - c)
                }
                // The first few are averaged evenly.
                Some(c) => {
                    let n = (self.level_seen - self.limit) as f64;
                    c + (cost - c) / n
                }
                None => cost,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(ms: u64, bytes: usize, indexed: usize, at_limit: bool) -> Signal {
        Signal::Healthy {
            answer: Answer {
                latency: Duration::from_millis(ms),
                bytes,
                indexed,
            },
            at_limit,
        }
    }

    /// A 1 MiB body, all of it indexed, answered in `ms`.
    fn healthy(ms: u64, at_limit: bool) -> Signal {
        answer(ms, 1 << 20, 1 << 20, at_limit)
    }

    /// A body too small to tell the cluster's speed (throttled copies,
    /// tiny `batch_bytes`): plain additive increase.
    fn small(at_limit: bool) -> Signal {
        answer(20, 24 << 10, 24 << 10, at_limit)
    }

    /// Drives the limit through `steps` and returns it after each step.
    fn run(limit: &mut AdaptiveLimit, steps: &[(Signal, usize)]) -> Vec<usize> {
        steps
            .iter()
            .flat_map(|(signal, times)| std::iter::repeat_n(*signal, *times))
            .map(|s| limit.observe(s))
            .collect()
    }

    /// A node that works `capacity` requests at a time: beyond that, each
    /// one more in flight makes every answer wait longer, for no more
    /// documents per second. `slowdown` scales its speed over time.
    fn node(
        limit: &mut AdaptiveLimit,
        capacity: usize,
        answers: usize,
        slowdown: impl Fn(usize) -> f64,
    ) -> Vec<usize> {
        (0..answers)
            .map(|i| {
                let queued = limit.limit().max(capacity) as f64 / capacity as f64;
                let ms = (800.0 * queued * slowdown(i)) as u64;
                limit.observe(answer(ms, 8 << 20, 8 << 20, true))
            })
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
                steps: vec![(small(true), 1 + 2 + 3)],
                expected_final: 4,
            },
            Case {
                name: "never above max",
                initial: 6,
                max: 8,
                steps: vec![(small(true), 200)],
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
                    (small(true), 1 + 2 + 3 + 4 + 5 + 6 + 7 + 2),
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
            Case {
                name: "a cluster that keeps up gets the bound",
                initial: 2,
                max: 8,
                steps: vec![(healthy(100, true), 200)],
                expected_final: 8,
            },
            Case {
                name: "costs are per MiB: body sizes weigh alike",
                initial: 2,
                max: 8,
                steps: [
                    (answer(800, 8 << 20, 8 << 20, true), 1),
                    (healthy(100, true), 1),
                ]
                .repeat(100),
                expected_final: 8,
            },
            Case {
                name: "answers that indexed little teach nothing: fast 409s after a resume",
                initial: 2,
                max: 8,
                steps: vec![(answer(5, 8 << 20, 0, true), 30), (healthy(100, true), 200)],
                expected_final: 8,
            },
            Case {
                name: "nor do half-superseded ones: no spike",
                initial: 4,
                max: 8,
                steps: vec![
                    (healthy(100, false), 20),
                    (answer(400, 1 << 20, 1 << 19, false), 1),
                ],
                expected_final: 4,
            },
            Case {
                name: "one unusually fast answer does not stop growth for good",
                initial: 2,
                max: 8,
                steps: vec![
                    (healthy(100, true), 3),
                    (healthy(5, true), 3),
                    (healthy(100, true), 800),
                ],
                expected_final: 8,
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

    #[test]
    fn growth_stops_where_more_in_flight_only_queues() {
        let mut limit = AdaptiveLimit::new(2, 8);
        let trace = node(&mut limit, 2, 2000, |_| 1.0);
        // It finds the node's capacity, steps down now and then to check,
        // and never goes far past it.
        assert!(trace.iter().all(|l| (1..=4).contains(l)), "{trace:?}");
        let at_capacity = trace[100..].iter().filter(|l| (2..=3).contains(*l)).count();
        assert!(at_capacity * 10 >= (trace.len() - 100) * 9, "{trace:?}");
        // Capacity 6: it gets there.
        let mut limit = AdaptiveLimit::new(2, 8);
        let trace = node(&mut limit, 6, 600, |_| 1.0);
        assert!(
            trace[300..].iter().all(|l| (5..=8).contains(l)),
            "{trace:?}"
        );
    }

    #[test]
    fn a_cluster_slowing_down_is_followed() {
        // The node keeps up with 16, but gets 60 % slower over the copy.
        let mut limit = AdaptiveLimit::new(2, 8);
        let trace = node(&mut limit, 16, 600, |i| 1.0 + 0.6 * i as f64 / 600.0);
        assert_eq!(trace.last(), Some(&8), "{trace:?}");
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
        assert_eq!(run(&mut limit, &[(small(true), 20)]).last(), Some(&3));
        assert_eq!(limit.set_max(0), 1, "the bound is at least one");
        assert_eq!(limit.set_max(5), 1, "a higher bound is earned, not given");
        let grown = run(&mut limit, &[(small(true), 40)]);
        assert_eq!(grown.last(), Some(&5));
    }
}
