//! The `Migrator` and the steps every lifecycle operation shares: check
//! the transition, write the state by compare-and-set, move aliases in one
//! atomic `_aliases` request — and put the state back if that request was
//! not applied, so a refused operation leaves the cluster as it was. The
//! flip lives here; the larger transitions have files of their own.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::Value;
use tokio::sync::watch;
use tracing::{info, warn};

use super::clock::{Clock, SystemClock};
use super::error::{AliasFailure, MigrationError};
use super::names::Names;
use super::phase::{Action, IndexState};
use super::progress::CopyProgress;
use super::store::{StateStore, Stored};
use crate::config::{Config, IndexConfig, Tuning};
use crate::es::{AliasAction, AliasEntry, EsClient, EsError};

/// Labels of the alias-change counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AliasChangeLabels {
    pub index: String,
    /// `write` (stage 1), `read` (stage 2) or `rollback`.
    pub kind: &'static str,
}

/// Runs lifecycle operations for the configured logical indexes.
#[derive(Debug, Clone)]
pub struct Migrator {
    es: EsClient,
    config: Arc<Config>,
    store: StateStore,
    /// The copy settings a reload may change; running copies watch them.
    tuning: watch::Sender<Tuning>,
    /// Alias changes made by this process, for metrics.
    alias_changes: Family<AliasChangeLabels, Counter>,
    clock: Arc<dyn Clock>,
}

impl Migrator {
    pub fn new(es: EsClient, config: Arc<Config>) -> Self {
        let store = StateStore::new(es.clone(), &config.migration.state_index);
        Migrator {
            es,
            tuning: watch::Sender::new(config.tuning()),
            config,
            store,
            alias_changes: Family::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// This migrator reading the time from `clock` (tests move time by
    /// hand instead of sleeping).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The time every state change and lease is stamped with.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn alias_changes(&self) -> &Family<AliasChangeLabels, Counter> {
        &self.alias_changes
    }

    pub(super) fn count_alias_change(&self, index: &str, kind: &'static str) {
        self.alias_changes
            .get_or_create(&AliasChangeLabels {
                index: index.to_owned(),
                kind,
            })
            .inc();
    }

    pub fn es(&self) -> &EsClient {
        &self.es
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The live copy settings: the file's at start, a reload's after.
    pub fn tuning(&self) -> Tuning {
        *self.tuning.borrow()
    }

    pub fn watch_tuning(&self) -> watch::Receiver<Tuning> {
        self.tuning.subscribe()
    }

    /// Installs reloaded copy settings; returns the previous ones.
    pub fn retune(&self, tuning: Tuning) -> Tuning {
        let mut previous = tuning;
        self.tuning.send_if_modified(|t| {
            previous = std::mem::replace(t, tuning);
            previous != tuning
        });
        previous
    }

    pub fn store(&self) -> &StateStore {
        &self.store
    }

    pub fn index_config(&self, name: &str) -> Result<&IndexConfig, MigrationError> {
        self.config
            .index(name)
            .ok_or_else(|| MigrationError::UnknownIndex(name.to_owned()))
    }

    pub fn names(&self, name: &str) -> Names {
        Names::new(&self.config.migration.prefix, name)
    }

    /// The stored state of a configured, initialised index.
    pub async fn load(&self, name: &str) -> Result<Stored, MigrationError> {
        self.index_config(name)?;
        self.store
            .get(name)
            .await?
            .ok_or_else(|| MigrationError::NotInitialized(name.to_owned()))
    }

    /// Stage 2: moves the read alias to the new generation.
    pub async fn flip(&self, name: &str) -> Result<IndexState, MigrationError> {
        let stored = self.load(name).await?;
        let next = stored.state.flip(self.now())?;
        self.verify_aliases(&stored.state).await?;
        if let Some(copy) = stored.state.phase.copy() {
            let source = stored.state.phase.read_index();
            let operations = self.old_generation_writes(source, copy).await?;
            if operations > copy.accepted_old_generation_writes {
                return Err(MigrationError::OldGenerationWritten {
                    name: name.to_owned(),
                    old: source.to_owned(),
                    operations,
                });
            }
        }
        let read = self.names(name).read_alias();
        let (from, to) = (stored.state.phase.read_index(), next.phase.read_index());
        let mut actions = vec![remove(from, &read), add(to, &read, None)];
        actions.extend(self.move_extra_aliases(name, from, to).await?);
        let state = self.transition(&stored, next, &actions).await?;
        self.count_alias_change(name, "read");
        info!(index = name, generation = %state.phase.read_index(), "STUCK THE LANDING! read alias flipped");
        Ok(state)
    }

    /// Changes the live controls or progress of a running copy, retrying
    /// when a checkpoint wrote the state in between.
    pub async fn update_copy(
        &self,
        name: &str,
        action: Action,
        f: impl Fn(&mut CopyProgress),
    ) -> Result<IndexState, MigrationError> {
        for _ in 0..5 {
            let stored = self.load(name).await?;
            let next = stored.state.update_copy(action, &f, self.now())?;
            match self.store.replace(&stored, next).await {
                Err(MigrationError::Conflict(_)) => continue,
                other => return other.map(|s| s.state),
            }
        }
        Err(MigrationError::Conflict(name.to_owned()))
    }

    /// Checks that the aliases are where `state` says they are: each on
    /// exactly one index, the expected one.
    pub async fn verify_aliases(&self, state: &IndexState) -> Result<(), MigrationError> {
        let names = self.names(&state.name);
        let (read, write) = (names.read_alias(), names.write_alias());
        let links = self.es.get_aliases(&format!("{read},{write}")).await?;
        for (alias, expected) in [
            (&read, state.phase.read_index()),
            (&write, state.phase.write_index()),
        ] {
            let on: Vec<&str> = links
                .iter()
                .filter(|l| &l.alias == alias)
                .map(|l| l.index.as_str())
                .collect();
            if on != [expected] {
                let found = if on.is_empty() {
                    "nothing".to_owned()
                } else {
                    on.join(" and ")
                };
                return Err(MigrationError::AliasConflict(format!(
                    "{alias} points at {found}, but {} is {} and expects it on exactly {expected}; nothing was changed. \
                     Fix the alias by hand, or run `reindexd rollback {}` if a migration is under way",
                    state.name,
                    state.phase.name(),
                    state.name
                )));
            }
        }
        Ok(())
    }

    /// Actions that move every other alias of generation `from` (filters,
    /// routing, hidden kept) to `to`: they follow the read alias, in the
    /// same atomic request.
    pub(super) async fn move_extra_aliases(
        &self,
        name: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<AliasAction>, MigrationError> {
        let mut actions = Vec::new();
        for mut alias in self.extra_aliases(name, from).await? {
            actions.push(remove(from, &alias.alias));
            alias.index = to.to_owned();
            actions.push(AliasAction::AddDefined(alias));
        }
        Ok(actions)
    }

    /// Alias links of one index.
    pub async fn aliases_of(&self, index: &str) -> Result<Vec<AliasEntry>, MigrationError> {
        Ok(self
            .es
            .get_aliases("*")
            .await?
            .into_iter()
            .filter(|l| l.index == index)
            .collect())
    }

    /// Writes `next` then applies `actions`. If the aliases did not move,
    /// the state is put back and the alias error returned; if a lost answer
    /// leaves them in neither shape, the state stays and the error says so
    /// (`status` shows the drift, `rollback` mends it).
    pub(super) async fn transition(
        &self,
        stored: &Stored,
        next: IndexState,
        actions: &[AliasAction],
    ) -> Result<IndexState, MigrationError> {
        let written = self.store.replace(stored, next).await?;
        match self.apply_aliases(actions).await {
            Ok(()) => Ok(written.state),
            Err(failure) => {
                if matches!(failure, AliasFailure::NotApplied(_)) {
                    self.revert(&written, stored.state.clone()).await;
                }
                Err(failure.into_error(&written.state.name))
            }
        }
    }

    /// Puts the state back; false when that failed (logged).
    pub(super) async fn revert(&self, written: &Stored, previous: IndexState) -> bool {
        let name = previous.name.clone();
        match self.store.replace(written, previous).await {
            Ok(_) => true,
            Err(e) => {
                warn!(index = %name, error = %e, "could not put the state back after a failed alias change; check `reindexd status`");
                false
            }
        }
    }

    pub(super) async fn create_generation(
        &self,
        index: &str,
        body: &Value,
    ) -> Result<(), MigrationError> {
        match self.es.create_index(index, body).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_unavailable() || e.is_already_exists() => Err(e.into()),
            Err(e @ EsError::Status { status: 400, .. }) => Err(MigrationError::MappingRejected {
                index: index.to_owned(),
                source: e,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// A generation name at `now`, moved forward a second at a time past
    /// names already taken (two generations within one second).
    pub(super) async fn free_generation_name(
        &self,
        names: &Names,
        now: DateTime<Utc>,
        current: Option<&str>,
    ) -> Result<String, MigrationError> {
        let mut at = now;
        if let Some(t) = current.and_then(|c| names.generation_time(c)) {
            at = at.max(t + chrono::Duration::seconds(1));
        }
        loop {
            let candidate = names.generation(at);
            if !self.es.index_exists(&candidate).await? {
                return Ok(candidate);
            }
            at += chrono::Duration::seconds(1);
        }
    }

    /// Deletes an index; returns whether it is gone (a failure is logged).
    pub(super) async fn delete_quietly(&self, index: &str) -> bool {
        match self.es.delete_index(index).await {
            Ok(()) => true,
            Err(e) if e.is_not_found() => true,
            Err(e) => {
                warn!(generation = %index, error = %e, "could not delete a generation made by a refused operation");
                false
            }
        }
    }
}

pub(super) fn add(index: &str, alias: &str, is_write_index: Option<bool>) -> AliasAction {
    AliasAction::Add {
        index: index.to_owned(),
        alias: alias.to_owned(),
        is_write_index,
    }
}

/// A removal that fails the whole request if the link is already gone.
pub(super) fn remove(index: &str, alias: &str) -> AliasAction {
    AliasAction::Remove {
        index: index.to_owned(),
        alias: alias.to_owned(),
        must_exist: Some(true),
    }
}
