//! systemd's side of the daemon (`Type=notify`): `READY=1` once the API
//! listens and the cluster answered, `STATUS=` lines with phase and
//! progress, `WATCHDOG=1` only while healthy, `STOPPING=1` on shutdown.
//! Every call is a no-op when `NOTIFY_SOCKET` is not set.

use std::collections::HashMap;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::copy::Jobs;
use crate::migration::{ClusterLook, CopyProgress, IndexState, Migrator, PhaseKind};

/// A running, unpaused copy that has not moved for this long makes the
/// daemon unhealthy: systemd's watchdog then restarts it, and the copy
/// resumes from its checkpoint.
const STALL: Duration = Duration::from_secs(300);
const STATUS_EVERY: Duration = Duration::from_secs(10);

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "systemd notification not sent");
    }
}

pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: saving checkpoints"),
    ]);
}

/// Sends READY once `cluster_ready` turns true, then STATUS lines and
/// watchdog pings until shutdown.
pub async fn supervise(
    migrator: Migrator,
    jobs: Jobs,
    mut cluster_ready: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    tokio::select! {
        ready = cluster_ready.wait_for(|r| *r) => if ready.is_err() { return },
        _ = shutdown.cancelled() => return,
    }
    let status = status_line(&migrator, &jobs).await;
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
    let watchdog = sd_notify::watchdog_enabled();
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
    let mut progress: HashMap<String, (u64, Instant)> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        let status = status_line(&migrator, &jobs).await;
        let stalled = stalled_copies(&migrator, &jobs, &mut progress);
        if watchdog.is_some() && stalled.is_empty() {
            send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
        } else {
            if !stalled.is_empty() {
                warn!(indexes = ?stalled, "copy made no progress for {STALL:?}; withholding the watchdog ping");
            }
            send(&[NotifyState::Status(&status)]);
        }
    }
}

/// Names of running copies that are neither paused nor moving.
fn stalled_copies(
    migrator: &Migrator,
    jobs: &Jobs,
    seen: &mut HashMap<String, (u64, Instant)>,
) -> Vec<String> {
    let now = Instant::now();
    let mut stalled = Vec::new();
    for index in &migrator.config().indexes {
        let Some(stats) = jobs
            .get(&index.name)
            .and_then(|h| h.stats().map(|s| (h, s)))
        else {
            seen.remove(&index.name);
            continue;
        };
        let (handle, stats) = stats;
        let mut copy = CopyProgress::new(index.engine.into(), 0, chrono::Utc::now());
        stats.apply(&mut copy);
        let done = copy.done();
        let entry = seen.entry(index.name.clone()).or_insert((done, now));
        if done != entry.0 || handle.control().paused {
            *entry = (done, now);
        } else if now - entry.1 > STALL {
            stalled.push(index.name.clone());
        }
    }
    stalled
}

/// One line for `systemctl status`: each index's phase and progress.
async fn status_line(migrator: &Migrator, jobs: &Jobs) -> String {
    let mut parts = Vec::new();
    for index in &migrator.config().indexes {
        let live = |state: &IndexState| jobs.live(state);
        let view = migrator
            .view_with(&index.name, live, ClusterLook::Skip)
            .await;
        let part = match view {
            Err(e) if e.is_unavailable() => return "cluster unavailable".into(),
            Err(_) => format!("{} unknown", index.name),
            Ok(view) => match (&view.progress, view.phase) {
                (Some(p), PhaseKind::Copying) => format!(
                    "{} copying {:.1}% ({}/{})",
                    index.name,
                    p.ratio * 100.0,
                    p.done(),
                    p.total
                ),
                (_, phase) => format!("{} {phase}", index.name),
            },
        };
        parts.push(part);
    }
    parts.join("; ")
}
