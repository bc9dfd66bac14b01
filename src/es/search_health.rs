//! How live search is doing: a probe search's answer, and the search
//! thread pools' rejections across the cluster.

use elasticsearch::http::Method;
use serde_json::Value;

use super::{seg, Body, EsClient, EsError};

impl EsClient {
    /// Runs `body` as a search on `index` and only checks the answer; the
    /// caller times it.
    pub async fn probe_search(&self, index: &str, body: &Value) -> Result<(), EsError> {
        let path = format!("/{}/_search", seg(index));
        let query = [("filter_path", "took")];
        self.send_ok(Method::Post, &path, &query, Some(Body::json(body)), None)
            .await
            .map(drop)
    }

    /// Search requests every node's search thread pool has rejected since
    /// it started (a sum; it only grows while no node restarts).
    pub async fn search_rejections(&self) -> Result<u64, EsError> {
        let query = [("filter_path", "nodes.*.thread_pool.search.rejected")];
        let stats: Value = self
            .send_json(Method::Get, "/_nodes/stats/thread_pool", &query, None)
            .await?;
        Ok(stats["nodes"]
            .as_object()
            .into_iter()
            .flat_map(|nodes| nodes.values())
            .filter_map(|n| n["thread_pool"]["search"]["rejected"].as_u64())
            .sum())
    }
}
