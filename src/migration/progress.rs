//! What a copy has done so far, as persisted in the state document: counts,
//! recorded failures, per-slice checkpoints, live controls and the lease of
//! the process running it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::CopyEngine;

/// Which engine runs a copy, as the state document records it. The state's
/// own type, not the configuration's: its serde names are part of the
/// stored format and never change with the configuration's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredEngine {
    #[serde(rename = "client")]
    Client,
    #[serde(rename = "server")]
    Server,
    #[serde(rename = "external")]
    External,
}

impl From<CopyEngine> for StoredEngine {
    fn from(engine: CopyEngine) -> Self {
        match engine {
            CopyEngine::Client => StoredEngine::Client,
            CopyEngine::Server => StoredEngine::Server,
            CopyEngine::External => StoredEngine::External,
        }
    }
}

/// At most this many failed documents are kept with id and reason; the
/// count in `failed` is always exact.
pub const MAX_RECORDED_FAILURES: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyProgress {
    pub engine: StoredEngine,
    pub started_at: DateTime<Utc>,
    /// Set once every slice is done (or the server task completed).
    pub finished_at: Option<DateTime<Utc>>,
    /// Documents in the source when the copy's read snapshot was taken.
    pub total: u64,
    /// Written into the target by the copy.
    pub copied: u64,
    /// Not written because the application wrote or deleted the same
    /// document in the target first (a 409 against version 1 or more).
    pub superseded: u64,
    /// Not written again: this copy's own earlier write of the document is
    /// already there (a resend after a restart or a lost answer).
    #[serde(default)]
    pub resent: u64,
    /// Refused by the target for good (mapping conflicts and the like).
    pub failed: u64,
    #[serde(default)]
    pub failures: Vec<DocFailure>,
    /// The operator accepted the failures: they no longer block `ready`.
    #[serde(default)]
    pub accept_failures: bool,
    #[serde(default)]
    pub paused: bool,
    /// Documents per second; `None` = unthrottled.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// The copy yields to live search (`copy.priority = "background"`).
    #[serde(default)]
    pub background: bool,
    #[serde(default)]
    pub slices: Vec<SliceCheckpoint>,
    /// The target's settings before bulk-load settings replaced them
    /// (`null` = was unset); put back before `ready` and on rollback.
    #[serde(default)]
    pub saved_settings: Map<String, Value>,
    #[serde(default)]
    pub settings_restored: bool,
    /// Who runs the copy, and until when that claim holds without renewal.
    #[serde(default)]
    pub lease: Option<Lease>,
    /// The cluster task of a server-side copy.
    #[serde(default)]
    pub task: Option<String>,
    /// The UUID of the new generation made at stage 1: a generation of the
    /// same name with another UUID (deleted by hand, auto-created by a
    /// write) is not the one being filled.
    #[serde(default)]
    pub target_uuid: Option<String>,
    /// The source's highest sequence number per primary shard when the
    /// copy's read snapshot was taken: any operation on the source after
    /// it (a write by the old generation's name) is not in the copy.
    #[serde(default)]
    pub source_seq_nos: Option<Vec<i64>>,
    /// Operations on the source since `source_seq_nos`, as last measured:
    /// writes or deletes by its concrete name that the new generation
    /// lacks. They block `ready` and the flip until accepted.
    #[serde(default)]
    pub old_generation_writes: u64,
    /// As many old-generation operations as the operator accepted (`accept`).
    #[serde(default)]
    pub accepted_old_generation_writes: u64,
    /// The error the copy last retried after, while it runs; cleared when
    /// it ends.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The point in time the client copy reads, while it is open: with it
    /// the slices' `after` cursors resume exactly where they stopped.
    #[serde(default)]
    pub pit: Option<String>,
    /// The ingest pipeline the copy's writes run, if any.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// External refill: how many documents the new generation may differ
    /// from the old one by, as configured when `filled` counted them.
    #[serde(default)]
    pub fill_tolerance: u64,
}

/// One document the target refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocFailure {
    pub id: String,
    pub status: u16,
    pub reason: String,
}

/// Progress of one source slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceCheckpoint {
    pub id: u32,
    pub max: u32,
    pub done: bool,
    /// Documents of this slice in the read snapshot.
    pub total: u64,
    /// Outcomes of the documents up to `after` (all of them when done).
    pub copied: u64,
    pub superseded: u64,
    #[serde(default)]
    pub resent: u64,
    pub failed: u64,
    /// Sort values of the last document whose outcome, and every earlier
    /// one's, is known: a point-in-time read resumes after it.
    #[serde(default)]
    pub after: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub expires_at: DateTime<Utc>,
}

impl CopyProgress {
    pub fn new(engine: StoredEngine, total: u64, now: DateTime<Utc>) -> Self {
        CopyProgress {
            engine,
            started_at: now,
            finished_at: None,
            total,
            copied: 0,
            superseded: 0,
            resent: 0,
            failed: 0,
            failures: Vec::new(),
            accept_failures: false,
            paused: false,
            requests_per_second: None,
            background: false,
            slices: Vec::new(),
            saved_settings: Map::new(),
            settings_restored: false,
            lease: None,
            task: None,
            target_uuid: None,
            source_seq_nos: None,
            old_generation_writes: 0,
            accepted_old_generation_writes: 0,
            last_error: None,
            pit: None,
            pipeline: None,
            fill_tolerance: 0,
        }
    }

    /// Documents accounted for so far.
    pub fn done(&self) -> u64 {
        self.copied + self.superseded + self.resent + self.failed
    }

    /// Share of the source accounted for, 0.0 to 1.0.
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            return if self.finished_at.is_some() { 1.0 } else { 0.0 };
        }
        (self.done() as f64 / self.total as f64).min(1.0)
    }

    /// Whether a finished copy may become `ready`: counts reconcile
    /// (copied + superseded + resent + failed = source) and no failure is left
    /// unaccepted. The error says what is wrong and what to do.
    pub fn verdict(&self) -> Result<(), NotReady> {
        if self.finished_at.is_none() {
            return Err(NotReady::Unfinished);
        }
        if self.engine == StoredEngine::External {
            // `total`: the old generation's documents, `copied`: the new
            // one's, both counted when the application declared it filled.
            let difference = self.copied.abs_diff(self.total);
            if difference > self.fill_tolerance && !self.accept_failures {
                return Err(NotReady::FillCountsDiffer {
                    old: self.total,
                    new: self.copied,
                    tolerance: self.fill_tolerance,
                });
            }
        } else if self.done() != self.total {
            return Err(NotReady::CountsDiffer {
                copied: self.copied,
                superseded: self.superseded,
                resent: self.resent,
                failed: self.failed,
                total: self.total,
            });
        }
        if self.old_generation_writes > self.accepted_old_generation_writes {
            return Err(NotReady::OldGenerationWrites {
                operations: self.old_generation_writes,
            });
        }
        if self.failed > 0 && !self.accept_failures {
            return Err(NotReady::DocumentsFailed {
                failed: self.failed,
                first: self
                    .failures
                    .first()
                    .map(|f| format!("; first: {} ({})", f.id, f.reason))
                    .unwrap_or_default(),
            });
        }
        Ok(())
    }
}

/// Why a finished copy may not become `ready`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("the copy has not finished")]
    Unfinished,
    #[error(
        "counts do not add up: copied {copied} + superseded {superseded} + resent {resent} + failed {failed} = {}, but the source had {total}",
        copied + superseded + resent + failed
    )]
    CountsDiffer {
        copied: u64,
        superseded: u64,
        resent: u64,
        failed: u64,
        total: u64,
    },
    #[error(
        "{operations} operations reached the old generation by its name after the copy's snapshot (writes that bypass the write alias); \
         the new generation lacks them. Find the writer, then roll back, or accept the loss with `reindexd accept`"
    )]
    OldGenerationWrites { operations: u64 },
    #[error(
        "the refilled generation has {new} documents, the old one {old}: a difference of {} is more than fill_tolerance ({tolerance}); \
         refill what is missing and run `reindexd filled` again, roll back, or accept the difference with `reindexd accept`",
        old.abs_diff(*new)
    )]
    FillCountsDiffer { old: u64, new: u64, tolerance: u64 },
    /// `first` is "; first: ID (REASON)" when a failure was recorded.
    #[error(
        "{failed} documents failed{first}; fix the mapping and reindex again, or accept them with `reindexd accept`"
    )]
    DocumentsFailed { failed: u64, first: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's names are part of the stored format: state documents
    /// written by any earlier version still read.
    #[test]
    fn the_stored_engine_names_never_change() {
        for (engine, name) in [
            (StoredEngine::Client, "client"),
            (StoredEngine::Server, "server"),
        ] {
            assert_eq!(serde_json::to_value(engine).unwrap(), name);
            assert_eq!(
                serde_json::from_value::<StoredEngine>(name.into()).unwrap(),
                engine
            );
        }
        assert_eq!(StoredEngine::from(CopyEngine::Server), StoredEngine::Server);
    }
}
