//! Stage 1: the next generation from the mapping file, with bulk-load
//! settings, and the write alias moved to it — for one logical index or,
//! all or nothing, for several (a megapack).

use std::collections::HashSet;

use crate::config::CopyEngine;

use serde_json::{json, Map, Value};
use tracing::{info, warn};

use super::error::{AliasFailure, MigrationError};
use super::fill_plan::{FillPlan, Stage1Options};
use super::mapping::{MappingFile, BULK_SETTING_KEYS};
use super::ops::{add, remove, Migrator};
use super::phase::{Action, IllegalTransition, IndexState, Phase};
use super::progress::CopyProgress;

impl Migrator {
    /// Stage 1: creates the next generation from the mapping file with
    /// bulk-load settings and moves the write alias to it. The copy itself
    /// is run by the caller.
    pub async fn reindex(&self, name: &str) -> Result<IndexState, MigrationError> {
        let plan = FillPlan::configured(self.index_config(name)?, self.config().copy.priority);
        self.reindex_with(name, &plan).await
    }

    /// Stage 1 of `name`, filled as `plan` says.
    pub async fn reindex_with(
        &self,
        name: &str,
        plan: &FillPlan,
    ) -> Result<IndexState, MigrationError> {
        let index_config = self.index_config(name)?;
        let mapping = MappingFile::load(&index_config.mapping)?;
        let stored = self.load(name).await?;
        let Phase::Live { index: source } = &stored.state.phase else {
            return Err(IllegalTransition {
                name: name.to_owned(),
                action: Action::Reindex,
                phase: stored.state.phase.kind(),
                detail: None,
            }
            .into());
        };
        self.verify_aliases(&stored.state).await?;
        let now = self.now();
        let names = self.names(name);
        let target = self.free_generation_name(&names, now, Some(source)).await?;
        self.check_preflight(name, source, &target, &mapping, plan)
            .await?;

        let copy_config = &self.config().copy;
        let file_settings = mapping.flat_settings();
        let saved: Map<String, Value> = BULK_SETTING_KEYS
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    file_settings.get(*k).cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        // Replicas stay as the file says: the new generation takes the
        // application's writes from this moment on, and an unreplicated one
        // would lose them (and stop taking them) with any one node. An
        // external refill keeps the file's refresh interval: its progress
        // is the new generation's count, which only refreshes show.
        let external = plan.engine == CopyEngine::External;
        let mut bulk = Map::new();
        if !external {
            bulk.insert("index.refresh_interval".into(), json!("-1"));
        }
        bulk.insert(
            "index.gc_deletes".into(),
            json!(format!("{}s", copy_config.gc_deletes.as_secs())),
        );
        let token = fresh_token();
        let mut body = mapping.create_body(name, now, &bulk);
        body["mappings"]["_meta"]["reindexd"]["token"] = json!(token);
        self.create_own_generation(name, &target, &body, &token)
            .await?;

        let mut copy = CopyProgress::new(plan.engine.into(), 0, now);
        copy.saved_settings = saved;
        copy.pipeline = plan.pipeline.clone();
        copy.background = plan.background;
        if !external {
            copy.requests_per_second = plan
                .requests_per_second
                .or(self.tuning().requests_per_second);
        }
        copy.target_uuid = self.es().index_uuid(&target).await?;
        let next = stored.state.start_copy(&target, copy, now)?;
        let written = match self.store().replace(&stored, next).await {
            Ok(w) => w,
            Err(e) => {
                if !matches!(e, MigrationError::StateUnknown { .. }) {
                    // The state did not move: the new generation is ours,
                    // empty and behind no alias.
                    self.drop_own_generation(&target, Some(&token)).await;
                }
                return Err(e);
            }
        };
        let actions = [
            remove(source, &names.write_alias()),
            add(&target, &names.write_alias(), Some(true)),
        ];
        match self.apply_aliases(&actions).await {
            Ok(()) => {}
            Err(failure) => {
                // Neither shape: keep everything (the new generation may
                // hold the write alias and writes); status shows the drift.
                if matches!(failure, AliasFailure::NotApplied(_))
                    && self.revert(&written, stored.state).await
                {
                    self.drop_own_generation(&target, Some(&token)).await;
                }
                return Err(failure.into_error(name));
            }
        }
        self.count_alias_change(name, "write");
        info!(index = name, source = %source, target = %target, engine = plan.engine.name(), "stage 1: write alias moved to the new generation");
        if external {
            return Ok(self.fill_snapshot(name, written.state).await);
        }
        Ok(written.state)
    }

    /// Creates stage 1's new generation, tagged with `token`. A lost answer
    /// is settled by looking for the index and its token; an index of that
    /// name made by someone else (a concurrent stage 1) is a conflict.
    async fn create_own_generation(
        &self,
        name: &str,
        target: &str,
        body: &Value,
        token: &str,
    ) -> Result<(), MigrationError> {
        let error = match self.create_generation(target, body).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_already_exists() => {
                return Err(MigrationError::Conflict(name.to_owned()))
            }
            Err(MigrationError::Cluster(e)) if e.is_ambiguous() => e,
            Err(e) => return Err(e),
        };
        let _ = self.es().wait_for_pending_changes().await;
        match self.generation_token(target).await {
            Ok(Some(found)) if found == token => {
                warn!(index = name, generation = %target, error = %error, "the answer to creating the new generation was lost; read back: it was created");
                Ok(())
            }
            Ok(Some(_)) => Err(MigrationError::Conflict(name.to_owned())),
            _ => Err(error.into()),
        }
    }

    /// The `_meta.reindexd.token` of a generation; `None` when it has none
    /// or does not exist.
    async fn generation_token(&self, index: &str) -> Result<Option<String>, MigrationError> {
        match self.es().mapping_meta(index).await {
            Ok(meta) => Ok(meta["reindexd"]["token"].as_str().map(str::to_owned)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a generation a refused stage 1 made — only when it is
    /// provably unused: behind no alias, never written to, and (with a
    /// token) made by this very request. Otherwise it is kept and logged.
    /// Returns whether it was deleted.
    async fn drop_own_generation(&self, index: &str, token: Option<&str>) -> bool {
        let unused = async {
            if !self.aliases_of(index).await?.is_empty() {
                return Ok::<_, MigrationError>(Some("an alias points at it"));
            }
            if let Some(token) = token {
                if self.generation_token(index).await?.as_deref() != Some(token) {
                    return Ok(Some("another request made it"));
                }
            }
            // A fresh index's shards report sequence numbers once started.
            self.es()
                .wait_for_index(index, std::time::Duration::from_secs(30))
                .await?;
            if self.es().max_seq_nos(index).await?.iter().any(|s| *s >= 0) {
                return Ok(Some("it was written to"));
            }
            Ok(None)
        };
        match unused.await {
            Ok(None) => self.delete_quietly(index).await,
            Ok(Some(why)) => {
                warn!(generation = %index, why, "kept the generation of a refused stage 1; delete it by hand once you have looked at it");
                false
            }
            Err(e) => {
                warn!(generation = %index, error = %e, "kept the generation of a refused stage 1: could not check that it is unused");
                false
            }
        }
    }

    /// Stage 1 for every name, all or nothing: everything is checked
    /// before anything changes, and if one stage 1 fails the ones done are
    /// undone (aliases back, state back, new generation deleted). Copies
    /// are started by the caller once this returns.
    pub async fn reindex_all(
        &self,
        names: &[String],
        options: &Stage1Options,
    ) -> Result<Vec<IndexState>, MigrationError> {
        if names.is_empty() {
            return Err(MigrationError::Invalid(
                "name at least one logical index".into(),
            ));
        }
        let mut seen = HashSet::new();
        if let Some(twice) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(MigrationError::Invalid(format!("{twice} is named twice")));
        }
        let mut plans = Vec::new();
        for name in names {
            plans.push(options.plan(self.index_config(name)?, self.config().copy.priority)?);
        }
        for (name, plan) in names.iter().zip(&plans) {
            let mapping = MappingFile::load(&self.index_config(name)?.mapping)?;
            let stored = self.load(name).await?;
            if !matches!(stored.state.phase, Phase::Live { .. }) {
                return Err(IllegalTransition {
                    name: name.clone(),
                    action: Action::Reindex,
                    phase: stored.state.phase.kind(),
                    detail: None,
                }
                .into());
            }
            self.verify_aliases(&stored.state).await?;
            let target = self.names(name).generation(self.now());
            self.check_preflight(
                name,
                stored.state.phase.read_index(),
                &target,
                &mapping,
                plan,
            )
            .await?;
        }
        let mut started: Vec<IndexState> = Vec::new();
        for (name, plan) in names.iter().zip(&plans) {
            match self.reindex_with(name, plan).await {
                Ok(state) => started.push(state),
                Err(e) => {
                    for done in &started {
                        if let Err(undo) = self.undo_stage1(done).await {
                            warn!(index = %done.name, error = %undo, "could not undo stage 1; roll it back by hand");
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(started)
    }

    /// Takes back a stage 1 whose copy has not started: write alias back
    /// on the source, state back to live, the new generation deleted.
    async fn undo_stage1(&self, done: &IndexState) -> Result<(), MigrationError> {
        let (Phase::Copying { source, target, .. } | Phase::Filling { source, target, .. }, name) =
            (&done.phase, &done.name)
        else {
            return Ok(());
        };
        let stored = self.load(name).await?;
        // The new generation stays listed as abandoned unless it is
        // deleted: an application may have written into it already.
        let next = stored.state.rollback(self.now())?;
        let write = self.names(name).write_alias();
        self.transition(
            &stored,
            next,
            &[remove(target, &write), add(source, &write, Some(true))],
        )
        .await?;
        if self.drop_own_generation(target, None).await {
            let unlisted = self.load(name).await.map(|s| {
                let mut next = s.state.clone();
                next.abandoned.retain(|a| a != target);
                (s, next)
            });
            if let Ok((stored, next)) = unlisted {
                let _ = self.store().replace(&stored, next).await;
            }
        }
        info!(index = %name, generation = %target, "stage 1 undone");
        Ok(())
    }
}

/// A value no other stage 1 will pick: tags the generation this request
/// creates, so a lost answer and a concurrent request can be told apart.
fn fresh_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u128);
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}
