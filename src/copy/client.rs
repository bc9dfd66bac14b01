//! The client engine: reindexd reads the old generation itself (read
//! plan, slice readers) and writes the new one with bulk requests
//! (pipeline), saving a checkpoint every interval while it runs.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::error::CopyError;
use super::handle::{CopyHandle, RunState};
use super::lease::Claim;
use super::pipeline::{run_pipeline, PipelineSpec};
use super::priority::SearchProbe;
use super::read_plan::{close, plan_read, ReadPlan};
use super::reader::ReadSpec;
use super::stats::CopyStats;
use super::writer::RetryPolicy;
use crate::config::bounds;
use crate::migration::{CopyProgress, IndexState};

/// Copies what is left of `claim`'s copy, resuming from `copy`.
pub(super) async fn run(
    claim: &Claim<'_>,
    handle: &CopyHandle,
    mut copy: CopyProgress,
) -> Result<IndexState, CopyError> {
    let migrator = claim.migrator;
    let config = &migrator.config().copy;
    let es = migrator.es();
    let plan = plan_read(es, &claim.source, &mut copy, config).await?;
    let stats = start_stats(handle, &copy, &plan);
    info!(index = claim.name, source = %claim.source, target = %claim.target, slices = stats.slice_max, mode = plan.mode.name(), resumed = plan.exact, "copy running");

    handle.enter(RunState::Copying);
    if let Err(e) = copy_with_checkpoints(claim, handle, &stats, &plan).await {
        stop(claim, handle, &stats, &e).await;
        return Err(e);
    }
    handle.enter(RunState::Finishing);
    let state = claim
        .complete(|c| {
            stats.apply(c);
            c.pit = None;
        })
        .await?;
    close(es, &plan.mode).await;
    Ok(state)
}

/// This run's live counters, published on the handle.
fn start_stats(handle: &CopyHandle, copy: &CopyProgress, plan: &ReadPlan) -> Arc<CopyStats> {
    let mut stats = CopyStats::resume(copy, plan.exact, plan.pit.clone(), handle.telemetry.clone());
    // A run that resumes keeps the first snapshot's numbers: counting
    // from a later one would forget writes by name made before it.
    stats.source_seq_nos = copy.source_seq_nos.clone().or(plan.source_seq_nos.clone());
    let stats = Arc::new(stats);
    handle.set_stats(stats.clone());
    stats
}

/// Runs the pipeline to its end while a checkpoint is saved every
/// interval; a checkpoint that cannot be saved for good stops the pipeline.
async fn copy_with_checkpoints(
    claim: &Claim<'_>,
    handle: &CopyHandle,
    stats: &Arc<CopyStats>,
    plan: &ReadPlan,
) -> Result<(), CopyError> {
    let migrator = claim.migrator;
    let run_cancel = handle.run_token();
    let pipeline = run_pipeline(
        pipeline_spec(claim, plan),
        stats.clone(),
        handle.watch_control(),
        migrator.watch_tuning(),
        run_cancel.clone(),
    );
    let checkpoints = async {
        // Validation refuses a shorter interval; a `Config` built in code
        // must not make `interval` panic on zero either.
        let every = migrator
            .config()
            .copy
            .checkpoint_interval
            .max(bounds::CHECKPOINT_INTERVAL.min);
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            match claim.checkpoint(|c| stats.apply(c), handle).await {
                Err(e) if !e.is_transient() => return e,
                Err(e) => {
                    warn!(index = claim.name, error = %e, "checkpoint not saved; trying again")
                }
                Ok(()) => {}
            }
        }
    };
    tokio::select! {
        result = pipeline => result,
        stop = checkpoints => {
            run_cancel.cancel();
            Err(stop)
        }
    }
}

fn pipeline_spec(claim: &Claim<'_>, plan: &ReadPlan) -> PipelineSpec {
    let config = claim.migrator.config();
    PipelineSpec {
        read: ReadSpec {
            es: claim.migrator.es().clone(),
            source: claim.source.clone(),
            mode: plan.mode.clone(),
            page_size: config.copy.page_size,
            keep_alive: config.copy.scroll_keep_alive,
        },
        target: claim.target.clone(),
        pipeline: claim.pipeline.clone(),
        probe: SearchProbe {
            index: claim.migrator.names(claim.name).read_alias(),
            body: config.copy.search_probe.clone(),
        },
        retry: RetryPolicy {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            max_retries: config.copy.max_retries,
            request_timeout: bounds::bulk_timeout(config.cluster.timeout),
        },
        config: config.copy.clone(),
    }
}

/// After the pipeline stopped on `error`: a last checkpoint (unless the
/// copy is no longer this run's), and on shutdown the lease given up.
async fn stop(claim: &Claim<'_>, handle: &CopyHandle, stats: &CopyStats, error: &CopyError) {
    if matches!(error, CopyError::Stopped { .. }) {
        return;
    }
    if let Err(save) = claim.checkpoint(|c| stats.apply(c), handle).await {
        warn!(index = claim.name, error = %save, "last checkpoint not saved");
        return;
    }
    // A stop for shutdown gives the copy up at once, so a restarted
    // daemon need not wait for the lease to expire.
    if matches!(error, CopyError::Cancelled) {
        if let Err(err) = claim.release().await {
            warn!(index = claim.name, error = %err, "lease not released");
        }
    }
}
