//! Where the lifecycle and the copy read the time: state timestamps,
//! leases, generation names, retention. The system clock in the daemon;
//! tests install one they move by hand instead of sleeping past a
//! deadline.

use std::fmt::Debug;

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Debug + Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
