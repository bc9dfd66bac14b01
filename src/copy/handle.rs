//! What the daemon, the CLI and tests hold of a running copy: one handle
//! through which it is controlled (pause, throttle, cancel) and watched
//! (live counters, the run's state).

use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::control::Control;
use super::stats::CopyStats;
use super::telemetry::IndexTelemetry;
use crate::migration::{CopyProgress, IndexState, Phase};

/// Where one run of a copy is. Only `CopyHandle::enter` changes it.
///
/// ```text
/// Claiming -> Planning -> Copying <-> Paused
///                            |
///                        Finishing -> Done | Failed
/// ```
/// A run that stops early (a transient error, shutdown, a rollback)
/// goes back to `Claiming` on the next run, or stays where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Taking the copy's lease in the stored state.
    Claiming,
    /// Opening the read snapshot and cutting it into slices (or starting
    /// the cluster's own reindex task).
    Planning,
    /// Documents are moving.
    Copying,
    /// The operator paused the copy; nothing moves until resumed.
    Paused,
    /// Every document is read: saving the counts and verifying.
    Finishing,
    /// The lifecycle took the finished copy (`ready`, or `failed` by its
    /// verification).
    Done,
    /// The copy ended `failed` on an error no retry can fix.
    Failed,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            RunState::Claiming => "claiming",
            RunState::Planning => "planning",
            RunState::Copying => "copying",
            RunState::Paused => "paused",
            RunState::Finishing => "finishing",
            RunState::Done => "done",
            RunState::Failed => "failed",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One copy's controls, live counters, run state and stop signal.
#[derive(Debug)]
pub struct CopyHandle {
    control: watch::Sender<Control>,
    /// Metrics of this index's bulk traffic.
    pub telemetry: IndexTelemetry,
    stats: Mutex<Option<Arc<CopyStats>>>,
    state: watch::Sender<RunState>,
    cancel: CancellationToken,
}

impl CopyHandle {
    pub fn new(cancel: CancellationToken, telemetry: IndexTelemetry) -> Self {
        CopyHandle {
            control: watch::Sender::new(Control::default()),
            telemetry,
            stats: Mutex::new(None),
            state: watch::Sender::new(RunState::Claiming),
            cancel,
        }
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

    pub(super) fn set_stats(&self, stats: Arc<CopyStats>) {
        *self.stats.lock().expect("stats lock") = Some(stats);
    }

    /// The pause and throttle the copy runs with now.
    pub fn control(&self) -> Control {
        *self.control.borrow()
    }

    /// Pause and throttle from now on (the copy picks them up between
    /// batches; a server copy is rethrottled).
    pub fn set_control(&self, wanted: Control) {
        if self
            .control
            .send_if_modified(|c| std::mem::replace(c, wanted) != wanted)
        {
            self.follow_pause(wanted);
        }
    }

    pub(super) fn watch_control(&self) -> watch::Receiver<Control> {
        self.control.subscribe()
    }

    /// Stops the copy: it saves a checkpoint and gives its lease up.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub(super) async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// A stop signal for one run: cancelled with the copy, or alone.
    pub(super) fn run_token(&self) -> CancellationToken {
        self.cancel.child_token()
    }

    /// Where the current run is.
    pub fn run_state(&self) -> RunState {
        *self.state.borrow()
    }

    /// The one place a run's state changes. `Copying` is `Paused` while
    /// the operator pauses the copy.
    pub(super) fn enter(&self, next: RunState) {
        let next = match next {
            RunState::Copying if self.control().paused => RunState::Paused,
            other => other,
        };
        let previous = self.state.send_replace(next);
        if previous != next {
            debug!(from = %previous, to = %next, "copy run state");
        }
    }

    /// Moves between `Copying` and `Paused` as the operator pauses and
    /// resumes.
    fn follow_pause(&self, control: Control) {
        match (self.run_state(), control.paused) {
            (RunState::Copying, true) => self.enter(RunState::Paused),
            (RunState::Paused, false) => self.enter(RunState::Copying),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::telemetry::Telemetry;
    use super::*;

    fn detached(index: &str) -> CopyHandle {
        CopyHandle::new(
            CancellationToken::new(),
            Telemetry::default().for_index(index),
        )
    }

    #[test]
    fn pausing_moves_a_copying_run_to_paused_and_back() {
        let handle = detached("kb");
        assert_eq!(handle.run_state(), RunState::Claiming);
        let paused = Control {
            paused: true,
            requests_per_second: None,
            background: false,
        };
        // Paused before copying: a claiming run stays claiming.
        handle.set_control(paused);
        assert_eq!(handle.run_state(), RunState::Claiming);
        handle.enter(RunState::Copying);
        assert_eq!(handle.run_state(), RunState::Paused);
        handle.set_control(Control::default());
        assert_eq!(handle.run_state(), RunState::Copying);
        handle.set_control(paused);
        assert_eq!(handle.run_state(), RunState::Paused);
        handle.enter(RunState::Finishing);
        handle.set_control(Control::default());
        assert_eq!(handle.run_state(), RunState::Finishing);
    }

    #[test]
    fn a_throttle_change_leaves_the_run_state_alone() {
        let handle = detached("kb");
        handle.enter(RunState::Copying);
        handle.set_control(Control {
            paused: false,
            requests_per_second: Some(10.0),
            background: false,
        });
        assert_eq!(handle.run_state(), RunState::Copying);
        assert_eq!(handle.control().requests_per_second, Some(10.0));
    }
}
