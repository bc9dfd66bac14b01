//! `init`: the first generation and both aliases of a logical index. The
//! state document is claimed first (create-only), so of two concurrent
//! inits one wins; an init interrupted after its claim is completed by the
//! next one.

use serde_json::{json, Map};
use tracing::{info, warn};

use super::error::MigrationError;
use super::mapping::MappingFile;
use super::ops::Migrator;
use super::phase::{IndexState, Phase};
use super::store::Stored;

impl Migrator {
    /// Creates the first generation and both aliases. Idempotent: an index
    /// already initialised is returned as it is, after checking its aliases.
    /// The state document is claimed first (create-only), so of two
    /// concurrent inits one wins and the other gets `Conflict`.
    pub async fn init(&self, name: &str) -> Result<IndexState, MigrationError> {
        let mapping = MappingFile::load(&self.index_config(name)?.mapping)?;
        self.store().ensure_index().await?;
        if let Some(stored) = self.store().get(name).await? {
            return self.complete_init(&stored, &mapping, false).await;
        }
        let names = self.names(name);
        let (read, write) = (names.read_alias(), names.write_alias());
        let links = self.es().get_aliases(&format!("{read},{write}")).await?;
        if !links.is_empty() {
            return Err(MigrationError::AliasConflict(format!(
                "cannot init {name}: {read} or {write} already exist ({}) but {name} has no reindexd state; remove them or use other names",
                links.iter().map(|l| format!("{} -> {}", l.alias, l.index)).collect::<Vec<_>>().join(", ")
            )));
        }
        for alias in [&read, &write] {
            if self.es().index_exists(alias).await? {
                return Err(MigrationError::AliasConflict(format!(
                    "cannot init {name}: an index called {alias} exists where reindexd needs an alias"
                )));
            }
        }
        let now = self.now();
        let index = self.free_generation_name(&names, now, None).await?;
        let claimed = self
            .store()
            .create_state(IndexState::new(name, &index, now))
            .await?;
        self.complete_init(&claimed, &mapping, true).await
    }

    /// Makes sure the generation of a `live` state exists with both aliases:
    /// creates it when an init claimed the state but did not get further.
    /// A fresh claim whose index the cluster refuses is given up again.
    async fn complete_init(
        &self,
        stored: &Stored,
        mapping: &MappingFile,
        fresh: bool,
    ) -> Result<IndexState, MigrationError> {
        let state = &stored.state;
        let Phase::Live { index } = &state.phase else {
            self.verify_aliases(state).await?;
            return Ok(state.clone());
        };
        if self.es().index_exists(index).await? {
            self.verify_aliases(state).await?;
            return Ok(state.clone());
        }
        let names = self.names(&state.name);
        let mut body = mapping.create_body(&state.name, state.updated_at, &Map::new());
        body["aliases"] =
            json!({ names.read_alias(): {}, names.write_alias(): {"is_write_index": true} });
        if let Err(e) = self.create_generation(index, &body).await {
            if e.is_already_exists() {
                // Another client is completing the same init right now
                // (it found our claimed state before we created the index).
                // Its create carried the aliases, so once the index is
                // usable (asked of the master) they are there too.
                self.es()
                    .wait_for_index(index, std::time::Duration::from_secs(30))
                    .await?;
                self.verify_aliases(state).await?;
                return Ok(state.clone());
            }
            if fresh {
                if let Err(undo) = self.store().delete(stored).await {
                    warn!(index = %state.name, error = %undo, "could not remove the state of a failed init");
                }
            }
            return Err(e);
        }
        info!(index = %state.name, generation = %index, "initialised");
        Ok(state.clone())
    }
}
