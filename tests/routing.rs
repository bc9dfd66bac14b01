//! Custom routing and a new shard count, on the real node: two source
//! documents with the same `_id` under different routings can land in one
//! shard of the new generation. The second must be a recorded failure with
//! its id and reason, never counted `superseded` and silently dropped.

mod common;

use common::Env;
use reindexd::copy::drive;
use serde_json::json;

const ONE_SHARD: &str = r#"{"settings": {"number_of_shards": 1, "number_of_replicas": 0},
 "mappings": {"dynamic": false, "properties": {"title": {"type": "text"}, "n": {"type": "long"}}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routing_collision_is_a_failure_not_a_superseded_copy() {
    let env = Env::new("collide", &["kb"], "").await;
    let m = &env.migrator;
    m.init("kb").await.unwrap();
    env.load_docs("kb", 200).await;
    // The same _id under several routings: the two-shard source keeps one
    // per shard it lands in.
    let alias = env.write_alias("kb");
    let mut body = String::new();
    for r in 0..8 {
        body.push_str(&format!(
            "{{\"index\":{{\"_index\":\"{alias}\",\"_id\":\"twin\",\"routing\":\"route{r}\"}}}}\n{{\"n\":{r}}}\n"
        ));
    }
    assert!(
        !env.es
            .bulk(body.into(), Some("true"), None)
            .await
            .unwrap()
            .errors
    );
    let source = m
        .load("kb")
        .await
        .unwrap()
        .state
        .phase
        .read_index()
        .to_owned();
    let counted = reqwest::Client::new()
        .post(format!("{}/{source}/_count", common::es_url()))
        .json(&json!({"query": {"ids": {"values": ["twin"]}}}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let twins = counted["count"].as_u64().unwrap();
    assert_eq!(twins, 2, "the source holds `twin` once per shard");

    env.set_mapping("kb", ONE_SHARD);
    m.reindex("kb").await.unwrap();
    let state = drive(m, "kb", "routing-test", &common::detached_handle("kb"))
        .await
        .unwrap();
    assert_eq!(state.phase.name(), "failed", "{:?}", state.phase);
    let copy = state.phase.copy().unwrap();
    assert_eq!(copy.total, 202);
    assert_eq!(
        (copy.copied, copy.failed, copy.superseded, copy.resent),
        (201, 1, 0, 0),
        "{copy:?}"
    );
    let failure = &copy.failures[0];
    assert_eq!((failure.id.as_str(), failure.status), ("twin", 409));
    assert!(
        failure.reason.contains("routing collision"),
        "{}",
        failure.reason
    );
}
