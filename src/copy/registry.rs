//! The copies this process runs: at most one per logical index, each a
//! task driving it to `ready`, all stopped by one cancellation signal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use super::control::Control;
use super::error::CopyError;
use super::handle::CopyHandle;
use super::job::{copy_span, drive};
use super::telemetry::Telemetry;
use crate::migration::{CopyProgress, IndexState, Migrator};

#[derive(Debug, Clone)]
pub struct Jobs {
    migrator: Migrator,
    owner: String,
    cancel: CancellationToken,
    tracker: TaskTracker,
    running: Arc<Mutex<HashMap<String, Arc<CopyHandle>>>>,
    telemetry: Telemetry,
}

impl Jobs {
    pub fn new(migrator: Migrator, owner: String, cancel: CancellationToken) -> Self {
        Jobs {
            migrator,
            owner,
            cancel,
            tracker: TaskTracker::new(),
            running: Arc::new(Mutex::new(HashMap::new())),
            telemetry: Telemetry::default(),
        }
    }

    /// Starts driving the copy of `name` unless this process already does
    /// (then `None`). The daemon and the CLI's foreground copies both
    /// start copies here; the task's result is how the copy ended.
    pub fn start(&self, name: &str) -> Option<JoinHandle<Result<IndexState, CopyError>>> {
        let handle = {
            let mut running = self.running.lock().expect("jobs lock");
            if running.contains_key(name) {
                return None;
            }
            let handle = Arc::new(CopyHandle::new(
                self.cancel.child_token(),
                self.telemetry.for_index(name),
            ));
            running.insert(name.to_owned(), handle.clone());
            handle
        };
        let jobs = self.clone();
        let name = name.to_owned();
        let span = copy_span(&name);
        Some(self.tracker.spawn(async move {
            let driven = drive(&jobs.migrator, &name, &jobs.owner, &handle)
                .instrument(span)
                .await;
            match &driven {
                Ok(state) => info!(index = %name, phase = state.phase.name(), "copy job ended"),
                Err(CopyError::Stopped { why, .. }) => {
                    info!(index = %name, %why, "copy job stopped")
                }
                Err(CopyError::Cancelled) => info!(index = %name, "copy job stopped for shutdown"),
                Err(e) => warn!(index = %name, error = %e, "copy job ended with an error"),
            }
            jobs.running.lock().expect("jobs lock").remove(&name);
            driven
        }))
    }

    /// `state`'s copy progress with the live counters of the copy this
    /// process runs for it, if it runs one (see [`CopyHandle::live`]).
    pub fn live(&self, state: &IndexState) -> Option<CopyProgress> {
        self.get(&state.name)?.live(state)
    }

    /// Tells the copy of `state`'s index, if this process runs it, the
    /// pause and throttle just stored in `state`.
    pub fn apply_control(&self, state: &IndexState) {
        if let (Some(handle), Some(copy)) = (self.get(&state.name), state.phase.copy()) {
            handle.set_control(Control::of(copy));
        }
    }

    /// Names of the indexes this process copies now.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .running
            .lock()
            .expect("jobs lock")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The handle of the copy of `name` this process runs, if any.
    pub fn get(&self, name: &str) -> Option<Arc<CopyHandle>> {
        self.running.lock().expect("jobs lock").get(name).cloned()
    }

    /// Bulk traffic metrics of every copy this process ran.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Waits until every job has stopped (after the cancellation signal).
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}
