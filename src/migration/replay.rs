//! Replaying the application's writes since stage 1 from the new
//! generation into the old one, for a lossless rollback: the bulk copy
//! while the application keeps writing, then a write block on the new
//! generation, the catch-up on what changed meanwhile, the alias switch
//! and the block lifted. What to replay is decided in `rollback`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;
use tracing::warn;

use super::delta::{self, Delta};
use super::error::MigrationError;
use super::ops::Migrator;
use super::phase::{IndexState, PhaseKind};
use super::rollback::{Look, SCAN_PAGE};
use super::store::Stored;
use crate::es::DocKey;

/// Documents per replay bulk request.
const REPLAY_CHUNK: usize = 500;

impl Migrator {
    /// Replays `delta` from `new` into `old` while the application keeps
    /// writing, then blocks writes to `new`, replays what changed in the
    /// meantime, moves the aliases and lifts the block. Returns how long
    /// writes were blocked.
    pub(super) async fn replay(
        &self,
        old: &str,
        new: &str,
        look: &Look,
        stored: &Stored,
        next: IndexState,
    ) -> Result<(Duration, IndexState), MigrationError> {
        let es = self.es();
        let (first, before, seq_nos) = (&look.delta, &look.present, &look.seq_nos);
        self.apply(old, new, first).await?;
        let name = &stored.state.name;
        let mut actions = self.rollback_actions(name, old).await?;
        if stored.state.phase.kind() == PhaseKind::Flipped {
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
        if let Err(e) = unblocked {
            // `status` shows a block left on the write alias's index, and
            // `repair` lifts it.
            warn!(generation = %new, error = %e, "could not lift the write block of the new generation");
        }
        Ok((pause, switched?))
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
        let Some(changes) = self.es().changes_since(new, seq_nos, SCAN_PAGE).await? else {
            return Ok(None);
        };
        let mut written = std::collections::HashMap::new();
        for shard in changes {
            if shard.docs.len() as u64 != shard.operations
                || shard.docs.iter().any(|d| d.version < 1)
            {
                return Ok(None);
            }
            written.extend(shard.docs.into_iter().map(|d| (d.key, d.seq_no)));
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

fn push_action(body: &mut Vec<u8>, action: &str, index: &str, key: &DocKey) {
    let mut meta = json!({"_index": index, "_id": key.id});
    if let Some(r) = &key.routing {
        meta["routing"] = json!(r);
    }
    let line = json!({ action: meta });
    body.extend_from_slice(line.to_string().as_bytes());
    body.push(b'\n');
}
