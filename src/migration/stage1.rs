//! Stage 1: the next generation from the mapping file, with bulk-load
//! settings, and the write alias moved to it — for one logical index or,
//! all or nothing, for several (a megapack).

use std::collections::HashSet;

use chrono::Utc;
use serde_json::{json, Map, Value};
use tracing::{info, warn};

use super::error::MigrationError;
use super::mapping::MappingFile;
use super::ops::{add, remove, Migrator, BULK_SETTING_KEYS};
use super::phase::{Action, IllegalTransition, IndexState, Phase};
use super::progress::CopyProgress;

impl Migrator {
    /// Stage 1: creates the next generation from the mapping file with
    /// bulk-load settings and moves the write alias to it. The copy itself
    /// is run by the caller.
    pub async fn reindex(&self, name: &str) -> Result<IndexState, MigrationError> {
        let index_config = self.index_config(name)?;
        let mapping = MappingFile::load(&index_config.mapping)?;
        let stored = self.load(name).await?;
        let Phase::Live { index: source } = &stored.state.phase else {
            return Err(IllegalTransition {
                name: name.to_owned(),
                action: Action::Reindex,
                phase: stored.state.phase.name(),
                detail: None,
            }
            .into());
        };
        self.verify_aliases(&stored.state).await?;
        let now = Utc::now();
        let names = self.names(name);
        let target = self.free_generation_name(&names, now, Some(source)).await?;
        self.check_preflight(name, source, &target, &mapping)
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
        let bulk: Map<String, Value> = [
            ("index.refresh_interval", json!("-1")),
            ("index.number_of_replicas", json!(0)),
            (
                "index.gc_deletes",
                json!(format!("{}s", copy_config.gc_deletes.as_secs())),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        self.create_generation(&target, &mapping.create_body(name, now, &bulk))
            .await?;

        let mut copy = CopyProgress::new(index_config.engine, 0, now);
        copy.saved_settings = saved;
        copy.requests_per_second = self.tuning().requests_per_second;
        let next = stored.state.start_copy(&target, copy, now)?;
        let written = match self.store().replace(&stored, next).await {
            Ok(w) => w,
            Err(e) => {
                self.delete_quietly(&target).await;
                return Err(e);
            }
        };
        let actions = [
            remove(source, &names.write_alias()),
            add(&target, &names.write_alias(), Some(true)),
        ];
        if let Err(e) = self.es().update_aliases(&actions).await {
            self.revert(&written, stored.state).await;
            self.delete_quietly(&target).await;
            return Err(e.into());
        }
        self.count_alias_change(name, "write");
        info!(index = name, source = %source, target = %target, "stage 1: write alias moved to the new generation");
        Ok(written.state)
    }

    /// Stage 1 for every name, all or nothing: everything is checked
    /// before anything changes, and if one stage 1 fails the ones done are
    /// undone (aliases back, state back, new generation deleted). Copies
    /// are started by the caller once this returns.
    pub async fn reindex_all(
        &self,
        names: &[String],
        requests_per_second: Option<f64>,
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
        if let Some(r) = requests_per_second {
            if !(r.is_finite() && r > 0.0) {
                return Err(MigrationError::Invalid(format!(
                    "requests_per_second must be a positive number, found {r}"
                )));
            }
        }
        for name in names {
            let mapping = MappingFile::load(&self.index_config(name)?.mapping)?;
            let stored = self.load(name).await?;
            if !matches!(stored.state.phase, Phase::Live { .. }) {
                return Err(IllegalTransition {
                    name: name.clone(),
                    action: Action::Reindex,
                    phase: stored.state.phase.name(),
                    detail: None,
                }
                .into());
            }
            self.verify_aliases(&stored.state).await?;
            let target = self.names(name).generation(Utc::now());
            self.check_preflight(name, stored.state.phase.read_index(), &target, &mapping)
                .await?;
        }
        let mut started: Vec<IndexState> = Vec::new();
        for name in names {
            match self.reindex(name).await {
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
        if let Some(rate) = requests_per_second {
            for state in &mut started {
                *state = self
                    .update_copy(&state.name, Action::Throttle, |c| {
                        c.requests_per_second = Some(rate)
                    })
                    .await?;
            }
        }
        Ok(started)
    }

    /// Takes back a stage 1 whose copy has not started: write alias back
    /// on the source, state back to live, the new generation deleted.
    async fn undo_stage1(&self, done: &IndexState) -> Result<(), MigrationError> {
        let (Phase::Copying { source, target, .. }, name) = (&done.phase, &done.name) else {
            return Ok(());
        };
        let stored = self.load(name).await?;
        let mut next = stored.state.rollback(Utc::now())?;
        next.abandoned.retain(|a| a != target);
        let write = self.names(name).write_alias();
        self.transition(
            &stored,
            next,
            &[remove(target, &write), add(source, &write, Some(true))],
        )
        .await?;
        self.delete_quietly(target).await;
        info!(index = %name, generation = %target, "stage 1 undone");
        Ok(())
    }
}
