//! A reloaded configuration (SIGHUP) meets the running daemon: the copy
//! settings apply at once, everything else waits for the next start and
//! says so.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::copy::Jobs;
use crate::migration::{Action, Migrator};

/// Applies every configuration sent on `reloads` until shutdown.
pub(super) async fn follow(
    migrator: Migrator,
    jobs: Jobs,
    mut reloads: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = reloads.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
        let next = reloads.borrow_and_update().clone();
        apply(&migrator, &jobs, &next).await;
    }
}

/// `copy.max_concurrency` bounds every running copy at once (and later
/// ones); a changed `copy.requests_per_second` becomes the throttle of
/// every copy this process runs (stored, so status shows it) and the
/// default of later copies. An unchanged one leaves throttles set through
/// the API or CLI alone.
pub(super) async fn apply(migrator: &Migrator, jobs: &Jobs, next: &Config) {
    let later = migrator.config().restart_only_changes(next);
    if !later.is_empty() {
        warn!(keys = %later.join(", "), "reload: these settings take effect at the next start");
    }
    let tuning = next.tuning();
    let before = migrator.retune(tuning);
    if before.requests_per_second != tuning.requests_per_second {
        for name in jobs.names() {
            let stored = migrator
                .update_copy(&name, Action::Throttle, |c| {
                    c.requests_per_second = tuning.requests_per_second
                })
                .await;
            match stored {
                Ok(state) => jobs.apply_control(&state),
                Err(e) => warn!(index = %name, error = %e, "reload: throttle not applied"),
            }
        }
    }
    info!(
        max_concurrency = tuning.max_concurrency,
        requests_per_second = ?tuning.requests_per_second,
        "copy settings applied"
    );
}
