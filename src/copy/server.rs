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
use super::job::{save_checkpoint, CopyHandle};
use crate::es::TaskStatus;
use crate::migration::{CopyProgress, DocFailure, IndexState, Migrator};

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

pub(super) async fn run(
    migrator: &Migrator,
    name: &str,
    owner: &str,
    handle: &CopyHandle,
    (source, target): (&str, &str),
    copy: CopyProgress,
    lease_for: Duration,
) -> Result<IndexState, CopyError> {
    let es = migrator.es();
    let config = &migrator.config().copy;
    let mut task = copy.task.clone();
    if let Some(id) = &task {
        if let Err(e) = es.get_task(id).await {
            if !e.is_not_found() {
                return Err(e.into());
            }
            warn!(index = name, task = %id, "the cluster lost the reindex task; starting it again");
            task = None;
        }
    }
    let mut sent_rate = rate(&handle.control.borrow());
    let task = match task {
        Some(id) => id,
        None => {
            let body = json!({
                "source": {"index": source, "size": config.page_size},
                "dest": {"index": target, "version_type": "external"},
                "conflicts": "proceed",
                "script": {"lang": "painless", "source": "ctx._version = 0"},
            });
            // Before the task's snapshot: can only over-count later writes.
            let seq_nos = es.max_seq_nos(source).await?;
            let id = es.start_reindex(&body, "auto", sent_rate).await?;
            info!(index = name, task = %id, "server-side reindex started");
            let recorded = id.clone();
            save_checkpoint(
                migrator,
                name,
                owner,
                target,
                move |c| {
                    c.task = Some(recorded.clone());
                    c.source_seq_nos = Some(seq_nos.clone());
                },
                &handle.control,
                lease_for,
            )
            .await?;
            id
        }
    };
    let mut last_save = tokio::time::Instant::now();
    loop {
        let status = es.get_task(&task).await?;
        let due = last_save.elapsed() >= config.checkpoint_interval;
        if due || status.completed {
            let saved = save_checkpoint(
                migrator,
                name,
                owner,
                target,
                |c| apply(&status, c),
                &handle.control,
                lease_for,
            )
            .await;
            if let Err(e @ CopyError::Stopped(..)) = saved {
                // Rolled back (or taken over): the task must not go on writing.
                let _ = es.cancel_task(&task).await;
                return Err(e);
            }
            saved?;
            last_save = tokio::time::Instant::now();
        }
        if status.completed {
            return finish(migrator, name, owner, &status).await;
        }
        let wanted = rate(&handle.control.borrow());
        if wanted != sent_rate {
            es.rethrottle_reindex(&task, wanted).await?;
            info!(index = name, task = %task, rate = ?wanted, "server-side reindex rethrottled");
            sent_rate = wanted;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            // Shutdown leaves the task running: it belongs to the cluster,
            // and the next run follows it.
            _ = handle.cancel.cancelled() => return Err(CopyError::Cancelled),
        }
    }
}

async fn finish(
    migrator: &Migrator,
    name: &str,
    owner: &str,
    status: &TaskStatus,
) -> Result<IndexState, CopyError> {
    if let Some(error) = &status.error {
        return Err(CopyError::Fatal(format!(
            "the server-side reindex failed: {error}"
        )));
    }
    let c = counters(status);
    if let Some(first) = c["failures"].as_array().and_then(|f| f.first()) {
        // `_reindex` stops at the first bulk failure: the copy is incomplete.
        return Err(CopyError::Fatal(format!(
            "the server-side reindex stopped at document {}: {}",
            first["id"].as_str().unwrap_or("?"),
            first["cause"]["reason"].as_str().unwrap_or("unknown")
        )));
    }
    let state = migrator
        .complete_copy(name, owner, |copy| {
            apply(status, copy);
            copy.finished_at = Some(chrono::Utc::now());
        })
        .await?;
    info!(
        index = name,
        phase = state.phase.name(),
        "server-side copy finished"
    );
    Ok(state)
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
        let mut copy = CopyProgress::new(crate::config::CopyEngine::Server, 0, chrono::Utc::now());
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
                requests_per_second: Some(5.0)
            }),
            Some(PAUSED_RATE)
        );
    }
}
