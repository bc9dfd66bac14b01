//! The external refill: stage 1 moved the write alias and copied nothing;
//! the application refills the new generation from its own source of
//! truth and declares it `filled`; reindexd counts both generations and
//! moves to `ready` or `failed`.

use tracing::{info, warn};

use super::error::MigrationError;
use super::ops::Migrator;
use super::phase::{Action, IllegalTransition, IndexState, Phase};
use super::progress::StoredEngine;

impl Migrator {
    /// Right after stage 1 of a refill: the old generation's sequence
    /// numbers, so that `filled` can tell writes that reached it by name
    /// (which the refill may lack). Best effort: without them, those
    /// writes are not measured, and the log says so.
    pub(super) async fn fill_snapshot(&self, name: &str, written: IndexState) -> IndexState {
        let snapshot = async {
            let stored = self.load(name).await?;
            let Some(old) = stored.state.phase.old_generation() else {
                return Ok(stored.state);
            };
            let seq_nos = self.es().max_seq_nos(old).await?;
            let next = stored
                .state
                .update_fill(|c| c.source_seq_nos = Some(seq_nos), self.now())?;
            Ok::<_, MigrationError>(self.store().replace(&stored, next).await?.state)
        };
        match snapshot.await {
            Ok(state) => state,
            Err(e) => {
                warn!(index = name, error = %e, "could not record the old generation's sequence numbers: writes to it by name will not be measured");
                written
            }
        }
    }

    /// The application says its refill of `name` is done: restore the new
    /// generation's settings, refresh it, count both generations and the
    /// writes the old one took by name, and store `ready` or `failed`.
    /// From `failed` (after an earlier count) it counts again.
    pub async fn filled(&self, name: &str) -> Result<IndexState, MigrationError> {
        let stored = self.load(name).await?;
        let (source, target, copy) = match &stored.state.phase {
            Phase::Filling {
                source,
                target,
                copy,
            } => (source, target, copy),
            Phase::Failed {
                source,
                target,
                copy,
                ..
            } if copy.engine == StoredEngine::External => (source, target, copy),
            phase => {
                return Err(IllegalTransition {
                    name: name.to_owned(),
                    action: Action::Filled,
                    phase: phase.kind(),
                    detail: None,
                }
                .into())
            }
        };
        let mut copy = copy.clone();
        let now = self.now();
        if let Some(reason) = self.target_replaced(target, &copy).await? {
            return Err(MigrationError::Invalid(reason));
        }
        self.es()
            .put_settings(
                target,
                &serde_json::Value::Object(copy.saved_settings.clone()),
            )
            .await?;
        copy.settings_restored = true;
        self.es().refresh(target).await?;
        self.es().refresh(source).await?;
        copy.total = self.es().count(source).await?;
        copy.copied = self.es().count(target).await?;
        copy.fill_tolerance = self.index_config(name)?.fill_tolerance;
        copy.old_generation_writes = self.old_generation_writes(source, &copy).await?;
        copy.finished_at = Some(now);
        copy.last_error = None;
        let next = stored.state.finish_fill(copy, now)?;
        let written = self.store().replace(&stored, next).await?;
        info!(
            index = name,
            phase = written.state.phase.name(),
            "refill declared done and counted"
        );
        Ok(written.state)
    }
}
