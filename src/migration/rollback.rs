//! Rollback that never loses application writes silently. Since stage 1
//! the application wrote into the new generation; the copy's version-0
//! tag tells exactly which documents it wrote and which it deleted
//! ([`delta`](super::delta)). A bare rollback is refused while there are
//! any; `replay` puts them into the old generation first (with a brief
//! write block on the new one at the switch; see [`replay`](super::replay));
//! `discard` drops them and says how many.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use super::delta::{self, Delta, DeltaCounts};
use super::error::MigrationError;
use super::ops::{add, remove, Migrator};
use super::phase::{Action, IllegalTransition, IndexState, PhaseKind};
use super::progress::CopyProgress;
use super::store::Stored;
use crate::es::{AliasAction, DocKey};

/// What a rollback does with the application's writes since stage 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WritesPolicy {
    /// Refuse when there are any (`writes_would_be_lost`).
    #[default]
    Refuse,
    /// Copy them into the old generation, then switch.
    Replay,
    /// Switch at once and drop them.
    Discard,
}

/// What a rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub writes: WritesPolicy,
    /// Application writes and deletes found since stage 1.
    #[serde(flatten)]
    pub counts: DeltaCounts,
    /// With `replay`: how long writes to the new generation were blocked
    /// around the switch, in milliseconds.
    pub write_pause_ms: Option<u64>,
    /// Application operations that reached the new generation between the
    /// count and the alias switch of a bare or discarding rollback: not in
    /// the counts, not in the old generation.
    pub late_operations: u64,
}

/// One look at the new generation.
pub(super) struct Look {
    pub(super) delta: Delta,
    /// Why `delta.deleted` is unknown, when it is.
    pub(super) unknown: Option<String>,
    /// Every document seen, for a second look to compare with.
    pub(super) present: HashSet<DocKey>,
    /// Its shards' highest sequence numbers before the look.
    pub(super) seq_nos: Vec<i64>,
}

/// Keys per scan page.
pub(super) const SCAN_PAGE: usize = 10_000;

impl Migrator {
    /// Puts read and write back on the old generation, from any phase after
    /// stage 1, handling the application's writes since stage 1 by
    /// `policy`. Aliases are set from what the cluster has, not from what
    /// the state expects, so a rollback also repairs a half-done change.
    pub async fn rollback(
        &self,
        name: &str,
        policy: WritesPolicy,
    ) -> Result<(IndexState, RollbackReport), MigrationError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.rollback_once(name, policy).await {
                // A running copy saved a checkpoint between the look and
                // the switch: the state write was refused and nothing was
                // changed, so look again.
                Err(MigrationError::Conflict(_)) if tries < 5 && self.copying(name).await => {
                    info!(
                        index = name,
                        "the copy saved a checkpoint meanwhile; rolling back again"
                    );
                }
                outcome => return outcome,
            }
        }
    }

    async fn copying(&self, name: &str) -> bool {
        self.load(name)
            .await
            .is_ok_and(|s| s.state.phase.kind() == PhaseKind::Copying)
    }

    async fn rollback_once(
        &self,
        name: &str,
        policy: WritesPolicy,
    ) -> Result<(IndexState, RollbackReport), MigrationError> {
        let stored = self.load(name).await?;
        let next = stored.state.rollback(self.now())?;
        let old = next.phase.read_index().to_owned();
        let new = stored.state.phase.write_index().to_owned();
        let copy = stored.state.phase.copy().cloned();
        if policy == WritesPolicy::Replay {
            let wait = match stored.state.phase.kind() {
                PhaseKind::Copying => Some("the copy to finish: only a finished copy tells"),
                PhaseKind::Filling => Some(
                    "the refill to be declared filled (`reindexd filled`): only a finished refill tells",
                ),
                _ => None,
            };
            if let Some(wait) = wait {
                return Err(illegal(
                    &stored.state,
                    &format!(
                        "--replay waits for {wait} which documents the application deleted. \
                         Let it reach ready and roll back then, or roll back now with --discard-writes"
                    ),
                ));
            }
        }
        let look = self.delta(&old, &new, copy.as_ref()).await?;
        let (delta, unknown, seq_nos) = (&look.delta, look.unknown.clone(), &look.seq_nos);
        let mut report = RollbackReport {
            writes: policy,
            counts: delta.counts(),
            write_pause_ms: None,
            late_operations: 0,
        };
        match policy {
            WritesPolicy::Refuse if !delta.is_empty() => {
                return Err(MigrationError::WritesWouldBeLost {
                    name: name.to_owned(),
                    written: report.counts.written,
                    deleted: report.counts.deleted,
                    detail: unknown,
                })
            }
            WritesPolicy::Replay if delta.deleted.is_none() => {
                return Err(illegal(
                    &stored.state,
                    &format!(
                        "--replay cannot know which documents were deleted: {}",
                        unknown.unwrap_or_default()
                    ),
                ))
            }
            WritesPolicy::Replay => {
                let (pause, switched) = self.replay(&old, &new, &look, &stored, next).await?;
                report.write_pause_ms = Some(pause.as_millis() as u64);
                let state = self.finish_rollback(name, &stored, &new, switched).await;
                info!(index = name, written = report.counts.written, deleted = ?report.counts.deleted,
                      write_pause_ms = report.write_pause_ms, "rolled back; application writes since stage 1 replayed");
                return Ok((state, report));
            }
            WritesPolicy::Discard if !delta.is_empty() => {
                warn!(index = name, written = report.counts.written, deleted = ?report.counts.deleted,
                      "rolling back and discarding the application's writes since stage 1 (they stay in {new})");
            }
            _ => {}
        }
        let mut actions = self.rollback_actions(name, &old).await?;
        if stored.state.phase.kind() == PhaseKind::Flipped {
            actions.extend(self.move_extra_aliases(name, &new, &old).await?);
        }
        let switched = self.transition(&stored, next, &actions).await?;
        let state = self.finish_rollback(name, &stored, &new, switched).await;
        let after = match stored.state.phase.name() {
            "copying" => None,
            _ if seq_nos.is_empty() => None,
            // Only the application writes there now: operations since the
            // look raced the switch and are not in the counts. The switch
            // is done; a failed look is logged, not an error.
            _ => match self.es().max_seq_nos(&new).await {
                Ok(after) => Some(after),
                Err(e) => {
                    warn!(index = name, error = %e, "could not check for writes that raced the switch");
                    None
                }
            },
        };
        if let Some(after) = after {
            report.late_operations = crate::es::operations_between(seq_nos, &after);
            if report.late_operations > 0 {
                warn!(index = name, late_operations = report.late_operations, generation = %new,
                      "application operations reached the abandoned generation between the check and the switch; they are not in the old generation");
            }
        }
        info!(index = name, generation = %old, abandoned = %new, "rolled back");
        Ok((state, report))
    }

    /// Alias actions that put read and write on `old`, whatever points
    /// where now.
    pub(super) async fn rollback_actions(
        &self,
        name: &str,
        old: &str,
    ) -> Result<Vec<AliasAction>, MigrationError> {
        let names = self.names(name);
        let (read, write) = (names.read_alias(), names.write_alias());
        let mut actions: Vec<AliasAction> = self
            .es()
            .get_aliases(&format!("{read},{write}"))
            .await?
            .into_iter()
            .filter(|l| l.index != old)
            .map(|l| remove(&l.index, &l.alias))
            .collect();
        actions.push(add(old, &read, None));
        actions.push(add(old, &write, Some(true)));
        Ok(actions)
    }

    /// After the aliases moved: count it, stop a server-side copy, and give
    /// the abandoned generation its own settings back.
    async fn finish_rollback(
        &self,
        name: &str,
        before: &Stored,
        abandoned: &str,
        switched: IndexState,
    ) -> IndexState {
        self.count_alias_change(name, "rollback");
        let phase = &before.state.phase;
        if let (Some(task), "copying") = (phase.copy().and_then(|c| c.task.clone()), phase.name()) {
            // A server-side copy must stop writing into the abandoned generation.
            if let Err(e) = self.es().cancel_task(&task).await {
                warn!(index = name, %task, error = %e, "could not cancel the server-side reindex task");
            }
        }
        if let Some(settings) = phase
            .copy()
            .filter(|c| !c.settings_restored)
            .map(|c| c.saved_settings.clone())
        {
            if let Err(e) = self
                .es()
                .put_settings(abandoned, &Value::Object(settings))
                .await
            {
                warn!(index = name, generation = %abandoned, error = %e, "could not restore the abandoned generation's settings");
            }
        }
        switched
    }

    /// The application's writes and deletes in `new` since stage 1, and
    /// why the deletes are unknown when they are.
    async fn delta(
        &self,
        old: &str,
        new: &str,
        copy: Option<&CopyProgress>,
    ) -> Result<Look, MigrationError> {
        let es = self.es();
        if !es.index_exists(new).await? {
            // Deleted by hand: whatever it held is gone already.
            return Ok(look(
                Default::default(),
                Some(HashSet::new()),
                None,
                HashSet::new(),
                Vec::new(),
            ));
        }
        // An index just made (auto-created by a stray write after the
        // generation was deleted) reports sequence numbers once its
        // primaries have started.
        es.wait_for_index(new, std::time::Duration::from_secs(30))
            .await?;
        let slices = es.primary_shards(new).await?;
        let seq_before = es.max_seq_nos(new).await?;
        es.refresh(new).await?;
        let scan = es.scan_versions(new, slices, SCAN_PAGE).await?;
        let written = delta::writes(&scan);
        let present = delta::present(&scan);
        let finished = copy.is_some_and(|c| c.finished_at.is_some());
        let recorded = copy.is_none_or(|c| c.failures.len() as u64 >= c.failed);
        if finished && recorded {
            let old_scan = es
                .scan_versions(old, es.primary_shards(old).await?, SCAN_PAGE)
                .await?;
            let failed: HashSet<&str> = copy
                .map(|c| c.failures.iter().map(|f| f.id.as_str()).collect())
                .unwrap_or_default();
            let mut deleted = delta::deletes(&old_scan, &present, &failed);
            // Written into the old generation by name after the copy's
            // snapshot: never in the new one, and not a delete either.
            for key in self.written_by_name(old, copy).await? {
                deleted.remove(&key);
            }
            return Ok(look(written, Some(deleted), None, present, seq_before));
        }
        if !finished {
            // Every operation on a shard takes one sequence number: when
            // the live documents up to the numbers read before the scan
            // account for all of them, nothing was deleted or overwritten
            // (later operations of a running copy do not matter here).
            let mut unaccounted = 0;
            for (shard, max) in seq_before.iter().enumerate() {
                let live = es.count_up_to_seq_no(new, shard, *max).await? as i64;
                unaccounted += (max + 1 - live).max(0);
            }
            if written.is_empty() && unaccounted == 0 {
                return Ok(look(
                    written,
                    Some(HashSet::new()),
                    None,
                    present,
                    seq_before,
                ));
            }
            let why = format!(
                "the copy has not read every document, and {unaccounted} operations in the new generation are \
                 not accounted for by its live documents"
            );
            return Ok(look(written, None, Some(why), present, seq_before));
        }
        let why = format!(
            "the copy recorded {} of its {} failed documents, so a missing document may be a failure rather than a delete",
            copy.map_or(0, |c| c.failures.len()),
            copy.map_or(0, |c| c.failed)
        );
        Ok(look(written, None, Some(why), present, seq_before))
    }

    /// Documents of the old generation whose last write came after the
    /// copy's snapshot (writes by its name).
    async fn written_by_name(
        &self,
        old: &str,
        copy: Option<&CopyProgress>,
    ) -> Result<Vec<DocKey>, MigrationError> {
        let Some(base) = copy.and_then(|c| c.source_seq_nos.as_ref()) else {
            return Ok(Vec::new());
        };
        let changes = self.es().changes_since(old, base, SCAN_PAGE).await?;
        Ok(changes
            .into_iter()
            .flatten()
            .flat_map(|shard| shard.docs)
            .map(|d| d.key)
            .collect())
    }
}

fn look(
    written: std::collections::HashMap<DocKey, i64>,
    deleted: Option<HashSet<DocKey>>,
    unknown: Option<String>,
    present: HashSet<DocKey>,
    seq_nos: Vec<i64>,
) -> Look {
    Look {
        delta: Delta { written, deleted },
        unknown,
        present,
        seq_nos,
    }
}

fn illegal(state: &IndexState, detail: &str) -> MigrationError {
    IllegalTransition {
        name: state.name.clone(),
        action: Action::Rollback,
        phase: state.phase.kind(),
        detail: Some(detail.to_owned()),
    }
    .into()
}
