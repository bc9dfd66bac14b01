//! Permits for bulk requests in flight, as many as the [`AdaptiveLimit`]
//! allows: the limit's decisions turned into a semaphore that writers wait
//! on, and the gauge that shows it.

use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::adaptive::{AdaptiveLimit, Answer, Signal};

/// Permits for bulk requests in flight, their number following an
/// [`AdaptiveLimit`]. A writer holds a permit for its whole request,
/// retries included, so backpressure is structural.
#[derive(Debug)]
pub struct Concurrency {
    semaphore: Arc<Semaphore>,
    state: Mutex<Limits>,
    gauge: Gauge,
}

#[derive(Debug)]
struct Limits {
    adaptive: AdaptiveLimit,
    /// Permits to retire as writers return them, after a decrease.
    debt: usize,
}

impl Concurrency {
    pub fn new(initial: usize, max: usize, gauge: Gauge) -> Self {
        let adaptive = AdaptiveLimit::new(initial, max);
        gauge.set(adaptive.limit() as i64);
        Concurrency {
            semaphore: Arc::new(Semaphore::new(adaptive.limit())),
            state: Mutex::new(Limits { adaptive, debt: 0 }),
            gauge,
        }
    }

    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        self.semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Feeds one answer to the limit: `None` for backpressure.
    pub fn feedback(&self, answer: Option<Answer>) {
        let mut state = self.state.lock().expect("limit lock");
        // Every permit in use, and not more requests in flight than the
        // limit (a lowered bound leaves some until they return).
        let at_limit = self.semaphore.available_permits() == 0 && state.debt == 0;
        let signal = match answer {
            Some(answer) => Signal::Healthy { answer, at_limit },
            None => Signal::Backpressure,
        };
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
            // Idle permits go at once; the rest as writers return them.
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
        if after != before {
            tracing::debug!(from = before, to = after, "concurrency limit changed");
        }
        self.gauge.set(after as i64);
    }

    /// Returns a writer's permit, or retires it while a decrease is owed.
    pub fn release(&self, permit: OwnedSemaphorePermit) {
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

    #[tokio::test]
    async fn permits_follow_a_new_max_even_while_held() {
        let gauge = Gauge::default();
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
