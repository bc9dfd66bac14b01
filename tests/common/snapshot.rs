//! What a refused operation must leave exactly as it was, and the
//! one-line form of an API error for asserts.

use std::time::Duration;

use super::env::Env;
use super::wait::eventually_value;

/// What a refused operation must leave exactly as it was: every index of
/// the test, where both aliases of each logical index point, and each
/// index's stored phase, generations and abandoned list.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub indexes: Vec<String>,
    /// Per logical index: the indexes behind its read and write aliases.
    pub aliases: Vec<(String, AliasTargets)>,
    /// Per logical index: its stored state, `None` when it has none.
    pub states: Vec<(String, Option<StateSummary>)>,
}

/// Indexes behind the read alias, then behind the write alias.
pub type AliasTargets = (Vec<String>, Vec<String>);

/// `(phase, read index, write index, abandoned generations)`.
pub type StateSummary = (String, String, String, Vec<String>);

/// The `(status, error.code)` of an API answer, for one-line asserts.
pub fn code(status: u16, body: &serde_json::Value) -> (u16, Option<&str>) {
    (status, body["error"]["code"].as_str())
}

impl Env {
    /// The cluster as far as `names` are concerned. The state index is
    /// created first, so that a daemon creating it in the background never
    /// looks like a change.
    pub async fn snapshot(&self, names: &[&str]) -> Snapshot {
        self.state_index_ready().await;
        let mut aliases = Vec::new();
        let mut states = Vec::new();
        for name in names {
            aliases.push((name.to_string(), self.aliases(name).await));
            let state = self.migrator.store().get(name).await.unwrap().map(|s| {
                let p = &s.state.phase;
                (
                    p.name().to_owned(),
                    p.read_index().to_owned(),
                    p.write_index().to_owned(),
                    s.state.abandoned.clone(),
                )
            });
            states.push((name.to_string(), state));
        }
        Snapshot {
            indexes: self.indexes().await,
            aliases,
            states,
        }
    }

    /// Creates the state index unless it exists and waits until it serves
    /// reads. (Cluster health turns yellow while a new index's primary is
    /// still initialising, so `ensure_index` alone is not enough when
    /// another client — the daemon — created the index a moment ago.)
    pub async fn state_index_ready(&self) {
        self.migrator.store().ensure_index().await.unwrap();
        eventually_value(
            "the state index serves reads",
            Duration::from_secs(30),
            || async {
                match self.migrator.store().get("-").await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_unavailable() => Err(e.to_string()),
                    Err(e) => panic!("state index: {e}"),
                }
            },
        )
        .await
    }
}
