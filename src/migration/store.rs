//! The persisted state: one document per logical index in a hidden index,
//! changed only by compare-and-set on `_seq_no`/`_primary_term`. A write
//! whose answer is lost is settled by reading the document back.

use serde_json::json;

use super::error::MigrationError;
use super::phase::IndexState;
use crate::es::{EsClient, EsError, WriteCondition};

/// A state as read, with what a compare-and-set needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub state: IndexState,
    seq_no: i64,
    primary_term: i64,
}

#[derive(Debug, Clone)]
pub struct StateStore {
    es: EsClient,
    index: String,
    /// Set once the state index is known to exist with an active shard.
    ready: std::sync::Arc<tokio::sync::OnceCell<()>>,
}

impl StateStore {
    pub fn new(es: EsClient, index: &str) -> Self {
        StateStore {
            es,
            index: index.to_owned(),
            ready: Default::default(),
        }
    }

    /// Creates the hidden state index unless it exists, and waits until it
    /// can be read and written.
    pub async fn ensure_index(&self) -> Result<(), EsError> {
        self.ready
            .get_or_try_init(|| self.create_index())
            .await
            .map(|_| ())
    }

    async fn create_index(&self) -> Result<(), EsError> {
        if !self.es.index_exists(&self.index).await? {
            self.create().await?;
        }
        self.es
            .wait_for_index(&self.index, std::time::Duration::from_secs(30))
            .await
    }

    async fn create(&self) -> Result<(), EsError> {
        let body = json!({
            "settings": {"index.hidden": true, "number_of_shards": 1, "auto_expand_replicas": "0-1"},
            "mappings": {"dynamic": false, "properties": {"name": {"type": "keyword"}, "phase": {"type": "keyword"}}}
        });
        match self.es.create_index(&self.index, &body).await {
            Err(e) if e.is_already_exists() => Ok(()),
            other => other,
        }
    }

    pub async fn get(&self, name: &str) -> Result<Option<Stored>, MigrationError> {
        let Some(doc) = self.es.get_doc(&self.index, name).await? else {
            return Ok(None);
        };
        let state: IndexState = serde_json::from_value(doc.source).map_err(|e| {
            MigrationError::Cluster(EsError::Decode {
                call: format!("GET /{}/_doc/{name}", self.index),
                detail: format!("state document of {name} is unreadable: {e}"),
            })
        })?;
        Ok(Some(Stored {
            state,
            seq_no: doc.seq_no,
            primary_term: doc.primary_term,
        }))
    }

    /// Stores the first state of `state.name`; fails with `Conflict` when
    /// one exists.
    pub async fn create_state(&self, state: IndexState) -> Result<Stored, MigrationError> {
        self.write(state, WriteCondition::Absent).await
    }

    /// Replaces `current` with `next` if nobody changed it since it was
    /// read; otherwise `Conflict` and nothing is written.
    pub async fn replace(
        &self,
        current: &Stored,
        next: IndexState,
    ) -> Result<Stored, MigrationError> {
        let condition = WriteCondition::At {
            seq_no: current.seq_no,
            primary_term: current.primary_term,
        };
        self.write(next, condition).await
    }

    async fn write(
        &self,
        state: IndexState,
        condition: WriteCondition,
    ) -> Result<Stored, MigrationError> {
        let body = serde_json::to_value(&state).expect("state serialises");
        match self
            .es
            .put_doc(&self.index, &state.name, &body, condition)
            .await
        {
            Ok((seq_no, primary_term)) => Ok(Stored {
                state,
                seq_no,
                primary_term,
            }),
            Err(e) if e.is_conflict() => Err(MigrationError::Conflict(state.name)),
            Err(e) if e.is_ambiguous() => self.read_back(state, condition, e).await,
            Err(e) => Err(e.into()),
        }
    }

    /// After a write whose answer was lost: the stored document tells
    /// whether it was applied (it equals what was sent), not applied (it is
    /// still the one the write was conditioned on) or overtaken.
    async fn read_back(
        &self,
        state: IndexState,
        condition: WriteCondition,
        error: EsError,
    ) -> Result<Stored, MigrationError> {
        let Ok(now) = self.get(&state.name).await else {
            return Err(MigrationError::StateUnknown {
                name: state.name,
                source: Box::new(error),
            });
        };
        let sent = serde_json::to_value(&state).expect("state serialises");
        match (now, condition) {
            (Some(now), _) if serde_json::to_value(&now.state).ok() == Some(sent) => Ok(now),
            (None, WriteCondition::Absent) => Err(error.into()),
            (
                Some(now),
                WriteCondition::At {
                    seq_no,
                    primary_term,
                },
            ) if now.seq_no == seq_no && now.primary_term == primary_term => Err(error.into()),
            _ => Err(MigrationError::Conflict(state.name)),
        }
    }

    /// Removes a state that nobody changed since it was read.
    pub async fn delete(&self, current: &Stored) -> Result<(), MigrationError> {
        match self
            .es
            .delete_doc(
                &self.index,
                &current.state.name,
                current.seq_no,
                current.primary_term,
            )
            .await
        {
            Err(e) if e.is_conflict() => Err(MigrationError::Conflict(current.state.name.clone())),
            other => Ok(other?),
        }
    }

    /// Every stored state, by name.
    pub async fn list(&self) -> Result<Vec<IndexState>, MigrationError> {
        let docs = self.es.all_docs(&self.index, "name", 10_000).await?;
        docs.into_iter()
            .map(|d| {
                serde_json::from_value(d).map_err(|e| {
                    MigrationError::Cluster(EsError::Decode {
                        call: format!("POST /{}/_search", self.index),
                        detail: format!("unreadable state document: {e}"),
                    })
                })
            })
            .collect()
    }
}
