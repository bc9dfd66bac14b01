//! `_bulk` with a pre-built NDJSON body, and its per-item outcomes.

use std::time::Duration;

use bytes::Bytes;
use elasticsearch::http::Method;
use serde::Deserialize;

use super::{Body, EsClient, EsError};

/// The answer to one `_bulk` request. A 200 may still carry failed items.
#[derive(Debug, Deserialize)]
pub struct BulkResponse {
    pub took: u64,
    pub errors: bool,
    pub items: Vec<BulkItem>,
}

/// One item's outcome, whatever its action (`index`, `create`, `update`,
/// `delete`).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "ItemEnvelope")]
pub struct BulkItem {
    pub id: Option<String>,
    pub status: u16,
    /// `type` of the item's error, e.g. `version_conflict_engine_exception`.
    pub error_type: Option<String>,
    pub error_reason: Option<String>,
    /// `created`, `updated`, `deleted`, `not_found` or `noop` (an ingest
    /// pipeline dropped the document).
    pub result: Option<String>,
}

/// Each item is `{"<action>": {...}}`; the action name is not needed.
#[derive(Deserialize)]
struct ItemEnvelope {
    #[serde(alias = "create", alias = "update", alias = "delete")]
    index: ItemBody,
}

#[derive(Deserialize)]
struct ItemBody {
    #[serde(rename = "_id")]
    id: Option<String>,
    status: u16,
    error: Option<ItemError>,
    result: Option<String>,
}

#[derive(Deserialize)]
struct ItemError {
    #[serde(rename = "type")]
    ty: Option<String>,
    reason: Option<String>,
}

impl From<ItemEnvelope> for BulkItem {
    fn from(envelope: ItemEnvelope) -> Self {
        let ItemBody {
            id,
            status,
            error,
            result,
        } = envelope.index;
        let (error_type, error_reason) = match error {
            Some(e) => (e.ty, e.reason),
            None => (None, None),
        };
        BulkItem {
            id,
            status,
            error_type,
            error_reason,
            result,
        }
    }
}

/// The parts of a bulk answer [`BulkResponse`] reads.
const BULK_FILTER: &str =
    "took,errors,items.*._id,items.*.status,items.*.result,items.*.error.type,items.*.error.reason";

impl BulkResponse {
    pub fn parse(body: &[u8]) -> Result<BulkResponse, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

impl EsClient {
    /// `POST /_bulk` with `body` sent as it is (NDJSON, ends with `\n`).
    ///
    /// Returns the HTTP status and the parsed answer when it is 200; any
    /// other status (429, 5xx, 413) is an [`EsError::Status`] the caller
    /// decides to retry or not. `refresh` is passed through when set.
    pub async fn bulk(
        &self,
        body: Bytes,
        refresh: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<BulkResponse, EsError> {
        // Only what the per-item outcome needs: the node serialises (and we
        // parse) a fraction of the full answer.
        let mut query: Vec<(&str, &str)> = vec![("filter_path", BULK_FILTER)];
        query.extend(refresh.map(|r| ("refresh", r)));
        let bytes = self
            .send_ok(
                Method::Post,
                "/_bulk",
                &query,
                Some(Body::NdJson(body)),
                timeout,
            )
            .await?;
        BulkResponse::parse(&bytes).map_err(|e| EsError::Decode {
            call: "POST /_bulk".into(),
            detail: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mixed_outcomes() {
        let body = br#"{"took":3,"errors":true,"items":[
            {"index":{"_index":"b","_id":"1","_version":1,"result":"created","status":201}},
            {"index":{"_index":"b","_id":"2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[2]: version conflict"}}},
            {"create":{"_index":"b","_id":"3","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected"}}},
            {"delete":{"_index":"b","_id":"4","status":404,"result":"not_found"}}
        ]}"#;
        let r = BulkResponse::parse(body).unwrap();
        assert!(r.errors);
        let statuses: Vec<u16> = r.items.iter().map(|i| i.status).collect();
        assert_eq!(statuses, [201, 409, 429, 404]);
        assert_eq!(
            r.items[1].error_type.as_deref(),
            Some("version_conflict_engine_exception")
        );
        assert_eq!(r.items[2].id.as_deref(), Some("3"));
        assert!(r.items[3].error_type.is_none());
    }
}
