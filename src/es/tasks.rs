//! Server-side tasks: whether the cluster can run one, start an
//! asynchronous `_reindex`, follow, rethrottle and cancel it through `_tasks`.

use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{seg, status_error, Body, EsClient, EsError};

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

/// Whether the cluster has one feature the server engine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Yes,
    /// The cluster has no handler for it: the module is not installed.
    No,
    /// The probe was refused (privileges); the cluster's answer.
    Unknown(String),
}

/// What the server engine's copy needs: `_reindex` and painless (its
/// script tags every copied document with version 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCopySupport {
    pub reindex: Availability,
    pub painless: Availability,
}

/// An upper-case index name can never exist, so probing `_reindex` with it
/// changes nothing.
const PROBE_SOURCE: &str = "REINDEXD-PROBE-NOT-AN-INDEX";
const SCRIPT_PROBE: &str = "/_script_language";

impl EsClient {
    /// Probes `_reindex` and painless without changing anything: a reindex
    /// from an index that cannot exist, and the script languages the
    /// cluster lists (`GET /_script_language`).
    pub async fn server_copy_support(&self) -> Result<ServerCopySupport, EsError> {
        let reindex = serde_json::json!({
            "source": {"index": PROBE_SOURCE},
            "dest": {"index": PROBE_SOURCE.to_lowercase()},
        });
        let (reindex, languages) = tokio::try_join!(
            self.send_raw(
                Method::Post,
                "/_reindex",
                &[],
                Some(Body::json(&reindex)),
                None
            ),
            self.send_raw(Method::Get, SCRIPT_PROBE, &[], None, None),
        )?;
        let painless = match probe_answer(Method::Get, SCRIPT_PROBE, languages.0, &languages.1)? {
            Availability::Yes => lists_painless(&languages.1),
            other => other,
        };
        Ok(ServerCopySupport {
            reindex: probe_answer(Method::Post, "/_reindex", reindex.0, &reindex.1)?,
            painless,
        })
    }

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

/// Reads a probe's answer. A handler that exists answers 2xx or with a
/// typed exception (`{"error": {"type": ..}}`); a missing one with 405 or
/// an untyped `"error": "no handler found ..."`. 5xx is an error.
fn probe_answer(
    method: Method,
    path: &str,
    status: u16,
    body: &[u8],
) -> Result<Availability, EsError> {
    if (200..300).contains(&status) {
        return Ok(Availability::Yes);
    }
    let error = status_error(method, path, status, body);
    if status >= 500 {
        return Err(error);
    }
    if error.is_auth() {
        return Ok(Availability::Unknown(error.to_string()));
    }
    let typed = serde_json::from_slice::<Value>(body).is_ok_and(|v| v["error"]["type"].is_string());
    Ok(if typed && status != 405 {
        Availability::Yes
    } else {
        Availability::No
    })
}

/// Whether `GET /_script_language` lists painless.
fn lists_painless(body: &[u8]) -> Availability {
    let listed = serde_json::from_slice::<Value>(body).is_ok_and(|v| {
        v["language_contexts"]
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c["language"] == "painless"))
    });
    match listed {
        true => Availability::Yes,
        false => Availability::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn painless_is_there_when_listed() {
        let with = br#"{"types_allowed":["inline","stored"],"language_contexts":[{"language":"expression","contexts":["score"]},{"language":"painless","contexts":["update"]}]}"#;
        assert_eq!(lists_painless(with), Availability::Yes);
        let without = br#"{"types_allowed":["inline","stored"],"language_contexts":[]}"#;
        assert_eq!(lists_painless(without), Availability::No);
    }

    fn probe(status: u16, body: &[u8]) -> Result<Availability, EsError> {
        probe_answer(Method::Post, "/_reindex", status, body)
    }

    #[test]
    fn probe_answers() {
        let typed = br#"{"error":{"type":"index_not_found_exception","reason":"no such index"},"status":404}"#;
        assert_eq!(probe(404, typed).unwrap(), Availability::Yes);
        assert_eq!(probe(200, b"{}").unwrap(), Availability::Yes);
        let missing = br#"{"error":"Incorrect HTTP method for uri [/_reindex] and method [POST], allowed: [GET]","status":405}"#;
        assert_eq!(probe(405, missing).unwrap(), Availability::No);
        let no_handler = br#"{"error":"no handler found for uri [/_x] and method [POST]"}"#;
        assert_eq!(probe(400, no_handler).unwrap(), Availability::No);
        let denied = br#"{"error":{"type":"security_exception","reason":"action [x] is unauthorized"},"status":403}"#;
        assert!(matches!(
            probe(403, denied).unwrap(),
            Availability::Unknown(r) if r.contains("unauthorized")
        ));
        assert!(probe(503, b"{}").is_err());
    }
}
