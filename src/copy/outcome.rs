//! What each item of a bulk answer means for the copy — a pure function,
//! unit-tested on canned answers. A 200 answer carrying item-level 429s is
//! backpressure, not success, and a 409 is not always the application's
//! win.

use crate::es::BulkResponse;

/// The fate of one copied document after one bulk attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Written into the target.
    Copied,
    /// The application wrote or deleted this id in the target (a 409 whose
    /// current version is 1 or more: the copy's own writes are version 0).
    Superseded,
    /// A 409 against a document at version 0: a copy is already there —
    /// this copy's own earlier write, or a different source document with
    /// the same `_id` (custom routing into a new shard count). Only a look
    /// at the stored document tells which.
    CopyExists,
    /// Send again later: the cluster was busy (429) or failed (5xx).
    Retry { status: u16 },
    /// The target refuses this document for good.
    Failed { status: u16, reason: String },
}

/// One outcome per document of the batch, in order. An answer with a
/// different number of items than documents sent is an error.
pub fn classify(response: &BulkResponse, sent: usize) -> Result<Vec<ItemOutcome>, String> {
    if response.items.len() != sent {
        return Err(format!(
            "the bulk answer has {} items for {sent} documents sent",
            response.items.len()
        ));
    }
    Ok(response
        .items
        .iter()
        .map(|item| match item.status {
            // An ingest pipeline's `drop`: answered 200, written nowhere.
            200 | 201 if item.result.as_deref() == Some("noop") => ItemOutcome::Failed {
                status: item.status,
                reason: "the ingest pipeline dropped this document (result noop): it is not in the new generation".into(),
            },
            200 | 201 => ItemOutcome::Copied,
            409 => match item.error_reason.as_deref().and_then(current_version) {
                Some(v) if v >= 1 => ItemOutcome::Superseded,
                _ => ItemOutcome::CopyExists,
            },
            429 | 500..=599 => ItemOutcome::Retry {
                status: item.status,
            },
            status => ItemOutcome::Failed {
                status,
                reason: match (&item.error_type, &item.error_reason) {
                    (Some(t), Some(r)) => format!("{t}: {r}"),
                    (Some(t), None) => t.clone(),
                    (None, Some(r)) => r.clone(),
                    (None, None) => format!("status {status}"),
                },
            },
        })
        .collect())
}

/// The stored version named by a version conflict's reason: "[id]:
/// version conflict, current version [3] is higher or equal to the one
/// provided [0]" (the same words on Elasticsearch and OpenSearch).
fn current_version(reason: &str) -> Option<u64> {
    let rest = &reason[reason.find("current version [")? + "current version [".len()..];
    rest[..rest.find(']')?].parse().ok()
}

/// Whether a whole-request failure with this HTTP status is worth a retry.
pub fn retryable_status(status: u16) -> bool {
    status == 429 || status == 408 || (500..=599).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &str) -> BulkResponse {
        BulkResponse::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn maps_every_status_class() {
        let r = response(
            r#"{"took":1,"errors":true,"items":[
            {"index":{"_id":"a","status":201}},
            {"index":{"_id":"b","status":200}},
            {"index":{"_id":"c","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[c]: version conflict, current version [2] is higher or equal to the one provided [0]"}}},
            {"index":{"_id":"d","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"index":{"_id":"e","status":503,"error":{"type":"unavailable_shards_exception","reason":"x"}}},
            {"index":{"_id":"f","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [n]"}}}
        ]}"#,
        );
        assert_eq!(
            classify(&r, 6).unwrap(),
            vec![
                ItemOutcome::Copied,
                ItemOutcome::Copied,
                ItemOutcome::Superseded,
                ItemOutcome::Retry { status: 429 },
                ItemOutcome::Retry { status: 503 },
                ItemOutcome::Failed {
                    status: 400,
                    reason: "mapper_parsing_exception: failed to parse field [n]".into()
                },
            ]
        );
    }

    #[test]
    fn a_conflict_with_a_copy_needs_a_look_and_an_unreadable_one_too() {
        let r = response(
            r#"{"took":1,"errors":true,"items":[
            {"index":{"_id":"a","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[a]: version conflict, current version [0] is higher or equal to the one provided [0]"}}},
            {"index":{"_id":"b","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[b]: version conflict, current version [1] is higher or equal to the one provided [0]"}}},
            {"index":{"_id":"c","status":409,"error":{"type":"version_conflict_engine_exception","reason":"something else"}}},
            {"index":{"_id":"d","status":409}}
        ]}"#,
        );
        assert_eq!(
            classify(&r, 4).unwrap(),
            vec![
                ItemOutcome::CopyExists,
                ItemOutcome::Superseded,
                ItemOutcome::CopyExists,
                ItemOutcome::CopyExists,
            ]
        );
        assert_eq!(current_version("current version [12] is higher"), Some(12));
        assert_eq!(current_version("current version [x]"), None);
        assert_eq!(current_version("current version [7"), None);
    }

    #[test]
    fn a_short_answer_is_an_error_not_a_success() {
        let r =
            response(r#"{"took":1,"errors":false,"items":[{"index":{"_id":"a","status":201}}]}"#);
        assert!(classify(&r, 2).is_err());
    }

    #[test]
    fn whole_request_statuses() {
        assert!(retryable_status(429));
        assert!(retryable_status(503));
        assert!(!retryable_status(400));
        assert!(!retryable_status(413));
    }
}
