//! Index calls: create, delete, settings, refresh, count, mapping metadata.

use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{seg, Body, EsClient, EsError};

impl EsClient {
    /// `PUT /{index}` with `{"settings": ..., "mappings": ..., "aliases": ...}`.
    pub async fn create_index(&self, index: &str, body: &Value) -> Result<(), EsError> {
        let path = format!("/{}", seg(index));
        self.send_ok(Method::Put, &path, &[], Some(Body::json(body)), None)
            .await
            .map(drop)
    }

    /// `DELETE /{index}`. Wildcards are refused by the caller, not here.
    pub async fn delete_index(&self, index: &str) -> Result<(), EsError> {
        let path = format!("/{}", seg(index));
        self.send_ok(Method::Delete, &path, &[], None, None)
            .await
            .map(drop)
    }

    /// `HEAD /{index}`: true when an index (or alias) of that name exists.
    pub async fn index_exists(&self, index: &str) -> Result<bool, EsError> {
        let path = format!("/{}", seg(index));
        let (status, _) = self.send_raw(Method::Head, &path, &[], None, None).await?;
        match status {
            200 => Ok(true),
            404 => Ok(false),
            // HEAD answers carry no body: ask again with GET for the reason.
            _ => {
                let (status, body) = self.send_raw(Method::Get, &path, &[], None, None).await?;
                Err(super::status_error(Method::Head, &path, status, &body))
            }
        }
    }

    /// Names of the indexes matching `pattern` (hidden ones included).
    pub async fn list_indexes(&self, pattern: &str) -> Result<Vec<String>, EsError> {
        let path = format!("/{}/_settings/index.uuid", seg(pattern));
        let query = [("expand_wildcards", "all"), ("allow_no_indices", "true")];
        let found: Map<String, Value> = self.send_json(Method::Get, &path, &query, None).await?;
        let mut names: Vec<String> = found.into_iter().map(|(name, _)| name).collect();
        names.sort();
        Ok(names)
    }

    /// The index's own settings, flat (`"index.refresh_interval": "1s"`).
    pub async fn get_settings(&self, index: &str) -> Result<Map<String, Value>, EsError> {
        #[derive(Deserialize)]
        struct IndexSettings {
            settings: Map<String, Value>,
        }
        let path = format!("/{}/_settings", seg(index));
        let query = [("flat_settings", "true")];
        let mut all: Map<String, Value> = self.send_json(Method::Get, &path, &query, None).await?;
        let entry = all.remove(index).ok_or_else(|| EsError::Decode {
            call: format!("GET {path}"),
            detail: format!("no settings for index {index} in the answer"),
        })?;
        let settings: IndexSettings =
            serde_json::from_value(entry).map_err(|e| EsError::Decode {
                call: format!("GET {path}"),
                detail: e.to_string(),
            })?;
        Ok(settings.settings)
    }

    /// `PUT /{index}/_settings` with dynamic settings; `null` resets one.
    pub async fn put_settings(&self, index: &str, settings: &Value) -> Result<(), EsError> {
        let path = format!("/{}/_settings", seg(index));
        self.send_ok(Method::Put, &path, &[], Some(Body::json(settings)), None)
            .await
            .map(drop)
    }

    /// The `_meta` object of the index's mapping (`{}` when it has none).
    pub async fn mapping_meta(&self, index: &str) -> Result<Value, EsError> {
        let path = format!("/{}/_mapping", seg(index));
        let mut all: Map<String, Value> = self.send_json(Method::Get, &path, &[], None).await?;
        let mut entry = all.remove(index).unwrap_or(Value::Null);
        Ok(entry["mappings"]["_meta"].take())
    }

    /// `POST /{index}/_refresh`.
    pub async fn refresh(&self, index: &str) -> Result<(), EsError> {
        let path = format!("/{}/_refresh", seg(index));
        self.send_ok(Method::Post, &path, &[], None, None)
            .await
            .map(drop)
    }

    /// `GET /{index}/_count`: documents visible to search right now.
    pub async fn count(&self, index: &str) -> Result<u64, EsError> {
        #[derive(Deserialize)]
        struct Count {
            count: u64,
        }
        let path = format!("/{}/_count", seg(index));
        let count: Count = self.send_json(Method::Get, &path, &[], None).await?;
        Ok(count.count)
    }

    /// Number of primary shards of the index.
    pub async fn primary_shards(&self, index: &str) -> Result<u32, EsError> {
        let settings = self.get_settings(index).await?;
        settings
            .get("index.number_of_shards")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| EsError::Decode {
                call: format!("GET /{index}/_settings"),
                detail: "index.number_of_shards missing".into(),
            })
    }
}

impl EsClient {
    /// Blocks writes to `index` (writers get 403 `cluster_block_exception`)
    /// with the index block API, which returns once writes already under
    /// way have finished; or lifts the block.
    pub async fn set_write_block(&self, index: &str, blocked: bool) -> Result<(), EsError> {
        if blocked {
            let path = format!("/{}/_block/write", seg(index));
            return self
                .send_ok(Method::Put, &path, &[], None, None)
                .await
                .map(drop);
        }
        self.put_settings(index, &json!({ "index.blocks.write": Value::Null }))
            .await
    }

    /// Whether writes to `index` are blocked (`index.blocks.write`).
    pub async fn write_blocked(&self, index: &str) -> Result<bool, EsError> {
        let settings = self.get_settings(index).await?;
        Ok(settings
            .get("index.blocks.write")
            .is_some_and(|v| v == "true" || v == &json!(true)))
    }

    /// The index's UUID, or `None` when no index of that name exists.
    pub async fn index_uuid(&self, index: &str) -> Result<Option<String>, EsError> {
        match self.get_settings(index).await {
            Ok(settings) => Ok(settings
                .get("index.uuid")
                .and_then(Value::as_str)
                .map(str::to_owned)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
