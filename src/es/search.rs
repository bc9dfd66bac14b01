//! Reading every document: sliced scroll sorted by `_doc`, and point in
//! time + `search_after` where the engine has a `_shard_doc` tiebreaker.
//!
//! `_source` stays raw bytes ([`RawValue`]) from the response to the caller:
//! it is never parsed into a tree.

use std::time::Duration;

use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{decode, seg, Body, Engine, EsClient, EsError};

/// One document as read from the source.
#[derive(Debug, Deserialize)]
pub struct Hit {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_routing")]
    pub routing: Option<String>,
    /// Absent when the index stores no `_source`; such a document cannot be copied.
    #[serde(rename = "_source")]
    pub source: Option<Box<RawValue>>,
    /// Sort values of a PIT search: the `search_after` of the next page.
    pub sort: Option<Box<RawValue>>,
}

/// One page of hits and what is needed to ask for the next one.
#[derive(Debug)]
pub struct Page {
    pub hits: Vec<Hit>,
    /// Scroll context to continue from (scroll searches only).
    pub scroll_id: Option<String>,
    /// Possibly renewed point-in-time id (PIT searches only).
    pub pit_id: Option<String>,
    /// Documents matched by this slice, when the engine reports it.
    pub total: Option<u64>,
}

/// One slice of a sliced read. `max <= 1` means "no slicing".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub id: u32,
    pub max: u32,
}

/// An open point in time; the engine decides how it is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PitId {
    pub engine: Engine,
    pub id: String,
}

#[derive(Deserialize)]
struct SearchResponse {
    #[serde(rename = "_scroll_id")]
    scroll_id: Option<String>,
    pit_id: Option<String>,
    #[serde(rename = "_shards", default)]
    shards: ShardCounts,
    #[serde(default)]
    timed_out: bool,
    #[serde(default)]
    hits: Hits,
}

/// How many shards failed to answer a page, and why.
#[derive(Default, Deserialize)]
struct ShardCounts {
    #[serde(default)]
    failed: u64,
    #[serde(default)]
    failures: Vec<Value>,
}

/// A page that some shards did not answer (their node left, a context was
/// lost, the search timed out) is partial: its hits are not all there, and
/// an empty one would end a slice early. It is an error, "unavailable"
/// like the engine's own answer when it refuses partial results, so the
/// read is tried again.
fn check_complete(response: &SearchResponse, call: &str) -> Result<(), EsError> {
    if response.shards.failed == 0 && !response.timed_out {
        return Ok(());
    }
    let first = response.shards.failures.first();
    let error_type = first
        .and_then(|f| f["reason"]["type"].as_str())
        .unwrap_or("search_phase_execution_exception");
    let why = first
        .and_then(|f| f["reason"]["reason"].as_str())
        .unwrap_or("the search timed out");
    Err(EsError::Status {
        call: call.to_owned(),
        status: 503,
        error_type: Some(error_type.to_owned()),
        reason: format!(
            "partial page: {} shard(s) failed{}: {why}",
            response.shards.failed,
            if response.timed_out {
                ", timed out"
            } else {
                ""
            }
        ),
    })
}

#[derive(Default, Deserialize)]
struct Hits {
    total: Option<Total>,
    #[serde(default)]
    hits: Vec<Hit>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Total {
    Object { value: u64 },
    Number(u64),
}

fn slice_json(slice: Option<Slice>) -> Option<Value> {
    slice
        .filter(|s| s.max > 1)
        .map(|s| json!({"id": s.id, "max": s.max}))
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

impl EsClient {
    /// Opens a scroll over `index` (one slice of it when `slice` is set),
    /// sorted by `_doc`, and returns its first page.
    pub async fn scroll_start(
        &self,
        index: &str,
        slice: Option<Slice>,
        size: usize,
        keep_alive: Duration,
    ) -> Result<Page, EsError> {
        let mut body = json!({
            "size": size,
            "sort": ["_doc"],
            "track_total_hits": true,
            "query": {"match_all": {}},
        });
        if let Some(s) = slice_json(slice) {
            body["slice"] = s;
        }
        let path = format!("/{}/_search", seg(index));
        let keep = secs(keep_alive);
        let query = [
            ("scroll", keep.as_str()),
            ("allow_partial_search_results", "false"),
        ];
        self.search_page(&path, &query, &body).await
    }

    /// The next page of a scroll; an empty page means the slice is done.
    pub async fn scroll_next(
        &self,
        scroll_id: &str,
        keep_alive: Duration,
    ) -> Result<Page, EsError> {
        let body = json!({"scroll": secs(keep_alive), "scroll_id": scroll_id});
        self.search_page("/_search/scroll", &[], &body).await
    }

    /// Frees a scroll context on the cluster. A context that already
    /// expired is not an error.
    pub async fn clear_scroll(&self, scroll_id: &str) -> Result<(), EsError> {
        let body = Body::json(&json!({"scroll_id": [scroll_id]}));
        let (status, bytes) = self
            .send_raw(Method::Delete, "/_search/scroll", &[], Some(body), None)
            .await?;
        match status {
            200 | 404 => Ok(()),
            _ => Err(super::status_error(
                Method::Delete,
                "/_search/scroll",
                status,
                &bytes,
            )),
        }
    }

    /// Opens a point in time over `index`.
    pub async fn open_pit(
        &self,
        engine: Engine,
        index: &str,
        keep_alive: Duration,
    ) -> Result<PitId, EsError> {
        #[derive(Deserialize)]
        struct Opened {
            id: Option<String>,
            pit_id: Option<String>,
        }
        let keep = secs(keep_alive);
        let query = [("keep_alive", keep.as_str())];
        let path = engine.pit_open_path(&seg(index));
        let opened: Opened = self.send_json(Method::Post, &path, &query, None).await?;
        let id = opened.pit_id.or(opened.id).ok_or_else(|| EsError::Decode {
            call: format!("POST {path}"),
            detail: "no point-in-time id in the answer".into(),
        })?;
        Ok(PitId { engine, id })
    }

    /// Closes a point in time. One already gone is not an error.
    pub async fn close_pit(&self, pit: &PitId) -> Result<(), EsError> {
        let (path, body) = pit.engine.pit_close_request(&pit.id);
        let (status, bytes) = self
            .send_raw(Method::Delete, path, &[], Some(Body::json(&body)), None)
            .await?;
        match status {
            200 | 404 => Ok(()),
            _ => Err(super::status_error(Method::Delete, path, status, &bytes)),
        }
    }

    /// One page of a PIT search sorted by `sort` (e.g. `["_shard_doc"]`),
    /// continuing after `after` (the last hit's `sort`).
    pub async fn pit_page(
        &self,
        pit: &PitId,
        slice: Option<Slice>,
        sort: &Value,
        size: usize,
        after: Option<&RawValue>,
        keep_alive: Duration,
    ) -> Result<Page, EsError> {
        let mut body = json!({
            "size": size,
            "sort": sort,
            "track_total_hits": after.is_none(),
            "query": {"match_all": {}},
            "pit": {"id": pit.id, "keep_alive": secs(keep_alive)},
        });
        if let Some(s) = slice_json(slice) {
            body["slice"] = s;
        }
        if let Some(after) = after {
            let after: Value = serde_json::from_str(after.get()).map_err(|e| EsError::Decode {
                call: "POST /_search".into(),
                detail: format!("bad search_after value: {e}"),
            })?;
            body["search_after"] = after;
        }
        let query = [("allow_partial_search_results", "false")];
        self.search_page("/_search", &query, &body).await
    }

    async fn search_page(
        &self,
        path: &str,
        query: &super::Query<'_>,
        body: &Value,
    ) -> Result<Page, EsError> {
        // No `filter_path` here: filtering makes the engine re-serialise
        // `_source`, which changes its bytes (1.50 becomes 1.5).
        let bytes = self
            .send_ok(Method::Post, path, query, Some(Body::json(body)), None)
            .await?;
        let response: SearchResponse = decode(Method::Post, path, &bytes)?;
        check_complete(&response, &format!("POST {path}"))?;
        Ok(Page {
            hits: response.hits.hits,
            scroll_id: response.scroll_id,
            pit_id: response.pit_id,
            total: response.hits.total.map(|t| match t {
                Total::Object { value } | Total::Number(value) => value,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_keep_source_bytes_verbatim() {
        let body = br#"{"_scroll_id":"abc","hits":{"total":{"value":2,"relation":"eq"},"hits":[
            {"_index":"a","_id":"1","_routing":"r","_source":{"b": 1.50, "a":"x"}},
            {"_index":"a","_id":"2","_source":{}}]}}"#;
        let r: SearchResponse = serde_json::from_slice(body).unwrap();
        assert_eq!(r.scroll_id.as_deref(), Some("abc"));
        let hits = r.hits.hits;
        assert_eq!(
            hits[0].source.as_ref().unwrap().get(),
            r#"{"b": 1.50, "a":"x"}"#
        );
        assert_eq!(hits[0].routing.as_deref(), Some("r"));
        assert_eq!(hits[1].routing, None);
        assert!(matches!(r.hits.total, Some(Total::Object { value: 2 })));
    }

    #[test]
    fn a_filtered_empty_page_is_empty() {
        let r: SearchResponse = serde_json::from_slice(b"{}").unwrap();
        assert!(r.hits.hits.is_empty());
        let r: SearchResponse =
            serde_json::from_slice(br#"{"_scroll_id":"x","hits":{"total":{"value":0}}}"#).unwrap();
        assert!(r.hits.hits.is_empty());
    }

    #[test]
    fn a_partial_page_is_an_error_to_retry() {
        let partial = br#"{"pit_id":"p","timed_out":false,"_shards":{"total":3,"successful":2,"failed":1,
            "failures":[{"shard":2,"reason":{"type":"search_context_missing_exception","reason":"No search context found for id [7]"}}]},
            "hits":{"hits":[]}}"#;
        let response: SearchResponse = serde_json::from_slice(partial).unwrap();
        let err = check_complete(&response, "POST /_search").unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert_eq!(err.error_type(), Some("search_context_missing_exception"));
        assert!(err.to_string().contains("1 shard(s) failed"), "{err}");

        let late = br#"{"timed_out":true,"_shards":{"total":3,"successful":3,"failed":0},"hits":{"hits":[]}}"#;
        let response: SearchResponse = serde_json::from_slice(late).unwrap();
        assert!(check_complete(&response, "POST /_search").is_err());

        let whole = br#"{"timed_out":false,"_shards":{"total":3,"successful":3,"failed":0},"hits":{"hits":[]}}"#;
        let response: SearchResponse = serde_json::from_slice(whole).unwrap();
        assert!(check_complete(&response, "POST /_search").is_ok());
    }

    #[test]
    fn one_slice_means_no_slice() {
        assert_eq!(slice_json(Some(Slice { id: 0, max: 1 })), None);
        assert_eq!(
            slice_json(Some(Slice { id: 1, max: 4 })),
            Some(json!({"id": 1, "max": 4}))
        );
    }
}
