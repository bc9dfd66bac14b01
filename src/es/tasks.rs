//! Server-side tasks: start an asynchronous `_reindex`, follow, rethrottle
//! and cancel it through `_tasks`.

use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{seg, Body, EsClient, EsError};

/// What `GET /_tasks/{id}` reports.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskStatus {
    pub completed: bool,
    /// The task's own description; `task.status` holds reindex counters.
    pub task: Value,
    /// Final result once `completed` (counters, `failures`).
    pub response: Option<Value>,
    /// Set when the task itself failed.
    pub error: Option<Value>,
}

impl EsClient {
    /// `POST /_reindex?wait_for_completion=false`: returns the task id.
    pub async fn start_reindex(
        &self,
        body: &Value,
        slices: &str,
        requests_per_second: Option<f64>,
    ) -> Result<String, EsError> {
        #[derive(Deserialize)]
        struct Started {
            task: String,
        }
        let rps = requests_per_second.map_or("-1".to_owned(), |r| r.to_string());
        let query = [
            ("wait_for_completion", "false"),
            ("slices", slices),
            ("requests_per_second", rps.as_str()),
        ];
        let started: Started = self
            .send_json(Method::Post, "/_reindex", &query, Some(Body::json(body)))
            .await?;
        Ok(started.task)
    }

    /// `GET /_tasks/{id}`.
    pub async fn get_task(&self, task_id: &str) -> Result<TaskStatus, EsError> {
        let path = format!("/_tasks/{}", seg(task_id).replace("%3A", ":"));
        self.send_json(Method::Get, &path, &[], None).await
    }

    /// `POST /_tasks/{id}/_cancel`.
    pub async fn cancel_task(&self, task_id: &str) -> Result<(), EsError> {
        let path = format!("/_tasks/{}/_cancel", seg(task_id).replace("%3A", ":"));
        self.send_ok(Method::Post, &path, &[], None, None)
            .await
            .map(drop)
    }

    /// `POST /_reindex/{id}/_rethrottle`; `None` removes the limit.
    pub async fn rethrottle_reindex(
        &self,
        task_id: &str,
        requests_per_second: Option<f64>,
    ) -> Result<(), EsError> {
        let path = format!("/_reindex/{}/_rethrottle", seg(task_id).replace("%3A", ":"));
        let rps = requests_per_second.map_or("-1".to_owned(), |r| r.to_string());
        let query = [("requests_per_second", rps.as_str())];
        self.send_ok(Method::Post, &path, &query, None, None)
            .await
            .map(drop)
    }
}
