//! Alias changes whose answer was lost (a 5xx, a timeout, a dropped
//! connection): the cluster is read back and the change is known to be
//! applied, not applied, or in neither shape — never guessed. Also what
//! `status` must show from the cluster as it is: the drift between a state
//! and its aliases, writes to the old generation by name.

use super::error::{AliasFailure, MigrationError};
use super::ops::Migrator;
use super::phase::{IndexState, Phase};
use super::view::IndexView;
use crate::es::{AliasAction, AliasEntry};

/// What the cluster's aliases say about an `_aliases` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasOutcome {
    /// Every action's effect holds.
    Applied,
    /// No action's effect holds: the aliases are as they were.
    NotApplied,
    /// Some hold and some do not: someone else changed them too.
    Unknown,
}

/// Whether the effect of each action holds in `links` (read after the
/// request), or the links are still `before` (read before it).
pub fn alias_outcome(
    actions: &[AliasAction],
    before: &[AliasEntry],
    links: &[AliasEntry],
) -> AliasOutcome {
    let holds = |a: &AliasAction| match a {
        AliasAction::Add {
            index,
            alias,
            is_write_index,
        } => links.iter().any(|l| {
            &l.index == index
                && &l.alias == alias
                && (is_write_index.is_none() || l.is_write_index == *is_write_index)
        }),
        AliasAction::AddDefined(d) => links
            .iter()
            .any(|l| l.index == d.index && l.alias == d.alias),
        AliasAction::Remove { index, alias, .. } => {
            !links.iter().any(|l| &l.index == index && &l.alias == alias)
        }
    };
    if actions.iter().all(holds) {
        AliasOutcome::Applied
    } else if links == before {
        AliasOutcome::NotApplied
    } else {
        AliasOutcome::Unknown
    }
}

impl Migrator {
    /// Applies `actions` in one `_aliases` request. When the answer is
    /// lost, reads the aliases back: a change that was applied is a
    /// success; aliases as they were before the request mean it was not.
    pub(super) async fn apply_aliases(&self, actions: &[AliasAction]) -> Result<(), AliasFailure> {
        let pattern = alias_pattern(actions);
        let before = match self.es().get_aliases(&pattern).await {
            Ok(links) => links,
            Err(e) => return Err(AliasFailure::NotApplied(e)),
        };
        let error = match self.es().update_aliases(actions).await {
            Ok(()) => return Ok(()),
            Err(e) if !e.is_ambiguous() => return Err(AliasFailure::NotApplied(e)),
            Err(e) => e,
        };
        let _ = self.es().wait_for_pending_changes().await;
        let Ok(links) = self.es().get_aliases(&pattern).await else {
            return Err(AliasFailure::Unknown(error));
        };
        match alias_outcome(actions, &before, &links) {
            AliasOutcome::Applied => {
                tracing::warn!(error = %error, "the answer to an alias change was lost; read back: it was applied");
                Ok(())
            }
            AliasOutcome::NotApplied => Err(AliasFailure::NotApplied(error)),
            AliasOutcome::Unknown => Err(AliasFailure::Unknown(error)),
        }
    }

    /// Fills in what `view` of `state` must show from the cluster as it is
    /// now: drift between phase and aliases, and writes to the old
    /// generation since the copy's snapshot (also after the copy ended).
    pub async fn observe(
        &self,
        state: &IndexState,
        view: &mut IndexView,
    ) -> Result<(), MigrationError> {
        view.drift = self.drift(state).await?;
        if view.drift.is_none() {
            view.drift = self.blocked_writes(state).await?;
        }
        let (Some(copy), Some(progress)) = (state.phase.copy(), view.progress.as_mut()) else {
            return Ok(());
        };
        if let Some(old) = state.phase.old_generation() {
            let now = self.old_generation_writes(old, copy).await?;
            progress.old_generation_writes = progress.old_generation_writes.max(now);
        }
        if let Phase::Filling { source, target, .. } = &state.phase {
            // The refill's progress: the new generation's count against
            // the old one's, as searches see them now.
            let (old, new) = tokio::try_join!(self.es().count(source), self.es().count(target))?;
            progress.set_fill_counts(old, new);
        }
        Ok(())
    }

    /// A write block on the index behind the write alias (a replaying
    /// rollback that was interrupted): every application write fails.
    pub async fn blocked_writes(
        &self,
        state: &IndexState,
    ) -> Result<Option<String>, MigrationError> {
        let index = state.phase.write_index();
        Ok(self.es().write_blocked(index).await?.then(|| {
            format!(
                "writes to {index}, behind {}, are blocked (index.blocks.write; an interrupted rollback --replay?): \
                 every application write fails; `reindexd repair {}` lifts the block",
                self.names(&state.name).write_alias(),
                state.name
            )
        }))
    }

    /// How the aliases differ from what `state` expects, or `None` when
    /// they agree (read alias on exactly the read index, write alias on
    /// exactly the write index).
    pub async fn drift(&self, state: &IndexState) -> Result<Option<String>, MigrationError> {
        match self.verify_aliases(state).await {
            Ok(()) => Ok(None),
            Err(MigrationError::AliasConflict(_)) => {
                let names = self.names(&state.name);
                let (read, write) = (names.read_alias(), names.write_alias());
                let links = self.es().get_aliases(&format!("{read},{write}")).await?;
                let on = |alias: &str| {
                    let v: Vec<&str> = links
                        .iter()
                        .filter(|l| l.alias == alias)
                        .map(|l| l.index.as_str())
                        .collect();
                    if v.is_empty() {
                        "nothing".to_owned()
                    } else {
                        v.join(" and ")
                    }
                };
                Ok(Some(format!(
                    "{} is {}: it expects {read} on {} and {write} on {}, but {read} is on {} and {write} on {}; \
                     `reindexd repair {}` puts them where the state says (or `reindexd rollback {}` while a migration is under way)",
                    state.name,
                    state.phase.name(),
                    state.phase.read_index(),
                    state.phase.write_index(),
                    on(&read),
                    on(&write),
                    state.name,
                    state.name,
                )))
            }
            Err(e) => Err(e),
        }
    }
}

/// The aliases an action list touches, as a comma list.
fn alias_pattern(actions: &[AliasAction]) -> String {
    let mut names: Vec<&str> = actions
        .iter()
        .map(|a| match a {
            AliasAction::Add { alias, .. } | AliasAction::Remove { alias, .. } => alias.as_str(),
            AliasAction::AddDefined(d) => d.alias.as_str(),
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(alias: &str, index: &str, write: Option<bool>) -> AliasEntry {
        AliasEntry {
            alias: alias.into(),
            index: index.into(),
            is_write_index: write,
        }
    }

    fn stage1() -> Vec<AliasAction> {
        vec![
            AliasAction::Remove {
                index: "a".into(),
                alias: "w".into(),
                must_exist: Some(true),
            },
            AliasAction::Add {
                index: "b".into(),
                alias: "w".into(),
                is_write_index: Some(true),
            },
        ]
    }

    #[test]
    fn the_aliases_tell_applied_from_not_applied() {
        let before = [link("r", "a", None), link("w", "a", Some(true))];
        let after = [link("r", "a", None), link("w", "b", Some(true))];
        assert_eq!(
            alias_outcome(&stage1(), &before, &before),
            AliasOutcome::NotApplied
        );
        assert_eq!(
            alias_outcome(&stage1(), &before, &after),
            AliasOutcome::Applied
        );
    }

    #[test]
    fn an_action_that_held_before_does_not_make_it_unknown() {
        // Rollback from ready: the read alias is already on the old index.
        let rollback = vec![
            AliasAction::Remove {
                index: "b".into(),
                alias: "w".into(),
                must_exist: Some(true),
            },
            AliasAction::Add {
                index: "a".into(),
                alias: "r".into(),
                is_write_index: None,
            },
            AliasAction::Add {
                index: "a".into(),
                alias: "w".into(),
                is_write_index: Some(true),
            },
        ];
        let before = [link("r", "a", None), link("w", "b", Some(true))];
        assert_eq!(
            alias_outcome(&rollback, &before, &before),
            AliasOutcome::NotApplied
        );
    }

    #[test]
    fn anything_else_is_unknown() {
        let before = [link("r", "a", None), link("w", "a", Some(true))];
        let both = [link("w", "a", Some(false)), link("w", "b", Some(true))];
        assert_eq!(
            alias_outcome(&stage1(), &before, &both),
            AliasOutcome::Unknown
        );
        let none: [AliasEntry; 0] = [];
        assert_eq!(
            alias_outcome(&stage1(), &before, &none),
            AliasOutcome::Unknown
        );
        // The add holds but not as the write index.
        let plain = [link("w", "b", None)];
        assert_eq!(
            alias_outcome(&stage1(), &before, &plain),
            AliasOutcome::Unknown
        );
    }

    #[test]
    fn the_pattern_names_each_alias_once() {
        assert_eq!(alias_pattern(&stage1()), "w");
    }
}
