//! A reloaded configuration (SIGHUP) meets the running daemon: the copy
//! settings apply at once, everything else waits for the next start and
//! says so.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Config, Tuning};
use crate::copy::Jobs;
use crate::migration::{Action, MigrationError, Migrator};

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
        tokio::select! {
            _ = apply(&migrator, &jobs, &next) => {}
            // A reload never holds up shutdown.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// `copy.max_concurrency` bounds every running copy at once (and later
/// ones); a changed `copy.requests_per_second` becomes the throttle of
/// every copy this process runs (stored, so status shows it) and the
/// default of later copies. An unchanged one leaves throttles set through
/// the API or CLI alone. If a copy could not be re-throttled, the old rate
/// stays the reference, so the next reload tries again.
async fn apply(migrator: &Migrator, jobs: &Jobs, next: &Config) {
    let later = migrator.config().restart_only_changes(next);
    if !later.is_empty() {
        warn!(keys = %later.join(", "), "reload: these settings (as check-config names them) take effect at the next start");
    }
    let tuning = next.tuning();
    let before = migrator.tuning();
    // The bound first: running copies follow it at once.
    migrator.retune(Tuning {
        requests_per_second: before.requests_per_second,
        ..tuning
    });
    if before.requests_per_second == tuning.requests_per_second {
        info!(
            max_concurrency = tuning.max_concurrency,
            "copy settings applied"
        );
        return;
    }
    let mut missed = 0;
    for name in jobs.names() {
        let stored = migrator
            .update_copy(&name, Action::Throttle, |c| {
                c.requests_per_second = tuning.requests_per_second
            })
            .await;
        match stored {
            Ok(state) => {
                jobs.apply_control(&state);
                info!(index = %name, rate = ?tuning.requests_per_second, "reload: throttle replaced");
            }
            Err(MigrationError::IllegalTransition(_)) => {
                debug!(index = %name, "reload: the copy ended before its throttle was replaced")
            }
            Err(e) => {
                missed += 1;
                warn!(index = %name, error = %e, "reload: throttle not replaced; reload again, or use `reindexd throttle`");
            }
        }
    }
    if missed == 0 {
        migrator.retune(tuning);
    }
    info!(
        max_concurrency = tuning.max_concurrency,
        requests_per_second = ?tuning.requests_per_second,
        missed,
        "copy settings applied"
    );
}
