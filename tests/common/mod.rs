//! Shared ground of the integration tests: how to reach the real test
//! cluster, how to make index names no other test uses, and ([`binary`])
//! how to run the `reindexd` binary and read its answer.
//!
//! The cluster comes from `scripts/test-cluster start`. Its URL is read from
//! `REINDEXD_TEST_ES_URL` (default `http://127.0.0.1:$REINDEXD_TEST_ES_PORT`,
//! port 9200). With no cluster there, tests fail and say how to start one.
//!
//! Submodules: `app`, an application writing through the aliases and what
//! it expects; `proxy`, a fault-injecting HTTP proxy in front of the node
//! (answers lost after the change applied, hangs, dropped connections);
//! `tls`, a throwaway PKI and nginx as a TLS-terminating proxy.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod app;
pub mod binary;
pub mod capabilities;
pub mod clock;
pub mod proxy;
pub mod tls;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reindexd::es::{ConnectOptions, EsClient, ServerInfo};
use url::Url;

/// A copy running in the background, ending in its final state.
pub type CopyTask =
    tokio::task::JoinHandle<Result<reindexd::migration::IndexState, reindexd::copy::CopyError>>;

pub fn es_url() -> String {
    std::env::var("REINDEXD_TEST_ES_URL").unwrap_or_else(|_| {
        let port = std::env::var("REINDEXD_TEST_ES_PORT").unwrap_or_else(|_| "9200".into());
        format!("http://127.0.0.1:{port}")
    })
}

/// A client of the test cluster, after checking that it answers.
pub async fn client() -> (EsClient, ServerInfo) {
    let url = es_url();
    let mut options = ConnectOptions::new(Url::parse(&url).expect("REINDEXD_TEST_ES_URL is a URL"));
    options.request_timeout = Duration::from_secs(60);
    let client = EsClient::connect(&options).expect("client builds");
    match client.info().await {
        Ok(info) => (client, info),
        Err(e) => panic!(
            "no test cluster answers at {url} ({e}).\n\
             Start one with `scripts/test-cluster start` (or set REINDEXD_TEST_ES_URL)."
        ),
    }
}

/// A prefix unique to this test in this run, so tests run in parallel and
/// never see each other's indexes: `t{pid}_{n}_{label}`.
pub fn unique(label: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("t{}_{}_{}", std::process::id(), n, label.to_lowercase())
}

/// Deletes every index whose name starts with `prefix`.
pub async fn cleanup(client: &EsClient, prefix: &str) {
    for index in client
        .list_indexes(&format!("{prefix}*"))
        .await
        .expect("list indexes")
    {
        client.delete_index(&index).await.expect("delete index");
    }
}

/// Deletes every index of the test cluster whose name starts with its
/// prefix when dropped, even when the test panics: a test owns one guard
/// per prefix.
pub struct IndexGuard {
    pub prefix: String,
}

impl IndexGuard {
    /// A fresh [`unique`] prefix, guarded.
    pub fn new(label: &str) -> IndexGuard {
        IndexGuard {
            prefix: unique(label),
        }
    }

    /// An index name under the guarded prefix.
    pub fn index(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.prefix)
    }
}

impl Drop for IndexGuard {
    /// Cleans up on a runtime of its own, on a thread of its own: drop
    /// cannot await, and the test's runtime may be the one unwinding.
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a cleanup runtime");
            runtime.block_on(async {
                let options = ConnectOptions::new(Url::parse(&es_url()).unwrap());
                let client = EsClient::connect(&options).expect("client builds");
                cleanup(&client, &prefix).await;
            });
        })
        .join();
        if cleaned.is_err() && !std::thread::panicking() {
            panic!("cleaning up the indexes {}* failed", self.prefix);
        }
    }
}

/// Polls `condition` until it holds; fails naming `what` when `deadline`
/// passes first. For outcomes that become true a little later (a change
/// the node applies after the client gave up), never for wall-clock windows.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while !condition().await {
        assert!(Instant::now() < end, "{what}: not true within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `look` until it returns `Ok(value)`; fails naming `what` and the
/// last observation (`look`'s `Err`) when `deadline` passes first.
pub async fn eventually_value<T, F, Fut>(what: &str, deadline: Duration, mut look: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let end = Instant::now() + deadline;
    loop {
        match look().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < end,
                "{what}: not within {deadline:?}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to `deadline`) until `name` leaves `copying`; returns the state.
pub async fn copy_ended(
    m: &reindexd::migration::Migrator,
    name: &str,
    deadline: Duration,
) -> reindexd::migration::IndexState {
    eventually_value(
        &format!("the copy of {name} ended"),
        deadline,
        || async move {
            let state = m.load(name).await.map_err(|e| e.to_string())?.state;
            match state.phase.name() {
                "copying" => Err(format!("{:?}", state.phase.copy())),
                _ => Ok(state),
            }
        },
    )
    .await
}

/// `n` small documents as NDJSON `index` actions into `index`.
pub fn ndjson_docs(index: &str, ids: impl IntoIterator<Item = u64>) -> bytes::Bytes {
    let mut body = String::new();
    for i in ids {
        body.push_str(&format!(
            "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{i}\"}}}}\n{{\"n\":{i},\"title\":\"doc {i}\"}}\n"
        ));
    }
    bytes::Bytes::from(body)
}

/// A throwaway configuration in a temp dir: its own name prefix and state
/// index, so tests never share a logical index or a state document.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// Put before every index and alias this test's reindexd makes.
    pub prefix: String,
    pub config: std::sync::Arc<reindexd::config::Config>,
    pub es: EsClient,
    pub migrator: reindexd::migration::Migrator,
}

/// Small mapping used by most tests: two shards so slicing matters.
pub const MAPPING_V1: &str = r#"{"settings": {"number_of_shards": 2, "number_of_replicas": 0, "refresh_interval": "1s"},
 "mappings": {"dynamic": false, "properties": {"title": {"type": "text"}, "n": {"type": "long"}, "tag": {"type": "keyword"}}}}"#;
/// The "changed" mapping: `tag` gains a text subfield, a new field appears.
pub const MAPPING_V2: &str = r#"{"settings": {"number_of_shards": 3, "number_of_replicas": 0, "refresh_interval": "1s"},
 "mappings": {"dynamic": false, "properties": {"title": {"type": "text"}, "n": {"type": "long"},
  "tag": {"type": "keyword", "fields": {"text": {"type": "text"}}}, "boost": {"type": "float"}}}}"#;

/// Credentials and CA of a node with security on.
pub struct Access<'a> {
    pub user: &'a str,
    pub password: &'a str,
    /// CA certificate file (PEM).
    pub ca: &'a str,
}

impl Env {
    /// Writes `mappings/{name}.json` for each of `indexes` (with `mapping`)
    /// and a config naming them; `extra` is appended to the TOML.
    pub async fn new(label: &str, indexes: &[&str], extra: &str) -> Env {
        Self::with_index_options(label, indexes, extra, "").await
    }

    /// Like [`Env::new`]; `index_extra` is added to every `[[indexes]]` entry.
    pub async fn with_index_options(
        label: &str,
        indexes: &[&str],
        extra: &str,
        index_extra: &str,
    ) -> Env {
        client().await;
        Self::build(&es_url(), label, indexes, extra, index_extra).await
    }

    /// Like [`Env::new`] on the node at `url` (one of the fault-test nodes).
    pub async fn on_node(url: &str, label: &str, indexes: &[&str], extra: &str) -> Env {
        Self::build(url, label, indexes, extra, "").await
    }

    /// Like [`Env::new`] on a cluster of several nodes: the config (and
    /// the test's client) lists every node's URL.
    pub async fn on_cluster(urls: &[String], label: &str, indexes: &[&str], extra: &str) -> Env {
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        Self::build_on(&urls, None, label, indexes, extra, "").await
    }

    /// Like [`Env::new`] on the node at `url` with security on (HTTPS,
    /// certificate signed by the CA in file `ca`), as `user` (basic auth)
    /// in the config and the test's client.
    pub async fn secured(url: &str, ca: &str, user: &str, password: &str, label: &str) -> Env {
        let access = Access { user, password, ca };
        Self::build_on(&[url], Some(access), label, &["kb"], "", "").await
    }

    async fn build(
        url: &str,
        label: &str,
        indexes: &[&str],
        extra: &str,
        index_extra: &str,
    ) -> Env {
        Self::build_on(&[url], None, label, indexes, extra, index_extra).await
    }

    async fn build_on(
        urls: &[&str],
        access: Option<Access<'_>>,
        label: &str,
        indexes: &[&str],
        extra: &str,
        index_extra: &str,
    ) -> Env {
        // REINDEXD_TEST_LOG=reindexd=debug shows the daemon's log in a
        // test's output (with --nocapture).
        if let Ok(filter) = std::env::var("REINDEXD_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
        }
        let mut options = ConnectOptions::new(Url::parse(urls[0]).unwrap());
        options.urls = urls.iter().map(|u| Url::parse(u).unwrap()).collect();
        options.request_timeout = Duration::from_secs(60);
        let mut auth_lines = String::new();
        if let Some(Access { user, password, ca }) = access {
            options.auth = reindexd::es::Auth::Basic {
                username: user.to_owned(),
                password: reindexd::secret::Secret::new(password.to_owned()),
            };
            options.ca_pem = Some(std::fs::read(ca).expect("the CA file"));
            auth_lines =
                format!("username = \"{user}\"\npassword = \"{password}\"\nca_file = \"{ca}\"\n");
        }
        let es = EsClient::connect(&options).unwrap();
        let dir = tempfile::tempdir().expect("temp dir");
        let prefix = format!("{}-", unique(label));
        std::fs::create_dir(dir.path().join("mappings")).unwrap();
        let url_list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
        let url_line = match urls {
            [one] => format!("url = \"{one}\""),
            _ => format!("urls = [{}]", url_list.join(", ")),
        };
        let mut toml = format!(
            "[elasticsearch]\n{url_line}\n{auth_lines}[api]\nlisten = \"127.0.0.1:0\"\n[migration]\nprefix = \"{prefix}\"\nstate_index = \"{prefix}state\"\n{extra}\n"
        );
        for name in indexes {
            std::fs::write(dir.path().join(format!("mappings/{name}.json")), MAPPING_V1).unwrap();
            toml.push_str(&format!("[[indexes]]\nname = \"{name}\"\nmapping = \"mappings/{name}.json\"\n{index_extra}\n"));
        }
        std::fs::write(dir.path().join("reindexd.toml"), &toml).unwrap();
        let config =
            reindexd::config::Config::load(&dir.path().join("reindexd.toml"), &Default::default())
                .unwrap_or_else(|e| panic!("test config: {e}"));
        let config = std::sync::Arc::new(config);
        let migrator = reindexd::migration::Migrator::new(es.clone(), config.clone());
        Env {
            dir,
            prefix,
            config,
            es,
            migrator,
        }
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("reindexd.toml")
    }

    pub fn set_mapping(&self, name: &str, mapping: &str) {
        std::fs::write(
            self.dir.path().join(format!("mappings/{name}.json")),
            mapping,
        )
        .unwrap();
    }

    pub fn read_alias(&self, name: &str) -> String {
        format!("{}{name}_read", self.prefix)
    }

    pub fn write_alias(&self, name: &str) -> String {
        format!("{}{name}_write", self.prefix)
    }

    /// Index names behind the read and write aliases of `name`.
    pub async fn aliases(&self, name: &str) -> (Vec<String>, Vec<String>) {
        let links = self
            .es
            .get_aliases(&format!(
                "{},{}",
                self.read_alias(name),
                self.write_alias(name)
            ))
            .await
            .unwrap();
        let on = |alias: String| {
            links
                .iter()
                .filter(|l| l.alias == alias)
                .map(|l| l.index.clone())
                .collect()
        };
        (on(self.read_alias(name)), on(self.write_alias(name)))
    }

    /// Every index this test made, sorted.
    pub async fn indexes(&self) -> Vec<String> {
        self.es
            .list_indexes(&format!("{}*", self.prefix))
            .await
            .unwrap()
    }

    /// `init` of `name`; returns its first generation.
    pub async fn init(&self, name: &str) -> String {
        let state = self.migrator.init(name).await.unwrap();
        state.phase.read_index().to_owned()
    }

    /// The usual start of a migration test: `init` of `name`, `count`
    /// documents, the v2 mapping, stage 1. Returns the old and the new
    /// generation; the copy has not started.
    pub async fn stage1(&self, name: &str, count: u64) -> (String, String) {
        self.migrator.init(name).await.unwrap();
        self.load_docs(name, count).await;
        self.set_mapping(name, MAPPING_V2);
        let state = self.migrator.reindex(name).await.unwrap();
        (
            state.phase.read_index().to_owned(),
            state.phase.write_index().to_owned(),
        )
    }

    /// Throttles the copy of `name` to `rate` documents per second.
    pub async fn throttle(&self, name: &str, rate: f64) {
        self.migrator
            .update_copy(name, reindexd::migration::Action::Throttle, |c| {
                c.requests_per_second = Some(rate)
            })
            .await
            .unwrap();
    }

    /// Runs the copy of `name` in the background as `owner`.
    pub fn spawn_copy(&self, name: &str, owner: &str) -> CopyTask {
        let (m, name, owner) = (self.migrator.clone(), name.to_owned(), owner.to_owned());
        tokio::spawn(async move {
            let handle = detached_handle(&name);
            reindexd::copy::drive(&m, &name, &owner, &handle).await
        })
    }

    /// `count` documents `{"n": i, "title": ..., "tag": ...}` with ids
    /// `0..count`, written through the write alias and refreshed.
    pub async fn load_docs(&self, name: &str, count: u64) {
        let alias = self.write_alias(name);
        for chunk in (0..count).collect::<Vec<_>>().chunks(5000) {
            let mut body = String::new();
            for i in chunk {
                let routing = if i % 10 == 3 {
                    format!(",\"routing\":\"r{}\"", i % 4)
                } else {
                    String::new()
                };
                body.push_str(&format!(
                    "{{\"index\":{{\"_index\":\"{alias}\",\"_id\":\"{i}\"{routing}}}}}\n{{\"n\":{i},\"title\":\"document number {i}\",\"tag\":\"t{}\"}}\n",
                    i % 7
                ));
            }
            let r = self.es.bulk(body.into(), None, None).await.unwrap();
            assert!(!r.errors, "loading documents failed");
        }
        self.es.refresh(&alias).await.unwrap();
    }

    pub async fn cleanup(self) {
        cleanup(&self.es, &self.prefix).await;
    }
}

/// A daemon serving this env's config on an ephemeral port.
pub struct Daemon {
    pub url: String,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), reindexd::daemon::DaemonError>>,
    pub http: reqwest::Client,
    /// Plays SIGHUP: a configuration sent here is applied like a reload.
    pub reload: tokio::sync::watch::Sender<std::sync::Arc<reindexd::config::Config>>,
}

impl Daemon {
    pub async fn start(env: &Env) -> Daemon {
        Self::start_config(env.config.clone()).await
    }

    /// POSTs `body` (or nothing) and returns status and JSON answer.
    pub async fn post(&self, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.http.post(format!("{}{path}", self.url));
        if let Some(b) = body {
            request = request
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Polls the index until its phase is one of `phases`.
    pub async fn wait_phase(
        &self,
        name: &str,
        phases: &[&str],
        timeout: Duration,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let (_, view) = self.get(&format!("/v1/indexes/{name}")).await;
            if phases.iter().any(|p| view["phase"] == *p) {
                return view;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} never reached {phases:?}: {view}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

// ---------------------------------------------------------------------------
// Helpers of the bad-input, megapack and CLI tests.

/// What a refused operation must leave exactly as it was: every index of
/// the test, where both aliases of each logical index point, and each
/// index's stored phase, generations and abandoned list.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub indexes: Vec<String>,
    /// Per logical index: the indexes behind its read and write aliases.
    pub aliases: Vec<(String, AliasTargets)>,
    /// Per logical index: its stored state, `None` when it has none.
    pub states: Vec<(String, Option<StateSummary>)>,
}

/// Indexes behind the read alias, then behind the write alias.
pub type AliasTargets = (Vec<String>, Vec<String>);

/// `(phase, read index, write index, abandoned generations)`.
pub type StateSummary = (String, String, String, Vec<String>);

/// The `(status, error.code)` of an API answer, for one-line asserts.
pub fn code(status: u16, body: &serde_json::Value) -> (u16, Option<&str>) {
    (status, body["error"]["code"].as_str())
}

/// A loopback URL where nothing listens: a port the OS handed out, then freed.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A config in `dir` whose cluster URL is `url`, with a valid mapping for
/// each of `indexes`; `extra` is appended to the TOML.
pub fn config_at(
    dir: &std::path::Path,
    url: &str,
    indexes: &[&str],
    extra: &str,
) -> std::sync::Arc<reindexd::config::Config> {
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    let mut toml = format!("[elasticsearch]\nurl = \"{url}\"\ntimeout = \"3s\"\n[api]\nlisten = \"127.0.0.1:0\"\n{extra}\n");
    for name in indexes {
        std::fs::write(dir.join(format!("mappings/{name}.json")), MAPPING_V1).unwrap();
        toml.push_str(&format!(
            "[[indexes]]\nname = \"{name}\"\nmapping = \"mappings/{name}.json\"\n"
        ));
    }
    std::fs::write(dir.join("reindexd.toml"), &toml).unwrap();
    let config = reindexd::config::Config::load(&dir.join("reindexd.toml"), &Default::default())
        .unwrap_or_else(|e| panic!("test config: {e}"));
    std::sync::Arc::new(config)
}

impl Env {
    /// [`Env::new`] with `api` (TOML lines such as `token = "..."`) put
    /// into the `[api]` section.
    pub async fn with_api(label: &str, indexes: &[&str], api: &str, extra: &str) -> Env {
        let mut env = Env::new(label, indexes, extra).await;
        let path = env.config_path();
        let text = std::fs::read_to_string(&path).unwrap().replacen(
            "[api]\n",
            &format!("[api]\n{api}\n"),
            1,
        );
        std::fs::write(&path, text).unwrap();
        let config = reindexd::config::Config::load(&path, &Default::default())
            .unwrap_or_else(|e| panic!("test config: {e}"));
        env.config = std::sync::Arc::new(config);
        env.migrator = reindexd::migration::Migrator::new(env.es.clone(), env.config.clone());
        env
    }

    /// The path of `name`'s mapping file.
    pub fn mapping_path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("mappings/{name}.json"))
    }

    /// A plain index reindexd did not make, named under this test's prefix
    /// so that [`Env::cleanup`] deletes it.
    pub async fn plain_index(&self, suffix: &str) -> String {
        let index = format!("{}{suffix}", self.prefix);
        let body =
            serde_json::json!({"settings": {"number_of_shards": 1, "number_of_replicas": 0}});
        self.es.create_index(&index, &body).await.unwrap();
        index
    }

    /// The cluster as far as `names` are concerned. The state index is
    /// created first, so that a daemon creating it in the background never
    /// looks like a change.
    pub async fn snapshot(&self, names: &[&str]) -> Snapshot {
        self.state_index_ready().await;
        let mut aliases = Vec::new();
        let mut states = Vec::new();
        for name in names {
            aliases.push((name.to_string(), self.aliases(name).await));
            let state = self.migrator.store().get(name).await.unwrap().map(|s| {
                let p = &s.state.phase;
                (
                    p.name().to_owned(),
                    p.read_index().to_owned(),
                    p.write_index().to_owned(),
                    s.state.abandoned.clone(),
                )
            });
            states.push((name.to_string(), state));
        }
        Snapshot {
            indexes: self.indexes().await,
            aliases,
            states,
        }
    }

    /// Creates the state index unless it exists and waits until it serves
    /// reads. (Cluster health turns yellow while a new index's primary is
    /// still initialising, so `ensure_index` alone is not enough when
    /// another client — the daemon — created the index a moment ago.)
    pub async fn state_index_ready(&self) {
        self.migrator.store().ensure_index().await.unwrap();
        for _ in 0..300 {
            match self.migrator.store().get("-").await {
                Ok(_) => return,
                Err(e) if e.is_unavailable() => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("state index: {e}"),
            }
        }
        panic!("the state index never served reads");
    }

    /// The stored phase of `name`.
    pub async fn phase(&self, name: &str) -> String {
        let stored = self
            .migrator
            .store()
            .get(name)
            .await
            .unwrap()
            .expect("initialised");
        stored.state.phase.name().to_owned()
    }
}

impl Daemon {
    /// A daemon serving `config` (which need not reach a cluster).
    pub async fn start_config(config: std::sync::Arc<reindexd::config::Config>) -> Daemon {
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
        for _ in 0..100 {
            if http.get(format!("{url}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Daemon {
            url,
            shutdown,
            task,
            http,
            reload,
        }
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
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
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
}

/// URL of a second test node whose write queue is tiny (429s under load):
/// `REINDEXD_TEST_ES_TINY_URL`, default port 9201.
pub fn tiny_queue_url() -> String {
    std::env::var("REINDEXD_TEST_ES_TINY_URL").unwrap_or_else(|_| "http://127.0.0.1:9201".into())
}

/// Port of a third test node that tests may restart:
/// `REINDEXD_TEST_ES_RESTART_PORT`, default 9202.
pub fn restartable_port() -> u16 {
    std::env::var("REINDEXD_TEST_ES_RESTART_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9202)
}

/// Documents a running copy has written so far, from its live counters.
pub fn copied_so_far(handle: &reindexd::copy::CopyHandle) -> u64 {
    handle.stats().map_or(0, |s| {
        let mut c = reindexd::migration::CopyProgress::new(
            reindexd::migration::StoredEngine::Client,
            0,
            chrono::Utc::now(),
        );
        s.apply(&mut c);
        c.done()
    })
}

/// Waits (up to 60 s) until a running copy has written `docs` documents.
pub async fn wait_for_progress(handle: &reindexd::copy::CopyHandle, docs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = copied_so_far(handle);
        if done >= docs {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress: {done} documents"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fails loudly, saying how to start it, when no node answers at `url`.
pub async fn require_node(url: &str, how: &str) -> EsClient {
    let client = EsClient::connect(&ConnectOptions::new(Url::parse(url).unwrap())).unwrap();
    if let Err(e) = client.info().await {
        panic!("no test node at {url} ({e}).\nStart it with `{how}` (bash .ci/run does).");
    }
    client
}

// ---------------------------------------------------------------------------
// Helpers of the tests that run `reindexd serve` as a child process.

/// `reindexd --config CONFIG serve --listen LISTEN` as a child process:
/// stdout discarded, killed on drop, and without systemd's variables from
/// this environment. Callers choose stderr.
pub fn serve_command(config: &std::path::Path, listen: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_reindexd"));
    command
        .args([
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--listen",
            listen,
        ])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// Waits until the daemon on `listen` answers `/healthz`; panics after 10 s.
pub async fn wait_healthy(listen: &str) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("http://{listen}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("reindexd serve did not come up on {listen}");
}

/// A loopback port the OS handed out, then freed.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A copy handle of the test's own, for a copy driven outside a daemon.
pub fn detached_handle(index: &str) -> reindexd::copy::CopyHandle {
    reindexd::copy::CopyHandle::new(
        tokio_util::sync::CancellationToken::new(),
        reindexd::copy::Telemetry::default().for_index(index),
    )
}
