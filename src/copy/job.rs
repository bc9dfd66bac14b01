//! One logical index's copy from claim to `ready`: [`run_once`] claims it,
//! lets the index's engine (client or server) copy, and reports how it
//! ended; [`drive`] runs it again from the last checkpoint after transient
//! errors and ends it `failed` on permanent ones.

use std::time::Duration;

use tracing::{info, warn};

use super::client;
use super::control::Control;
use super::error::CopyError;
use super::handle::{CopyHandle, RunState};
use super::lease::Claim;
use super::server;
use crate::migration::{Action, IndexState, Migrator, Phase, StoredEngine};

/// The span every log line of the copy of `index` carries (readers and
/// writers too); reader lines add their slice.
pub fn copy_span(index: &str) -> tracing::Span {
    tracing::info_span!("copy", index = %index, phase = "copying")
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
            Err(e) if e.is_transient() && !handle.is_cancelled() => {
                warn!(index = name, error = %e, retry_in = ?pause, "copy interrupted; resuming from the last checkpoint");
                // `status` shows why a copy is retrying.
                let last = e.to_string();
                let _ = migrator
                    .update_copy(name, Action::Reindex, |c| c.last_error = Some(last.clone()))
                    .await;
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = handle.cancelled() => return Err(CopyError::Cancelled),
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(e) if e.is_permanent() => return fail(migrator, name, owner, handle, e).await,
            Err(e) => return Err(e),
        }
    }
}

/// Ends the copy `failed` with `error` as the reason.
async fn fail(
    migrator: &Migrator,
    name: &str,
    owner: &str,
    handle: &CopyHandle,
    error: CopyError,
) -> Result<IndexState, CopyError> {
    let reason = match error {
        CopyError::Fatal { reason } => reason,
        other => format!("the copy cannot go on: {other}"),
    };
    warn!(index = name, %reason, "copy failed");
    let state = migrator.fail_copy(name, owner, &reason).await?;
    handle.enter(RunState::Failed);
    Ok(state)
}

/// One run: claim, copy with the index's engine, complete. Errors leave a
/// checkpoint behind.
pub async fn run_once(
    migrator: &Migrator,
    name: &str,
    owner: &str,
    handle: &CopyHandle,
) -> Result<IndexState, CopyError> {
    handle.enter(RunState::Claiming);
    let (claim, copy) = Claim::take(migrator, name, owner).await?;
    handle.set_control(Control::of(&copy));
    handle.enter(RunState::Planning);
    // Everything written to the source before stage 1 must be searchable
    // before the read snapshot is taken.
    migrator.es().refresh(&claim.source).await?;
    let state = match copy.engine {
        StoredEngine::Client => client::run(&claim, handle, copy).await?,
        StoredEngine::Server => server::run(&claim, handle, copy).await?,
        // Stage 1 of an external refill stores `filling`, which no claim
        // takes; a hand-made state could still say otherwise.
        StoredEngine::External => {
            return Err(CopyError::stopped(
                name,
                "the application refills this index (engine external): reindexd copies nothing",
            ))
        }
    };
    match &state.phase {
        Phase::Failed { reason, .. } => {
            handle.enter(RunState::Failed);
            warn!(index = name, %reason, "copy finished: failed")
        }
        phase => {
            handle.enter(RunState::Done);
            info!(index = name, phase = phase.name(), "copy finished")
        }
    }
    Ok(state)
}
