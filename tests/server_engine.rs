//! `engine = "server"`: the cluster's own `_reindex` copies, reindexd
//! follows the task, rethrottles it, and keeps the same guarantees for
//! application writes and deletes.

mod common;

use std::time::Duration;

use common::{Env, MAPPING_V2};
use reindexd::copy::drive;
use reindexd::migration::Action;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_copy_follows_the_task_and_respects_app_writes() {
    let (caps, info) = common::capabilities::of_test_node().await;
    if !caps.painless || !caps.reindex {
        return common::capabilities::not_on(&info, "the server engine", "_reindex and painless");
    }
    let env = Env::with_index_options(
        "server",
        &["kb"],
        "[copy]\npage_size = 100\ncheckpoint_interval = \"1s\"",
        "engine = \"server\"",
    )
    .await;
    let m = &env.migrator;
    m.init("kb").await.unwrap();
    env.load_docs("kb", 3_000).await;
    env.set_mapping("kb", MAPPING_V2);
    let target = m
        .reindex("kb")
        .await
        .unwrap()
        .phase
        .write_index()
        .to_owned();
    // Slow at first, so the application's writes race the copy.
    m.update_copy("kb", Action::Throttle, |c| {
        c.requests_per_second = Some(300.0)
    })
    .await
    .unwrap();
    let copy = {
        let m = m.clone();
        tokio::spawn(
            async move { drive(&m, "kb", "test-server", &common::detached_handle("kb")).await },
        )
    };

    let alias = env.write_alias("kb");
    let mut body = String::new();
    for i in (0..3_000u64).step_by(60) {
        let routing = if i % 10 == 3 {
            format!(",\"routing\":\"r{}\"", i % 4)
        } else {
            String::new()
        };
        body.push_str(&format!(
            "{{\"delete\":{{\"_index\":\"{alias}\",\"_id\":\"{i}\"{routing}}}}}\n"
        ));
        let j = i + 1;
        let routing = if j % 10 == 3 {
            format!(",\"routing\":\"r{}\"", j % 4)
        } else {
            String::new()
        };
        body.push_str(&format!("{{\"index\":{{\"_index\":\"{alias}\",\"_id\":\"{j}\"{routing}}}}}\n{{\"n\":{j},\"title\":\"app wrote this\"}}\n"));
    }
    let response = env.es.bulk(body.into(), None, None).await.unwrap();
    assert!(!response.errors);

    // The task is started and recorded; lift the throttle through the state.
    let task = common::eventually_value(
        "the _reindex task recorded in the state",
        Duration::from_secs(30),
        || async {
            let stored = m.load("kb").await.map_err(|e| e.to_string())?;
            let copy = stored.state.phase.copy().ok_or("no copy in the state")?;
            copy.task.clone().ok_or_else(|| format!("{copy:?}"))
        },
    )
    .await;
    assert!(env.es.get_task(&task).await.is_ok());
    m.update_copy("kb", Action::Throttle, |c| c.requests_per_second = None)
        .await
        .unwrap();

    let state = tokio::time::timeout(Duration::from_secs(120), copy)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(state.phase.name(), "ready", "{:?}", state.phase);
    let p = state.phase.copy().unwrap();
    assert_eq!(p.total, 3_000);
    assert_eq!(p.copied + p.superseded, 3_000);
    assert!(
        p.superseded >= 50,
        "application writes and deletes must beat the copy: {p:?}"
    );

    env.es.refresh(&target).await.unwrap();
    // 50 deleted, 50 overwritten: 2950 documents, none resurrected.
    assert_eq!(env.es.count(&target).await.unwrap(), 2_950);
    for i in (0..3_000u64).step_by(60) {
        assert!(
            env.es
                .get_doc(&target, &i.to_string())
                .await
                .unwrap()
                .is_none(),
            "{i} resurrected"
        );
    }
    let overwritten = env.es.get_doc(&target, "61").await.unwrap().unwrap();
    assert_eq!(
        overwritten.source,
        json!({"n": 61, "title": "app wrote this"})
    );
}
