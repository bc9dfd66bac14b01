//! One source slice read page by page: a point in time with `search_after`
//! (resumable from a cursor) where the engine allows it, otherwise a
//! scroll sorted by `_doc`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::stats::CopyStats;
use crate::es::{EsClient, EsError, Hit, Page, PitId, Slice};

/// A page of hits from one slice; `seq` counts pages within this run.
#[derive(Debug)]
pub struct SlicePage {
    pub slice: u32,
    pub seq: u64,
    pub hits: Vec<Hit>,
    /// Sort values of the last hit (point-in-time reads only).
    pub last_sort: Option<Value>,
    /// This page, without documents, says the slice has been read to its
    /// end: its partial batch can go at once instead of waiting for every
    /// other slice to end.
    pub last: bool,
}

/// How a slice is read.
#[derive(Debug, Clone)]
pub enum ReadMode {
    Scroll,
    /// Point in time sorted by `sort`, resuming after the slice's cursor.
    Pit {
        pit: PitId,
        sort: Value,
    },
}

impl ReadMode {
    /// For logs: the PIT id itself is long and says nothing.
    pub fn name(&self) -> &'static str {
        match self {
            ReadMode::Scroll => "scroll",
            ReadMode::Pit { .. } => "point-in-time",
        }
    }
}

/// Everything a reader needs besides its slice.
#[derive(Debug, Clone)]
pub struct ReadSpec {
    pub es: EsClient,
    pub source: String,
    pub mode: ReadMode,
    pub page_size: u32,
    pub keep_alive: Duration,
}

/// Reads every document of `slice` (after `after`, when resuming) into
/// `pages`. Waits when the channel is full: that is the pipeline's
/// backpressure reaching the reader.
pub async fn read_slice(
    spec: ReadSpec,
    slice: Slice,
    after: Option<Value>,
    pages: mpsc::Sender<SlicePage>,
    stats: Arc<CopyStats>,
    cancel: CancellationToken,
) -> Result<(), EsError> {
    let mut reader = Reader {
        spec: &spec,
        slice,
        after,
        scroll_id: None,
        pit: match &spec.mode {
            ReadMode::Pit { pit, .. } => Some(pit.clone()),
            ReadMode::Scroll => None,
        },
        first: true,
    };
    let counters = stats.slice(slice.id);
    let result = reader.pump(&pages, &stats, &cancel).await;
    if let Ok(true) = result {
        counters.read_done.store(true, Relaxed);
        debug!(
            slice = slice.id,
            read = counters.read.load(Relaxed),
            "slice read"
        );
    }
    if let Some(id) = reader.scroll_id {
        let _ = spec.es.clear_scroll(&id).await;
    }
    result.map(drop)
}

struct Reader<'a> {
    spec: &'a ReadSpec,
    slice: Slice,
    after: Option<Value>,
    scroll_id: Option<String>,
    /// The point in time as the last answer named it: the engine may
    /// renew the id, and the latest one must be sent next.
    pit: Option<PitId>,
    first: bool,
}

impl Reader<'_> {
    /// Sends pages until the slice is read (`true`) or the pipeline stops
    /// listening (`false`).
    async fn pump(
        &mut self,
        pages: &mpsc::Sender<SlicePage>,
        stats: &CopyStats,
        cancel: &CancellationToken,
    ) -> Result<bool, EsError> {
        let counters = stats.slice(self.slice.id);
        let mut seq = 0;
        loop {
            let page = self.next_page().await?;
            if std::mem::take(&mut self.first) {
                if let Some(total) = page.total {
                    counters.total.store(total, Relaxed);
                }
            }
            if page.hits.is_empty() {
                let end = SlicePage {
                    slice: self.slice.id,
                    seq,
                    hits: Vec::new(),
                    last_sort: None,
                    last: true,
                };
                return Ok(offer(pages, end, cancel).await);
            }
            let last_sort = match &self.spec.mode {
                ReadMode::Pit { .. } => page
                    .hits
                    .last()
                    .and_then(|h| h.sort.as_deref())
                    .map(parse_sort)
                    .transpose()?,
                ReadMode::Scroll => None,
            };
            self.after = last_sort.clone();
            counters.read.fetch_add(page.hits.len() as u64, Relaxed);
            let page = SlicePage {
                slice: self.slice.id,
                seq,
                hits: page.hits,
                last_sort,
                last: false,
            };
            seq += 1;
            if !offer(pages, page, cancel).await {
                return Ok(false);
            }
        }
    }

    async fn next_page(&mut self) -> Result<Page, EsError> {
        let s = self.spec;
        match &s.mode {
            ReadMode::Pit { pit, sort } => {
                let pit = self.pit.as_ref().unwrap_or(pit);
                let after = self
                    .after
                    .as_ref()
                    .map(|v| RawValue::from_string(v.to_string()).expect("a Value is valid JSON"));
                let mut page =
                    s.es.pit_page(
                        pit,
                        Some(self.slice),
                        sort,
                        s.page_size as usize,
                        after.as_deref(),
                        s.keep_alive,
                    )
                    .await?;
                // A resumed slice keeps the total of its checkpoint.
                if self.after.is_some() {
                    page.total = None;
                }
                if let Some(id) = page.pit_id.take().filter(|id| !id.is_empty()) {
                    let renewed = PitId {
                        engine: pit.engine,
                        id,
                    };
                    self.pit = Some(renewed);
                }
                Ok(page)
            }
            ReadMode::Scroll => {
                let mut page = match &self.scroll_id {
                    None => {
                        s.es.scroll_start(
                            &s.source,
                            Some(self.slice),
                            s.page_size as usize,
                            s.keep_alive,
                        )
                        .await?
                    }
                    Some(id) => s.es.scroll_next(id, s.keep_alive).await?,
                };
                if let Some(id) = page.scroll_id.take() {
                    self.scroll_id = Some(id);
                }
                Ok(page)
            }
        }
    }
}

/// Hands `page` to the pipeline, waiting while the channel is full;
/// `false` when the pipeline no longer listens or the copy is cancelled.
async fn offer(
    pages: &mpsc::Sender<SlicePage>,
    page: SlicePage,
    cancel: &CancellationToken,
) -> bool {
    tokio::select! {
        sent = pages.send(page) => sent.is_ok(),
        _ = cancel.cancelled() => false,
    }
}

fn parse_sort(raw: &RawValue) -> Result<Value, EsError> {
    serde_json::from_str(raw.get()).map_err(|e| EsError::Decode {
        call: "POST /_search".into(),
        detail: format!("unreadable sort values: {e}"),
    })
}
