//! A real three-node cluster (`scripts/test-cluster start --nodes 3`), the
//! generations with one replica: a node leaving and coming back, shards of
//! the source relocated, and a rolling restart with an application writing,
//! each during the copy. Each ends with an exact copy and zero failed
//! searches of the read alias.
//!
//! The tests take turns (one lock): two of them at once could take both
//! copies of a shard away.

mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::app::{all_docs, App};
use common::Env;
use reindexd::copy::{drive, CopyHandle};
use reindexd::migration::{Action, IndexState, MigrationError};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const NODES: u16 = 3;

const REPLICATED_V1: &str = r#"{"settings": {"number_of_shards": 3, "number_of_replicas": 1, "refresh_interval": "1s"},
 "mappings": {"dynamic": false, "properties": {"title": {"type": "text"}, "n": {"type": "long"}, "tag": {"type": "keyword"}}}}"#;
const REPLICATED_V2: &str = r#"{"settings": {"number_of_shards": 3, "number_of_replicas": 1, "refresh_interval": "1s"},
 "mappings": {"dynamic": false, "properties": {"title": {"type": "text"}, "n": {"type": "long"},
  "tag": {"type": "keyword", "fields": {"text": {"type": "text"}}}, "boost": {"type": "float"}}}}"#;

/// HTTP port of the cluster's first node; the others follow it.
fn first_port() -> u16 {
    std::env::var("REINDEXD_TEST_CLUSTER_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9230)
}

fn ports() -> Vec<u16> {
    (0..NODES).map(|i| first_port() + i).collect()
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The cluster's node URLs, after checking that all of them answer as
/// one green cluster; fails loudly, saying how to start it, otherwise.
async fn cluster() -> Vec<String> {
    let how = format!(
        "scripts/test-cluster start --nodes {NODES} --port {}",
        first_port()
    );
    let urls: Vec<String> = ports().into_iter().map(url).collect();
    for u in &urls {
        common::require_node(u, &how).await;
    }
    let health = wait_health(&urls, "", "yellow").await;
    assert_eq!(
        health["number_of_nodes"],
        u64::from(NODES),
        "the nodes at {urls:?} are not one {NODES}-node cluster; start it with `{how}`: {health}"
    );
    urls
}

/// Waits (up to 120 s) until every node is in the cluster and the indexes
/// `pattern` names are green, asking whichever node answers.
async fn wait_green(urls: &[String], pattern: &str) -> Value {
    wait_health(urls, pattern, "green").await
}

/// [`wait_green`] for `status` (green or yellow), all indexes when
/// `pattern` is empty.
async fn wait_health(urls: &[String], pattern: &str, status: &str) -> Value {
    let http = reqwest::Client::new();
    common::eventually_value(
        &format!("{pattern}: the cluster {status}"),
        Duration::from_secs(120),
        || async {
            let mut seen = Vec::new();
            for u in urls {
                let path = format!(
                    "{u}/_cluster/health/{pattern}?wait_for_status={status}&wait_for_nodes={NODES}&wait_for_no_relocating_shards=true&timeout=10s"
                );
                match http.get(path).send().await {
                    Ok(r) => {
                        let health: Value = r.json().await.unwrap_or_default();
                        if health["timed_out"] == false {
                            return Ok(health);
                        }
                        seen.push(format!("{u}: {health}"));
                    }
                    Err(e) => seen.push(format!("{u}: {e}")),
                }
            }
            Err(seen.join("; "))
        },
    )
    .await
}

/// `scripts/test-cluster ARGS`, which must succeed.
async fn test_cluster(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-cluster");
    let status = tokio::process::Command::new(script)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "scripts/test-cluster {args:?} failed");
}

/// A node taken down by `stop-node`; brought back by [`NodeDown::start`],
/// or when dropped (a failing test must not leave the cluster short).
struct NodeDown(Option<String>);

impl NodeDown {
    async fn stop(port: u16) -> NodeDown {
        let port = port.to_string();
        test_cluster(&["stop-node", "--port", &port]).await;
        NodeDown(Some(port))
    }

    async fn start(mut self) {
        let port = self.0.take().unwrap();
        test_cluster(&["start-node", "--port", &port]).await;
    }
}

impl Drop for NodeDown {
    fn drop(&mut self) {
        if let Some(port) = self.0.take() {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-cluster");
            let _ = std::process::Command::new(script)
                .args(["start-node", "--port", &port])
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// Searches of the read alias, all along, the way an application with a
/// client that knows every node does them: a node that does not answer is
/// skipped for the next one; an answer with an error, a timeout, a failed
/// shard or too few hits is a failed search.
struct Searches {
    stop: Arc<AtomicBool>,
    searches: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Searches {
    fn start(urls: &[String], alias: String, at_least: u64) -> Searches {
        let stop = Arc::new(AtomicBool::new(false));
        let searches = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let task = {
            let (urls, stop, searches, failures) = (
                urls.to_vec(),
                stop.clone(),
                searches.clone(),
                failures.clone(),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let body = json!({"size": 0, "track_total_hits": true});
                let mut next = 0;
                while !stop.load(Ordering::Relaxed) {
                    let mut outcome = None;
                    for _ in 0..urls.len() {
                        let u = &urls[next % urls.len()];
                        next += 1;
                        match http
                            .post(format!("{u}/{alias}/_search"))
                            .json(&body)
                            .send()
                            .await
                        {
                            Ok(r) => {
                                outcome = Some(r.json::<Value>().await.unwrap_or_default());
                                break;
                            }
                            // No answer: the node is down or went down
                            // with the search in flight.
                            Err(_) => continue,
                        }
                    }
                    let ok = outcome.as_ref().is_some_and(|a| {
                        a["_shards"]["failed"] == 0
                            && a["timed_out"] == false
                            && a["hits"]["total"]["value"].as_u64() >= Some(at_least)
                    });
                    if !ok {
                        eprintln!("failed search of {alias}: {outcome:?}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    searches.fetch_add(1, Ordering::Relaxed);
                    // The searches' pace (traffic, not a wait for anything).
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        Searches {
            stop,
            searches,
            failures,
            task,
        }
    }

    /// Stops searching; asserts that searches ran and none failed.
    async fn assert_none_failed(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let searches = self.searches.load(Ordering::Relaxed);
        assert!(searches > 20, "only {searches} searches ran");
        assert_eq!(
            self.failures.load(Ordering::Relaxed),
            0,
            "failed searches out of {searches}"
        );
    }
}

/// One test's run on the cluster: `kb` with one replica and `docs`
/// documents, stage 1 into a replicated v2, the copy throttled to `rate`
/// and started, and searches of the read alias running all along.
struct Scenario {
    urls: Vec<String>,
    env: Env,
    source: String,
    target: String,
    handle: Arc<CopyHandle>,
    copy: JoinHandle<IndexState>,
    searches: Searches,
}

impl Scenario {
    async fn start(label: &str, docs: u64, rate: f64) -> Scenario {
        let urls = cluster().await;
        let env = Env::on_cluster(
            &urls,
            label,
            &["kb"],
            "[copy]\ncheckpoint_interval = \"1s\"\npage_size = 250",
        )
        .await;
        env.set_mapping("kb", REPLICATED_V1);
        let m = &env.migrator;
        m.init("kb").await.unwrap();
        env.load_docs("kb", docs).await;
        env.set_mapping("kb", REPLICATED_V2);
        let state = m.reindex("kb").await.unwrap();
        let (source, target) = (
            state.phase.read_index().to_owned(),
            state.phase.write_index().to_owned(),
        );
        // The source's shards move only when a test moves them: a copy the
        // balancer moves away once the point in time holds it stays locked
        // on its old node until the copy ends, so that shard cannot come
        // back there meanwhile (seen in CI: a relocation waited on it).
        env.es
            .put_settings(&source, &json!({"index.routing.rebalance.enable": "none"}))
            .await
            .unwrap();
        // Every shard copy of both generations started, and none moving,
        // before anything is taken away: a replica still recovering (the
        // previous test's restarts) would leave a shard with no copy when
        // its node leaves.
        wait_green(&urls, &format!("{}*", env.prefix)).await;
        env.throttle("kb", rate).await;
        let handle = Arc::new(common::detached_handle("kb"));
        let copy = {
            let (m, handle) = (m.clone(), handle.clone());
            tokio::spawn(async move { drive(&m, "kb", "multi-node-test", &handle).await.unwrap() })
        };
        let searches = Searches::start(&urls, env.read_alias("kb"), docs);
        Scenario {
            urls,
            env,
            source,
            target,
            handle,
            copy,
            searches,
        }
    }

    async fn wait_green(&self) {
        wait_green(&self.urls, &format!("{}*", self.env.prefix)).await;
    }

    /// The copy ends `ready`, no search failed; returns the env to check
    /// the documents with.
    async fn finish(self) -> (Env, String, String) {
        finish(&self.env, self.copy).await;
        self.searches.assert_none_failed().await;
        (self.env, self.source, self.target)
    }
}

/// Lifts the throttle and waits for the copy to end `ready`.
async fn finish(env: &Env, copy: JoinHandle<IndexState>) -> IndexState {
    let lifted = env
        .migrator
        .update_copy("kb", Action::Throttle, |c| c.requests_per_second = None)
        .await;
    if let Err(e) = lifted {
        // The copy may have ended on its own meanwhile.
        assert!(matches!(e, MigrationError::IllegalTransition(_)), "{e}");
    }
    let state = tokio::time::timeout(Duration::from_secs(300), copy)
        .await
        .expect("the copy finished within 300 s")
        .unwrap();
    assert_eq!(state.phase.name(), "ready", "{:?}", state.phase);
    let p = state.phase.copy().unwrap();
    assert_eq!(p.failed, 0, "{p:?}");
    state
}

/// The target holds exactly the source's documents.
async fn assert_same_documents(env: &Env, source: &str, target: &str) {
    env.es.refresh(target).await.unwrap();
    let (a, b) = (
        all_docs(&env.es, source).await,
        all_docs(&env.es, target).await,
    );
    assert_eq!(a.len(), b.len(), "{source} vs {target}: document counts");
    assert!(a == b, "{target} differs from {source}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_leaving_and_coming_back_mid_copy_loses_nothing() {
    let _turn = CLUSTER.lock().await;
    let run = Scenario::start("mnleave", 12_000, 2_000.0).await;
    common::wait_for_progress(&run.handle, 2_000).await;
    let down = NodeDown::stop(ports()[NODES as usize - 1]).await;
    // The copy goes on without the node: more documents, or the end (a
    // point in time that lost contexts with the node starts its unfinished
    // slices over, which resets the live counters). A request in flight to
    // the leaving node may wait for its timeout and the run's backoff.
    let done = common::copied_so_far(&run.handle);
    common::eventually_value(
        "the copy went on without the node",
        Duration::from_secs(240),
        || async {
            let now = common::copied_so_far(&run.handle);
            if now >= done + 2_000 || run.copy.is_finished() {
                Ok(())
            } else {
                Err(format!("{now} documents copied"))
            }
        },
    )
    .await;
    down.start().await;
    run.wait_green().await;

    let (env, source, target) = run.finish().await;
    assert_same_documents(&env, &source, &target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shards_of_the_source_relocated_mid_copy_lose_nothing() {
    let _turn = CLUSTER.lock().await;
    let total = 12_000;
    let run = Scenario::start("mnmove", total, 1_000.0).await;
    let (env, source, urls) = (&run.env, run.source.clone(), run.urls.clone());
    common::wait_for_progress(&run.handle, 2_000).await;
    // Slowed to a trickle while the shards move, so the copy still reads
    // from them then, however long the move takes: at 20 documents a
    // second it cannot finish within the move's 120 s deadline.
    env.throttle("kb", 20.0).await;
    // Every shard copy of the source leaves node 1, by allocation filtering.
    let away = "reindexd-test-node-1";
    let filter = |name: Value| json!({"index.routing.allocation.exclude._name": name});
    env.es
        .put_settings(&source, &filter(json!(away)))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    common::eventually_value("the shards moved", Duration::from_secs(120), || async {
        let shards: Vec<Value> = http
            .get(format!(
                "{}/_cat/shards/{source}?format=json&h=node,state",
                urls[0]
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if shards
            .iter()
            .all(|s| s["state"] == "STARTED" && s["node"] != away)
        {
            Ok(())
        } else {
            Err(format!("{shards:?}"))
        }
    })
    .await;
    assert!(
        common::copied_so_far(&run.handle) < total,
        "the copy ended before the shards moved"
    );
    env.es
        .put_settings(&source, &filter(Value::Null))
        .await
        .unwrap();

    let (env, source, target) = run.finish().await;
    assert_same_documents(&env, &source, &target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_during_stage_1_with_an_application_writing() {
    let _turn = CLUSTER.lock().await;
    let initial = 6_000;
    let run = Scenario::start("mnroll", initial, 150.0).await;
    let env = &run.env;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (es, stop) = (env.es.clone(), stop.clone());
        // No deletes: a node restart can make the engine forget a delete's
        // tombstone (gc_deletes lives in memory), and the copy's version-0
        // write then brings the document back. Seen here in CI; a known
        // limitation (README, contract for application authors).
        let mut app = App::without_deletes(&env.write_alias("kb"), initial, 0x5011_0001);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                app.run(&es, 10).await;
            }
            app
        })
    };
    for port in ports() {
        test_cluster(&["restart", "--port", &port.to_string()]).await;
        run.wait_green().await;
    }
    stop.store(true, Ordering::Relaxed);
    let app = writer.await.unwrap();
    assert!(app.live_writes() > 0, "the application wrote nothing");

    let (env, source, target) = run.finish().await;
    app.assert_matches(&env.es, &target).await;
    // The old generation kept what it had: stage 1 sends every write to
    // the new one.
    env.es.refresh(&source).await.unwrap();
    assert_eq!(env.es.count(&source).await.unwrap(), initial);
}
