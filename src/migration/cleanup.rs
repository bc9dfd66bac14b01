//! Cleanup: deleting the generations a migration no longer needs — the
//! previous one once retention has passed since the flip, and those
//! abandoned by rollbacks — never one behind an alias, and never losing
//! track of one it could not delete.

use tracing::{info, warn};

use super::error::MigrationError;
use super::ops::Migrator;
use super::phase::{Action, IllegalTransition, IndexState};
use crate::es::{AliasEntry, EsError};

impl Migrator {
    /// Deletes generations no longer needed: the previous one once
    /// retention has passed since the flip, and those abandoned by
    /// rollbacks. Refused while any alias points at one of them.
    pub async fn cleanup(&self, name: &str) -> Result<(IndexState, Vec<String>), MigrationError> {
        let stored = self.load(name).await?;
        let (next, doomed) = stored
            .state
            .cleanup(self.config().migration.retention, self.now())?;
        // The previous generation goes only if nothing wrote to it by name
        // since the copy's snapshot (or that loss was accepted).
        if let (Some(old), Some(copy)) = (
            stored.state.phase.old_generation(),
            stored.state.phase.copy(),
        ) {
            let operations = self.old_generation_writes(old, copy).await?;
            if operations > copy.accepted_old_generation_writes {
                return Err(MigrationError::OldGenerationWritten {
                    name: name.to_owned(),
                    old: old.to_owned(),
                    operations,
                });
            }
        }
        for index in &doomed {
            let links: Vec<AliasEntry> = self.aliases_of(index).await?;
            if !links.is_empty() {
                return Err(IllegalTransition {
                    name: name.to_owned(),
                    action: Action::Cleanup,
                    phase: stored.state.phase.kind(),
                    detail: Some(format!(
                        "{index} is still behind {}",
                        links
                            .iter()
                            .map(|l| l.alias.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
                .into());
            }
        }
        // The state first: from here on no rollback can point an alias
        // at a doomed generation.
        let written = self.store().replace(&stored, next).await?;
        let mut left = Vec::new();
        for index in &doomed {
            match self.delete_settled(index).await {
                Ok(()) => info!(index = name, generation = %index, "deleted"),
                Err(e) => left.push((index.clone(), e)),
            }
        }
        if left.is_empty() {
            return Ok((written.state, doomed));
        }
        // Keep what is still there on the list, for the next cleanup.
        let keep: Vec<String> = left.iter().map(|(i, _)| i.clone()).collect();
        let mut state = written.state.clone();
        state.abandoned.extend(keep.iter().cloned());
        if let Err(e) = self.store().replace(&written, state).await {
            warn!(index = name, error = %e, generations = ?keep, "could not list the generations cleanup left; delete them by hand");
        }
        let (index, source) = left.remove(0);
        Err(MigrationError::CleanupIncomplete {
            name: name.to_owned(),
            index,
            source: Box::new(source),
        })
    }

    /// Deletes an index; a lost answer is settled by looking for it.
    async fn delete_settled(&self, index: &str) -> Result<(), EsError> {
        match self.es().delete_index(index).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) if e.is_ambiguous() => match async {
                let _ = self.es().wait_for_pending_changes().await;
                self.es().index_exists(index).await
            }
            .await
            {
                Ok(false) => Ok(()),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}
