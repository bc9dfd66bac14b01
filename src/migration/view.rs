//! What `status` shows of a logical index, for the API and the CLI alike.

use chrono::{DateTime, Utc};

use crate::config::Priority;
use serde::Serialize;

use super::phase::PhaseKind;
use super::phase::{IndexState, Phase};
use super::progress::StoredEngine;
use super::progress::{CopyProgress, DocFailure};

#[derive(Debug, Clone, Serialize)]
pub struct IndexView {
    pub name: String,
    /// `uninitialized`, `live`, `copying`, `filling`, `ready`, `failed` or
    /// `flipped`.
    pub phase: PhaseKind,
    pub read_index: Option<String>,
    pub write_index: Option<String>,
    /// The generation being replaced (`copying`, `filling`, `ready`,
    /// `failed`, `flipped`).
    pub previous_index: Option<String>,
    pub flipped_at: Option<DateTime<Utc>>,
    /// Why the copy failed.
    pub reason: Option<String>,
    pub abandoned: Vec<String>,
    pub progress: Option<ProgressView>,
    pub failures: Vec<DocFailure>,
    pub updated_at: Option<DateTime<Utc>>,
    /// How the aliases disagree with the phase, when they do (filled in
    /// by callers that read the aliases; see `Migrator::drift`).
    pub drift: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgressView {
    pub engine: StoredEngine,
    /// The ingest pipeline the copy's writes run.
    pub pipeline: Option<String>,
    pub total: u64,
    pub copied: u64,
    /// The application wrote or deleted the document first.
    pub superseded: u64,
    /// Already there from this copy's own earlier write.
    pub resent: u64,
    pub failed: u64,
    /// Operations on the old generation by its name since the copy's
    /// snapshot, and how many of them the operator accepted: more than
    /// accepted blocks `ready` and the flip.
    pub old_generation_writes: u64,
    pub accepted_old_generation_writes: u64,
    /// Why a running copy is retrying, if it is.
    pub last_error: Option<String>,
    /// 0.0 to 1.0.
    pub ratio: f64,
    pub paused: bool,
    pub requests_per_second: Option<f64>,
    /// `background`: the copy yields to live search.
    pub priority: Priority,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Seconds from the start of the copy to its end (or to now).
    pub elapsed_seconds: f64,
    /// Average rate since the copy started.
    pub docs_per_second: f64,
    pub eta_seconds: Option<u64>,
    pub slices: usize,
    pub slices_done: usize,
    pub accept_failures: bool,
}

impl ProgressView {
    pub fn new(copy: &CopyProgress, now: DateTime<Utc>) -> Self {
        let end = copy.finished_at.unwrap_or(now);
        let elapsed = (end - copy.started_at).num_milliseconds().max(1) as f64 / 1000.0;
        let rate = copy.done() as f64 / elapsed;
        let left = copy.total.saturating_sub(copy.done());
        let eta = match (copy.finished_at, rate > 0.0) {
            (Some(_), _) => Some(0),
            (None, true) if copy.total > 0 => Some((left as f64 / rate).ceil() as u64),
            _ => None,
        };
        ProgressView {
            engine: copy.engine,
            pipeline: copy.pipeline.clone(),
            total: copy.total,
            copied: copy.copied,
            superseded: copy.superseded,
            resent: copy.resent,
            failed: copy.failed,
            old_generation_writes: copy.old_generation_writes,
            accepted_old_generation_writes: copy.accepted_old_generation_writes,
            last_error: copy.last_error.clone(),
            ratio: copy.ratio(),
            paused: copy.paused,
            requests_per_second: copy.requests_per_second,
            priority: if copy.background {
                Priority::Background
            } else {
                Priority::Normal
            },
            started_at: copy.started_at,
            finished_at: copy.finished_at,
            elapsed_seconds: (elapsed * 1000.0).round() / 1000.0,
            docs_per_second: (rate * 10.0).round() / 10.0,
            eta_seconds: eta,
            slices: copy.slices.len(),
            slices_done: copy.slices.iter().filter(|s| s.done).count(),
            accept_failures: copy.accept_failures,
        }
    }

    /// An external refill's progress: `new` documents in the new
    /// generation against `old` in the old one.
    pub fn set_fill_counts(&mut self, old: u64, new: u64) {
        self.total = old;
        self.copied = new;
        self.ratio = if old == 0 {
            0.0
        } else {
            (new as f64 / old as f64).min(1.0)
        };
        self.docs_per_second =
            ((new as f64 / self.elapsed_seconds.max(0.001)) * 10.0).round() / 10.0;
        self.eta_seconds = (self.docs_per_second > 0.0)
            .then(|| (old.saturating_sub(new) as f64 / self.docs_per_second).ceil() as u64);
    }

    /// Documents the copy is done with, whatever became of them.
    pub fn done(&self) -> u64 {
        self.copied + self.superseded + self.resent + self.failed
    }
}

impl IndexView {
    pub fn uninitialized(name: &str) -> Self {
        IndexView {
            name: name.to_owned(),
            phase: PhaseKind::Uninitialized,
            read_index: None,
            write_index: None,
            previous_index: None,
            flipped_at: None,
            reason: None,
            abandoned: Vec::new(),
            progress: None,
            failures: Vec::new(),
            updated_at: None,
            drift: None,
        }
    }

    /// The view of `state`; `live` replaces the stored progress with the
    /// running copy's newer counters.
    pub fn new(state: &IndexState, live: Option<CopyProgress>, now: DateTime<Utc>) -> Self {
        let copy = live.or_else(|| state.phase.copy().cloned());
        let (previous, flipped_at, reason) = match &state.phase {
            Phase::Live { .. } => (None, None, None),
            Phase::Copying { source, .. }
            | Phase::Filling { source, .. }
            | Phase::Ready { source, .. } => (Some(source.clone()), None, None),
            Phase::Failed { source, reason, .. } => {
                (Some(source.clone()), None, Some(reason.clone()))
            }
            Phase::Flipped {
                previous,
                flipped_at,
                ..
            } => (Some(previous.clone()), Some(*flipped_at), None),
        };
        IndexView {
            name: state.name.clone(),
            phase: state.phase.kind(),
            read_index: Some(state.phase.read_index().to_owned()),
            write_index: Some(state.phase.write_index().to_owned()),
            previous_index: previous,
            flipped_at,
            reason,
            abandoned: state.abandoned.clone(),
            failures: copy
                .as_ref()
                .map(|c| c.failures.clone())
                .unwrap_or_default(),
            progress: copy.as_ref().map(|c| ProgressView::new(c, now)),
            updated_at: Some(state.updated_at),
            drift: None,
        }
    }
}
