//! How a copy run reads its source: a point in time with `search_after`
//! where the engine can page it exactly (a `_shard_doc` tiebreaker, or one
//! slice per shard so `_doc` is unique within each), else a sliced scroll;
//! whether unfinished slices resume after their cursors or start over; and
//! the source's sequence numbers at the snapshot, which tell later whether
//! anything wrote to the source by name.

use serde_json::{json, Value};
use tracing::info;

use super::reader::ReadMode;
use super::stats::plan_slices;
use crate::config::CopyConfig;
use crate::es::{EsClient, EsError, PitId, ServerInfo};
use crate::migration::CopyProgress;

pub struct ReadPlan {
    pub mode: ReadMode,
    /// Unfinished slices resume after their cursors (the point in time of
    /// the last run is still open).
    pub exact: bool,
    /// The point in time to record in checkpoints.
    pub pit: Option<String>,
    /// The source's sequence numbers at the read snapshot, when this run
    /// takes a new one (a resumed run keeps the stored ones).
    pub source_seq_nos: Option<Vec<i64>>,
}

fn sort_for(info: &ServerInfo) -> Value {
    if info.supports_shard_doc() {
        json!(["_shard_doc"])
    } else {
        json!(["_doc"])
    }
}

/// Decides the read mode and fills `copy.slices` on a first run.
pub async fn plan_read(
    es: &EsClient,
    source: &str,
    copy: &mut CopyProgress,
    config: &CopyConfig,
) -> Result<ReadPlan, EsError> {
    let info = es.info().await?;
    if !copy.slices.is_empty() {
        return plan_resume(es, &info, source, copy, config).await;
    }
    let shards = es.primary_shards(source).await?;
    let pit_mode = info.supports_pit()
        && (info.supports_shard_doc() || config.slices.is_none_or(|n| n == shards));
    let count = match (pit_mode, info.supports_shard_doc()) {
        (true, false) => shards,
        _ => config.slices.unwrap_or(shards),
    };
    copy.slices = plan_slices(count);
    if !pit_mode {
        // The scrolls open later: numbers read now can only over-count.
        return scroll_plan(es, source).await;
    }
    new_pit_plan(es, &info, source, config).await
}

/// A later run: the slices stay; their cursors hold only while the last
/// run's point in time is still open.
async fn plan_resume(
    es: &EsClient,
    info: &ServerInfo,
    source: &str,
    copy: &CopyProgress,
    config: &CopyConfig,
) -> Result<ReadPlan, EsError> {
    let Some(id) = copy.pit.clone() else {
        return scroll_plan(es, source).await;
    };
    let pit = PitId {
        engine: info.engine,
        id,
    };
    let sort = sort_for(info);
    match es
        .pit_page(&pit, None, &sort, 0, None, config.scroll_keep_alive)
        .await
    {
        Ok(_) => Ok(ReadPlan {
            pit: Some(pit.id.clone()),
            mode: ReadMode::Pit { pit, sort },
            exact: true,
            source_seq_nos: None,
        }),
        // Any refusal but "busy": contexts expired, or lost with a node
        // that left (5xx, partial pages); a new point in time finds
        // every shard where it is now.
        Err(e) if e.status().is_some_and(|s| s != 429) => {
            info!(error = %e, "the copy's point in time is gone; unfinished slices start over");
            new_pit_plan(es, info, source, config).await
        }
        Err(e) => Err(e),
    }
}

/// Sliced scrolls: unfinished slices start over.
async fn scroll_plan(es: &EsClient, source: &str) -> Result<ReadPlan, EsError> {
    Ok(ReadPlan {
        mode: ReadMode::Scroll,
        exact: false,
        pit: None,
        source_seq_nos: Some(es.max_seq_nos(source).await?),
    })
}

/// A new point in time: unfinished slices start over within it.
async fn new_pit_plan(
    es: &EsClient,
    info: &ServerInfo,
    source: &str,
    config: &CopyConfig,
) -> Result<ReadPlan, EsError> {
    let (pit, seq_nos) = open_snapshot(es, info, source, config).await?;
    Ok(ReadPlan {
        pit: Some(pit.id.clone()),
        mode: ReadMode::Pit {
            pit,
            sort: sort_for(info),
        },
        exact: false,
        source_seq_nos: Some(seq_nos),
    })
}

/// Opens a point in time over `source` with the source's sequence numbers
/// at it: read before and after opening, and opened again when a write
/// raced it, so that "written after the snapshot" is exact. A source
/// written without pause keeps the numbers from before, which over-count
/// (a false alarm), never under-count.
async fn open_snapshot(
    es: &EsClient,
    info: &ServerInfo,
    source: &str,
    config: &CopyConfig,
) -> Result<(PitId, Vec<i64>), EsError> {
    let keep = config.scroll_keep_alive;
    for _ in 0..5 {
        let before = es.max_seq_nos(source).await?;
        let pit = es.open_pit(info.engine, source, keep).await?;
        if es.max_seq_nos(source).await? == before {
            return Ok((pit, before));
        }
        let _ = es.close_pit(&pit).await;
    }
    let before = es.max_seq_nos(source).await?;
    Ok((es.open_pit(info.engine, source, keep).await?, before))
}

/// Closes the point in time of a finished copy (it would expire anyway).
pub async fn close(es: &EsClient, mode: &ReadMode) {
    if let ReadMode::Pit { pit, .. } = mode {
        let _ = es.close_pit(pit).await;
    }
}
