//! The server engine: the cluster's own `_reindex` (slices=auto) does the
//! copy, for indexes too large for one client host. reindexd starts the
//! task, follows it through `_tasks`, mirrors its counters into the state,
//! passes throttle and pause on as rethrottles, and cancels it on rollback.
//! The task outlives a daemon restart; the next run follows the same task.
//!
//! Documents are written with `version_type=external` and `version=0` (a
//! one-line painless script), exactly like the client engine, so
//! application writes and deletes win over the copy and `_version ≥ 1`
//! marks what the application wrote since stage 1.

use std::time::Duration;

use serde_json::{json, Value};
use tracing::{info, warn};

use super::control::Control;
use super::error::CopyError;
use super::handle::{CopyHandle, RunState};
use super::lease::Claim;
use crate::es::TaskStatus;
use crate::migration::{CopyProgress, DocFailure, IndexState};

/// What a paused server copy is rethrottled to: one document per 1000 s.
/// `_reindex` has no pause; it takes effect after the batch in flight.
const PAUSED_RATE: f64 = 0.001;
const POLL: Duration = Duration::from_secs(1);

fn rate(control: &Control) -> Option<f64> {
    if control.paused {
        Some(PAUSED_RATE)
    } else {
        control.requests_per_second
    }
}

/// Counters of a reindex task: from `response` once completed, else
/// from the running `task.status`.
fn counters(status: &TaskStatus) -> &Value {
    match &status.response {
        Some(response) if status.completed => response,
        _ => &status.task["status"],
    }
}

fn apply(status: &TaskStatus, copy: &mut CopyProgress) {
    let c = counters(status);
    let n = |key: &str| c[key].as_u64().unwrap_or(0);
    copy.total = n("total");
    copy.copied = n("created") + n("updated");
    copy.superseded = n("version_conflicts");
    if let Some(failures) = c["failures"].as_array() {
        copy.failed = failures.len() as u64;
        copy.failures = failures
            .iter()
            .take(crate::migration::MAX_RECORDED_FAILURES)
            .map(|f| DocFailure {
                id: f["id"].as_str().unwrap_or("?").to_owned(),
                status: f["status"].as_u64().unwrap_or(0) as u16,
                reason: f["cause"]["reason"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_owned(),
            })
            .collect();
    }
}

/// Runs `claim`'s copy as a reindex task of the cluster: the one recorded
/// in `copy` if the cluster still has it, else a new one.
pub(super) async fn run(
    claim: &Claim<'_>,
    handle: &CopyHandle,
    copy: CopyProgress,
) -> Result<IndexState, CopyError> {
    let task = match recorded_task(claim, &copy).await? {
        Some(id) => id,
        None => start_task(claim, handle).await?,
    };
    handle.enter(RunState::Copying);
    let status = follow(claim, handle, &task).await?;
    handle.enter(RunState::Finishing);
    finish(claim, &status).await
}

/// The task a previous run started, if the cluster still knows it.
async fn recorded_task(
    claim: &Claim<'_>,
    copy: &CopyProgress,
) -> Result<Option<String>, CopyError> {
    let Some(id) = &copy.task else {
        return Ok(None);
    };
    match claim.migrator.es().get_task(id).await {
        Ok(_) => Ok(Some(id.clone())),
        Err(e) if e.is_not_found() => {
            warn!(index = claim.name, task = %id, "the cluster lost the reindex task; starting it again");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Starts the reindex task and records it (and the source's sequence
/// numbers before it) in a checkpoint.
async fn start_task(claim: &Claim<'_>, handle: &CopyHandle) -> Result<String, CopyError> {
    let es = claim.migrator.es();
    let mut body = json!({
        "source": {"index": claim.source, "size": claim.migrator.config().copy.page_size},
        "dest": {"index": claim.target, "version_type": "external"},
        "conflicts": "proceed",
        "script": {"lang": "painless", "source": "ctx._version = 0"},
    });
    if let Some(pipeline) = &claim.pipeline {
        body["dest"]["pipeline"] = json!(pipeline);
    }
    // Before the task's snapshot: can only over-count later writes.
    let seq_nos = es.max_seq_nos(&claim.source).await?;
    let id = es
        .start_reindex(&body, "auto", rate(&handle.control()))
        .await?;
    info!(index = claim.name, task = %id, "server-side reindex started");
    let recorded = id.clone();
    claim
        .checkpoint(
            move |c| {
                c.task = Some(recorded.clone());
                c.source_seq_nos = Some(seq_nos.clone());
            },
            handle,
        )
        .await?;
    Ok(id)
}

/// Polls the task until it completes, mirroring its counters into
/// checkpoints and the operator's pause and throttle into rethrottles.
async fn follow(
    claim: &Claim<'_>,
    handle: &CopyHandle,
    task: &str,
) -> Result<TaskStatus, CopyError> {
    let es = claim.migrator.es();
    let every = claim.migrator.config().copy.checkpoint_interval;
    // The task was started (or rethrottled last) at the rate it runs now.
    let mut sent_rate = rate(&handle.control());
    let mut last_save = tokio::time::Instant::now();
    loop {
        let status = es.get_task(task).await?;
        if status.completed || last_save.elapsed() >= every {
            let saved = claim.checkpoint(|c| apply(&status, c), handle).await;
            if let Err(e @ CopyError::Stopped { .. }) = saved {
                // Rolled back (or taken over): the task must not go on writing.
                let _ = es.cancel_task(task).await;
                return Err(e);
            }
            saved?;
            last_save = tokio::time::Instant::now();
        }
        if status.completed {
            return Ok(status);
        }
        let wanted = rate(&handle.control());
        if wanted != sent_rate {
            es.rethrottle_reindex(task, wanted).await?;
            info!(index = claim.name, task = %task, rate = ?wanted, "server-side reindex rethrottled");
            sent_rate = wanted;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            // Shutdown leaves the task running: it belongs to the cluster,
            // and the next run follows it.
            _ = handle.cancelled() => return Err(CopyError::Cancelled),
        }
    }
}

async fn finish(claim: &Claim<'_>, status: &TaskStatus) -> Result<IndexState, CopyError> {
    if let Some(error) = &status.error {
        return Err(CopyError::fatal(format!(
            "the server-side reindex failed: {error}"
        )));
    }
    let c = counters(status);
    if let Some(first) = c["failures"].as_array().and_then(|f| f.first()) {
        // `_reindex` stops at the first bulk failure: the copy is incomplete.
        return Err(CopyError::fatal(format!(
            "the server-side reindex stopped at document {}: {}",
            first["id"].as_str().unwrap_or("?"),
            first["cause"]["reason"].as_str().unwrap_or("unknown")
        )));
    }
    claim.complete(|copy| apply(status, copy)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_come_from_the_task_then_its_response() {
        let running: TaskStatus = serde_json::from_value(json!({
            "completed": false,
            "task": {"status": {"total": 10, "created": 4, "updated": 0, "version_conflicts": 1}}
        }))
        .unwrap();
        let mut copy = CopyProgress::new(
            crate::migration::StoredEngine::Server,
            0,
            chrono::Utc::now(),
        );
        apply(&running, &mut copy);
        assert_eq!(
            (copy.total, copy.copied, copy.superseded, copy.failed),
            (10, 4, 1, 0)
        );
        let done: TaskStatus = serde_json::from_value(json!({
            "completed": true,
            "task": {"status": {"total": 10, "created": 4}},
            "response": {"total": 10, "created": 8, "updated": 0, "version_conflicts": 2, "failures": []}
        }))
        .unwrap();
        apply(&done, &mut copy);
        assert_eq!((copy.total, copy.copied, copy.superseded), (10, 8, 2));
        assert_eq!(
            rate(&Control {
                paused: true,
                requests_per_second: Some(5.0),
                background: false,
            }),
            Some(PAUSED_RATE)
        );
    }
}
