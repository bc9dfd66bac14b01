//! Copies that reshape documents on the way: an ingest pipeline named by
//! the reindex request (or the configuration) runs on every copied
//! document, the mapping file's `index.default_pipeline` runs it on the
//! application's own writes during stage 1, and a document the pipeline
//! refuses is a recorded failure, never a silent gap. Bad pipelines are
//! refused before anything changes.

mod common;

use std::time::Duration;

use common::{Daemon, Env, MAPPING_V2};
use serde_json::{json, Value};

/// Creates (or replaces) ingest pipeline `name` on the test node.
async fn put_pipeline(name: &str, body: Value) {
    let response = reqwest::Client::new()
        .put(format!("{}/_ingest/pipeline/{name}", common::es_url()))
        .json(&body)
        .send()
        .await
        .expect("PUT pipeline");
    assert!(
        response.status().is_success(),
        "PUT pipeline {name}: {}",
        response.text().await.unwrap_or_default()
    );
}

/// Deletes pipeline `name` when dropped (pipelines are not indexes: the
/// test's index guard does not reach them).
struct PipelineGuard(String);

impl Drop for PipelineGuard {
    fn drop(&mut self) {
        let url = format!("{}/_ingest/pipeline/{}", common::es_url(), self.0);
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async { reqwest::Client::new().delete(url).send().await })
        })
        .join();
    }
}

/// MAPPING_V2 with `index.default_pipeline` set, and `title_upper` mapped.
fn mapping_with_default_pipeline(pipeline: &str) -> String {
    let mut mapping: Value = serde_json::from_str(MAPPING_V2).unwrap();
    mapping["settings"]["index.default_pipeline"] = json!(pipeline);
    mapping["mappings"]["properties"]["title_upper"] = json!({"type": "keyword"});
    mapping.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pipeline_derives_a_field_in_copied_and_live_documents() {
    let (caps, info) = common::capabilities::of_test_node().await;
    if !caps.ingest_processors {
        return common::capabilities::not_on(
            &info,
            "the pipeline transform test",
            "ingest processors (the ingest-common module)",
        );
    }
    let env = Env::new("pipe", &["kb"], "").await;
    // The same transform twice, each marking its documents: the copy's
    // (named by the request) and the index's default one (the mapping
    // file's, which the application's writes run).
    let derive = |via: &str| {
        json!({"processors": [
            {"uppercase": {"field": "title", "target_field": "title_upper"}},
            {"set": {"field": "via", "value": via}}
        ]})
    };
    let pipeline = format!("{}derive", env.prefix);
    let default = format!("{}derive-live", env.prefix);
    let _guards = (
        PipelineGuard(pipeline.clone()),
        PipelineGuard(default.clone()),
    );
    put_pipeline(&pipeline, derive("copy")).await;
    put_pipeline(&default, derive("default")).await;
    let daemon = Daemon::start(&env).await;
    let (status, view) = daemon.post("/v1/indexes/kb/init", None).await;
    assert_eq!(status, 200, "{view}");
    let source_docs = 3_000;
    env.load_docs("kb", source_docs).await;
    // One document the pipeline cannot take: `uppercase` on a number.
    let odd = "{\"index\":{\"_index\":\"ODD\",\"_id\":\"odd\"}}\n{\"n\":-1,\"title\":12345}\n";
    let answer = env
        .es
        .bulk(
            odd.replace("ODD", &env.write_alias("kb")).into(),
            None,
            None,
        )
        .await
        .unwrap();
    assert!(!answer.errors, "{answer:?}");
    env.es.refresh(&env.read_alias("kb")).await.unwrap();

    env.set_mapping("kb", &mapping_with_default_pipeline(&default));
    let body = json!({"pipeline": pipeline, "requests_per_second": 1500}).to_string();
    let (status, view) = daemon.post("/v1/indexes/kb/reindex", Some(&body)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["progress"]["pipeline"], pipeline.as_str(), "{view}");
    let target = view["write_index"].as_str().unwrap().to_owned();
    // The application writes during stage 1, through the write alias.
    let live: String = (0..20)
        .map(|i| {
            format!(
                "{{\"index\":{{\"_index\":\"{}\",\"_id\":\"live-{i}\"}}}}\n{{\"n\":{i},\"title\":\"live {i}\"}}\n",
                env.write_alias("kb")
            )
        })
        .collect();
    let answer = env.es.bulk(live.into(), None, None).await.unwrap();
    assert!(!answer.errors, "{answer:?}");

    let view = daemon
        .wait_phase("kb", &["ready", "failed"], Duration::from_secs(180))
        .await;
    // The one document the pipeline refused blocks `ready`, by id.
    assert_eq!(view["phase"], "failed", "{view}");
    assert_eq!(view["progress"]["failed"], 1, "{view}");
    assert_eq!(view["failures"][0]["id"], "odd", "{view}");
    let reason = view["failures"][0]["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "{view}");
    let (status, view) = daemon.post("/v1/indexes/kb/accept", None).await;
    assert_eq!(
        (status, view["phase"].as_str()),
        (200, Some("ready")),
        "{view}"
    );

    env.es.refresh(&target).await.unwrap();
    let docs = common::app::all_docs(&env.es, &target).await;
    assert_eq!(
        docs.len() as u64,
        source_docs + 20,
        "every copied and live document, not the refused one"
    );
    for (id, doc) in &docs {
        let title = doc["title"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: {doc}"));
        assert_eq!(
            doc["title_upper"],
            title.to_uppercase(),
            "{id} did not run the pipeline: {doc}"
        );
        let via = if id.starts_with("live-") {
            "default"
        } else {
            "copy"
        };
        assert_eq!(doc["via"], via, "{id}: {doc}");
    }
    assert!(
        docs.contains_key("live-7"),
        "a live write is in the new generation"
    );
    assert!(!docs.contains_key("odd"));
}

#[tokio::test]
async fn a_pipeline_that_does_not_exist_is_refused_and_nothing_changes() {
    let env = Env::new("pipebad", &["kb"], "").await;
    env.init("kb").await;
    env.set_mapping("kb", MAPPING_V2);
    let daemon = Daemon::start(&env).await;
    let before = env.snapshot(&["kb"]).await;
    let missing = format!("{}missing", env.prefix);
    let rows = [
        (json!({"pipeline": missing}), 409, "unknown_pipeline"),
        (json!({"pipeline": "has space"}), 400, "invalid_value"),
        (
            json!({"engine": "external", "pipeline": "p"}),
            400,
            "invalid_value",
        ),
        (
            json!({"engine": "external", "requests_per_second": 10}),
            400,
            "invalid_value",
        ),
        (json!({"engine": "bogus"}), 400, "malformed_body"),
    ];
    for (body, want_status, want_code) in rows {
        let (status, answer) = daemon
            .post("/v1/indexes/kb/reindex", Some(&body.to_string()))
            .await;
        assert_eq!(
            common::code(status, &answer),
            (want_status, Some(want_code)),
            "{body}: {answer}"
        );
        assert_eq!(
            env.snapshot(&["kb"]).await,
            before,
            "{body} changed the cluster"
        );
    }
    // The mapping file's default pipeline is checked the same way.
    let mut mapping: Value = serde_json::from_str(MAPPING_V2).unwrap();
    mapping["settings"]["index.default_pipeline"] = json!(missing);
    env.set_mapping("kb", &mapping.to_string());
    let (status, answer) = daemon.post("/v1/indexes/kb/reindex", None).await;
    assert_eq!(
        common::code(status, &answer),
        (409, Some("unknown_pipeline")),
        "{answer}"
    );
    assert_eq!(env.snapshot(&["kb"]).await, before);
}

#[tokio::test]
async fn a_pipeline_on_a_cluster_without_an_ingest_node_is_refused_and_nothing_changes() {
    let url = common::tiny_queue_url();
    common::require_node(&url, common::TINY_QUEUE_START).await;
    // The constrained node must really lack the role, or the refusal below
    // would be tested against nothing.
    let nodes: Value = reqwest::get(format!("{url}/_nodes?filter_path=nodes.*.roles"))
        .await
        .expect("GET _nodes")
        .json()
        .await
        .expect("_nodes is JSON");
    let roles: Vec<&Value> = nodes["nodes"]
        .as_object()
        .expect("nodes")
        .values()
        .flat_map(|n| n["roles"].as_array().expect("roles"))
        .collect();
    assert!(!roles.is_empty(), "{nodes}");
    assert!(
        roles.iter().all(|r| *r != "ingest"),
        "the constrained node has the ingest role: {nodes}"
    );

    let env = Env::on_node(&url, "pipenoing", &["kb"], "").await;
    env.init("kb").await;
    env.load_docs("kb", 20).await;
    env.set_mapping("kb", MAPPING_V2);
    let daemon = Daemon::start(&env).await;
    let before = env.snapshot(&["kb"]).await;
    let body = json!({"pipeline": format!("{}derive", env.prefix)});
    let (status, answer) = daemon
        .post("/v1/indexes/kb/reindex", Some(&body.to_string()))
        .await;
    assert_eq!(
        common::code(status, &answer),
        (409, Some("no_ingest_node")),
        "{answer}"
    );
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("ingest role"), "{answer}");
    assert_eq!(env.snapshot(&["kb"]).await, before, "the cluster changed");
    // Without a pipeline the same stage 1 goes ahead on that node.
    let (status, answer) = daemon
        .post(
            "/v1/indexes/kb/reindex",
            Some(&json!({"engine": "external"}).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
}
