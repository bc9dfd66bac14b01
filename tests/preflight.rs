//! Preflight against the real node: what stage 1 would silently change or
//! lose is refused over the API and the CLI with a stable code, the
//! cluster left exactly as it was, and `plan` shows the same findings.
//!
//! Templates are cluster-wide: each test's templates match only its own
//! prefix, and a guard deletes them (and the test's indexes) even when the
//! test panics.

mod common;

use std::hash::{Hash, Hasher};
use std::time::Duration;

use common::binary::Run;
use common::{es_url, Daemon, Env, MAPPING_V2};
use serde_json::{json, Value};

/// The binary with `args` and this env's configuration.
async fn reindexd(env: &Env, args: &[&str]) -> Run {
    let config = env.config_path().display().to_string();
    let mut all = args.to_vec();
    all.extend(["--config", config.as_str()]);
    common::binary::reindexd(&all).await
}

/// The findings `plan --json` shows for `kb`.
async fn plan_findings(env: &Env) -> Vec<Value> {
    let run = reindexd(env, &["plan", "--json"]).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    let plan: Value = serde_json::from_str(&run.stdout).expect("plan --json is JSON");
    let entry = plan.as_array().unwrap().iter().find(|e| e["name"] == "kb");
    entry.expect("kb in the plan")["findings"]
        .as_array()
        .unwrap()
        .clone()
}

fn has(findings: &[Value], level: &str, code: &str) -> bool {
    findings
        .iter()
        .any(|f| f["level"] == level && f["code"] == code)
}

/// Asserts that stage 1 of `kb` is refused with `code` over the API and the
/// CLI (one line on stderr, exit != 0), that indexes, aliases and state are
/// as they were, and that `plan` (JSON and text) shows the same refusal.
/// Returns the API's message.
async fn assert_refused(env: &Env, code: &str) -> String {
    let before = env.snapshot(&["kb"]).await;
    let daemon = Daemon::start(env).await;
    let (status, body) = daemon.post("/v1/indexes/kb/reindex", None).await;
    let (mega_status, mega) = daemon
        .post("/v1/reindex", Some(r#"{"indexes": ["kb"]}"#))
        .await;
    daemon.stop().await;
    assert_eq!(common::code(status, &body), (409, Some(code)), "{body}");
    assert_eq!(
        common::code(mega_status, &mega),
        (409, Some(code)),
        "{mega}"
    );

    let run = reindexd(env, &["reindex", "kb"]).await;
    assert!(matches!(run.code, Some(c) if c != 0), "{run:#?}");
    // Log lines (`2026-...Z  INFO ...`) may come before the reason.
    let is_log = |l: &str| matches!(l.as_bytes(), [a, b, c, d, b'-', ..] if [a, b, c, d].iter().all(|x| x.is_ascii_digit()));
    let reason: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_log(l))
        .collect();
    assert_eq!(reason.len(), 1, "one line of reason: {run:#?}");
    assert!(
        reason[0].starts_with("reindexd: ") && reason[0].contains(&format!("[{code}]")),
        "{run:#?}"
    );
    assert_eq!(env.snapshot(&["kb"]).await, before, "the cluster changed");

    assert!(has(&plan_findings(env).await, "refuse", code));
    let text = reindexd(env, &["plan"]).await;
    assert!(
        text.stdout.contains(&format!("refuse {code}: ")),
        "{text:#?}"
    );
    body["error"]["message"].as_str().unwrap().to_owned()
}

/// What a test put on the cluster besides reindexd's own indexes: the
/// paths to `DELETE`, in the order they were made.
#[derive(Default)]
struct Made {
    prefix: String,
    paths: Vec<String>,
}

impl Made {
    /// Deletes everything newest first (a data stream before its template,
    /// a template before its pipeline), then every index under the prefix.
    async fn delete_all(&self) {
        for path in self.paths.iter().rev() {
            send(reqwest::Method::DELETE, path, None).await;
        }
        let (es, _) = common::client().await;
        common::cleanup(&es, &self.prefix).await;
    }
}

/// Owns templates (cluster-wide), pipelines, data streams and every index
/// under the test's prefix; dropping it deletes them all, also when the
/// test panics.
struct Guard(Made);

impl Guard {
    fn new(env: &Env) -> Guard {
        Guard(Made {
            prefix: env.prefix.clone(),
            paths: Vec::new(),
        })
    }

    /// `PUT path` with `body`; the guard deletes it at the end.
    async fn put(&mut self, path: String, body: &Value) {
        let (status, answer) = send(reqwest::Method::PUT, &path, Some(body)).await;
        assert_eq!(status, 200, "PUT {path}: {answer}");
        self.0.paths.push(path);
    }

    /// A priority no other test's template has: the node refuses two
    /// overlapping templates of equal priority.
    fn priority(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.0.prefix.hash(&mut h);
        1_000_000 + h.finish() % 1_000_000_000 * 100 + self.0.paths.len() as u64
    }

    /// A composable template over `{prefix}*` with `template` as its body.
    async fn index_template(&mut self, template: Value) -> String {
        let name = format!("{}tpl{}", self.0.prefix, self.0.paths.len());
        let body = json!({"index_patterns": [format!("{}*", self.0.prefix)],
            "priority": self.priority(), "template": template});
        self.put(format!("_index_template/{name}"), &body).await;
        name
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let made = std::mem::take(&mut self.0);
        // The test's runtime may be gone (a panic): clean up on a new one.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(made.delete_all());
        });
        if done.join().is_err() && !std::thread::panicking() {
            panic!("deleting what the test put on the cluster failed (see above)");
        }
    }
}

async fn send(method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}/{path}", es_url()));
    if let Some(b) = body {
        request = request.json(b);
    }
    let response = request.send().await.expect("the node answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `init kb` from `mapping`, a few documents, then `MAPPING_V2` as the
/// next generation's file.
async fn live(label: &str, mapping: &str) -> (Env, Guard) {
    live_with(label, mapping, "").await
}

/// [`live`] with `index_options` in `kb`'s config section.
async fn live_with(label: &str, mapping: &str, index_options: &str) -> (Env, Guard) {
    let env = Env::with_index_options(label, &["kb"], "", index_options).await;
    let guard = Guard::new(&env);
    env.set_mapping("kb", mapping);
    let run = reindexd(&env, &["init", "kb"]).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    env.load_docs("kb", 50).await;
    env.set_mapping("kb", MAPPING_V2);
    (env, guard)
}

const SOURCE_DISABLED: &str = r#"{"settings": {"number_of_shards": 1, "number_of_replicas": 0},
 "mappings": {"_source": {"enabled": false}, "properties": {"title": {"type": "text"}, "n": {"type": "long"}}}}"#;
const SOURCE_EXCLUDES: &str = r#"{"settings": {"number_of_shards": 1, "number_of_replicas": 0},
 "mappings": {"_source": {"excludes": ["secret"]}, "properties": {"title": {"type": "text"}, "n": {"type": "long"}, "secret": {"type": "keyword"}}}}"#;

#[tokio::test]
async fn source_disabled_is_refused() {
    let (env, _guard) = live("pfoff", SOURCE_DISABLED).await;
    let message = assert_refused(&env, "source_disabled").await;
    assert!(message.contains("_source disabled"), "{message}");
}

#[tokio::test]
async fn filtered_source_is_refused_until_the_lost_fields_are_accepted() {
    let (env, _guard) = live("pfexcl", SOURCE_EXCLUDES).await;
    let message = assert_refused(&env, "source_filtered").await;
    assert!(
        message.contains(r#"accept_lost_fields = ["secret"]"#),
        "{message}"
    );

    let path = env.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "mapping = \"mappings/kb.json\"\n",
        "mapping = \"mappings/kb.json\"\naccept_lost_fields = [\"secret\"]\n",
    );
    std::fs::write(&path, text).unwrap();
    assert!(has(&plan_findings(&env).await, "warn", "source_filtered"));
    let run = reindexd(&env, &["reindex", "kb"]).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(env.phase("kb").await, "ready");
    let (read, write) = env.aliases("kb").await;
    assert_ne!(read, write, "reads stay on the source, writes on the copy");
    assert_eq!(env.es.count(&write[0]).await.unwrap(), 50);
}

#[tokio::test]
async fn templates_that_add_what_the_mapping_file_does_not_state_are_refused() {
    let (env, mut guard) = live("pftpl", common::MAPPING_V1).await;
    // The test node has no ingest processor modules: an empty pipeline.
    let pipeline = format!("{}pipe", env.prefix);
    let body = json!({"description": "reindexd preflight test", "processors": []});
    guard
        .put(format!("_ingest/pipeline/{pipeline}"), &body)
        .await;
    let alias = format!("{}everything", env.prefix);
    let cases = [
        (json!({"aliases": {&alias: {}}}), format!("alias {alias}")),
        (
            json!({"settings": {"index.max_result_window": 50000}}),
            "setting index.max_result_window = 50000".to_owned(),
        ),
        (
            json!({"settings": {"index.default_pipeline": &pipeline}}),
            format!("ingest pipeline index.default_pipeline = {pipeline}"),
        ),
        (
            json!({"mappings": {"properties": {"added": {"type": "keyword"}}}}),
            "field added".to_owned(),
        ),
    ];
    for (template, part) in cases {
        let name = guard.index_template(template).await;
        let message = assert_refused(&env, "template_conflict").await;
        assert!(
            message.contains(&format!("index template {name} would add")),
            "{message}"
        );
        assert!(message.contains(&part), "{part:?} in {message}");
        send(
            reqwest::Method::DELETE,
            &format!("_index_template/{name}"),
            None,
        )
        .await;
    }
    // No composable template matches: a legacy one applies and is judged.
    let name = format!("{}legacy", env.prefix);
    let body = json!({"index_patterns": [format!("{}*", env.prefix)], "order": 7,
        "settings": {"index.max_result_window": 777}});
    guard.put(format!("_template/{name}"), &body).await;
    let message = assert_refused(&env, "template_conflict").await;
    assert!(
        message.contains(&format!("legacy template {name} would add")),
        "{message}"
    );
}

#[tokio::test]
async fn a_template_that_states_only_what_the_mapping_file_states_is_harmless() {
    let (env, mut guard) = live("pfok", common::MAPPING_V1).await;
    // MAPPING_V2 states shards (3), replicas and refresh_interval.
    guard
        .index_template(
            json!({"settings": {"index.number_of_shards": 1, "index.refresh_interval": "30s"},
            "mappings": {"properties": {"title": {"type": "keyword"}}}}),
        )
        .await;
    assert_eq!(plan_findings(&env).await, Vec::<Value>::new());
    let daemon = Daemon::start(&env).await;
    let (status, body) = daemon.post("/v1/indexes/kb/reindex", None).await;
    assert_eq!(status, 200, "{body}");
    let view = daemon
        .wait_phase("kb", &["ready", "failed"], Duration::from_secs(60))
        .await;
    daemon.stop().await;
    assert_eq!(view["phase"], "ready", "{view}");
    let target = view["write_index"].as_str().unwrap();
    let settings = env.es.get_settings(target).await.unwrap();
    assert_eq!(settings["index.number_of_shards"], "3", "the file wins");
    assert_eq!(env.es.count(target).await.unwrap(), 50);
}

#[tokio::test]
async fn server_engine_is_refused_where_the_cluster_cannot_run_it() {
    let (caps, info) = common::capabilities::of_test_node().await;
    if caps.reindex && caps.painless {
        return common::capabilities::not_for(
            &info,
            "the server-engine refusal test",
            "this engine has _reindex and painless, so the server engine is not refused",
        );
    }
    let (env, _guard) = live_with("pfsrv", common::MAPPING_V1, "engine = \"server\"").await;
    let message = assert_refused(&env, "server_engine_unavailable").await;
    let missing = if caps.reindex { "painless" } else { "_reindex" };
    assert!(message.contains(&format!("needs {missing}")), "{message}");
    assert!(message.contains("engine = \"client\""), "{message}");
}

#[tokio::test]
async fn data_streams_cannot_be_a_source_nor_shape_the_new_generation() {
    let (caps, info) = common::capabilities::of_test_node().await;
    if !caps.data_streams {
        return common::capabilities::not_on(
            &info,
            "the data-stream preflight test",
            "data streams",
        );
    }
    let (env, mut guard) = live("pfds", common::MAPPING_V1).await;
    // A data-stream template over the generation names and a data stream.
    let streams = format!("{}ds", env.prefix);
    let name = format!("{}dstpl", env.prefix);
    let patterns = [format!("{}kb_2*", env.prefix), format!("{streams}*")];
    let body = json!({"index_patterns": patterns, "data_stream": {}, "priority": guard.priority()});
    guard.put(format!("_index_template/{name}"), &body).await;
    guard
        .put(format!("_data_stream/{streams}"), &json!({}))
        .await;

    // The closest real situation to a data-stream source on this engine:
    // aliases can point neither at a data stream nor at a backing index, so
    // the read alias can never lead to one (unit tests cover the rule).
    let read = env.read_alias("kb");
    for target in [streams.clone(), format!(".ds-{streams}-000001")] {
        let add = json!({"actions": [{"add": {"index": &target, "alias": &read}}]});
        let (status, answer) = send(reqwest::Method::POST, "_aliases", Some(&add)).await;
        assert!((400..500).contains(&status), "{target}: {answer}");
    }

    let message = assert_refused(&env, "template_conflict").await;
    assert!(message.contains(&format!("{name} matches")), "{message}");
    assert!(message.contains("data streams only"), "{message}");
}

#[tokio::test]
async fn an_extra_write_alias_is_refused_and_extra_aliases_are_listed() {
    let (env, _guard) = live("pfalias", common::MAPPING_V1).await;
    let (read, _) = env.aliases("kb").await;
    let source = &read[0];
    let public = format!("{}public", env.prefix);
    let legacy = format!("{}legacy_write", env.prefix);
    let actions = json!({"actions": [
        {"add": {"index": source, "alias": &public, "filter": {"term": {"tag": "t1"}}, "routing": "r1", "is_hidden": true}},
        {"add": {"index": source, "alias": &legacy, "is_write_index": true}}]});
    let (status, answer) = send(reqwest::Method::POST, "_aliases", Some(&actions)).await;
    assert_eq!(status, 200, "{answer}");

    let message = assert_refused(&env, "extra_write_alias").await;
    assert!(message.contains(&legacy), "{message}");
    let findings = plan_findings(&env).await;
    let listed = findings
        .iter()
        .find(|f| f["code"] == "extra_alias")
        .expect("the filtered alias is listed");
    let text = listed["message"].as_str().unwrap();
    assert!(
        text.contains(&public)
            && text.contains("filter")
            && text.contains("r1")
            && text.contains("hidden"),
        "{text}"
    );

    let extra = env.migrator.extra_aliases("kb", source).await.unwrap();
    let names: Vec<&str> = extra.iter().map(|a| a.alias.as_str()).collect();
    assert_eq!(names, [legacy.as_str(), public.as_str()]);
    let p = &extra[1];
    assert_eq!(p.filter, Some(json!({"term": {"tag": "t1"}})));
    assert_eq!(
        (p.index_routing.as_deref(), p.search_routing.as_deref()),
        (Some("r1"), Some("r1"))
    );
    assert_eq!(
        (p.is_hidden, extra[0].is_write_index),
        (Some(true), Some(true))
    );
}

#[test]
fn accept_lost_fields_must_name_fields() {
    let toml = "[[indexes]]\nname = \"kb\"\nmapping = \"kb.json\"\naccept_lost_fields = [\"body\", \" \"]\n";
    let errors = reindexd::config::Config::from_toml(
        toml,
        std::path::Path::new("/"),
        [],
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        errors.to_string().contains("indexes[0].accept_lost_fields"),
        "{errors}"
    );
}
