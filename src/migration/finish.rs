//! The end of a copy: the new generation checked to be the one stage 1
//! made, the old one checked for writes by its name, the counts judged,
//! and `ready` or `failed` stored; and what an operator may accept.

use serde_json::Value;
use tracing::warn;

use super::error::MigrationError;
use super::ops::Migrator;
use super::phase::{Action, IllegalTransition, IndexState, Phase};
use super::progress::CopyProgress;

impl Migrator {
    /// Ends a copy run by `owner`: refreshes the target, restores its
    /// settings, checks that the source did not change, and moves to
    /// `ready` or `failed` by the copy's verdict.
    pub async fn complete_copy(
        &self,
        name: &str,
        owner: &str,
        finish: impl Fn(&mut CopyProgress),
    ) -> Result<IndexState, MigrationError> {
        let stored = self.load(name).await?;
        let Some((source, target, copy)) = stored.state.phase.copying() else {
            return Err(IllegalTransition {
                name: name.to_owned(),
                action: Action::Reindex,
                phase: stored.state.phase.kind(),
                detail: Some("the copy was stopped".into()),
            }
            .into());
        };
        if copy.lease.as_ref().is_some_and(|l| l.owner != owner) {
            return Err(MigrationError::Conflict(name.to_owned()));
        }
        let mut copy = copy.clone();
        finish(&mut copy);
        copy.last_error = None;
        if let Some(reason) = self.target_replaced(target, &copy).await? {
            let next = stored
                .state
                .update_copy(Action::Reindex, |c| *c = copy.clone(), self.now())?
                .fail_copy(reason, self.now())?;
            return Ok(self.store().replace(&stored, next).await?.state);
        }
        self.es()
            .put_settings(target, &Value::Object(copy.saved_settings.clone()))
            .await?;
        copy.settings_restored = true;
        self.es().refresh(target).await?;
        copy.lease = None;
        let now = self.now();
        copy.old_generation_writes = self.old_generation_writes(source, &copy).await?;
        let source_now = self.es().count(source).await?;
        let next = if copy.source_seq_nos.is_none() && source_now != copy.total {
            let reason = format!(
                "the source {source} changed during the copy: {} documents when the copy started, {source_now} now; \
                 something writes to it by name instead of through {}",
                copy.total,
                self.names(name).write_alias()
            );
            stored
                .state
                .update_copy(Action::Reindex, |c| *c = copy.clone(), now)?
                .fail_copy(reason, now)?
        } else {
            // The verdict refuses old-generation writes with the rest.
            stored.state.finish_copy(copy, now)?
        };
        Ok(self.store().replace(&stored, next).await?.state)
    }

    /// Operations on the old generation `source` since the copy's read
    /// snapshot (0 when the copy has no snapshot numbers yet).
    pub async fn old_generation_writes(
        &self,
        source: &str,
        copy: &CopyProgress,
    ) -> Result<u64, MigrationError> {
        let Some(base) = &copy.source_seq_nos else {
            return Ok(0);
        };
        let now = self.es().max_seq_nos(source).await?;
        Ok(crate::es::operations_between(base, &now))
    }

    /// Why `target` is not the generation stage 1 made for `copy` (gone,
    /// or another index of that name: a bulk write auto-creates one), or
    /// `None` when it is.
    pub async fn target_replaced(
        &self,
        target: &str,
        copy: &CopyProgress,
    ) -> Result<Option<String>, MigrationError> {
        let Some(expected) = &copy.target_uuid else {
            return Ok(None);
        };
        Ok(match self.es().index_uuid(target).await? {
            Some(uuid) if &uuid == expected => None,
            Some(uuid) => Some(format!(
                "the new generation {target} was replaced during the copy (UUID {uuid}, stage 1 made {expected}): \
                 it was deleted and re-created, probably by a write that auto-created it; what was copied before is gone. \
                 Roll back and reindex again"
            )),
            None => Some(format!(
                "the new generation {target} was deleted during the copy; roll back and reindex again"
            )),
        })
    }

    /// Moves a running copy to `failed` with `reason`.
    pub async fn fail_copy(
        &self,
        name: &str,
        owner: &str,
        reason: &str,
    ) -> Result<IndexState, MigrationError> {
        let stored = self.load(name).await?;
        let mut restored = false;
        if let Phase::Copying { copy, target, .. } = &stored.state.phase {
            if copy.lease.as_ref().is_some_and(|l| l.owner != owner) {
                return Err(MigrationError::Conflict(name.to_owned()));
            }
            // The failed generation must not keep bulk-load settings.
            let settings = Value::Object(copy.saved_settings.clone());
            match self.es().put_settings(target, &settings).await {
                Ok(()) => restored = true,
                Err(e) => {
                    warn!(index = name, generation = %target, error = %e, "could not restore settings of the failed generation")
                }
            }
        }
        let now = self.now();
        let next = stored
            .state
            .update_copy(Action::Reindex, |c| c.settings_restored |= restored, now)?
            .fail_copy(reason.to_owned(), now)?;
        Ok(self.store().replace(&stored, next).await?.state)
    }

    /// The operator accepts recorded document failures.
    /// The operator accepts recorded document failures and the writes
    /// measured on the old generation by its name so far.
    pub async fn accept(&self, name: &str) -> Result<IndexState, MigrationError> {
        let stored = self.load(name).await?;
        let old_writes = match (
            stored.state.phase.old_generation(),
            stored.state.phase.copy(),
        ) {
            (Some(old), Some(copy)) => self.old_generation_writes(old, copy).await?,
            _ => 0,
        };
        let next = stored.state.accept_failures(old_writes, self.now())?;
        Ok(self.store().replace(&stored, next).await?.state)
    }
}
