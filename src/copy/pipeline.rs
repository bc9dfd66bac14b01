//! The client copy engine: slice readers → bounded channel → batcher →
//! bulk writers limited by permits. Memory is bounded by configuration:
//! pages in the channel, plus one batch being built, plus one batch per
//! permit in flight.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info_span, Instrument};

use super::control::{max_docs_per_batch, wait_unpaused, Control, Pacer};
use super::encode::{Batch, Batcher};
use super::error::CopyError;
use super::permits::Concurrency;
use super::reader::{read_slice, ReadSpec, SlicePage};
use super::stats::CopyStats;
use super::writer::{send_batch, RetryPolicy};
use crate::config::{CopyConfig, Tuning};
use crate::es::{EsClient, Slice};
use crate::migration::DocFailure;

/// What one pipeline run copies.
pub struct PipelineSpec {
    pub read: ReadSpec,
    pub target: String,
    pub config: CopyConfig,
    pub retry: RetryPolicy,
}

/// Copies every slice not yet done from source to target. Returns when
/// all of them are read and every document has an outcome.
pub async fn run_pipeline(
    spec: PipelineSpec,
    stats: Arc<CopyStats>,
    mut control: watch::Receiver<Control>,
    tuning: watch::Receiver<Tuning>,
    cancel: CancellationToken,
) -> Result<(), CopyError> {
    let slices: Vec<Slice> = (0..stats.slice_max)
        .filter(|id| !stats.slice(*id).is_done())
        .map(|id| Slice {
            id,
            max: stats.slice_max,
        })
        .collect();
    let (tx, mut rx) = mpsc::channel::<SlicePage>(slices.len().max(1) * 2);
    let mut readers = JoinSet::new();
    for slice in slices {
        let after = stats.slice(slice.id).resume_after();
        let span = info_span!("slice", slice = slice.id, of = slice.max);
        readers.spawn(
            read_slice(
                spec.read.clone(),
                slice,
                after,
                tx.clone(),
                stats.clone(),
                cancel.clone(),
            )
            .instrument(span),
        );
    }
    drop(tx);

    let mut dispatch = Dispatch {
        es: spec.read.es.clone(),
        retry: Arc::new(spec.retry),
        stats: stats.clone(),
        concurrency: Arc::new(Concurrency::new(
            2,
            tuning.borrow().max_concurrency as usize,
            stats.telemetry.concurrency.clone(),
        )),
        writers: JoinSet::new(),
        pacer: Pacer::new(),
        cancel: cancel.clone(),
    };
    let _retune = AbortOnDropHandle::new(tokio::spawn(follow_max_concurrency(
        tuning,
        dispatch.concurrency.clone(),
    )));
    let mut batcher = Batcher::new(&spec.target, spec.config.batch_bytes);
    loop {
        batcher.set_max_docs(max_docs_per_batch(control.borrow().requests_per_second));
        tokio::select! {
            _ = cancel.cancelled() => return Err(CopyError::Cancelled),
            Some(joined) = readers.join_next(), if !readers.is_empty() => {
                joined.map_err(|e| CopyError::fatal(format!("slice reader crashed: {e}")))??;
            }
            Some(joined) = dispatch.writers.join_next(), if !dispatch.writers.is_empty() => {
                joined.map_err(|e| CopyError::fatal(format!("bulk writer crashed: {e}")))??;
            }
            page = rx.recv() => {
                let Some(page) = page else { break };
                stats.slice(page.slice).begin_page(page.seq, page.hits.len(), page.last_sort.clone());
                for hit in &page.hits {
                    match batcher.push(page.slice, page.seq, hit) {
                        Ok(Some(batch)) => dispatch.send(batch, &mut control).await?,
                        Ok(None) => {}
                        Err(uncopyable) => stats.record_failure(uncopyable.slice, uncopyable.page, DocFailure {
                            id: uncopyable.id,
                            status: 0,
                            reason: "the source stores no _source for this document".into(),
                        }),
                    }
                }
            }
        }
    }
    if let Some(batch) = batcher.flush() {
        dispatch.send(batch, &mut control).await?;
    }
    while let Some(joined) = readers.join_next().await {
        joined.map_err(|e| CopyError::fatal(format!("slice reader crashed: {e}")))??;
    }
    while let Some(joined) = dispatch.writers.join_next().await {
        joined.map_err(|e| CopyError::fatal(format!("bulk writer crashed: {e}")))??;
    }
    if cancel.is_cancelled() {
        return Err(CopyError::Cancelled);
    }
    Ok(())
}

/// Applies a reloaded `copy.max_concurrency` to the running copy.
async fn follow_max_concurrency(
    mut tuning: watch::Receiver<Tuning>,
    concurrency: Arc<Concurrency>,
) {
    while tuning.changed().await.is_ok() {
        let max = tuning.borrow_and_update().max_concurrency;
        concurrency.set_max(max as usize);
    }
}

/// Hands batches to writer tasks, one permit each.
struct Dispatch {
    es: EsClient,
    retry: Arc<RetryPolicy>,
    stats: Arc<CopyStats>,
    concurrency: Arc<Concurrency>,
    writers: JoinSet<Result<(), CopyError>>,
    pacer: Pacer,
    cancel: CancellationToken,
}

impl Dispatch {
    async fn send(
        &mut self,
        batch: Batch,
        control: &mut watch::Receiver<Control>,
    ) -> Result<(), CopyError> {
        tokio::select! {
            unpaused = wait_unpaused(control) => if !unpaused { return Err(CopyError::Cancelled) },
            _ = self.cancel.cancelled() => return Err(CopyError::Cancelled),
        }
        let rate = control.borrow().requests_per_second;
        let wait = self
            .pacer
            .reserve(batch.len(), rate, tokio::time::Instant::now());
        let permit = tokio::select! {
            _ = tokio::time::sleep(wait) => self.concurrency.acquire().await,
            _ = self.cancel.cancelled() => return Err(CopyError::Cancelled),
        };
        // Surface a failed writer before starting more work.
        while let Some(joined) = self.writers.try_join_next() {
            joined.map_err(|e| CopyError::fatal(format!("bulk writer crashed: {e}")))??;
        }
        let (es, stats, retry, cancel) = (
            self.es.clone(),
            self.stats.clone(),
            self.retry.clone(),
            self.cancel.clone(),
        );
        let concurrency = self.concurrency.clone();
        self.writers.spawn(
            async move {
                let result = send_batch(&es, batch, &stats, &retry, &concurrency, &cancel).await;
                concurrency.release(permit);
                result
            }
            .in_current_span(),
        );
        Ok(())
    }
}
