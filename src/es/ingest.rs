//! Ingest pipelines: whether one exists, and whether any node can run it.

use elasticsearch::http::Method;
use serde_json::{Map, Value};

use super::{seg, EsClient, EsError};

impl EsClient {
    /// `GET /_ingest/pipeline/{name}`: whether a pipeline of exactly that
    /// name exists.
    pub async fn pipeline_exists(&self, name: &str) -> Result<bool, EsError> {
        let path = format!("/_ingest/pipeline/{}", seg(name));
        let (status, body) = self.send_raw(Method::Get, &path, &[], None, None).await?;
        match status {
            200 => {
                let found: Map<String, Value> =
                    serde_json::from_slice(&body).map_err(|e| EsError::Decode {
                        call: format!("GET {path}"),
                        detail: e.to_string(),
                    })?;
                Ok(found.contains_key(name))
            }
            404 => Ok(false),
            _ => Err(super::status_error(Method::Get, &path, status, &body)),
        }
    }

    /// How many nodes have the `ingest` role (a pipeline runs only there).
    pub async fn ingest_nodes(&self) -> Result<usize, EsError> {
        let query = [("filter_path", "nodes.*.roles")];
        let found: Value = self.send_json(Method::Get, "/_nodes", &query, None).await?;
        let nodes = found["nodes"].as_object().cloned().unwrap_or_default();
        Ok(nodes
            .values()
            .filter(|n| {
                n["roles"]
                    .as_array()
                    .is_some_and(|roles| roles.iter().any(|r| r == "ingest"))
            })
            .count())
    }
}
