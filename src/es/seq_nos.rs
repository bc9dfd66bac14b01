//! Per-shard sequence numbers: every write or delete on a shard takes the
//! next one, and they survive restarts, so they tell exactly whether (and
//! how much) an index was written to since they were last read.

use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::json;

use super::{seg, Body, EsClient, EsError, KeyVersion};

impl EsClient {
    /// The highest sequence number of each primary shard, by shard number:
    /// it grows with every write or delete, survives restarts, and so tells
    /// exactly whether an index was written to since it was last read.
    pub async fn max_seq_nos(&self, index: &str) -> Result<Vec<i64>, EsError> {
        #[derive(Deserialize)]
        struct Stats {
            #[serde(default)]
            indices: std::collections::HashMap<String, IndexStats>,
        }
        #[derive(Deserialize)]
        struct IndexStats {
            #[serde(default)]
            shards: std::collections::BTreeMap<String, Vec<ShardCopy>>,
        }
        #[derive(Deserialize)]
        struct ShardCopy {
            routing: Routing,
            seq_no: SeqNo,
        }
        #[derive(Deserialize)]
        struct Routing {
            primary: bool,
        }
        #[derive(Deserialize)]
        struct SeqNo {
            max_seq_no: i64,
        }
        let path = format!("/{}/_stats/docs", seg(index));
        let stats: Stats = self
            .send_json(Method::Get, &path, &[("level", "shards")], None)
            .await?;
        let call = || format!("GET {path}");
        // An index whose shards have not started yet (just created) has no
        // statistics: unavailable for now, like a shard without a primary.
        let unavailable = |why: String| EsError::Status {
            call: call(),
            status: 503,
            error_type: Some("no_shard_available_action_exception".into()),
            reason: why,
        };
        let shards = stats
            .indices
            .into_values()
            .next()
            .map(|i| i.shards)
            .filter(|shards| !shards.is_empty())
            .ok_or_else(|| unavailable(format!("no started shard of {index} yet")))?;
        let mut seq_nos = vec![None; shards.len()];
        for (number, copies) in shards {
            let n: usize = number.parse().map_err(|_| EsError::Decode {
                call: call(),
                detail: format!("shard number {number:?}"),
            })?;
            let primary = copies.iter().find(|c| c.routing.primary);
            if let (Some(slot), Some(p)) = (seq_nos.get_mut(n), primary) {
                *slot = Some(p.seq_no.max_seq_no);
            }
        }
        seq_nos
            .into_iter()
            .enumerate()
            .map(|(n, s)| {
                // A primary being promoted or recovered: unavailable for
                // now, as the engine itself would say of a search.
                s.ok_or_else(|| unavailable(format!("shard {n} of {index} has no started primary")))
            })
            .collect()
    }

    /// Live documents of shard `shard` whose last operation has a sequence
    /// number of at most `max`.
    pub async fn count_up_to_seq_no(
        &self,
        index: &str,
        shard: usize,
        max: i64,
    ) -> Result<u64, EsError> {
        #[derive(Deserialize)]
        struct Count {
            count: u64,
        }
        let path = format!("/{}/_count", seg(index));
        let preference = format!("_shards:{shard}");
        let body = json!({"query": {"range": {"_seq_no": {"lte": max}}}});
        let count: Count = self
            .send_json(
                Method::Post,
                &path,
                &[("preference", preference.as_str())],
                Some(Body::json(&body)),
            )
            .await?;
        Ok(count.count)
    }

    /// Per shard that moved past `base` (numbers read earlier): how many
    /// operations came since, and the live documents whose last operation
    /// is one of them. `None` when the shard count is not that of `base`.
    pub async fn changes_since(
        &self,
        index: &str,
        base: &[i64],
        page: usize,
    ) -> Result<Option<Vec<ShardChanges>>, EsError> {
        let now = self.max_seq_nos(index).await?;
        if now.len() != base.len() {
            return Ok(None);
        }
        let mut changes = Vec::new();
        for (shard, (now, then)) in now.iter().zip(base).enumerate() {
            if now > then {
                changes.push(ShardChanges {
                    operations: (now - then) as u64,
                    docs: self.changed_since(index, shard, *then, page).await?,
                });
            }
        }
        Ok(Some(changes))
    }
}

/// What happened on one shard since its sequence number was read.
#[derive(Debug)]
pub struct ShardChanges {
    pub operations: u64,
    /// Live documents whose last operation came after.
    pub docs: Vec<KeyVersion>,
}

/// Operations between two readings of an index's per-shard sequence
/// numbers (`then` before `now`).
pub fn operations_between(then: &[i64], now: &[i64]) -> u64 {
    now.iter()
        .zip(then)
        .map(|(n, t)| (n - t).max(0) as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_count_per_shard_never_below_zero() {
        assert_eq!(operations_between(&[3, -1], &[5, 1]), 4);
        assert_eq!(operations_between(&[3, 7], &[3, 7]), 0);
        // A shard that went back (a restore): not negative work.
        assert_eq!(operations_between(&[9, 0], &[4, 2]), 2);
    }
}
