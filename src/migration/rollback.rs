//! Rollback that never loses application writes silently. Since stage 1
//! the application wrote into the new generation; the copy's version-0
//! tag tells exactly which documents it wrote and which it deleted
//! ([`delta`](super::delta)). A bare rollback is refused while there are
//! any; `replay` puts them into the old generation first (with a brief
//! write block on the new one at the switch); `discard` drops them and
//! says how many.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{info, warn};

use super::delta::{self, Delta, DeltaCounts};
use super::error::MigrationError;
use super::ops::{add, remove, Migrator};
use super::phase::{Action, IllegalTransition, IndexState};
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
struct Look {
    delta: Delta,
    /// Why `delta.deleted` is unknown, when it is.
    unknown: Option<String>,
    /// Every document seen, for a second look to compare with.
    present: HashSet<DocKey>,
    /// Its shards' highest sequence numbers before the look.
    seq_nos: Vec<i64>,
}

/// Documents per replay bulk request.
const REPLAY_CHUNK: usize = 500;
/// Keys per scan page.
const SCAN_PAGE: usize = 10_000;

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
        let stored = self.load(name).await?;
        let next = stored.state.rollback(Utc::now())?;
        let old = next.phase.read_index().to_owned();
        let new = stored.state.phase.write_index().to_owned();
        let copy = stored.state.phase.copy().cloned();
        if policy == WritesPolicy::Replay && stored.state.phase.name() == "copying" {
            return Err(illegal(
                &stored.state,
                "--replay waits for the copy to finish: only a finished copy tells which documents the \
                 application deleted. Let it reach ready and roll back then, or roll back now with \
                 --discard-writes",
            ));
        }
        let Look {
            delta,
            unknown,
            present,
            seq_nos,
        } = self.delta(&old, &new, copy.as_ref()).await?;
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
                let pause = self
                    .replay(&old, &new, &delta, &present, &seq_nos, &stored, next)
                    .await?;
                report.write_pause_ms = Some(pause.as_millis() as u64);
                let state = self.finish_rollback(name, &stored, &new).await?;
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
        if stored.state.phase.name() == "flipped" {
            actions.extend(self.move_extra_aliases(name, &new, &old).await?);
        }
        self.transition(&stored, next, &actions).await?;
        let state = self.finish_rollback(name, &stored, &new).await?;
        if stored.state.phase.name() != "copying" && !seq_nos.is_empty() {
            // Nothing but the application writes there now: operations
            // since the look raced the switch and are not in the counts.
            let after = self.es().max_seq_nos(&new).await?;
            report.late_operations = after
                .iter()
                .zip(&seq_nos)
                .map(|(a, b)| (a - b).max(0) as u64)
                .sum();
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
    async fn rollback_actions(
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
    ) -> Result<IndexState, MigrationError> {
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
        Ok(self.load(name).await?.state)
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
            let deleted = delta::deletes(&old_scan, &present, &failed);
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

    /// Replays `delta` from `new` into `old` while the application keeps
    /// writing, then blocks writes to `new`, replays what changed in the
    /// meantime, moves the aliases and lifts the block. Returns how long
    /// writes were blocked.
    async fn replay(
        &self,
        old: &str,
        new: &str,
        first: &Delta,
        before: &HashSet<DocKey>,
        seq_nos: &[i64],
        stored: &Stored,
        next: IndexState,
    ) -> Result<Duration, MigrationError> {
        let es = self.es();
        self.apply(old, new, first).await?;
        let name = &stored.state.name;
        let mut actions = self.rollback_actions(name, old).await?;
        if stored.state.phase.name() == "flipped" {
            actions.extend(self.move_extra_aliases(name, new, old).await?);
        }
        if let Err(e) = es.set_write_block(new, true).await {
            // A lost answer may have set it: never leave the block behind.
            let _ = es.set_write_block(new, false).await;
            return Err(e.into());
        }
        let blocked = Instant::now();
        let switched = async {
            es.refresh(new).await?;
            let change = match self.changed_since(new, seq_nos).await? {
                Some(change) => change,
                None => {
                    let scan = es
                        .scan_versions(new, es.primary_shards(new).await?, SCAN_PAGE)
                        .await?;
                    let later = Delta {
                        written: delta::writes(&scan),
                        deleted: Some(HashSet::new()),
                    };
                    first.since(&later, before, &delta::present(&scan))
                }
            };
            self.apply(old, new, &change).await?;
            es.refresh(old).await?;
            self.transition(stored, next, &actions).await
        }
        .await;
        let unblocked = es.set_write_block(new, false).await;
        let pause = blocked.elapsed();
        switched?;
        if let Err(e) = unblocked {
            warn!(generation = %new, error = %e, "could not lift the write block of the abandoned generation");
        }
        Ok(pause)
    }

    /// What changed in `new` since its shards were at `seq_nos`, read from
    /// the operations after them alone — when every such operation is the
    /// last one of a live document (no delete, nothing written twice).
    /// `None`: the caller must compare whole scans.
    async fn changed_since(
        &self,
        new: &str,
        seq_nos: &[i64],
    ) -> Result<Option<Delta>, MigrationError> {
        let now = self.es().max_seq_nos(new).await?;
        if now.len() != seq_nos.len() {
            return Ok(None);
        }
        let mut written = std::collections::HashMap::new();
        for (shard, (now, then)) in now.iter().zip(seq_nos).enumerate() {
            if now == then {
                continue;
            }
            let docs = self
                .es()
                .changed_since(new, shard, *then, SCAN_PAGE)
                .await?;
            if docs.len() as i64 != now - then || docs.iter().any(|d| d.version < 1) {
                return Ok(None);
            }
            written.extend(docs.into_iter().map(|d| (d.key, d.version)));
        }
        Ok(Some(Delta {
            written,
            deleted: Some(HashSet::new()),
        }))
    }

    /// Writes `delta` into `to`: each written document as it is in `from`
    /// now (with its routing), each deleted one removed.
    async fn apply(&self, to: &str, from: &str, delta: &Delta) -> Result<(), MigrationError> {
        let keys: Vec<DocKey> = delta.written.keys().cloned().collect();
        for chunk in keys.chunks(REPLAY_CHUNK) {
            let sources = self.es().sources(from, chunk).await?;
            let mut body = Vec::new();
            for (key, source) in chunk.iter().zip(sources) {
                match source {
                    Some(source) => {
                        push_action(&mut body, "index", to, key);
                        body.extend_from_slice(source.get().replace('\n', " ").as_bytes());
                        body.push(b'\n');
                    }
                    // Deleted since the scan: delete it here too.
                    None => push_action(&mut body, "delete", to, key),
                }
            }
            self.replay_bulk(body).await?;
        }
        let deleted: Vec<&DocKey> = delta.deleted.iter().flatten().collect();
        for chunk in deleted.chunks(REPLAY_CHUNK) {
            let mut body = Vec::new();
            for key in chunk {
                push_action(&mut body, "delete", to, key);
            }
            self.replay_bulk(body).await?;
        }
        Ok(())
    }

    /// Sends one replay body; busy answers are retried, any item that is
    /// neither written nor an already-missing delete is an error.
    async fn replay_bulk(&self, body: Vec<u8>) -> Result<(), MigrationError> {
        let body = bytes::Bytes::from(body);
        let mut wait = Duration::from_millis(200);
        for attempt in 1.. {
            let busy = match self.es().bulk(body.clone(), None, None).await {
                Ok(answer) => {
                    let bad = answer
                        .items
                        .iter()
                        .find(|i| !(200..300).contains(&i.status) && i.status != 404);
                    match bad {
                        None => return Ok(()),
                        Some(i) if i.status == 429 || i.status >= 500 => {
                            format!("item {:?} answered {}", i.id, i.status)
                        }
                        Some(i) => {
                            return Err(MigrationError::Replay(format!(
                                "the old generation refused document {:?}: {} {}",
                                i.id.as_deref().unwrap_or("?"),
                                i.error_type.as_deref().unwrap_or(""),
                                i.error_reason.as_deref().unwrap_or("")
                            )))
                        }
                    }
                }
                Err(e)
                    if e.is_unavailable() || e.status().is_some_and(|s| s == 429 || s >= 500) =>
                {
                    e.to_string()
                }
                Err(e) => return Err(e.into()),
            };
            if attempt == 8 {
                return Err(MigrationError::Replay(format!(
                    "the cluster stayed busy: {busy}"
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
        unreachable!("the loop returns")
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

fn push_action(body: &mut Vec<u8>, action: &str, index: &str, key: &DocKey) {
    let mut meta = json!({"_index": index, "_id": key.id});
    if let Some(r) = &key.routing {
        meta["routing"] = json!(r);
    }
    let line = json!({ action: meta });
    body.extend_from_slice(line.to_string().as_bytes());
    body.push(b'\n');
}

fn illegal(state: &IndexState, detail: &str) -> MigrationError {
    IllegalTransition {
        name: state.name.clone(),
        action: Action::Rollback,
        phase: state.phase.name(),
        detail: Some(detail.to_owned()),
    }
    .into()
}
