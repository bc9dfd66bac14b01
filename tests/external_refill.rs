//! The external refill: stage 1 moves the write alias and copies nothing;
//! the application refills the new generation from its own source of
//! truth (here: a writer that knows every document); `filled` counts both
//! generations and ends in `ready`, or in `failed` with both numbers.

mod common;

use std::time::Duration;

use common::{Daemon, Env, MAPPING_V2};
use serde_json::json;

/// The application's refill of `ids` into `alias`, as its own bulk
/// requests (the source of truth says what each document is).
async fn refill(env: &Env, alias: &str, ids: std::ops::Range<u64>) {
    let answer = env
        .es
        .bulk(common::ndjson_docs(alias, ids), None, None)
        .await
        .unwrap();
    assert!(!answer.errors, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_application_refills_and_filled_verifies_the_counts() {
    let env = Env::with_index_options("refill", &["kb"], "", "engine = \"external\"").await;
    let daemon = Daemon::start(&env).await;
    let (status, view) = daemon.post("/v1/indexes/kb/init", None).await;
    assert_eq!(status, 200, "{view}");
    let a = view["read_index"].as_str().unwrap().to_owned();
    env.load_docs("kb", 500).await;

    env.set_mapping("kb", MAPPING_V2);
    let (status, view) = daemon.post("/v1/indexes/kb/reindex", None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["phase"], "filling", "{view}");
    assert_eq!(view["progress"]["engine"], "external", "{view}");
    let b = view["write_index"].as_str().unwrap().to_owned();
    assert_eq!(env.aliases("kb").await, (vec![a.clone()], vec![b.clone()]));
    // reindexd copies nothing, and the new generation keeps the file's
    // refresh interval so that the refill shows in its count.
    let settings = env.es.get_settings(&b).await.unwrap();
    assert_eq!(settings["index.refresh_interval"], "1s", "{settings:?}");
    assert_eq!(env.es.count(&b).await.unwrap(), 0);

    // An external refill has no copy to pause or throttle.
    for path in ["pause", "throttle"] {
        let body = (path == "throttle").then_some(r#"{"requests_per_second": 10}"#);
        let (status, answer) = daemon.post(&format!("/v1/indexes/kb/{path}"), body).await;
        assert_eq!(
            common::code(status, &answer),
            (409, Some("illegal_transition")),
            "{path}: {answer}"
        );
    }

    // The application refills all but ten documents; status shows the new
    // generation's count against the old one's.
    refill(&env, &env.write_alias("kb"), 0..490).await;
    let view = common::eventually_value(
        "the refill shows in status",
        Duration::from_secs(30),
        || async {
            let (_, view) = daemon.get("/v1/indexes/kb").await;
            match view["progress"]["copied"].as_u64() {
                Some(490) => Ok(view),
                _ => Err(view.to_string()),
            }
        },
    )
    .await;
    assert_eq!(view["progress"]["total"], 500, "{view}");
    let metrics = daemon.metrics().await;
    let sample = |name: &str| common::metric(&metrics, name, "index=\"kb\"");
    assert_eq!(
        sample("reindexd_documents_copied_total"),
        Some(490.0),
        "{metrics}"
    );
    assert_eq!(
        sample("reindexd_source_documents"),
        Some(500.0),
        "{metrics}"
    );

    // Declared filled too early: failed, with both numbers.
    let (status, view) = daemon.post("/v1/indexes/kb/filled", None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["phase"], "failed", "{view}");
    let reason = view["reason"].as_str().unwrap();
    assert!(reason.contains("490") && reason.contains("500"), "{reason}");
    assert_eq!(env.aliases("kb").await, (vec![a.clone()], vec![b.clone()]));

    // The rest refilled, `filled` again: ready, then the flip.
    refill(&env, &env.write_alias("kb"), 490..500).await;
    let (status, view) = daemon.post("/v1/indexes/kb/filled", None).await;
    assert_eq!(
        (status, view["phase"].as_str()),
        (200, Some("ready")),
        "{view}"
    );
    assert_eq!(view["progress"]["copied"], 500, "{view}");
    let (status, answer) = daemon.post("/v1/indexes/kb/filled", None).await;
    assert_eq!(
        common::code(status, &answer),
        (409, Some("illegal_transition")),
        "filled when ready: {answer}"
    );
    let (status, answer) = daemon.post("/v1/indexes/kb/flip", None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(env.aliases("kb").await, (vec![b.clone()], vec![b.clone()]));
    let docs = common::app::all_docs(&env.es, &b).await;
    assert_eq!(docs.len(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refill_within_tolerance_is_ready_and_rollback_keeps_its_writes() {
    let env = Env::with_index_options(
        "refilltol",
        &["kb"],
        "",
        "engine = \"client\"\nfill_tolerance = 5",
    )
    .await;
    let daemon = Daemon::start(&env).await;
    env.init("kb").await;
    // Loaded the way the refill writes them (same ids, no custom routing).
    refill(&env, &env.write_alias("kb"), 0..100).await;
    env.es.refresh(&env.read_alias("kb")).await.unwrap();
    env.set_mapping("kb", MAPPING_V2);
    // The request chooses the refill over the configured copy.
    let (status, view) = daemon
        .post("/v1/indexes/kb/reindex", Some(r#"{"engine": "external"}"#))
        .await;
    assert_eq!(
        (status, view["phase"].as_str()),
        (200, Some("filling")),
        "{view}"
    );
    let (a, b) = (
        view["read_index"].as_str().unwrap().to_owned(),
        view["write_index"].as_str().unwrap().to_owned(),
    );
    refill(&env, &env.write_alias("kb"), 0..97).await;

    // Rollback while filling: every refilled document is an application
    // write, which a bare rollback must not drop, and --replay cannot
    // know the deletes of a refill not declared done.
    let (status, answer) = daemon.post("/v1/indexes/kb/rollback", None).await;
    assert_eq!(
        common::code(status, &answer),
        (409, Some("writes_would_be_lost")),
        "{answer}"
    );
    let (status, answer) = daemon
        .post("/v1/indexes/kb/rollback", Some(r#"{"writes": "replay"}"#))
        .await;
    assert_eq!(
        common::code(status, &answer),
        (409, Some("illegal_transition")),
        "{answer}"
    );
    assert_eq!(env.aliases("kb").await, (vec![a.clone()], vec![b.clone()]));

    // Three short of the old generation's 100, within fill_tolerance = 5.
    let (status, view) = daemon.post("/v1/indexes/kb/filled", None).await;
    assert_eq!(
        (status, view["phase"].as_str()),
        (200, Some("ready")),
        "{view}"
    );
    assert_eq!(
        (
            view["progress"]["total"].as_u64(),
            view["progress"]["copied"].as_u64()
        ),
        (Some(100), Some(97)),
        "{view}"
    );
    // Rolled back from ready with --replay: what the refill wrote lands in
    // the old generation too, nothing is lost.
    let (status, answer) = daemon
        .post(
            "/v1/indexes/kb/rollback",
            Some(&json!({"writes": "replay"}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(env.aliases("kb").await, (vec![a.clone()], vec![a.clone()]));
    // The refill is the source of truth: the three documents it did not
    // write are deletes, replayed like the rest, and reported.
    assert_eq!(answer["rollback"]["deleted"], 3, "{answer}");
    env.es.refresh(&a).await.unwrap();
    assert_eq!(env.es.count(&a).await.unwrap(), 97);
}
