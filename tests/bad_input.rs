//! Bad input about *what* to migrate, over the HTTP API against the real
//! node: unknown names, broken or rejected mapping files, aliases someone
//! changed by hand. Each is refused with a stable code, and the cluster is
//! left exactly as it was: same indexes, same aliases, same stored phase.
//! And bad input about *how*: configuration values that would break a copy
//! later are refused by `check-config` and at daemon start, naming the key.

mod common;

use std::path::Path;
use std::time::Duration;

use common::binary::{reindexd, Run};
use common::{code, es_url, serve_command, Daemon, Env, MAPPING_V1};
use reindexd::es::AliasAction;

/// `init` over the API; returns the first generation.
async fn init(daemon: &Daemon, name: &str) -> String {
    let (status, view) = daemon.post(&format!("/v1/indexes/{name}/init"), None).await;
    assert_eq!(status, 200, "{view}");
    view["read_index"].as_str().unwrap().to_owned()
}

fn add(index: &str, alias: &str, write: Option<bool>) -> AliasAction {
    AliasAction::Add {
        index: index.into(),
        alias: alias.into(),
        is_write_index: write,
    }
}

fn remove(index: &str, alias: &str) -> AliasAction {
    AliasAction::Remove {
        index: index.into(),
        alias: alias.into(),
        must_exist: Some(true),
    }
}

#[tokio::test]
async fn unknown_index_is_404_everywhere_and_changes_nothing() {
    let env = Env::new("unknown", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    init(&daemon, "kb").await;
    let before = env.snapshot(&["kb", "nope"]).await;

    let (status, body) = daemon.get("/v1/indexes/nope").await;
    assert_eq!(code(status, &body), (404, Some("unknown_index")), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"nope\""),
        "{body}"
    );
    for action in [
        "init", "reindex", "pause", "resume", "accept", "flip", "rollback", "cleanup", "repair",
    ] {
        let (status, body) = daemon
            .post(&format!("/v1/indexes/nope/{action}"), None)
            .await;
        assert_eq!(
            code(status, &body),
            (404, Some("unknown_index")),
            "{action}: {body}"
        );
    }
    let (status, body) = daemon
        .post(
            "/v1/indexes/nope/throttle",
            Some(r#"{"requests_per_second": 10}"#),
        )
        .await;
    assert_eq!(code(status, &body), (404, Some("unknown_index")), "{body}");

    assert_eq!(env.snapshot(&["kb", "nope"]).await, before);
    daemon.stop().await;
}

/// The ways a mapping file can be unusable before the cluster sees it.
const BAD_FILES: [&str; 7] = [
    "missing",
    "directory",
    "invalid json",
    "array",
    "no mappings",
    "extra key",
    "mappings not an object",
];

/// Makes `name`'s mapping file bad in the way `case` says.
fn break_mapping(env: &Env, name: &str, case: &str) {
    let path = env.mapping_path(name);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&path);
    let text = match case {
        "missing" => return,
        "directory" => return std::fs::create_dir(&path).unwrap(),
        "invalid json" => r#"{"mappings": {"properties": {"#,
        "array" => "[]",
        "no mappings" => r#"{"settings": {"number_of_shards": 1}}"#,
        "extra key" => r#"{"mappings": {}, "aliases": {"x": {}}}"#,
        "mappings not an object" => r#"{"mappings": []}"#,
        other => panic!("no case {other}"),
    };
    std::fs::write(&path, text).unwrap();
}

fn restore_mapping(env: &Env, name: &str) {
    let _ = std::fs::remove_dir(env.mapping_path(name));
    env.set_mapping(name, common::MAPPING_V1);
}

#[tokio::test]
async fn unusable_mapping_file_is_invalid_mapping_at_init_and_reindex() {
    let env = Env::new("badfile", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;

    let before = env.snapshot(&["kb"]).await;
    for case in BAD_FILES {
        break_mapping(&env, "kb", case);
        let (status, body) = daemon.post("/v1/indexes/kb/init", None).await;
        assert_eq!(
            code(status, &body),
            (400, Some("invalid_mapping")),
            "init, {case}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("kb.json"),
            "init, {case}: the message names the file: {message}"
        );
        assert_eq!(env.snapshot(&["kb"]).await, before, "init, {case}");
    }

    restore_mapping(&env, "kb");
    init(&daemon, "kb").await;
    env.load_docs("kb", 50).await;
    let before = env.snapshot(&["kb"]).await;
    for case in BAD_FILES {
        break_mapping(&env, "kb", case);
        let (status, body) = daemon.post("/v1/indexes/kb/reindex", None).await;
        assert_eq!(
            code(status, &body),
            (400, Some("invalid_mapping")),
            "reindex, {case}: {body}"
        );
        assert_eq!(env.snapshot(&["kb"]).await, before, "reindex, {case}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn mapping_the_engine_rejects_is_mapping_rejected_and_leaves_no_index() {
    let env = Env::new("rejected", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    let unknown_type = r#"{"mappings": {"properties": {"title": {"type": "no_such_type"}}}}"#;
    let unknown_analyzer = r#"{"mappings": {"properties": {"title": {"type": "text", "analyzer": "no_such_analyzer"}}}}"#;
    let zero_shards = r#"{"settings": {"number_of_shards": 0}, "mappings": {}}"#;

    let before = env.snapshot(&["kb"]).await;
    for mapping in [unknown_type, unknown_analyzer, zero_shards] {
        env.set_mapping("kb", mapping);
        let (status, body) = daemon.post("/v1/indexes/kb/init", None).await;
        assert_eq!(
            code(status, &body),
            (400, Some("mapping_rejected")),
            "init {mapping}: {body}"
        );
        assert_eq!(env.snapshot(&["kb"]).await, before, "init {mapping}");
    }

    env.set_mapping("kb", common::MAPPING_V1);
    init(&daemon, "kb").await;
    env.load_docs("kb", 50).await;
    let before = env.snapshot(&["kb"]).await;
    for mapping in [unknown_type, unknown_analyzer, zero_shards] {
        env.set_mapping("kb", mapping);
        let (status, body) = daemon.post("/v1/indexes/kb/reindex", None).await;
        assert_eq!(
            code(status, &body),
            (400, Some("mapping_rejected")),
            "reindex {mapping}: {body}"
        );
        assert_eq!(env.snapshot(&["kb"]).await, before, "reindex {mapping}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn reindex_is_refused_when_the_read_alias_was_moved_by_hand() {
    let env = Env::new("tamper", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    let a = init(&daemon, "kb").await;
    env.load_docs("kb", 50).await;
    let stray = env.plain_index("stray").await;
    let (read, write) = (env.read_alias("kb"), env.write_alias("kb"));

    // Read alias on two indexes: the generation and one reindexd never made.
    env.es
        .update_aliases(&[add(&stray, &read, None)])
        .await
        .unwrap();
    let before = env.snapshot(&["kb"]).await;
    assert_eq!(before.aliases[0].1 .0.len(), 2);
    let (status, body) = daemon.post("/v1/indexes/kb/reindex", None).await;
    assert_eq!(code(status, &body), (409, Some("alias_conflict")), "{body}");
    assert_eq!(env.snapshot(&["kb"]).await, before);

    // Read alias only on the stray index.
    env.es.update_aliases(&[remove(&a, &read)]).await.unwrap();
    let before = env.snapshot(&["kb"]).await;
    let (status, body) = daemon.post("/v1/indexes/kb/reindex", None).await;
    assert_eq!(code(status, &body), (409, Some("alias_conflict")), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&stray),
        "{body}"
    );
    assert_eq!(env.snapshot(&["kb"]).await, before);

    // Read alias back, write alias moved to the stray index.
    env.es
        .update_aliases(&[
            remove(&stray, &read),
            add(&a, &read, None),
            remove(&a, &write),
            add(&stray, &write, Some(true)),
        ])
        .await
        .unwrap();
    let before = env.snapshot(&["kb"]).await;
    let (status, body) = daemon.post("/v1/indexes/kb/reindex", None).await;
    assert_eq!(code(status, &body), (409, Some("alias_conflict")), "{body}");
    assert_eq!(env.snapshot(&["kb"]).await, before);
    daemon.stop().await;
}

#[tokio::test]
async fn flip_is_refused_when_the_read_alias_was_moved_by_hand() {
    let env = Env::new("tamperflip", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    let a = init(&daemon, "kb").await;
    env.load_docs("kb", 50).await;
    let (status, view) = daemon.post("/v1/indexes/kb/reindex", None).await;
    assert_eq!(status, 200, "{view}");
    daemon
        .wait_phase("kb", &["ready"], Duration::from_secs(60))
        .await;
    let stray = env.plain_index("stray").await;
    let read = env.read_alias("kb");

    env.es
        .update_aliases(&[add(&stray, &read, None)])
        .await
        .unwrap();
    let before = env.snapshot(&["kb"]).await;
    let (status, body) = daemon.post("/v1/indexes/kb/flip", None).await;
    assert_eq!(
        code(status, &body),
        (409, Some("alias_conflict")),
        "two indexes: {body}"
    );
    assert_eq!(env.snapshot(&["kb"]).await, before);

    env.es.update_aliases(&[remove(&a, &read)]).await.unwrap();
    let before = env.snapshot(&["kb"]).await;
    let (status, body) = daemon.post("/v1/indexes/kb/flip", None).await;
    assert_eq!(
        code(status, &body),
        (409, Some("alias_conflict")),
        "stray index: {body}"
    );
    assert_eq!(env.snapshot(&["kb"]).await, before);
    assert_eq!(env.phase("kb").await, "ready");
    daemon.stop().await;
}

#[tokio::test]
async fn init_is_refused_when_the_aliases_exist_without_state() {
    let env = Env::new("tamperinit", &["kb", "wiki"], "").await;
    let daemon = Daemon::start(&env).await;
    let stray = env.plain_index("stray").await;
    env.es
        .update_aliases(&[
            add(&stray, &env.read_alias("kb"), None),
            add(&stray, &env.write_alias("kb"), Some(true)),
        ])
        .await
        .unwrap();
    // An index where reindexd needs an alias.
    let squatter = env.read_alias("wiki");
    env.es
        .create_index(
            &squatter,
            &serde_json::json!({"settings": {"number_of_replicas": 0}}),
        )
        .await
        .unwrap();

    let before = env.snapshot(&["kb", "wiki"]).await;
    for name in ["kb", "wiki"] {
        let (status, body) = daemon.post(&format!("/v1/indexes/{name}/init"), None).await;
        assert_eq!(
            code(status, &body),
            (409, Some("alias_conflict")),
            "{name}: {body}"
        );
        assert_eq!(env.snapshot(&["kb", "wiki"]).await, before, "{name}");
    }
    let (status, view) = daemon.get("/v1/indexes/kb").await;
    assert_eq!(
        (status, view["phase"].as_str()),
        (200, Some("uninitialized")),
        "{view}"
    );
    daemon.stop().await;
}

/// A config for one index `kb` in `dir`, with `timeout` in
/// `[elasticsearch]` and `copy` in `[copy]`; returns its path.
fn config_file(dir: &Path, timeout: &str, copy: &str) -> String {
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    std::fs::write(dir.join("mappings/kb.json"), MAPPING_V1).unwrap();
    let url = es_url();
    let toml = format!("[elasticsearch]\nurl = \"{url}\"\ntimeout = \"{timeout}\"\n[copy]\n{copy}\n[[indexes]]\nname = \"kb\"\nmapping = \"mappings/kb.json\"\n");
    let path = dir.join("reindexd.toml");
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn configuration_footguns_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let normal = "checkpoint_interval = \"5s\"\nscroll_keep_alive = \"5m\"\ngc_deletes = \"48h\"";
    let run = reindexd(&[
        "--config",
        &config_file(dir.path(), "30s", normal),
        "check-config",
    ])
    .await;
    let effective = run.ok().json();
    assert_eq!(effective["copy"]["checkpoint_interval"], "5s", "{run:#?}");
    assert_eq!(effective["copy"]["gc_deletes"], "2days", "{run:#?}");

    for (timeout, copy, key) in [
        (
            "30s",
            "checkpoint_interval = \"0s\"",
            "copy.checkpoint_interval",
        ),
        ("0s", "", "elasticsearch.timeout"),
        ("30s", "gc_deletes = \"1s\"", "copy.gc_deletes"),
        (
            "30s",
            "scroll_keep_alive = \"1ms\"",
            "copy.scroll_keep_alive",
        ),
        ("5m", "scroll_keep_alive = \"3m\"", "copy.scroll_keep_alive"),
        ("30s", "slices = 100000", "copy.slices"),
        (
            "30s",
            "requests_per_second = -1.0",
            "copy.requests_per_second",
        ),
        ("30s", "page_size = 0", "copy.page_size"),
    ] {
        let config = config_file(dir.path(), timeout, copy);
        reindexd(&["--config", &config, "check-config"])
            .await
            .fails_with(&format!("config: {key}: expected"));
    }

    // Every problem at once, one line each; and `serve` refuses the same
    // file before it listens or touches the cluster.
    let config = config_file(
        dir.path(),
        "0s",
        "checkpoint_interval = \"0s\"\ngc_deletes = \"1s\"",
    );
    let check = reindexd(&["--config", &config, "check-config"]).await;
    let mut serve = serve_command(Path::new(&config));
    serve.stderr(std::process::Stdio::piped());
    let served = tokio::time::timeout(Duration::from_secs(60), serve.output())
        .await
        .expect("serve refuses a bad config at once")
        .unwrap();
    let serve = Run {
        code: served.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&served.stderr).into_owned(),
    };
    for run in [check, serve] {
        assert!(run.code.is_some_and(|c| c != 0), "{run:#?}");
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 3, "{run:#?}");
        for (line, key) in lines.iter().zip([
            "elasticsearch.timeout",
            "copy.checkpoint_interval",
            "copy.gc_deletes",
        ]) {
            assert!(
                line.contains(&format!("config: {key}: expected")),
                "{run:#?}"
            );
        }
    }
}
