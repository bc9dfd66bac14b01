//! Sending one batch: per-item outcomes, retries of only the items that
//! did not succeed, jittered exponential backoff, and a look at the target
//! for conflicts the answer alone cannot explain.
//!
//! [`send_batch`] is the copy's path; [`BulkWriter`] puts the same path
//! behind a small surface for programs that load or replay bulk bodies
//! outside a copy run (the tools in `examples/`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;

use super::adaptive::Answer;
use super::encode::Batch;
use super::error::CopyError;
use super::outcome::{classify, retryable_status, ItemOutcome};
use super::permits::Concurrency;
use super::stats::{plan_slices, CopyStats, Outcome};
use super::telemetry::Telemetry;
use crate::es::{BulkResponse, DocKey, EsClient, EsError, Found};
use crate::migration::{CopyProgress, DocFailure, StoredEngine};

/// How a batch is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First pause before a retry; later ones double, with jitter.
    pub min_delay: Duration,
    /// Longest pause between two attempts.
    pub max_delay: Duration,
    /// Retries after the first attempt before giving up.
    pub max_retries: u32,
    /// Upper bound of one bulk request.
    pub request_timeout: Duration,
}

impl RetryPolicy {
    fn delays(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries as usize)
            .with_jitter()
            .build()
    }
}

fn transient(e: &EsError) -> bool {
    e.is_unavailable() || e.status().is_some_and(retryable_status)
}

/// Documents of a batch still without an outcome after one attempt, and
/// why (for the error when retries run out).
struct Pending {
    retry: Vec<usize>,
    last: String,
}

/// Sends `batch` until every document has an outcome (copied, superseded
/// or failed). Items answered 429/5xx — and whole requests that failed
/// that way — are sent again after a backoff; the others never are.
pub async fn send_batch(
    es: &EsClient,
    mut batch: Batch,
    stats: &CopyStats,
    policy: &RetryPolicy,
    concurrency: &Concurrency,
    cancel: &CancellationToken,
) -> Result<(), CopyError> {
    let mut delays = policy.delays();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let sent = send_once(es, &batch, stats, policy, concurrency, attempts).await?;
        let Some(Pending { retry, last }) = sent else {
            return Ok(());
        };
        let Some(delay) = delays.next() else {
            return Err(CopyError::RetriesExhausted { attempts, last });
        };
        stats.telemetry.retries.inc();
        if retry.len() < batch.len() {
            batch = batch.subset(&retry);
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return Err(CopyError::Cancelled),
        }
    }
}

/// One bulk request of `batch` (attempt number `attempts`): `None` once
/// every document has an outcome, else the documents to send again.
async fn send_once(
    es: &EsClient,
    batch: &Batch,
    stats: &CopyStats,
    policy: &RetryPolicy,
    concurrency: &Concurrency,
    attempts: u32,
) -> Result<Option<Pending>, CopyError> {
    let started = Instant::now();
    let answer = es
        .bulk(batch.body.clone(), None, Some(policy.request_timeout))
        .await;
    let latency = started.elapsed();
    let t = &stats.telemetry;
    t.bulk_duration.observe(latency.as_secs_f64());
    match answer {
        Ok(response) => {
            let pending = settle_answer(es, batch, &response, stats, concurrency, latency).await?;
            if pending.is_none() {
                let counter = if attempts > 1 {
                    &t.bulk_retried
                } else {
                    &t.bulk_ok
                };
                counter.inc();
            }
            Ok(pending)
        }
        Err(e) if transient(&e) => {
            concurrency.feedback(None);
            t.bulk_errors.inc();
            if e.status() == Some(429) {
                t.rejections.inc();
            }
            Ok(Some(Pending {
                retry: (0..batch.len()).collect(),
                last: e.to_string(),
            }))
        }
        Err(e) => {
            t.bulk_errors.inc();
            Err(CopyError::fatal(format!(
                "the cluster refused a bulk request: {e}"
            )))
        }
    }
}

/// Gives every item of a 200 answer its outcome, settles the conflicts
/// that need a look at the target, and feeds the concurrency limit.
async fn settle_answer(
    es: &EsClient,
    batch: &Batch,
    response: &BulkResponse,
    stats: &CopyStats,
    concurrency: &Concurrency,
    latency: Duration,
) -> Result<Option<Pending>, CopyError> {
    let outcomes = classify(response, batch.len()).map_err(CopyError::fatal)?;
    let sorted = account_items(batch, outcomes, stats);
    settle_copy_conflicts(es, batch, &sorted.look, stats).await?;
    let pending = sorted.pending;
    concurrency.feedback(pending.retry.is_empty().then_some(Answer {
        latency,
        bytes: batch.body.len(),
        indexed: sorted.indexed,
    }));
    Ok((!pending.retry.is_empty()).then_some(pending))
}

/// What one answer's items left to do.
struct Sorted {
    /// Items to send again.
    pending: Pending,
    /// Items answered 409 whose meaning needs a look at the target.
    look: Vec<usize>,
    /// Bytes of the documents indexed.
    indexed: usize,
}

/// Accounts for the items whose outcome the answer alone settles; sorts
/// out the ones to retry and the ones to look at.
fn account_items(batch: &Batch, outcomes: Vec<ItemOutcome>, stats: &CopyStats) -> Sorted {
    let t = &stats.telemetry;
    let mut sorted = Sorted {
        pending: Pending {
            retry: Vec::new(),
            last: String::new(),
        },
        look: Vec::new(),
        indexed: 0,
    };
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let doc = &batch.docs[i];
        let slice = stats.slice(doc.slice);
        match outcome {
            ItemOutcome::Copied => {
                sorted.indexed += doc.range.len();
                slice.account(doc.page, Outcome::Copied)
            }
            // With custom routing, the document there may be another one
            // with the same `_id`: look.
            ItemOutcome::Superseded if doc.routing.is_some() => sorted.look.push(i),
            ItemOutcome::Superseded => slice.account(doc.page, Outcome::Superseded),
            ItemOutcome::CopyExists => sorted.look.push(i),
            ItemOutcome::Retry { status } => {
                if status == 429 {
                    t.rejections.inc();
                }
                sorted.pending.last = format!("item {} answered {status}", doc.id);
                sorted.pending.retry.push(i);
            }
            ItemOutcome::Failed { status, reason } => stats.record_failure(
                doc.slice,
                doc.page,
                DocFailure {
                    id: doc.id.clone(),
                    status,
                    reason,
                },
            ),
        }
    }
    sorted
}

/// Settles the 409s against a version-0 document (`look`, indexes into
/// `batch.docs`) by reading the stored documents: the same routing is
/// this copy's own earlier write (`resent`), or at version 1 or more the
/// application's (`superseded`); another routing is a different document
/// with the same `_id` that landed in the same shard of the new shard
/// count (a failure, never a silent drop); no document means the
/// application deleted it (`superseded`). 409s at version ≥ 1 of routed
/// documents are looked at too.
async fn settle_copy_conflicts(
    es: &EsClient,
    batch: &Batch,
    look: &[usize],
    stats: &CopyStats,
) -> Result<(), CopyError> {
    if look.is_empty() {
        return Ok(());
    }
    let keys: Vec<DocKey> = look
        .iter()
        .map(|&i| DocKey {
            id: batch.docs[i].id.clone(),
            routing: batch.docs[i].routing.clone(),
        })
        .collect();
    // An error here ends the run: the pages of these documents are not
    // confirmed, so the next run reads and settles them again.
    let found = es.find_keys(&batch.index, &keys).await?;
    for (&i, found) in look.iter().zip(found) {
        let doc = &batch.docs[i];
        match conflict_outcome(doc.routing.as_deref(), found.as_ref()) {
            Ok(outcome) => stats.slice(doc.slice).account(doc.page, outcome),
            Err(reason) => stats.record_failure(
                doc.slice,
                doc.page,
                DocFailure {
                    id: doc.id.clone(),
                    status: 409,
                    reason,
                },
            ),
        }
    }
    Ok(())
}

/// What a 409 against a stored copy means, given what is stored under the
/// document's id in the shard its routing leads to.
fn conflict_outcome(routing: Option<&str>, found: Option<&Found>) -> Result<Outcome, String> {
    match found {
        None => Ok(Outcome::Superseded),
        Some(f) if f.routing.as_deref() == routing && f.version >= 1 => Ok(Outcome::Superseded),
        Some(f) if f.routing.as_deref() == routing => Ok(Outcome::Resent),
        Some(f) => Err(format!(
            "routing collision: another document with this _id (routing {}) is in the same shard of the new generation; \
             this one (routing {}) cannot be stored beside it",
            f.routing.as_deref().unwrap_or("none"),
            routing.unwrap_or("none"),
        )),
    }
}

/// The copy's bulk write path (`send_batch`) for a program that loads
/// or replays bulk bodies outside a copy run: the same request, answer
/// classification, retries and conflict look as a copy, without a lease,
/// checkpoints or metrics endpoint.
///
/// Items answered 429 or 5xx (or whole requests answered so) are sent
/// again after a backoff; a 409 against a version-0 write is settled by
/// a look at the target and counts as written when it is this writer's
/// own earlier write; any other refused item makes [`BulkWriter::send`]
/// fail with the first refusal's reason. One writer may be shared by any
/// number of concurrent sends.
#[derive(Debug)]
pub struct BulkWriter {
    es: EsClient,
    policy: RetryPolicy,
    stats: CopyStats,
    concurrency: Concurrency,
    cancel: CancellationToken,
}

impl BulkWriter {
    /// A writer to the cluster behind `es`. The batches it sends come
    /// from a [`Batcher`](super::Batcher) fed with slice 0.
    pub fn new(es: EsClient, policy: RetryPolicy) -> Self {
        let mut progress = CopyProgress::new(StoredEngine::Client, 0, chrono::Utc::now());
        progress.slices = plan_slices(1);
        let telemetry = Telemetry::default().for_index("bulk");
        BulkWriter {
            es,
            policy,
            stats: CopyStats::resume(&progress, true, None, telemetry),
            // Only fed: the caller decides how many requests are in flight.
            concurrency: Concurrency::new(1, 1, Gauge::default()),
            cancel: CancellationToken::new(),
        }
    }

    /// Sends `batch` until every document is written; an error names the
    /// first document the cluster refused, or why the request failed.
    pub async fn send(&self, batch: Batch) -> Result<(), CopyError> {
        if let Some(doc) = batch.docs.iter().find(|d| d.slice != 0) {
            return Err(CopyError::fatal(format!(
                "document {} was batched for slice {}; a BulkWriter sends slice 0 only",
                doc.id, doc.slice
            )));
        }
        let stats = &self.stats;
        send_batch(
            &self.es,
            batch,
            stats,
            &self.policy,
            &self.concurrency,
            &self.cancel,
        )
        .await?;
        if stats.slice(0).failed.load(Relaxed) == 0 {
            return Ok(());
        }
        let mut progress = CopyProgress::new(StoredEngine::Client, 0, chrono::Utc::now());
        stats.apply(&mut progress);
        let reason = progress.failures.first().map_or_else(
            || "a document was refused".to_owned(),
            |f| format!("document {} refused ({}): {}", f.id, f.status, f.reason),
        );
        Err(CopyError::fatal(reason))
    }

    /// Documents written so far (conflicts settled as written included).
    pub fn written(&self) -> u64 {
        let slice = self.stats.slice(0);
        let load = |n: &AtomicU64| n.load(Relaxed);
        load(&slice.copied) + load(&slice.superseded) + load(&slice.resent)
    }

    /// Items and whole requests answered 429 so far.
    pub fn rejections(&self) -> u64 {
        self.stats.telemetry.rejections.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(version: i64, routing: Option<&str>) -> Found {
        Found {
            version,
            routing: routing.map(str::to_owned),
        }
    }

    #[test]
    fn a_conflict_is_explained_by_what_is_stored() {
        assert_eq!(conflict_outcome(Some("a"), None), Ok(Outcome::Superseded));
        assert_eq!(
            conflict_outcome(Some("a"), Some(&found(2, Some("a")))),
            Ok(Outcome::Superseded)
        );
        // The application wrote the same `_id` under another routing.
        assert!(conflict_outcome(Some("a"), Some(&found(2, Some("b")))).is_err());
        assert_eq!(
            conflict_outcome(Some("a"), Some(&found(0, Some("a")))),
            Ok(Outcome::Resent)
        );
        assert_eq!(
            conflict_outcome(None, Some(&found(0, None))),
            Ok(Outcome::Resent)
        );
        let collision = conflict_outcome(Some("a"), Some(&found(0, Some("b")))).unwrap_err();
        assert!(collision.contains("routing collision"), "{collision}");
        assert!(conflict_outcome(None, Some(&found(0, Some("b")))).is_err());
    }
}
