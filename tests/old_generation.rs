//! Writes to the old generation by its concrete name, on the real node:
//! they bypass the write alias, so the new generation lacks them. They are
//! detected exactly — even when they add up to nothing (an update, a create
//! and a delete) — by the old generation's sequence numbers, shown in
//! status and metrics, and block `ready` and the flip until accepted.

mod common;

use std::time::Duration;

use common::{code, Daemon, Env};

/// An update, a create and a delete: the document count does not move.
async fn net_zero_writes(env: &Env, index: &str) {
    let body = format!(
        "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"1\"}}}}\n{{\"n\":1,\"title\":\"changed by name\"}}\n\
         {{\"index\":{{\"_index\":\"{index}\",\"_id\":\"new-by-name\"}}}}\n{{\"n\":-1}}\n\
         {{\"delete\":{{\"_index\":\"{index}\",\"_id\":\"2\"}}}}\n"
    );
    let answer = env.es.bulk(body.into(), Some("true"), None).await.unwrap();
    assert!(!answer.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_the_old_generation_during_the_copy_fail_it_until_accepted() {
    let env = Env::new(
        "oldgen1",
        &["kb"],
        "[copy]\npage_size = 100\ncheckpoint_interval = \"1s\"",
    )
    .await;
    let m = &env.migrator;
    let (old, _) = env.stage1("kb", 1_000).await;
    env.throttle("kb", 400.0).await;
    let copy = env.spawn_copy("kb", "oldgen-test");
    // Once the copy reads its snapshot, write by name.
    common::eventually("the copy's snapshot", Duration::from_secs(30), || async {
        let state = m.load("kb").await.unwrap().state;
        state
            .phase
            .copy()
            .is_some_and(|c| c.source_seq_nos.is_some())
    })
    .await;
    let count_before = env.es.count(&old).await.unwrap();
    net_zero_writes(&env, &old).await;
    assert_eq!(
        env.es.count(&old).await.unwrap(),
        count_before,
        "net zero by count"
    );

    let state = copy.await.unwrap().unwrap();
    assert_eq!(state.phase.name(), "failed", "{:?}", state.phase);
    let copy = state.phase.copy().unwrap();
    assert_eq!(copy.old_generation_writes, 3, "{copy:?}");
    let reindexd::migration::Phase::Failed { reason, .. } = &state.phase else {
        unreachable!()
    };
    assert!(reason.contains("old generation"), "{reason}");

    let state = m.accept("kb").await.unwrap();
    assert_eq!(state.phase.name(), "ready");
    m.flip("kb").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_the_old_generation_after_ready_block_the_flip() {
    // (`extra` lands in [migration]: cleanup may go at once.)
    let env = Env::new("oldgen2", &["kb"], "retention = \"0s\"").await;
    let (old, _) = env.stage1("kb", 300).await;
    let state = env.spawn_copy("kb", "oldgen-test").await.unwrap().unwrap();
    assert_eq!(state.phase.name(), "ready");
    net_zero_writes(&env, &old).await;

    let daemon = Daemon::start(&env).await;
    let before = env.snapshot(&["kb"]).await;
    let (status, err) = daemon.post("/v1/indexes/kb/flip", None).await;
    assert_eq!(
        code(status, &err),
        (409, Some("old_generation_written")),
        "{err}"
    );
    assert_eq!(
        env.snapshot(&["kb"]).await,
        before,
        "a refused flip changes nothing"
    );
    let (_, view) = daemon.get("/v1/indexes/kb").await;
    assert_eq!(view["progress"]["old_generation_writes"], 3, "{view}");
    let metrics = daemon
        .http
        .get(format!("{}/metrics", daemon.url))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("reindexd_old_generation_writes{index=\"kb\"} 3"),
        "{}",
        text.lines()
            .filter(|l| l.contains("old_generation"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    let (status, view) = daemon.post("/v1/indexes/kb/accept", None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["progress"]["accepted_old_generation_writes"], 3,
        "{view}"
    );
    let (status, flipped) = daemon.post("/v1/indexes/kb/flip", None).await;
    assert_eq!(status, 200, "{flipped}");

    // After the flip, writes by name to the old generation keep cleanup
    // from deleting it.
    let again =
        format!("{{\"index\":{{\"_index\":\"{old}\",\"_id\":\"after-flip\"}}}}\n{{\"n\":-2}}\n");
    assert!(
        !env.es
            .bulk(again.into(), Some("true"), None)
            .await
            .unwrap()
            .errors
    );
    let before = env.snapshot(&["kb"]).await;
    let (status, err) = daemon.post("/v1/indexes/kb/cleanup", None).await;
    assert_eq!(
        code(status, &err),
        (409, Some("old_generation_written")),
        "{err}"
    );
    assert_eq!(env.snapshot(&["kb"]).await, before, "nothing deleted");

    // A rollback's replay takes what was written by name for what it is:
    // not an application delete (the new generation never had it).
    let (status, view) = daemon
        .post("/v1/indexes/kb/rollback", Some(r#"{"writes": "replay"}"#))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["rollback"]["deleted"], 0, "{view}");
    for id in ["new-by-name", "after-flip"] {
        let kept = env.es.get_doc(&old, id).await.unwrap();
        assert!(kept.is_some(), "{id}, written by name, is still there");
    }
    daemon.stop().await;
}
