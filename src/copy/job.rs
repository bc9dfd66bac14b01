//! One logical index's copy from claim to `ready`: take the lease, plan
//! slices, run the pipeline while saving checkpoints, then hand the
//! finished counts to the lifecycle. [`drive`] runs it again from the last
//! checkpoint after transient errors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::control::Control;
use super::error::CopyError;
use super::pipeline::{run_pipeline, PipelineSpec};
use super::read_plan::{close, plan_read};
use super::reader::ReadSpec;
use super::stats::CopyStats;
use super::telemetry::IndexTelemetry;
use super::writer::RetryPolicy;
use crate::config::{bounds, CopyEngine};
use crate::migration::{
    Action, CopyProgress, IndexState, Lease, MigrationError, Migrator, Phase, Stored,
};

/// What the daemon keeps of a running copy: its controls, its live
/// counters, and the signal that stops it.
#[derive(Debug)]
pub struct CopyHandle {
    pub control: watch::Sender<Control>,
    /// Metrics of this index's bulk traffic.
    pub telemetry: IndexTelemetry,
    pub stats: Mutex<Option<Arc<CopyStats>>>,
    pub cancel: CancellationToken,
}

impl CopyHandle {
    pub fn new(cancel: CancellationToken, telemetry: IndexTelemetry) -> Self {
        CopyHandle {
            control: watch::Sender::new(Control::default()),
            telemetry,
            stats: Mutex::new(None),
            cancel,
        }
    }

    /// A handle of its own, for a copy run outside the daemon (CLI, tests).
    pub fn detached(index: &str) -> Self {
        Self::new(
            CancellationToken::new(),
            super::telemetry::Telemetry::default().for_index(index),
        )
    }

    /// `state`'s copy progress with this run's live counters applied, while
    /// `state` is copying and a run has counters; `None` otherwise.
    pub fn live(&self, state: &IndexState) -> Option<CopyProgress> {
        let Phase::Copying { copy, .. } = &state.phase else {
            return None;
        };
        let stats = self.stats()?;
        let mut copy = copy.clone();
        stats.apply(&mut copy);
        Some(copy)
    }

    /// The live counters of the current run, if one runs.
    pub fn stats(&self) -> Option<Arc<CopyStats>> {
        self.stats.lock().expect("stats lock").clone()
    }
}

/// The span every log line of the copy of `index` carries (readers and
/// writers too); reader lines add their slice.
pub fn copy_span(index: &str) -> tracing::Span {
    tracing::info_span!("copy", index = %index, phase = "copying")
}

/// An id for this process in leases: host, pid and start time.
pub fn owner_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        Utc::now().timestamp_millis()
    )
}

/// Runs the copy of `name` until it is `ready` or `failed`, starting again
/// from the last checkpoint after transient errors. Returns when the
/// state no longer asks for a copy, or on shutdown.
pub async fn drive(
    migrator: &Migrator,
    name: &str,
    owner: &str,
    handle: &CopyHandle,
) -> Result<IndexState, CopyError> {
    let mut pause = Duration::from_millis(500);
    loop {
        match run_once(migrator, name, owner, handle).await {
            Ok(state) => return Ok(state),
            Err(e) if e.is_transient() && !handle.cancel.is_cancelled() => {
                warn!(index = name, error = %e, retry_in = ?pause, "copy interrupted; resuming from the last checkpoint");
                // `status` shows why a copy is retrying.
                let last = e.to_string();
                let _ = migrator
                    .update_copy(name, Action::Reindex, |c| c.last_error = Some(last.clone()))
                    .await;
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = handle.cancel.cancelled() => return Err(CopyError::Cancelled),
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(e) if e.is_permanent() => {
                let reason = match e {
                    CopyError::Fatal(reason) => reason,
                    other => format!("the copy cannot go on: {other}"),
                };
                warn!(index = name, %reason, "copy failed");
                return match migrator.fail_copy(name, owner, &reason).await {
                    Ok(state) => Ok(state),
                    Err(e) => Err(e.into()),
                };
            }
            Err(e) => return Err(e),
        }
    }
}

/// One run: claim, copy, complete. Errors leave a checkpoint behind.
pub async fn run_once(
    migrator: &Migrator,
    name: &str,
    owner: &str,
    handle: &CopyHandle,
) -> Result<IndexState, CopyError> {
    let config = migrator.config().copy.clone();
    let lease_for = lease_duration(config.checkpoint_interval);
    let (source, target, mut copy) = claim(migrator, name, owner, lease_for).await?;
    handle.control.send_replace(Control::of(&copy));
    let es = migrator.es().clone();
    // Everything written to the source before stage 1 must be searchable
    // before the read snapshot is taken.
    es.refresh(&source).await?;
    if copy.engine == CopyEngine::Server {
        return super::server::run(
            migrator,
            name,
            owner,
            handle,
            (&source, &target),
            copy,
            lease_for,
        )
        .await;
    }
    let plan = plan_read(&es, &source, &mut copy, &config).await?;
    let mut stats = CopyStats::resume(
        &copy,
        plan.exact,
        plan.pit.clone(),
        handle.telemetry.clone(),
    );
    // A run that resumes keeps the first snapshot's numbers: counting
    // from a later one would forget writes by name made before it.
    stats.source_seq_nos = copy.source_seq_nos.clone().or(plan.source_seq_nos.clone());
    let stats = Arc::new(stats);
    *handle.stats.lock().expect("stats lock") = Some(stats.clone());
    info!(index = name, %source, %target, slices = stats.slice_max, mode = plan.mode.name(), resumed = plan.exact, "copy running");

    let spec = PipelineSpec {
        read: ReadSpec {
            es: es.clone(),
            source,
            mode: plan.mode.clone(),
            page_size: config.page_size,
            keep_alive: config.scroll_keep_alive,
        },
        target: target.clone(),
        retry: RetryPolicy {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            max_retries: config.max_retries,
            request_timeout: bounds::bulk_timeout(migrator.config().cluster.timeout),
        },
        config: config.clone(),
    };
    let run_cancel = handle.cancel.child_token();
    let pipeline = run_pipeline(
        spec,
        stats.clone(),
        handle.control.subscribe(),
        migrator.watch_tuning(),
        run_cancel.clone(),
    );
    let checkpoints = async {
        // Validation refuses a shorter interval; a `Config` built in code
        // must not make `interval` panic on zero either.
        let every = config
            .checkpoint_interval
            .max(bounds::CHECKPOINT_INTERVAL.min);
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = save_checkpoint(
                migrator,
                name,
                owner,
                &target,
                |c| stats.apply(c),
                &handle.control,
                lease_for,
            )
            .await
            {
                if !e.is_transient() {
                    return e;
                }
                warn!(index = name, error = %e, "checkpoint not saved; trying again");
            }
        }
    };
    let outcome = tokio::select! {
        result = pipeline => result,
        stop = checkpoints => {
            run_cancel.cancel();
            Err(stop)
        }
    };
    if let Err(e) = outcome {
        if !matches!(e, CopyError::Stopped(..)) {
            // A stop for shutdown gives the copy up at once, so a restarted
            // daemon need not wait for the lease to expire.
            let release = matches!(e, CopyError::Cancelled);
            let last = |c: &mut CopyProgress| stats.apply(c);
            let saved = save_checkpoint(
                migrator,
                name,
                owner,
                &target,
                last,
                &handle.control,
                lease_for,
            )
            .await;
            match saved {
                Err(save) => warn!(index = name, error = %save, "last checkpoint not saved"),
                Ok(()) if release => {
                    let released = migrator
                        .update_copy(name, Action::Reindex, |c| {
                            if c.lease.as_ref().is_some_and(|l| l.owner == owner) {
                                c.lease = None;
                            }
                        })
                        .await;
                    if let Err(err) = released {
                        warn!(index = name, error = %err, "lease not released");
                    }
                }
                Ok(()) => {}
            }
        }
        return Err(e);
    }
    let state = migrator
        .complete_copy(name, owner, |c| {
            stats.apply(c);
            c.pit = None;
            c.finished_at = Some(Utc::now());
        })
        .await?;
    close(&es, &plan.mode).await;
    match &state.phase {
        crate::migration::Phase::Failed { reason, .. } => {
            warn!(index = name, reason = %reason, "copy finished: failed")
        }
        phase => info!(index = name, phase = phase.name(), "copy finished"),
    }
    Ok(state)
}

/// How long a copy's claim holds without renewal: three checkpoints, so a
/// dead owner is replaced quickly and a slow checkpoint is not.
pub(super) fn lease_duration(checkpoint_interval: Duration) -> Duration {
    checkpoint_interval
        .saturating_mul(3)
        .max(Duration::from_secs(3))
}

/// The `Copying` state of `name`, if this process may run it.
fn copying<'a>(
    stored: &'a Stored,
    name: &str,
    owner: &str,
) -> Result<(&'a str, &'a str, &'a CopyProgress), CopyError> {
    let Phase::Copying {
        source,
        target,
        copy,
    } = &stored.state.phase
    else {
        return Err(CopyError::Stopped(
            name.to_owned(),
            format!("the index is {} now", stored.state.phase.name()),
        ));
    };
    if let Some(lease) = &copy.lease {
        if lease.owner != owner && lease.expires_at > Utc::now() {
            return Err(CopyError::LeaseHeld {
                owner: lease.owner.clone(),
                until: lease.expires_at.to_rfc3339(),
            });
        }
    }
    Ok((source, target, copy))
}

async fn claim(
    migrator: &Migrator,
    name: &str,
    owner: &str,
    lease_for: Duration,
) -> Result<(String, String, CopyProgress), CopyError> {
    let stored = migrator.load(name).await?;
    let (source, target, _) = copying(&stored, name, owner)?;
    let (source, target) = (source.to_owned(), target.to_owned());
    let next = stored
        .state
        .update_copy(
            Action::Reindex,
            |c| c.lease = Some(lease(owner, lease_for)),
            Utc::now(),
        )
        .map_err(MigrationError::from)?;
    let written = migrator.store().replace(&stored, next).await?;
    let Phase::Copying { copy, .. } = written.state.phase else {
        unreachable!("update_copy keeps the phase")
    };
    Ok((source, target, copy))
}

fn lease(owner: &str, lease_for: Duration) -> Lease {
    let now = Utc::now();
    // `DateTime + TimeDelta` panics past the calendar's end; a lease that
    // long never expires, which is what the caller asked for.
    let expires_at = chrono::Duration::from_std(lease_for)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
    Lease {
        owner: owner.to_owned(),
        expires_at,
    }
}

/// Saves the counters and renews the lease; picks up pause and throttle
/// set by other processes (the CLI) in the stored state.
pub(super) async fn save_checkpoint(
    migrator: &Migrator,
    name: &str,
    owner: &str,
    target: &str,
    apply: impl Fn(&mut CopyProgress),
    control: &watch::Sender<Control>,
    lease_for: Duration,
) -> Result<(), CopyError> {
    for _ in 0..5 {
        let stored = migrator.load(name).await?;
        let (source, stored_target, copy) = copying(&stored, name, owner)?;
        if stored_target != target {
            return Err(CopyError::Stopped(
                name.to_owned(),
                format!("a newer copy targets {stored_target}"),
            ));
        }
        if let Some(reason) = migrator.target_replaced(target, copy).await? {
            return Err(CopyError::Fatal(reason));
        }
        let mut updated = copy.clone();
        apply(&mut updated);
        let old_writes = migrator.old_generation_writes(source, &updated).await?;
        let wanted = Control::of(copy);
        control.send_if_modified(|c| std::mem::replace(c, wanted) != wanted);
        let next = stored
            .state
            .update_copy(
                Action::Reindex,
                |c| {
                    apply(c);
                    c.old_generation_writes = old_writes;
                    c.lease = Some(lease(owner, lease_for));
                },
                Utc::now(),
            )
            .map_err(MigrationError::from)?;
        match migrator.store().replace(&stored, next).await {
            Ok(_) => return Ok(()),
            Err(MigrationError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(MigrationError::Conflict(name.to_owned()).into())
}
