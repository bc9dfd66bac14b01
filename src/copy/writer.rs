//! Sending one batch: per-item outcomes, retries of only the items that
//! did not succeed, jittered exponential backoff, and a look at the target
//! for conflicts the answer alone cannot explain.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use super::adaptive::Answer;
use super::encode::Batch;
use super::error::CopyError;
use super::outcome::{classify, retryable_status, ItemOutcome};
use super::permits::Concurrency;
use super::stats::{CopyStats, Outcome};
use crate::es::{DocKey, EsClient, EsError, Found};
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
                let outcomes = classify(&response, batch.len()).map_err(CopyError::fatal)?;
                let mut retry = Vec::new();
                let mut last = String::new();
                let mut indexed = 0;
                let mut look = Vec::new();
                for (i, outcome) in outcomes.into_iter().enumerate() {
                    let doc = &batch.docs[i];
                    let slice = stats.slice(doc.slice);
                    match outcome {
                        ItemOutcome::Copied => {
                            indexed += doc.range.len();
                            slice.account(doc.page, Outcome::Copied)
                        }
                        // With custom routing, the document there may be
                        // another one with the same `_id`: look.
                        ItemOutcome::Superseded if doc.routing.is_some() => look.push(i),
                        ItemOutcome::Superseded => slice.account(doc.page, Outcome::Superseded),
                        ItemOutcome::CopyExists => look.push(i),
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
                settle_copy_conflicts(es, &batch, &look, stats).await?;
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
                return Err(CopyError::fatal(format!(
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
