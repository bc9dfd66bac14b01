//! The fault-injecting proxy of `common::proxy`, proven on the real node.
//!
//! Each fault is driven through reindexd's own client (plain reqwest where
//! the bytes on the wire matter) and its outcome read back on the node
//! directly: an answer lost after the change applied leaves the change in
//! place, a refusal before forwarding leaves the node untouched, a delayed
//! request arrives late and whole, and every
//! rule's counters say that its fault fired, and how often.

mod common;

use std::time::Duration;

use common::proxy::{Fault, FaultProxy, Match, Rule};
use common::{eventually, IndexGuard};
use reindexd::es::{AliasAction, ConnectOptions, EsClient, EsError};
use reqwest::Method;
use serde_json::{json, Value};

/// How long a change applied behind a lost answer may take to show.
const PATIENCE: Duration = Duration::from_secs(30);

/// reindexd's client, talking to the node through `proxy`.
fn through(proxy: &FaultProxy, timeout: Duration) -> EsClient {
    let mut options = ConnectOptions::new(proxy.url().parse().unwrap());
    options.request_timeout = timeout;
    EsClient::connect(&options).unwrap()
}

fn one_shard() -> Value {
    json!({"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
}

fn add_alias(index: &str, alias: &str) -> AliasAction {
    AliasAction::Add {
        index: index.to_owned(),
        alias: alias.to_owned(),
        is_write_index: Some(true),
    }
}

/// `PUT /{index}`, and nothing under it.
fn create_of(index: &str) -> Match {
    Match::path(Method::PUT, &format!("/{index}"))
}

#[tokio::test]
async fn without_rules_every_call_passes_through() {
    let (node, _) = common::client().await;
    let guard = IndexGuard::new("pass");
    let (index, alias) = (guard.index("a"), guard.index("alias"));
    let proxy = FaultProxy::start(&common::es_url());
    let es = through(&proxy, Duration::from_secs(60));

    es.info().await.unwrap();
    es.create_index(&index, &one_shard()).await.unwrap();
    assert!(es.index_exists(&index).await.unwrap());
    let missing = guard.index("missing");
    assert!(!es.index_exists(&missing).await.unwrap(), "a 404 passes");
    let docs = common::ndjson_docs(&index, 0..50);
    let bulk = es.bulk(docs, Some("true"), None).await.unwrap();
    assert!(!bulk.errors, "the NDJSON body arrives intact");
    assert_eq!(bulk.items.len(), 50);
    assert_eq!(es.count(&index).await.unwrap(), 50);
    let found = es.all_docs(&index, "n", 100).await.unwrap();
    assert_eq!(found.len(), 50);
    assert_eq!(found[49]["title"], "doc 49");
    es.update_aliases(&[add_alias(&index, &alias)])
        .await
        .unwrap();

    assert_eq!(node.count(&index).await.unwrap(), 50);
    let links = node.get_aliases(&alias).await.unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].index, index);
    assert_eq!(proxy.forwarded(), proxy.received());
    assert!(proxy.forwarded() >= 8, "{}", proxy.forwarded());
    proxy.stop().await;
}

#[tokio::test]
async fn an_answer_lost_after_forwarding_leaves_the_change_applied() {
    let (node, _) = common::client().await;
    let guard = IndexGuard::new("lost");
    let index = guard.index("a");
    let proxy = FaultProxy::start(&common::es_url());
    let lost = proxy.inject(Rule::new(create_of(&index), Fault::ForwardThenRespond(500)));
    let es = through(&proxy, Duration::from_secs(60));

    let err = es.create_index(&index, &one_shard()).await.unwrap_err();
    assert!(matches!(err, EsError::Status { status: 500, .. }), "{err}");
    assert_eq!(err.error_type(), Some("injected_fault_exception"));
    assert_eq!(lost.fired(), 1);
    assert!(
        node.index_exists(&index).await.unwrap(),
        "the node created the index whose answer was lost"
    );
    let again = es.create_index(&index, &one_shard()).await.unwrap_err();
    assert_eq!(
        again.error_type(),
        Some("resource_already_exists_exception")
    );
    assert_eq!((lost.matched(), lost.fired()), (2, 1));
    proxy.stop().await;
}

#[tokio::test]
async fn a_refusal_before_forwarding_leaves_the_node_unchanged() {
    let (node, _) = common::client().await;
    let guard = IndexGuard::new("refused");
    let (index, alias) = (guard.index("a"), guard.index("alias"));
    node.create_index(&index, &one_shard()).await.unwrap();
    let proxy = FaultProxy::start(&common::es_url());
    let on_aliases = Match::new(Method::POST, "/_aliases");
    let refused = proxy.inject(Rule::new(on_aliases, Fault::RespondWithoutForwarding(503)));
    let es = through(&proxy, Duration::from_secs(60));

    let err = es
        .update_aliases(&[add_alias(&index, &alias)])
        .await
        .unwrap_err();
    assert!(matches!(err, EsError::Status { status: 503, .. }), "{err}");
    assert_eq!(refused.fired(), 1);
    assert_eq!(proxy.forwarded(), 0, "the node never saw the request");
    assert!(node.get_aliases(&alias).await.unwrap().is_empty());
    proxy.stop().await;
}

#[tokio::test]
async fn a_delayed_request_reaches_the_node_late_and_answers_in_full() {
    let (node, _) = common::client().await;
    let guard = IndexGuard::new("delay");
    let index = guard.index("a");
    let proxy = FaultProxy::start(&common::es_url());
    let delay = Duration::from_millis(300);
    let slow = proxy.inject(Rule::new(create_of(&index), Fault::DelayThenForward(delay)));
    let es = through(&proxy, Duration::from_secs(60));

    let started = std::time::Instant::now();
    es.create_index(&index, &one_shard()).await.unwrap();
    // A lower bound: the proxy held the request that long before the node
    // saw it (no upper bound, a slow machine may take longer).
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    assert_eq!(slow.fired(), 1);
    assert_eq!(proxy.forwarded(), 1);
    assert!(node.index_exists(&index).await.unwrap());
    proxy.stop().await;
}

#[tokio::test]
async fn a_hang_before_forwarding_times_out_and_changes_nothing() {
    let (node, _) = common::client().await;
    let guard = IndexGuard::new("hang");
    let index = guard.index("a");
    let proxy = FaultProxy::start(&common::es_url());
    let hang = proxy.inject(Rule::new(create_of(&index), Fault::HangWithoutForwarding));
    let es = through(&proxy, Duration::from_secs(1));

    let err = es.create_index(&index, &one_shard()).await.unwrap_err();
    assert!(matches!(err, EsError::Timeout { .. }), "{err}");
    assert_eq!(hang.fired(), 1);
    assert_eq!(proxy.forwarded(), 0);
    assert!(!node.index_exists(&index).await.unwrap());
    proxy.stop().await;
}

#[tokio::test]
async fn a_hang_after_forwarding_times_out_yet_applies_the_change() {
    let (node, _) = common::client().await;
    let guard = IndexGuard::new("fwdhang");
    let index = guard.index("a");
    let proxy = FaultProxy::start(&common::es_url());
    let hang = proxy.inject(Rule::new(create_of(&index), Fault::ForwardThenHang));
    let es = through(&proxy, Duration::from_secs(1));

    let err = es.create_index(&index, &one_shard()).await.unwrap_err();
    assert!(matches!(err, EsError::Timeout { .. }), "{err}");
    assert_eq!((hang.fired(), proxy.forwarded()), (1, 1));
    let (node, index) = (&node, &index);
    eventually(
        "the index exists on the node",
        PATIENCE,
        move || async move { node.index_exists(index).await.unwrap() },
    )
    .await;
    proxy.stop().await;
}

#[tokio::test]
async fn a_dropped_answer_fails_the_client_yet_the_bulk_applied() {
    let (node, _) = common::client().await;
    let guard = IndexGuard::new("dropped");
    let index = guard.index("a");
    node.create_index(&index, &one_shard()).await.unwrap();
    let proxy = FaultProxy::start(&common::es_url());
    let on_bulk = Match::new(Method::POST, "/_bulk");
    let second = proxy.inject(Rule::new(on_bulk, Fault::DropMidAnswer).starting_at(2));
    let es = through(&proxy, Duration::from_secs(60));
    let bulk =
        |ids: std::ops::Range<u64>| es.bulk(common::ndjson_docs(&index, ids), Some("true"), None);

    assert!(!bulk(0..10).await.unwrap().errors);
    assert_eq!((second.matched(), second.fired()), (1, 0));
    let err = bulk(10..20).await.unwrap_err();
    assert!(matches!(err, EsError::Unreachable { .. }), "{err}");
    assert_eq!((second.matched(), second.fired()), (2, 1));
    assert_eq!(node.count(&index).await.unwrap(), 20, "the node took it");
    assert!(!bulk(20..30).await.unwrap().errors, "the rule expired");
    assert_eq!(node.count(&index).await.unwrap(), 30);
    assert_eq!((second.matched(), second.fired()), (3, 1));
    proxy.stop().await;
}

#[tokio::test]
async fn a_dropped_answer_brings_its_head_and_half_its_body() {
    let (node, _) = common::client().await;
    let guard = IndexGuard::new("half");
    let index = guard.index("a");
    let proxy = FaultProxy::start(&common::es_url());
    let cut = proxy.inject(Rule::new(create_of(&index), Fault::DropMidAnswer));

    // Uncompressed, so that the bytes counted are the bytes sent.
    let http = reqwest::Client::builder().no_gzip().build().unwrap();
    let url = format!("{}/{index}", proxy.url());
    let put = http.put(url).json(&one_shard()).send().await;
    let mut answer = put.expect("the head arrives whole");
    assert_eq!(answer.status(), 200);
    let length = &answer.headers()[reqwest::header::CONTENT_LENGTH];
    let declared: u64 = length.to_str().unwrap().parse().unwrap();
    let mut received = 0;
    let error = loop {
        match answer.chunk().await {
            Ok(Some(chunk)) => received += chunk.len() as u64,
            Ok(None) => panic!("the answer ended cleanly after {received} bytes"),
            Err(e) => break e,
        }
    };
    assert_eq!(received, declared / 2, "{error:?}");
    assert_eq!(cut.fired(), 1);
    assert!(node.index_exists(&index).await.unwrap());
    proxy.stop().await;
}

#[tokio::test]
async fn a_rule_for_one_request_fires_once_then_requests_pass() {
    let (node, _) = common::client().await;
    let guard = IndexGuard::new("once");
    let index = guard.index("a");
    let proxy = FaultProxy::start(&common::es_url());
    let once = proxy.inject(Rule::new(
        create_of(&index),
        Fault::RespondWithoutForwarding(503),
    ));
    let es = through(&proxy, Duration::from_secs(60));

    let err = es.create_index(&index, &one_shard()).await.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    assert!(!node.index_exists(&index).await.unwrap());
    es.create_index(&index, &one_shard()).await.unwrap();
    assert!(node.index_exists(&index).await.unwrap());
    assert_eq!((once.matched(), once.fired()), (2, 1));
    assert_eq!((proxy.received(), proxy.forwarded()), (2, 1));
    proxy.stop().await;
}

#[tokio::test]
async fn a_rule_for_every_request_fires_until_cleared() {
    let (node, _) = common::client().await;
    let guard = IndexGuard::new("always");
    let index = guard.index("a");
    node.create_index(&index, &one_shard()).await.unwrap();
    let proxy = FaultProxy::start(&common::es_url());
    let on_count = Match::any_method(&format!("/{index}/_count"));
    let busy = proxy.inject(Rule::new(on_count, Fault::RespondWithoutForwarding(429)).always());
    let es = through(&proxy, Duration::from_secs(60));

    for _ in 0..3 {
        let err = es.count(&index).await.unwrap_err();
        assert_eq!(err.status(), Some(429), "{err}");
    }
    assert_eq!((busy.matched(), busy.fired()), (3, 3));
    proxy.clear();
    assert_eq!(es.count(&index).await.unwrap(), 0);
    assert_eq!(busy.matched(), 3, "a cleared rule sees nothing");
    assert_eq!(proxy.forwarded(), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn stopping_the_proxy_ends_a_hanging_request_and_closes_the_port() {
    common::client().await;
    let proxy = FaultProxy::start(&common::es_url());
    let hang = proxy.inject(Rule::new(
        Match::path(Method::GET, "/"),
        Fault::HangWithoutForwarding,
    ));
    let es = through(&proxy, Duration::from_secs(60));
    let call = tokio::spawn({
        let es = es.clone();
        async move { es.info().await }
    });
    let hang_ref = &hang;
    eventually(
        "the request hangs in the proxy",
        PATIENCE,
        move || async move { hang_ref.fired() == 1 },
    )
    .await;

    proxy.stop().await;
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.error_type(), Some("proxy_stopped_exception"), "{err}");
    let err = es.info().await.unwrap_err();
    assert!(matches!(err, EsError::Unreachable { .. }), "{err}");
}
