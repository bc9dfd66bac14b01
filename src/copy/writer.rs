//! Sending one batch: per-item outcomes, retries of only the items that
//! did not succeed, jittered exponential backoff.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use super::adaptive::Answer;
use super::encode::Batch;
use super::error::CopyError;
use super::outcome::{classify, retryable_status, ItemOutcome};
use super::permits::Concurrency;
use super::stats::{CopyStats, Outcome};
use crate::es::{EsClient, EsError};
use crate::migration::DocFailure;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
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
        let started = std::time::Instant::now();
        let answer = es
            .bulk(batch.body.clone(), None, Some(policy.request_timeout))
            .await;
        let latency = started.elapsed();
        let t = &stats.telemetry;
        t.bulk_duration.observe(latency.as_secs_f64());
        let (retry, last) = match answer {
            Ok(response) => {
                let outcomes = classify(&response, batch.len()).map_err(CopyError::Fatal)?;
                let mut retry = Vec::new();
                let mut last = String::new();
                let mut indexed = 0;
                for (i, outcome) in outcomes.into_iter().enumerate() {
                    let doc = &batch.docs[i];
                    let slice = stats.slice(doc.slice);
                    match outcome {
                        ItemOutcome::Copied => {
                            indexed += doc.range.len();
                            slice.account(doc.page, Outcome::Copied)
                        }
                        ItemOutcome::Superseded => slice.account(doc.page, Outcome::Superseded),
                        ItemOutcome::Retry { status } => {
                            if status == 429 {
                                t.rejections.inc();
                            }
                            last = format!("item {} answered {status}", doc.id);
                            retry.push(i);
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
                concurrency.feedback(retry.is_empty().then_some(Answer {
                    latency,
                    bytes: batch.body.len(),
                    indexed,
                }));
                if retry.is_empty() {
                    let counter = if attempts > 1 {
                        &t.bulk_retried
                    } else {
                        &t.bulk_ok
                    };
                    counter.inc();
                    return Ok(());
                }
                (retry, last)
            }
            Err(e) if transient(&e) => {
                concurrency.feedback(None);
                t.bulk_errors.inc();
                if e.status() == Some(429) {
                    t.rejections.inc();
                }
                ((0..batch.len()).collect(), e.to_string())
            }
            Err(e) => {
                t.bulk_errors.inc();
                return Err(CopyError::Fatal(format!(
                    "the cluster refused a bulk request: {e}"
                )));
            }
        };
        let Some(delay) = delays.next() else {
            return Err(CopyError::RetriesExhausted { attempts, last });
        };
        t.retries.inc();
        if retry.len() < batch.len() {
            batch = batch.subset(&retry);
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return Err(CopyError::Cancelled),
        }
    }
}
