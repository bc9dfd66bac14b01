//! The lifecycle of one logical index as data: phases carry what they need,
//! and every transition is a pure function that returns the next state or
//! an error naming the current phase.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::progress::{CopyProgress, StoredEngine};

/// Where a logical index is in its lifecycle, with the indexes involved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Read and write aliases on `index`.
    Live { index: String },
    /// Stage 1 done: write alias on `target`, read alias on `source`; the
    /// copy runs.
    Copying {
        source: String,
        target: String,
        copy: CopyProgress,
    },
    /// Stage 1 done for an external refill: write alias on `target`, read
    /// alias on `source`; the application refills `target` from its own
    /// source of truth until it declares it `filled`.
    Filling {
        source: String,
        target: String,
        copy: CopyProgress,
    },
    /// Copy finished and verified; waiting for stage 2.
    Ready {
        source: String,
        target: String,
        copy: CopyProgress,
    },
    /// The copy stopped: documents failed and were not accepted, or an
    /// error the copy cannot get past. Aliases as in `Copying`.
    Failed {
        source: String,
        target: String,
        copy: CopyProgress,
        reason: String,
    },
    /// Stage 2 done: both aliases on `index`; `previous` kept until cleanup.
    Flipped {
        index: String,
        previous: String,
        flipped_at: DateTime<Utc>,
        copy: CopyProgress,
    },
}

/// Which phase, without its data: what status, metrics and comparisons
/// use. `Uninitialized` is an index configured but never initialised (no
/// stored state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    Uninitialized,
    Live,
    Copying,
    Filling,
    Ready,
    Failed,
    Flipped,
}

impl PhaseKind {
    /// Every phase, in lifecycle order.
    pub const ALL: [PhaseKind; 7] = [
        PhaseKind::Uninitialized,
        PhaseKind::Live,
        PhaseKind::Copying,
        PhaseKind::Filling,
        PhaseKind::Ready,
        PhaseKind::Failed,
        PhaseKind::Flipped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PhaseKind::Uninitialized => "uninitialized",
            PhaseKind::Live => "live",
            PhaseKind::Copying => "copying",
            PhaseKind::Filling => "filling",
            PhaseKind::Ready => "ready",
            PhaseKind::Failed => "failed",
            PhaseKind::Flipped => "flipped",
        }
    }
}

impl std::fmt::Display for PhaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl PartialEq<&str> for PhaseKind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// What the lifecycle may be asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Reindex,
    Flip,
    Rollback,
    Cleanup,
    Accept,
    Pause,
    Resume,
    Throttle,
    Priority,
    Filled,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Reindex => "reindex",
            Action::Flip => "flip",
            Action::Rollback => "rollback",
            Action::Cleanup => "cleanup",
            Action::Accept => "accept failures of",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Throttle => "throttle",
            Action::Priority => "change the priority of",
            Action::Filled => "declare filled",
        }
    }

    /// The phases this action starts from, for error messages.
    fn allowed_from(self) -> &'static str {
        match self {
            Action::Reindex => "live",
            Action::Flip => "ready",
            Action::Rollback => "copying, filling, ready, failed or flipped",
            Action::Cleanup => "flipped (after retention), or live with abandoned generations",
            Action::Accept => {
                "failed (with document failures), copying, or ready or flipped with writes to the old generation"
            }
            Action::Pause | Action::Resume | Action::Throttle | Action::Priority => {
                "copying (a client or server copy; an external refill is paced by the application)"
            }
            Action::Filled => "filling, or failed after a refill (to verify again)",
        }
    }
}

/// A transition that the current phase does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} {name}: it is {phase}{}; {} needs {}", action.as_str(), detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(), action.as_str(), action.allowed_from())]
pub struct IllegalTransition {
    pub name: String,
    pub action: Action,
    pub phase: PhaseKind,
    /// Why, when the phase alone does not say it.
    pub detail: Option<String>,
}

/// The persisted state of one logical index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexState {
    pub name: String,
    #[serde(flatten)]
    pub phase: Phase,
    /// Generations left behind by rollbacks; cleanup deletes them once no
    /// alias points at them.
    #[serde(default)]
    pub abandoned: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

impl Phase {
    pub fn kind(&self) -> PhaseKind {
        match self {
            Phase::Live { .. } => PhaseKind::Live,
            Phase::Copying { .. } => PhaseKind::Copying,
            Phase::Filling { .. } => PhaseKind::Filling,
            Phase::Ready { .. } => PhaseKind::Ready,
            Phase::Failed { .. } => PhaseKind::Failed,
            Phase::Flipped { .. } => PhaseKind::Flipped,
        }
    }

    /// The phase's name as status and logs show it.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The index the read alias must point at in this phase.
    pub fn read_index(&self) -> &str {
        match self {
            Phase::Live { index } | Phase::Flipped { index, .. } => index,
            Phase::Copying { source, .. }
            | Phase::Filling { source, .. }
            | Phase::Ready { source, .. }
            | Phase::Failed { source, .. } => source,
        }
    }

    /// The index the write alias must point at in this phase.
    pub fn write_index(&self) -> &str {
        match self {
            Phase::Live { index } | Phase::Flipped { index, .. } => index,
            Phase::Copying { target, .. }
            | Phase::Filling { target, .. }
            | Phase::Ready { target, .. }
            | Phase::Failed { target, .. } => target,
        }
    }

    /// The generation being replaced, while one is (the copy's source).
    pub fn old_generation(&self) -> Option<&str> {
        match self {
            Phase::Live { .. } => None,
            Phase::Copying { source, .. }
            | Phase::Filling { source, .. }
            | Phase::Ready { source, .. }
            | Phase::Failed { source, .. } => Some(source),
            Phase::Flipped { previous, .. } => Some(previous),
        }
    }

    /// Source, target and progress of a copy that is running.
    pub fn copying(&self) -> Option<(&str, &str, &CopyProgress)> {
        match self {
            Phase::Copying {
                source,
                target,
                copy,
            } => Some((source, target, copy)),
            _ => None,
        }
    }

    pub fn copy(&self) -> Option<&CopyProgress> {
        match self {
            Phase::Live { .. } => None,
            Phase::Copying { copy, .. }
            | Phase::Filling { copy, .. }
            | Phase::Ready { copy, .. }
            | Phase::Failed { copy, .. }
            | Phase::Flipped { copy, .. } => Some(copy),
        }
    }
}

/// A finished copy or refill judged: `Ready` when its verdict allows,
/// `Failed` with the verdict's reason otherwise.
fn judged(source: &str, target: &str, copy: CopyProgress) -> Phase {
    let (source, target) = (source.to_owned(), target.to_owned());
    match copy.verdict() {
        Ok(()) => Phase::Ready {
            source,
            target,
            copy,
        },
        Err(why) => Phase::Failed {
            source,
            target,
            reason: why.to_string(),
            copy,
        },
    }
}

impl IndexState {
    pub fn new(name: &str, index: &str, now: DateTime<Utc>) -> Self {
        IndexState {
            name: name.to_owned(),
            phase: Phase::Live {
                index: index.to_owned(),
            },
            abandoned: Vec::new(),
            updated_at: now,
        }
    }

    fn illegal(&self, action: Action, detail: Option<String>) -> IllegalTransition {
        IllegalTransition {
            name: self.name.clone(),
            action,
            phase: self.phase.kind(),
            detail,
        }
    }

    fn with(&self, phase: Phase, now: DateTime<Utc>) -> IndexState {
        IndexState {
            name: self.name.clone(),
            phase,
            abandoned: self.abandoned.clone(),
            updated_at: now,
        }
    }

    /// Stage 1: `Live(A)` → `Copying(A → target)`, or `Filling` when the
    /// application refills the target (the external engine).
    pub fn start_copy(
        &self,
        target: &str,
        copy: CopyProgress,
        now: DateTime<Utc>,
    ) -> Result<IndexState, IllegalTransition> {
        let Phase::Live { index } = &self.phase else {
            return Err(self.illegal(Action::Reindex, None));
        };
        let (source, target) = (index.clone(), target.to_owned());
        let phase = if copy.engine == StoredEngine::External {
            Phase::Filling {
                source,
                target,
                copy,
            }
        } else {
            Phase::Copying {
                source,
                target,
                copy,
            }
        };
        Ok(self.with(phase, now))
    }

    /// The application declared its refill done and it was counted:
    /// `Filling` (or `Failed` after an earlier verification) → `Ready`
    /// when the counts agree within the tolerance, `Failed` otherwise.
    pub fn finish_fill(
        &self,
        copy: CopyProgress,
        now: DateTime<Utc>,
    ) -> Result<IndexState, IllegalTransition> {
        let (source, target) = match &self.phase {
            Phase::Filling { source, target, .. } => (source, target),
            Phase::Failed {
                source,
                target,
                copy: failed,
                ..
            } if failed.engine == StoredEngine::External => (source, target),
            _ => return Err(self.illegal(Action::Filled, None)),
        };
        Ok(self.with(judged(source, target, copy), now))
    }

    /// Copy finished: `Copying` → `Ready` when every document is accounted
    /// for and none failed (or failures are accepted), `Failed` otherwise.
    pub fn finish_copy(
        &self,
        copy: CopyProgress,
        now: DateTime<Utc>,
    ) -> Result<IndexState, IllegalTransition> {
        let Phase::Copying { source, target, .. } = &self.phase else {
            return Err(self.illegal(Action::Accept, Some("no copy is running".into())));
        };
        Ok(self.with(judged(source, target, copy), now))
    }

    /// The copy stopped on an error it cannot get past.
    pub fn fail_copy(
        &self,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<IndexState, IllegalTransition> {
        let Phase::Copying {
            source,
            target,
            copy,
        } = &self.phase
        else {
            return Err(self.illegal(Action::Accept, Some("no copy is running".into())));
        };
        Ok(self.with(
            Phase::Failed {
                source: source.clone(),
                target: target.clone(),
                copy: copy.clone(),
                reason,
            },
            now,
        ))
    }

    /// The operator accepts the recorded document failures and the
    /// `old_writes` operations measured on the old generation since the
    /// copy's snapshot: `Failed` → `Ready` when that is all that is wrong;
    /// while copying the flags are stored so the copy ends `Ready`; when
    /// `Ready`, new old-generation writes are accepted so the flip may go.
    pub fn accept_failures(
        &self,
        old_writes: u64,
        now: DateTime<Utc>,
    ) -> Result<IndexState, IllegalTransition> {
        let accepted = |copy: &CopyProgress| {
            let mut copy = copy.clone();
            copy.accept_failures = true;
            copy.old_generation_writes = copy.old_generation_writes.max(old_writes);
            copy.accepted_old_generation_writes = copy.old_generation_writes;
            copy
        };
        match &self.phase {
            Phase::Copying {
                source,
                target,
                copy,
            } => Ok(self.with(
                Phase::Copying {
                    source: source.clone(),
                    target: target.clone(),
                    copy: accepted(copy),
                },
                now,
            )),
            Phase::Failed {
                source,
                target,
                copy,
                ..
            } if copy.finished_at.is_some() => {
                let copy = accepted(copy);
                copy.verdict()
                    .map_err(|why| self.illegal(Action::Accept, Some(why.to_string())))?;
                Ok(self.with(
                    Phase::Ready {
                        source: source.clone(),
                        target: target.clone(),
                        copy,
                    },
                    now,
                ))
            }
            Phase::Failed { .. } => Err(self.illegal(
                Action::Accept,
                Some("the copy did not finish; roll back and reindex again".into()),
            )),
            Phase::Ready {
                source,
                target,
                copy,
            } if old_writes > copy.accepted_old_generation_writes => Ok(self.with(
                Phase::Ready {
                    source: source.clone(),
                    target: target.clone(),
                    copy: accepted(copy),
                },
                now,
            )),
            Phase::Flipped {
                index,
                previous,
                flipped_at,
                copy,
            } if old_writes > copy.accepted_old_generation_writes => Ok(self.with(
                Phase::Flipped {
                    index: index.clone(),
                    previous: previous.clone(),
                    flipped_at: *flipped_at,
                    copy: accepted(copy),
                },
                now,
            )),
            _ => Err(self.illegal(Action::Accept, None)),
        }
    }

    /// Stage 2: `Ready(A → B)` → `Flipped(B, previous A)`.
    pub fn flip(&self, now: DateTime<Utc>) -> Result<IndexState, IllegalTransition> {
        let Phase::Ready {
            source,
            target,
            copy,
        } = &self.phase
        else {
            return Err(self.illegal(Action::Flip, None));
        };
        Ok(self.with(
            Phase::Flipped {
                index: target.clone(),
                previous: source.clone(),
                flipped_at: now,
                copy: copy.clone(),
            },
            now,
        ))
    }

    /// Back to the old generation: read and write on A, B abandoned.
    pub fn rollback(&self, now: DateTime<Utc>) -> Result<IndexState, IllegalTransition> {
        let (old, new) = match &self.phase {
            Phase::Copying { source, target, .. }
            | Phase::Filling { source, target, .. }
            | Phase::Ready { source, target, .. }
            | Phase::Failed { source, target, .. } => (source, target),
            Phase::Flipped {
                index, previous, ..
            } => (previous, index),
            Phase::Live { .. } => {
                return Err(self.illegal(Action::Rollback, Some("nothing to roll back".into())))
            }
        };
        let mut next = self.with(Phase::Live { index: old.clone() }, now);
        if !next.abandoned.contains(new) {
            next.abandoned.push(new.clone());
        }
        Ok(next)
    }

    /// What cleanup may delete now: the previous generation once
    /// `retention` has passed since the flip, and abandoned generations.
    /// Returns the next state and the indexes to delete.
    pub fn cleanup(
        &self,
        retention: Duration,
        now: DateTime<Utc>,
    ) -> Result<(IndexState, Vec<String>), IllegalTransition> {
        match &self.phase {
            Phase::Flipped {
                index,
                previous,
                flipped_at,
                ..
            } => {
                // Checked: `DateTime + TimeDelta` panics past the calendar's
                // end, and a retention that long means "not yet".
                let due = chrono::Duration::from_std(retention)
                    .ok()
                    .and_then(|d| flipped_at.checked_add_signed(d))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                if now < due {
                    let left = (due - now).to_std().unwrap_or_default();
                    return Err(self.illegal(
                        Action::Cleanup,
                        Some(format!(
                            "retention keeps {previous} for {} more",
                            humantime::format_duration(Duration::from_secs(left.as_secs()))
                        )),
                    ));
                }
                let mut doomed = self.abandoned.clone();
                doomed.push(previous.clone());
                let mut next = self.with(
                    Phase::Live {
                        index: index.clone(),
                    },
                    now,
                );
                next.abandoned.clear();
                Ok((next, doomed))
            }
            Phase::Live { .. } if !self.abandoned.is_empty() => {
                let mut next = self.with(self.phase.clone(), now);
                next.abandoned.clear();
                Ok((next, self.abandoned.clone()))
            }
            Phase::Live { .. } => {
                Err(self.illegal(Action::Cleanup, Some("nothing to clean up".into())))
            }
            _ => Err(self.illegal(Action::Cleanup, None)),
        }
    }

    /// Replaces the progress of an external refill (its snapshot of the
    /// old generation).
    pub fn update_fill(
        &self,
        f: impl FnOnce(&mut CopyProgress),
        now: DateTime<Utc>,
    ) -> Result<IndexState, IllegalTransition> {
        let Phase::Filling {
            source,
            target,
            copy,
        } = &self.phase
        else {
            return Err(self.illegal(Action::Filled, None));
        };
        let mut copy = copy.clone();
        f(&mut copy);
        Ok(self.with(
            Phase::Filling {
                source: source.clone(),
                target: target.clone(),
                copy,
            },
            now,
        ))
    }

    /// Replaces the progress of a running copy (checkpoints, pause, throttle).
    pub fn update_copy(
        &self,
        action: Action,
        f: impl FnOnce(&mut CopyProgress),
        now: DateTime<Utc>,
    ) -> Result<IndexState, IllegalTransition> {
        let Phase::Copying {
            source,
            target,
            copy,
        } = &self.phase
        else {
            return Err(self.illegal(action, None));
        };
        if action == Action::Priority && copy.engine != StoredEngine::Client {
            return Err(self.illegal(
                action,
                Some(
                    "a server-side _reindex cannot yield to live search; throttle it instead"
                        .into(),
                ),
            ));
        }
        let mut copy = copy.clone();
        f(&mut copy);
        Ok(self.with(
            Phase::Copying {
                source: source.clone(),
                target: target.clone(),
                copy,
            },
            now,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
    }

    fn finished(total: u64, copied: u64, superseded: u64, failed: u64) -> CopyProgress {
        let mut c = CopyProgress::new(crate::migration::StoredEngine::Client, total, t(0));
        c.copied = copied;
        c.superseded = superseded;
        c.failed = failed;
        c.finished_at = Some(t(5));
        c
    }

    #[test]
    fn full_lifecycle() {
        let live = IndexState::new("wiki", "a", t(0));
        let copying = live
            .start_copy(
                "b",
                CopyProgress::new(crate::migration::StoredEngine::Client, 10, t(1)),
                t(1),
            )
            .unwrap();
        assert_eq!(
            (copying.phase.read_index(), copying.phase.write_index()),
            ("a", "b")
        );
        let ready = copying.finish_copy(finished(10, 7, 3, 0), t(2)).unwrap();
        assert_eq!(ready.phase.name(), "ready");
        let flipped = ready.flip(t(3)).unwrap();
        assert_eq!(
            (flipped.phase.read_index(), flipped.phase.write_index()),
            ("b", "b")
        );
        let err = flipped
            .cleanup(Duration::from_secs(3600), t(4))
            .unwrap_err();
        assert!(err.to_string().contains("retention keeps a for"), "{err}");
        // A retention past the calendar's end is "not yet", not a panic.
        assert!(flipped.cleanup(Duration::MAX, t(4)).is_err());
        let (live_b, doomed) = flipped
            .cleanup(Duration::from_secs(3600), t(3 + 3600))
            .unwrap();
        assert_eq!(live_b.phase, Phase::Live { index: "b".into() });
        assert_eq!(doomed, ["a"]);
    }

    #[test]
    fn illegal_transitions_name_the_phase() {
        let live = IndexState::new("wiki", "a", t(0));
        let err = live.flip(t(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot flip wiki: it is live; flip needs ready"
        );
        let err = live.rollback(t(1)).unwrap_err();
        assert_eq!(err.to_string(), "cannot rollback wiki: it is live (nothing to roll back); rollback needs copying, filling, ready, failed or flipped");
        let copying = live
            .start_copy(
                "b",
                CopyProgress::new(crate::migration::StoredEngine::Client, 1, t(1)),
                t(1),
            )
            .unwrap();
        assert_eq!(
            copying
                .start_copy(
                    "c",
                    CopyProgress::new(crate::migration::StoredEngine::Client, 1, t(1)),
                    t(2)
                )
                .unwrap_err()
                .phase,
            "copying"
        );
        assert_eq!(copying.flip(t(2)).unwrap_err().phase, "copying");
    }

    #[test]
    fn failures_block_ready_until_accepted() {
        let live = IndexState::new("wiki", "a", t(0));
        let copying = live
            .start_copy(
                "b",
                CopyProgress::new(crate::migration::StoredEngine::Client, 10, t(1)),
                t(1),
            )
            .unwrap();
        let failed = copying.finish_copy(finished(10, 8, 0, 2), t(2)).unwrap();
        assert_eq!(failed.phase.name(), "failed");
        assert_eq!(failed.flip(t(3)).unwrap_err().phase, "failed");
        let ready = failed.accept_failures(0, t(3)).unwrap();
        assert_eq!(ready.phase.name(), "ready");
        // Counts that do not add up are never accepted.
        let bad = copying.finish_copy(finished(10, 5, 0, 2), t(2)).unwrap();
        assert!(bad
            .accept_failures(0, t(3))
            .unwrap_err()
            .to_string()
            .contains("do not add up"));
    }

    #[test]
    fn rollback_from_every_later_phase_returns_to_a() {
        let live = IndexState::new("wiki", "a", t(0));
        let copying = live
            .start_copy(
                "b",
                CopyProgress::new(crate::migration::StoredEngine::Client, 1, t(1)),
                t(1),
            )
            .unwrap();
        let ready = copying.finish_copy(finished(1, 1, 0, 0), t(2)).unwrap();
        let flipped = ready.flip(t(3)).unwrap();
        for state in [&copying, &ready, &flipped] {
            let back = state.rollback(t(4)).unwrap();
            assert_eq!(back.phase, Phase::Live { index: "a".into() });
            assert_eq!(back.abandoned, ["b"]);
            let (clean, doomed) = back.cleanup(Duration::from_secs(86_400), t(5)).unwrap();
            assert_eq!(doomed, ["b"]);
            assert!(clean.abandoned.is_empty());
        }
    }

    #[test]
    fn state_document_round_trips() {
        let live = IndexState::new("wiki", "a", t(0));
        let copying = live
            .start_copy(
                "b",
                CopyProgress::new(crate::migration::StoredEngine::Client, 1, t(1)),
                t(1),
            )
            .unwrap();
        let json = serde_json::to_value(&copying).unwrap();
        assert_eq!(json["phase"], "copying");
        assert_eq!(json["target"], "b");
        let back: IndexState = serde_json::from_value(json).unwrap();
        assert_eq!(back, copying);
    }
}
