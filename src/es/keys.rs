//! Documents by key rather than by content: every `(_id, _routing)` of an
//! index with its `_version` and sequence number, and realtime metadata and
//! sources of chosen keys. What these mean for a migration is decided by
//! the caller.

use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{decode, seg, Body, EsClient, EsError};

/// A document's identity in an index: with custom routing, one `_id` may
/// exist once per routing value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocKey {
    pub id: String,
    pub routing: Option<String>,
}

/// A document's key and `_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersion {
    pub key: DocKey,
    pub version: i64,
    /// The sequence number of the document's last operation: unlike the
    /// version, it never repeats for a document deleted and written again.
    pub seq_no: i64,
}

/// What a realtime get of one key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub version: i64,
    /// The routing the stored document was written with.
    pub routing: Option<String>,
}

#[derive(Deserialize)]
struct ScanResponse {
    #[serde(rename = "_scroll_id")]
    scroll_id: Option<String>,
    #[serde(rename = "_shards")]
    shards: Option<ShardCounts>,
    #[serde(default)]
    hits: ScanHits,
}

/// How many shards answered a search page.
#[derive(Deserialize)]
struct ShardCounts {
    #[serde(default)]
    failed: u64,
}

#[derive(Default, Deserialize)]
struct ScanHits {
    #[serde(default)]
    hits: Vec<ScanHit>,
}

#[derive(Deserialize)]
struct ScanHit {
    #[serde(rename = "_id")]
    id: String,
    #[serde(rename = "_routing")]
    routing: Option<String>,
    #[serde(rename = "_version", default)]
    version: i64,
    #[serde(rename = "_seq_no", default)]
    seq_no: i64,
}

#[derive(Deserialize)]
struct MgetResponse {
    docs: Vec<MgetDoc>,
}

#[derive(Deserialize)]
struct MgetDoc {
    #[serde(default)]
    found: bool,
    #[serde(rename = "_version")]
    version: Option<i64>,
    #[serde(rename = "_routing")]
    routing: Option<String>,
    #[serde(rename = "_source")]
    source: Option<Box<RawValue>>,
    /// Set instead of the fields above when this one document failed.
    error: Option<Value>,
}

const SCAN_KEEP_ALIVE: &str = "2m";

impl EsClient {
    /// Every document's key and version, read as `slices` sliced scrolls in
    /// parallel (no `_source`), in no particular order.
    pub async fn scan_versions(
        &self,
        index: &str,
        slices: u32,
        page: usize,
    ) -> Result<Vec<KeyVersion>, EsError> {
        let slices = slices.max(1);
        let mut tasks = tokio::task::JoinSet::new();
        for id in 0..slices {
            let (es, index) = (self.clone(), index.to_owned());
            tasks.spawn(async move { es.scan_slice(&index, id, slices, page).await });
        }
        let mut all = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let part = joined.map_err(|e| EsError::Decode {
                call: format!("scan of {index}"),
                detail: format!("a scan task stopped: {e}"),
            })??;
            all.extend(part);
        }
        Ok(all)
    }

    async fn scan_slice(
        &self,
        index: &str,
        id: u32,
        max: u32,
        page: usize,
    ) -> Result<Vec<KeyVersion>, EsError> {
        let mut body = json!({
            "size": page, "sort": ["_doc"], "_source": false, "version": true,
            "seq_no_primary_term": true,
            "query": {"match_all": {}},
        });
        if max > 1 {
            body["slice"] = json!({"id": id, "max": max});
        }
        self.scan_keys(index, None, body).await
    }

    /// Keys and versions of the documents of shard `shard` whose last
    /// operation came after sequence number `after`.
    pub async fn changed_since(
        &self,
        index: &str,
        shard: usize,
        after: i64,
        page: usize,
    ) -> Result<Vec<KeyVersion>, EsError> {
        let body = json!({
            "size": page, "sort": ["_doc"], "_source": false, "version": true,
            "seq_no_primary_term": true,
            "query": {"range": {"_seq_no": {"gt": after}}},
        });
        self.scan_keys(index, Some(&format!("_shards:{shard}")), body)
            .await
    }

    /// Scrolls through every hit of `body` (a `_source: false`,
    /// `version: true` search) for keys and versions.
    async fn scan_keys(
        &self,
        index: &str,
        preference: Option<&str>,
        body: Value,
    ) -> Result<Vec<KeyVersion>, EsError> {
        let path = format!("/{}/_search", seg(index));
        // A page missing a shard's hits would pass for documents that are
        // not there: refuse partial results and check every page.
        let filter = "_scroll_id,_shards.failed,hits.hits._id,hits.hits._routing,hits.hits._version,hits.hits._seq_no";
        let mut query = vec![
            ("scroll", SCAN_KEEP_ALIVE),
            ("filter_path", filter),
            ("allow_partial_search_results", "false"),
        ];
        query.extend(preference.map(|p| ("preference", p)));
        let bytes = self
            .send_ok(Method::Post, &path, &query, Some(Body::json(&body)), None)
            .await?;
        let mut answer: ScanResponse = decode(Method::Post, &path, &bytes)?;
        let mut keys = Vec::new();
        loop {
            if let Some(failed) = answer.shards.as_ref().map(|s| s.failed).filter(|f| *f > 0) {
                return Err(EsError::Decode {
                    call: format!("POST {path}"),
                    detail: format!("{failed} shards failed to answer a page of the scan of {index}; it is not trusted"),
                });
            }
            let done = answer.hits.hits.is_empty();
            keys.extend(answer.hits.hits.drain(..).map(|h| KeyVersion {
                key: DocKey {
                    id: h.id,
                    routing: h.routing,
                },
                version: h.version,
                seq_no: h.seq_no,
            }));
            let Some(scroll_id) = answer.scroll_id.take() else {
                break;
            };
            if done {
                self.clear_scroll(&scroll_id).await?;
                break;
            }
            let next = json!({"scroll": SCAN_KEEP_ALIVE, "scroll_id": scroll_id});
            let bytes = self
                .send_ok(
                    Method::Post,
                    "/_search/scroll",
                    &[("filter_path", filter)],
                    Some(Body::json(&next)),
                    None,
                )
                .await?;
            answer = decode(Method::Post, "/_search/scroll", &bytes)?;
        }
        Ok(keys)
    }

    /// Realtime get of each key's version and stored routing, in order;
    /// `None` where the document does not exist.
    pub async fn find_keys(
        &self,
        index: &str,
        keys: &[DocKey],
    ) -> Result<Vec<Option<Found>>, EsError> {
        let docs = self.mget(index, keys, false).await?;
        Ok(docs
            .into_iter()
            .map(|d| {
                d.found.then(|| Found {
                    version: d.version.unwrap_or(0),
                    routing: d.routing,
                })
            })
            .collect())
    }

    /// Realtime get of each key's `_source` bytes, in order; `None` where
    /// the document does not exist.
    pub async fn sources(
        &self,
        index: &str,
        keys: &[DocKey],
    ) -> Result<Vec<Option<Box<RawValue>>>, EsError> {
        let docs = self.mget(index, keys, true).await?;
        docs.into_iter()
            .zip(keys)
            .map(|(d, key)| match (d.found, d.source) {
                (false, _) => Ok(None),
                (true, Some(source)) => Ok(Some(source)),
                (true, None) => Err(EsError::Decode {
                    call: format!("POST /{index}/_mget"),
                    detail: format!(
                        "{index} stores no _source for {:?}: it cannot be copied",
                        key.id
                    ),
                }),
            })
            .collect()
    }

    async fn mget(
        &self,
        index: &str,
        keys: &[DocKey],
        source: bool,
    ) -> Result<Vec<MgetDoc>, EsError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let docs: Vec<Value> = keys
            .iter()
            .map(|k| match &k.routing {
                Some(r) => json!({"_id": k.id, "routing": r}),
                None => json!({"_id": k.id}),
            })
            .collect();
        let path = format!("/{}/_mget", seg(index));
        // Without `_source` the engine drops `_routing` from the answer
        // unless it is asked for as a stored field.
        let query: &[(&str, &str)] = if source {
            &[("realtime", "true")]
        } else {
            &[("stored_fields", "_routing"), ("realtime", "true")]
        };
        let answer: MgetResponse = self
            .send_json(
                Method::Post,
                &path,
                query,
                Some(Body::json(&json!({ "docs": docs }))),
            )
            .await?;
        if answer.docs.len() != keys.len() {
            return Err(EsError::Decode {
                call: format!("POST {path}"),
                detail: format!(
                    "{} documents answered for {} asked",
                    answer.docs.len(),
                    keys.len()
                ),
            });
        }
        if let Some(error) = answer.docs.iter().find_map(|d| d.error.as_ref()) {
            return Err(EsError::Decode {
                call: format!("POST {path}"),
                detail: format!("a document could not be read: {error}"),
            });
        }
        Ok(answer.docs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_pages_keep_routing_and_version() {
        let body = br#"{"_scroll_id":"s","_shards":{"failed":0},"hits":{"hits":[
            {"_id":"1","_version":0,"_seq_no":4},{"_id":"2","_routing":"r","_version":3,"_seq_no":9}]}}"#;
        let r: ScanResponse = serde_json::from_slice(body).unwrap();
        assert_eq!(r.hits.hits[1].routing.as_deref(), Some("r"));
        assert_eq!((r.hits.hits[0].version, r.hits.hits[1].version), (0, 3));
        assert_eq!(r.hits.hits[1].seq_no, 9);
        assert_eq!(r.shards.map(|s| s.failed), Some(0));
        let empty: ScanResponse = serde_json::from_slice(br#"{"_scroll_id":"s"}"#).unwrap();
        assert!(empty.hits.hits.is_empty());
    }
}
