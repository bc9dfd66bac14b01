//! A test's own configuration and names: [`Env`] writes a throwaway config
//! (its own index prefix and state index) and deletes every index under
//! that prefix when dropped, also when the test panics.

use std::sync::Arc;
use std::time::Duration;

use reindexd::es::{ConnectOptions, EsClient};
use url::Url;

use super::cluster::{self, es_url};
use super::guard::{unique, IndexGuard};

/// A copy running in the background, ending in its final state.
pub type CopyTask =
    tokio::task::JoinHandle<Result<reindexd::migration::IndexState, reindexd::copy::CopyError>>;

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

/// A copy handle of the test's own, for a copy driven outside a daemon.
pub fn detached_handle(index: &str) -> reindexd::copy::CopyHandle {
    reindexd::copy::CopyHandle::new(
        tokio_util::sync::CancellationToken::new(),
        reindexd::copy::Telemetry::default().for_index(index),
    )
}

/// A throwaway configuration in a temp dir: its own name prefix and state
/// index, so tests never share a logical index or a state document.
/// Dropping it deletes every index under the prefix (see [`IndexGuard`]);
/// [`Env::cleanup`] does it at once where a test needs them gone earlier.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// Put before every index and alias this test's reindexd makes.
    pub prefix: String,
    pub config: Arc<reindexd::config::Config>,
    pub es: EsClient,
    pub migrator: reindexd::migration::Migrator,
    /// Deletes `{prefix}*` on drop, reaching the cluster directly.
    _guard: IndexGuard,
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
        cluster::client().await;
        Self::build(&es_url(), label, indexes, extra, index_extra).await
    }

    /// Like [`Env::new`] on the node at `url` (one of the fault-test nodes).
    pub async fn on_node(url: &str, label: &str, indexes: &[&str], extra: &str) -> Env {
        Self::build(url, label, indexes, extra, "").await
    }

    /// Like [`Env::new`] with the config and the test's client going
    /// through `proxy` (a fault proxy in front of the main node); the
    /// cleanup goes to the node directly, whatever the proxy does by then.
    pub async fn behind_proxy(proxy: &str, label: &str, indexes: &[&str], extra: &str) -> Env {
        cluster::client().await;
        let direct = cluster::options(&es_url());
        Self::build_on(&[proxy], None, Some(direct), label, indexes, extra, "").await
    }

    /// Like [`Env::new`] on a cluster of several nodes: the config (and
    /// the test's client) lists every node's URL.
    pub async fn on_cluster(urls: &[String], label: &str, indexes: &[&str], extra: &str) -> Env {
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        Self::build_on(&urls, None, None, label, indexes, extra, "").await
    }

    /// Like [`Env::new`] on the node at `url` with security on (HTTPS,
    /// certificate signed by the CA in file `ca`), as `user` (basic auth)
    /// in the config and the test's client.
    pub async fn secured(url: &str, ca: &str, user: &str, password: &str, label: &str) -> Env {
        let access = Access { user, password, ca };
        Self::build_on(&[url], Some(access), None, label, &["kb"], "", "").await
    }

    async fn build(
        url: &str,
        label: &str,
        indexes: &[&str],
        extra: &str,
        index_extra: &str,
    ) -> Env {
        Self::build_on(&[url], None, None, label, indexes, extra, index_extra).await
    }

    /// The config names `urls` (with `access`); the cleanup reaches the
    /// cluster through `cleanup`, else like the config.
    #[allow(clippy::too_many_arguments)]
    async fn build_on(
        urls: &[&str],
        access: Option<Access<'_>>,
        cleanup: Option<ConnectOptions>,
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
        let config = Arc::new(config);
        let migrator = reindexd::migration::Migrator::new(es.clone(), config.clone());
        let guard = IndexGuard::on(cleanup.unwrap_or(options), prefix.clone());
        Env {
            dir,
            prefix,
            config,
            es,
            migrator,
            _guard: guard,
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

    /// Deletes this test's indexes now, for a test that needs them gone
    /// before its end (dropping the env does it anyway).
    pub async fn cleanup(&self) {
        cluster::cleanup(&self.es, &self.prefix).await;
    }
}

/// A config in `dir` whose cluster URL is `url`, with a valid mapping for
/// each of `indexes`; `extra` is appended to the TOML.
pub fn config_at(
    dir: &std::path::Path,
    url: &str,
    indexes: &[&str],
    extra: &str,
) -> Arc<reindexd::config::Config> {
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
    Arc::new(config)
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
        env.config = Arc::new(config);
        env.migrator = reindexd::migration::Migrator::new(env.es.clone(), env.config.clone());
        env
    }

    /// The path of `name`'s mapping file.
    pub fn mapping_path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("mappings/{name}.json"))
    }

    /// A plain index reindexd did not make, named under this test's prefix
    /// so that dropping the env deletes it.
    pub async fn plain_index(&self, suffix: &str) -> String {
        let index = format!("{}{suffix}", self.prefix);
        let body =
            serde_json::json!({"settings": {"number_of_shards": 1, "number_of_replicas": 0}});
        self.es.create_index(&index, &body).await.unwrap();
        index
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
