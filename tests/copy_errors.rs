//! How a copy meets errors, through the fault proxy in front of the real
//! node: one that waiting can fix is retried from the last checkpoint and
//! shown in `status` meanwhile; one that it cannot (a 405 of a missing
//! endpoint) ends the copy `failed` with the cluster's answer, instead of
//! an endless silent retry.

mod common;

use std::time::Duration;

use common::proxy::{Fault, FaultProxy, Match, Rule};
use common::Env;
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_fails_the_copy_with_the_clusters_answer() {
    let proxy = FaultProxy::start(&common::es_url());
    let env = Env::behind_proxy(proxy.url(), "perm", &["kb"], "").await;
    let (_, _target) = env.stage1("kb", 200).await;
    // An engine without the `GET /` endpoint (a distribution lacking it).
    let rule = proxy.inject(
        Rule::new(
            Match::path(Method::GET, "/"),
            Fault::RespondWithoutForwarding(405),
        )
        .always(),
    );
    let state = env.spawn_copy("kb", "perm-test").await.unwrap().unwrap();
    assert!(rule.fired() >= 1);
    assert_eq!(state.phase.name(), "failed", "{:?}", state.phase);
    let reindexd::migration::Phase::Failed { reason, .. } = &state.phase else {
        unreachable!()
    };
    assert!(
        reason.contains("405") && reason.contains("GET /"),
        "{reason}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_error_is_retried_and_shown_until_it_goes() {
    let proxy = FaultProxy::start(&common::es_url());
    let env = Env::behind_proxy(proxy.url(), "trans", &["kb"], "").await;
    let (_, target) = env.stage1("kb", 200).await;
    // Opening the copy's point in time, as each engine spells it.
    let (_, info) = common::client().await;
    let open_pit = match info.engine {
        reindexd::es::Engine::Elasticsearch => "/_pit",
        reindexd::es::Engine::OpenSearch => "/_search/point_in_time",
    };
    let rule = proxy.inject(
        Rule::new(
            Match::new(Method::POST, open_pit),
            Fault::RespondWithoutForwarding(503),
        )
        .always(),
    );
    let copy = env.spawn_copy("kb", "trans-test");
    common::eventually(
        "status shows the error retried",
        Duration::from_secs(30),
        || async {
            let view = env.migrator.view("kb").await.unwrap();
            view.progress
                .and_then(|p| p.last_error)
                .is_some_and(|e| e.contains("503"))
        },
    )
    .await;
    assert_eq!(
        env.migrator.load("kb").await.unwrap().state.phase.name(),
        "copying"
    );
    proxy.clear();
    let state = copy.await.unwrap().unwrap();
    assert!(rule.fired() >= 1);
    assert_eq!(state.phase.name(), "ready", "{:?}", state.phase);
    assert_eq!(
        state.phase.copy().unwrap().last_error,
        None,
        "cleared at the end"
    );
    let (direct, _) = common::client().await;
    direct.refresh(&target).await.unwrap();
    assert_eq!(direct.count(&target).await.unwrap(), 200);
    proxy.stop().await;
}
