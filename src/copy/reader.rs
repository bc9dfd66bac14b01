//! One source slice read page by page with a scroll sorted by `_doc`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::stats::CopyStats;
use crate::es::{EsClient, EsError, Hit, Slice};

/// A page of hits from one slice.
#[derive(Debug)]
pub struct SlicePage {
    pub slice: u32,
    pub hits: Vec<Hit>,
}

/// Reads every document of `slice` into `pages`. Waits when the channel is
/// full: that is the pipeline's backpressure reaching the reader.
pub async fn read_slice(
    es: EsClient,
    source: String,
    slice: Slice,
    page_size: u32,
    keep_alive: Duration,
    pages: mpsc::Sender<SlicePage>,
    stats: Arc<CopyStats>,
    cancel: CancellationToken,
) -> Result<(), EsError> {
    let counters = stats.slice(slice.id);
    let mut page = es
        .scroll_start(&source, Some(slice), page_size as usize, keep_alive)
        .await?;
    counters.total.store(page.total.unwrap_or(0), Relaxed);
    let mut scroll_id = page.scroll_id.take();
    let result = async {
        loop {
            if page.hits.is_empty() {
                return Ok(());
            }
            counters.read.fetch_add(page.hits.len() as u64, Relaxed);
            let hits = std::mem::take(&mut page.hits);
            tokio::select! {
                sent = pages.send(SlicePage { slice: slice.id, hits }) => {
                    if sent.is_err() {
                        return Ok(()); // the pipeline stopped
                    }
                }
                _ = cancel.cancelled() => return Ok(()),
            }
            let Some(id) = scroll_id.as_deref() else {
                return Ok(());
            };
            page = es.scroll_next(id, keep_alive).await?;
            if page.scroll_id.is_some() {
                scroll_id = page.scroll_id.take();
            }
        }
    }
    .await;
    if result.is_ok() && !cancel.is_cancelled() && !pages.is_closed() {
        counters.read_done.store(true, Relaxed);
        debug!(
            slice = slice.id,
            read = counters.read.load(Relaxed),
            "slice read"
        );
    }
    if let Some(id) = scroll_id {
        let _ = es.clear_scroll(&id).await;
    }
    result
}
