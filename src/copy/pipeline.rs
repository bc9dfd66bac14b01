//! The client copy engine: slice readers → bounded channel → one batch
//! being built per slice → bulk writers limited by permits. Memory is
//! bounded by configuration: pages in the channel, plus batches being
//! built (at most twice `batch_bytes` and a page in all), plus one batch
//! per permit in flight.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info_span, Instrument};

use super::control::{admit, Control, Pacer};
use super::encode::Batch;
use super::error::CopyError;
use super::permits::Concurrency;
use super::priority::{baseline, follow_search, SearchProbe};
use super::reader::{read_slice, ReadSpec, SlicePage};
use super::slice_batches::SliceBatches;
use super::stats::CopyStats;
use super::writer::{send_batch, RetryPolicy};
use crate::config::{CopyConfig, Tuning};
use crate::es::{EsClient, EsError, Slice};
use crate::migration::DocFailure;

/// What one pipeline run copies.
pub struct PipelineSpec {
    pub read: ReadSpec,
    pub target: String,
    /// The ingest pipeline every bulk action names, if any.
    pub pipeline: Option<String>,
    /// What a background copy probes live search with.
    pub probe: SearchProbe,
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
    let baseline = baseline(&spec.read.es, &spec.probe).await;
    let (mut readers, mut pages) = spawn_readers(&spec, &stats, &cancel);
    let mut dispatch = Dispatch::new(&spec, &stats, &tuning, &cancel);
    let _retune = AbortOnDropHandle::new(tokio::spawn(follow_max_concurrency(
        tuning,
        dispatch.concurrency.clone(),
    )));
    let _yield = AbortOnDropHandle::new(tokio::spawn(
        follow_search(
            spec.read.es.clone(),
            spec.probe.clone(),
            baseline,
            control.clone(),
            dispatch.concurrency.clone(),
            stats.clone(),
            dispatch.pace.clone(),
            cancel.child_token(),
        )
        .in_current_span(),
    ));
    let mut batches = SliceBatches::new(
        &spec.target,
        spec.config.batch_bytes,
        spec.pipeline.as_deref(),
    );
    loop {
        batches.set_max_docs(
            control
                .borrow()
                .max_docs_per_batch(yielding(&dispatch.pace)),
        );
        tokio::select! {
            _ = cancel.cancelled() => return Err(CopyError::Cancelled),
            Some(joined) = readers.join_next(), if !readers.is_empty() => reader_ended(joined)?,
            Some(joined) = dispatch.writers.join_next(), if !dispatch.writers.is_empty() => {
                writer_ended(joined)?
            }
            page = pages.recv() => {
                let Some(page) = page else { break };
                for batch in batch_page(&mut batches, &stats, page) {
                    dispatch.send(batch, &mut control).await?;
                }
            }
        }
    }
    for batch in batches.flush() {
        dispatch.send(batch, &mut control).await?;
    }
    while let Some(joined) = readers.join_next().await {
        reader_ended(joined)?;
    }
    while let Some(joined) = dispatch.writers.join_next().await {
        writer_ended(joined)?;
    }
    if cancel.is_cancelled() {
        return Err(CopyError::Cancelled);
    }
    Ok(())
}

type Joined = Result<Result<(), CopyError>, tokio::task::JoinError>;

fn reader_ended(
    joined: Result<Result<(), EsError>, tokio::task::JoinError>,
) -> Result<(), CopyError> {
    joined.map_err(|e| CopyError::fatal(format!("slice reader crashed: {e}")))??;
    Ok(())
}

fn writer_ended(joined: Joined) -> Result<(), CopyError> {
    joined.map_err(|e| CopyError::fatal(format!("bulk writer crashed: {e}")))?
}

/// One reader task per slice not yet done, all feeding one bounded channel
/// (two pages per slice: the backpressure that reaches the readers).
fn spawn_readers(
    spec: &PipelineSpec,
    stats: &Arc<CopyStats>,
    cancel: &CancellationToken,
) -> (JoinSet<Result<(), EsError>>, mpsc::Receiver<SlicePage>) {
    let slices: Vec<Slice> = (0..stats.slice_max)
        .filter(|id| !stats.slice(*id).is_done())
        .map(|id| Slice {
            id,
            max: stats.slice_max,
        })
        .collect();
    let (tx, rx) = mpsc::channel::<SlicePage>(slices.len().max(1) * 2);
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
    (readers, rx)
}

/// Records `page` as begun and hands its documents to its slice's batch;
/// returns the batches they closed, and the largest ones being built while
/// all of them hold too much. The page that ends a slice holds no
/// documents and returns what is left of the slice's batch. A document
/// without `_source` cannot be copied: it is a recorded failure, never a
/// silent gap.
fn batch_page(batches: &mut SliceBatches, stats: &CopyStats, page: SlicePage) -> Vec<Batch> {
    if page.last {
        return batches.finish(page.slice).into_iter().collect();
    }
    let mut closed = Vec::new();
    stats
        .slice(page.slice)
        .begin_page(page.seq, page.hits.len(), page.last_sort.clone());
    for hit in &page.hits {
        match batches.push(page.slice, page.seq, hit) {
            Ok(Some(batch)) => closed.push(batch),
            Ok(None) => {}
            Err(uncopyable) => stats.record_failure(
                uncopyable.slice,
                uncopyable.page,
                DocFailure {
                    id: uncopyable.id,
                    status: 0,
                    reason: "the source stores no _source for this document".into(),
                },
            ),
        }
    }
    while let Some(largest) = batches.spill() {
        closed.push(largest);
    }
    closed
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

/// The pace a yielding background copy keeps (published in `pace`), if any.
fn yielding(pace: &Gauge<f64, AtomicU64>) -> Option<f64> {
    Some(pace.get()).filter(|pace| *pace > 0.0)
}

/// Hands batches to writer tasks, one permit each.
struct Dispatch {
    es: EsClient,
    retry: Arc<RetryPolicy>,
    stats: Arc<CopyStats>,
    concurrency: Arc<Concurrency>,
    writers: JoinSet<Result<(), CopyError>>,
    pacer: Pacer,
    /// Documents per second a background copy allows itself while live
    /// search suffers; 0: not yielding.
    pace: Gauge<f64, AtomicU64>,
    cancel: CancellationToken,
}

impl Dispatch {
    fn new(
        spec: &PipelineSpec,
        stats: &Arc<CopyStats>,
        tuning: &watch::Receiver<Tuning>,
        cancel: &CancellationToken,
    ) -> Dispatch {
        Dispatch {
            es: spec.read.es.clone(),
            retry: Arc::new(spec.retry.clone()),
            stats: stats.clone(),
            concurrency: Arc::new(Concurrency::new(
                2,
                tuning.borrow().max_concurrency as usize,
                stats.telemetry.concurrency.clone(),
            )),
            writers: JoinSet::new(),
            pacer: Pacer::new(),
            pace: stats.telemetry.search_yield.clone(),
            cancel: cancel.clone(),
        }
    }

    async fn send(
        &mut self,
        batch: Batch,
        control: &mut watch::Receiver<Control>,
    ) -> Result<(), CopyError> {
        // Paused, or paced by the throttle or the yield to live search: a
        // change of the controls while waiting counts at once.
        let pace = &self.pace;
        tokio::select! {
            admitted = admit(&mut self.pacer, batch.len(), control, || yielding(pace)) => {
                if !admitted { return Err(CopyError::Cancelled) }
            }
            _ = self.cancel.cancelled() => return Err(CopyError::Cancelled),
        }
        let permit = tokio::select! {
            permit = self.concurrency.acquire() => permit,
            _ = self.cancel.cancelled() => return Err(CopyError::Cancelled),
        };
        // Surface a failed writer before starting more work.
        while let Some(joined) = self.writers.try_join_next() {
            writer_ended(joined)?;
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
