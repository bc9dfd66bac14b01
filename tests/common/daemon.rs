//! The daemon in this test process: [`Daemon`] runs `reindexd::daemon::run`
//! on a listener of its own and speaks to its API.

use std::sync::Arc;
use std::time::Duration;

use reindexd::config::Config;

use super::env::Env;
use super::wait::{eventually, eventually_value};

/// A daemon serving a config on an ephemeral port. Dropping it without
/// [`Daemon::stop`] (a test that panicked) cancels it, so it cannot go on
/// writing to the cluster while the env's indexes are deleted.
pub struct Daemon {
    pub url: String,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), reindexd::daemon::DaemonError>>,
    pub http: reqwest::Client,
    /// Plays SIGHUP: a configuration sent here is applied like a reload.
    pub reload: tokio::sync::watch::Sender<Arc<Config>>,
}

impl Daemon {
    pub async fn start(env: &Env) -> Daemon {
        Self::start_config(env.config.clone()).await
    }

    /// A daemon serving `config` (which need not reach a cluster), once it
    /// answers `/healthz`.
    pub async fn start_config(config: Arc<Config>) -> Daemon {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (reload, reloads) = tokio::sync::watch::channel(config.clone());
        let task = tokio::spawn(reindexd::daemon::run(
            config,
            listener,
            shutdown.clone(),
            reloads,
        ));
        let http = reqwest::Client::new();
        let health = format!("{url}/healthz");
        eventually(
            "the in-process daemon answers /healthz",
            Duration::from_secs(10),
            || async { http.get(&health).send().await.is_ok() },
        )
        .await;
        Daemon {
            url,
            shutdown,
            task,
            http,
            reload,
        }
    }

    /// The daemon's `/metrics` exposition.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("a metrics text")
    }

    /// POSTs `body` (or nothing) and returns status and JSON answer.
    pub async fn post(&self, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        self.post_auth(path, body, None).await
    }

    /// POSTs `body` with `Authorization: {authorization}` when given.
    pub async fn post_auth(
        &self,
        path: &str,
        body: Option<&str>,
        authorization: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.http.post(format!("{}{path}", self.url));
        if let Some(b) = body {
            request = request
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        answer(request).await
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        answer(self.http.get(format!("{}{path}", self.url))).await
    }

    /// Polls the index until its phase is one of `phases`.
    pub async fn wait_phase(
        &self,
        name: &str,
        phases: &[&str],
        timeout: Duration,
    ) -> serde_json::Value {
        eventually_value(&format!("{name} reached {phases:?}"), timeout, || async {
            let (_, view) = self.get(&format!("/v1/indexes/{name}")).await;
            match phases.iter().any(|p| view["phase"] == *p) {
                true => Ok(view),
                false => Err(view.to_string()),
            }
        })
        .await
    }

    /// `init` then stage 1 of `name`, throttled to `rate` documents per
    /// second so the copy stays in `copying` for the test's duration.
    /// Returns the target generation.
    pub async fn start_slow_copy(&self, name: &str, rate: u32) -> String {
        let (status, view) = self
            .post(
                &format!("/v1/indexes/{name}/reindex"),
                Some(&format!("{{\"requests_per_second\": {rate}}}")),
            )
            .await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["phase"], "copying", "{view}");
        view["write_index"].as_str().unwrap().to_owned()
    }

    /// Stops it as SIGTERM would (copies checkpointed) and asserts that it
    /// ended cleanly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        (&mut self.task).await.unwrap().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.task.abort();
    }
}

/// Status and JSON answer (the text as a JSON string when it is not JSON).
async fn answer(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// The value of the first series of `name` whose labels contain
/// `labels` (e.g. `index="kb"`) in a metrics exposition.
pub fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    metric_values(text, name, labels).next()
}

/// The sum over every series of `name` whose labels contain `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &str) -> f64 {
    metric_values(text, name, labels).sum()
}

fn metric_values<'t>(
    text: &'t str,
    name: &'t str,
    labels: &'t str,
) -> impl Iterator<Item = f64> + 't {
    text.lines()
        .filter(move |l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
}
