//! Repair: a lost state document is rebuilt from what the cluster still
//! says — where the read and write aliases point, and which indexes are
//! this logical index's generations by their `_meta.reindexd` — and
//! aliases that drifted from a stored state are put where it says. When
//! neither can be done safely, the answer says exactly why.

use serde::Serialize;
use tracing::{info, warn};

use super::error::MigrationError;
use super::ops::{add, remove, Migrator};
use super::phase::{IndexState, Phase};
use super::progress::CopyProgress;
use crate::es::AliasAction;

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Repaired {
    /// State and aliases agreed; nothing was done.
    Nothing,
    /// The state document was missing and was rebuilt.
    StateRebuilt,
    /// The aliases were moved to where the stored state says.
    AliasesMoved,
    /// A write block on the write alias's index was lifted.
    WritesUnblocked,
}

/// Where the read and write aliases point, reduced to what a state needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasShape {
    pub read: Vec<String>,
    pub write: Vec<String>,
}

/// The state a lost one is rebuilt as, from the alias shape and the
/// generations that carry this logical index's `_meta.reindexd` — or why
/// none can be.
pub fn rebuilt_phase(
    name: &str,
    shape: &AliasShape,
    generations: &[String],
    copy: impl FnOnce() -> CopyProgress,
) -> Result<Phase, String> {
    let own = |i: &String| generations.contains(i);
    match (shape.read.as_slice(), shape.write.as_slice()) {
        ([], []) => Err(format!(
            "no alias of {name} exists: nothing tells which generation is live; point {name}_read and {name}_write at it by hand, then repair"
        )),
        ([r], [w]) if !own(r) || !own(w) => Err(format!(
            "the aliases point at {r} and {w}, but {} carries no reindexd metadata of {name}; fix the aliases by hand",
            if own(r) { w } else { r }
        )),
        ([r], [w]) if r == w => Ok(Phase::Live { index: r.clone() }),
        // Stage 1 was done; how far the copy got is lost with the state.
        ([r], [w]) => Ok(Phase::Failed {
            source: r.clone(),
            target: w.clone(),
            copy: copy(),
            reason: "the state was rebuilt by repair and the copy's progress was lost with it: roll back \
                     and reindex again (deletes since stage 1 are unknown now, so writes since then can only \
                     be discarded, and stay in the abandoned generation)"
                .into(),
        }),
        (read, write) => Err(format!(
            "{name}_read points at [{}] and {name}_write at [{}]: each must point at exactly one generation; fix them by hand, then repair",
            read.join(", "),
            write.join(", ")
        )),
    }
}

impl Migrator {
    /// Rebuilds a missing state document of `name`, or moves drifted
    /// aliases to where the stored state says. Refused, with the reason,
    /// when the cluster does not say enough.
    pub async fn repair(&self, name: &str) -> Result<(IndexState, Repaired), MigrationError> {
        self.index_config(name)?;
        self.store().ensure_index().await?;
        match self.store().get(name).await? {
            Some(stored) => {
                if self.blocked_writes(&stored.state).await?.is_some() {
                    let index = stored.state.phase.write_index();
                    self.es().set_write_block(index, false).await?;
                    warn!(index = name, generation = %index, "repair: lifted a write block on the write alias's index");
                    return Ok((stored.state, Repaired::WritesUnblocked));
                }
                if self.drift(&stored.state).await?.is_none() {
                    return Ok((stored.state, Repaired::Nothing));
                }
                self.align_aliases(&stored.state).await?;
                info!(
                    index = name,
                    phase = stored.state.phase.name(),
                    "repair: aliases moved to where the state says"
                );
                Ok((stored.state, Repaired::AliasesMoved))
            }
            None => {
                let state = self.rebuild_state(name).await?;
                warn!(
                    index = name,
                    phase = state.phase.name(),
                    "repair: the missing state document was rebuilt from the aliases"
                );
                Ok((state, Repaired::StateRebuilt))
            }
        }
    }

    /// Where `name`'s read and write aliases point.
    pub(super) async fn alias_shape(&self, name: &str) -> Result<AliasShape, MigrationError> {
        let names = self.names(name);
        let (read, write) = (names.read_alias(), names.write_alias());
        let links = self.es().get_aliases(&format!("{read},{write}")).await?;
        let on = |alias: &str| -> Vec<String> {
            links
                .iter()
                .filter(|l| l.alias == alias)
                .map(|l| l.index.clone())
                .collect()
        };
        Ok(AliasShape {
            read: on(&read),
            write: on(&write),
        })
    }

    async fn rebuild_state(&self, name: &str) -> Result<IndexState, MigrationError> {
        let shape = self.alias_shape(name).await?;
        let mut generations = Vec::new();
        for index in shape.read.iter().chain(&shape.write) {
            let meta = self.es().mapping_meta(index).await?;
            if meta["reindexd"]["logical"].as_str() == Some(name) && !generations.contains(index) {
                generations.push(index.clone());
            }
        }
        let engine = self.index_config(name)?.engine.into();
        let now = self.now();
        let phase = rebuilt_phase(name, &shape, &generations, || {
            CopyProgress::new(engine, 0, now)
        })
        .map_err(|why| MigrationError::CannotRepair {
            name: name.to_owned(),
            why,
        })?;
        let state = IndexState {
            name: name.to_owned(),
            phase,
            abandoned: Vec::new(),
            updated_at: now,
        };
        Ok(self.store().create_state(state).await?.state)
    }

    /// One `_aliases` request that puts read and write exactly where
    /// `state` says, removing every other link of the two.
    async fn align_aliases(&self, state: &IndexState) -> Result<(), MigrationError> {
        let names = self.names(&state.name);
        let (read, write) = (names.read_alias(), names.write_alias());
        let (read_on, write_on) = (state.phase.read_index(), state.phase.write_index());
        for index in [read_on, write_on] {
            if !self.es().index_exists(index).await? {
                return Err(MigrationError::CannotRepair {
                    name: state.name.clone(),
                    why: format!(
                        "the state says {} is {} with {index}, which does not exist; roll back or fix by hand",
                        state.name,
                        state.phase.name()
                    ),
                });
            }
        }
        let mut actions: Vec<AliasAction> = self
            .es()
            .get_aliases(&format!("{read},{write}"))
            .await?
            .into_iter()
            .filter(|l| {
                let kept = (l.alias == read && l.index == read_on)
                    || (l.alias == write && l.index == write_on);
                !kept
            })
            .map(|l| remove(&l.index, &l.alias))
            .collect();
        actions.push(add(read_on, &read, None));
        actions.push(add(write_on, &write, Some(true)));
        self.apply_aliases(&actions)
            .await
            .map_err(|f| f.into_error(&state.name))
    }

    /// The state is missing but aliases of `name` exist: what `status`
    /// says instead of a plain `uninitialized`.
    pub async fn missing_state(&self, name: &str) -> Result<Option<String>, MigrationError> {
        let shape = self.alias_shape(name).await?;
        if shape.read.is_empty() && shape.write.is_empty() {
            return Ok(None);
        }
        Ok(Some(format!(
            "{name} has no state document, yet {name}_read points at [{}] and {name}_write at [{}]; \
             `reindexd repair {name}` rebuilds the state from them",
            shape.read.join(", "),
            shape.write.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(read: &[&str], write: &[&str]) -> AliasShape {
        AliasShape {
            read: read.iter().map(|s| s.to_string()).collect(),
            write: write.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn rebuild(s: &AliasShape, generations: &[&str]) -> Result<Phase, String> {
        let g: Vec<String> = generations.iter().map(|s| s.to_string()).collect();
        rebuilt_phase("kb", s, &g, || {
            CopyProgress::new(
                crate::migration::StoredEngine::Client,
                0,
                chrono::Utc::now(),
            )
        })
    }

    #[test]
    fn one_generation_behind_both_aliases_is_live() {
        assert_eq!(
            rebuild(&shape(&["a"], &["a"]), &["a"]),
            Ok(Phase::Live { index: "a".into() })
        );
    }

    #[test]
    fn stage_1_shape_is_a_failed_copy_to_roll_back() {
        let Ok(Phase::Failed {
            source,
            target,
            reason,
            ..
        }) = rebuild(&shape(&["a"], &["b"]), &["a", "b"])
        else {
            panic!("expected failed");
        };
        assert_eq!((source.as_str(), target.as_str()), ("a", "b"));
        assert!(reason.contains("roll back"), "{reason}");
    }

    #[test]
    fn what_the_cluster_does_not_say_is_refused_with_the_reason() {
        assert!(rebuild(&shape(&[], &[]), &[])
            .unwrap_err()
            .contains("no alias"));
        assert!(rebuild(&shape(&["a"], &["a", "b"]), &["a", "b"])
            .unwrap_err()
            .contains("exactly one"));
        assert!(rebuild(&shape(&["a"], &["x"]), &["a"])
            .unwrap_err()
            .contains("x carries no reindexd metadata"));
    }
}
