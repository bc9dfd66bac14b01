//! Background priority against the real node: a copy switched to
//! `background` while its search probe says live search suffers backs off
//! (the concurrency limit drops to one, the pace it allows itself falls to
//! its floor, as the metrics show) without stopping, grows back once
//! switched to `normal`, and still ends with an exact copy. Search that
//! stays slow while the copy is held at its floor (probes slowed by the
//! fault proxy for good) becomes the new baseline, and the copy speeds up
//! again. Bad priority requests change nothing.

mod common;

use std::time::Duration;

use common::proxy::{Fault, FaultProxy, Match, Rule};
use common::{metric, Daemon, Env, MAPPING_V2};
use reqwest::Method;

/// The value of `name` for index `kb` now.
async fn sample(daemon: &Daemon, name: &str) -> Option<f64> {
    metric(&daemon.metrics().await, name, "index=\"kb\"")
}

/// The copy ends `ready` with all `docs` documents in `target`.
async fn ends_ready_and_exact(env: &Env, daemon: &Daemon, target: &str, docs: u64) {
    let view = daemon
        .wait_phase("kb", &["ready", "failed"], Duration::from_secs(180))
        .await;
    assert_eq!(view["phase"], "ready", "{view}");
    assert_eq!(env.es.count(target).await.unwrap(), docs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_background_copy_backs_off_while_search_suffers() {
    // A probe the node refuses: "cannot tell how search is doing" counts
    // as suffering, so the back-off is certain rather than a matter of
    // load (the probe's latency rule is unit-tested in copy/priority.rs).
    let env = Env::new(
        "prio",
        &["kb"],
        "[copy]\nsearch_probe = '{\"query\": {\"no_such_query\": {}}}'\n",
    )
    .await;
    let daemon = Daemon::start(&env).await;
    env.init("kb").await;
    let docs = 6_000;
    env.load_docs("kb", docs).await;
    env.set_mapping("kb", MAPPING_V2);
    let (status, view) = daemon
        .post(
            "/v1/indexes/kb/reindex",
            Some(r#"{"requests_per_second": 1000}"#),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["progress"]["priority"], "normal", "{view}");
    let target = view["write_index"].as_str().unwrap().to_owned();

    let (status, view) = daemon
        .post(
            "/v1/indexes/kb/priority",
            Some(r#"{"priority": "background"}"#),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["progress"]["priority"], "background", "{view}");
    // Searches suffer at every probe: the pace falls a quarter a probe to
    // its floor of 50 documents a second, one bulk in flight.
    common::eventually(
        "the copy yields at most",
        Duration::from_secs(60),
        || async {
            sample(&daemon, "reindexd_copy_yield_documents_per_second").await == Some(50.0)
                && sample(&daemon, "reindexd_concurrency_limit").await == Some(1.0)
        },
    )
    .await;
    let (_, view) = daemon.get("/v1/indexes/kb").await;
    assert_eq!(view["phase"], "copying", "{view}");
    let copied = || async {
        sample(&daemon, "reindexd_documents_copied_total")
            .await
            .unwrap_or(0.0)
    };
    // Over a 3 s window at most 150 documents go, and a batch built
    // before the pace fell (up to 500 documents at background priority;
    // the pacer makes the next one wait its share at the new pace) plus
    // the small ones in flight; unyielding, the 1000 docs/s throttle
    // alone would copy about 3,000. An upper bound only: a slow machine
    // cannot make it fail.
    let before = copied().await;
    tokio::time::sleep(Duration::from_secs(3)).await; // the window measured
    let during = copied().await - before;
    assert!(
        during <= 700.0,
        "{during} documents copied in 3 s while yielding"
    );
    // Yielding is not stopping: the copy goes on at its floor.
    let at = copied().await;
    common::eventually(
        "the yielding copy goes on",
        Duration::from_secs(30),
        || async { copied().await > at },
    )
    .await;

    let (status, view) = daemon
        .post("/v1/indexes/kb/priority", Some(r#"{"priority": "normal"}"#))
        .await;
    assert_eq!(status, 200, "{view}");
    common::eventually("the pace is lifted", Duration::from_secs(30), || async {
        sample(&daemon, "reindexd_copy_yield_documents_per_second").await == Some(0.0)
    })
    .await;
    ends_ready_and_exact(&env, &daemon, &target, docs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_that_stays_slow_with_the_copy_at_its_floor_becomes_the_new_normal() {
    let proxy = FaultProxy::start(&common::es_url());
    let env = Env::behind_proxy(proxy.url(), "priorebase", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    env.init("kb").await;
    let docs = 6_000;
    env.load_docs("kb", docs).await;
    env.set_mapping("kb", MAPPING_V2);
    // The probe (`POST /kb_read/_search?filter_path=took&...`): the five
    // that make the baseline go through; every one after them answers
    // 40 ms late, for good — the machine got slower, whatever the copy does.
    let slow = proxy.inject(
        Rule::new(
            Match::new(Method::POST, "/_search?filter_path=took"),
            Fault::DelayThenForward(Duration::from_millis(40)),
        )
        .starting_at(6)
        .always(),
    );
    // Throttled, so that the copy outlasts a minute at its floor.
    let (status, view) = daemon
        .post(
            "/v1/indexes/kb/reindex",
            Some(r#"{"priority": "background", "requests_per_second": 200}"#),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let target = view["write_index"].as_str().unwrap().to_owned();
    common::eventually(
        "the copy yields down to its floor",
        Duration::from_secs(60),
        || async {
            sample(&daemon, "reindexd_copy_yield_documents_per_second").await == Some(50.0)
        },
    )
    .await;
    assert!(slow.fired() > 0, "no probe was slowed");
    // A minute of probes at the floor, all of them slow: 40 ms is the new
    // normal, the next probes are near it, and the pace grows again (and
    // is lifted once the copy no longer reaches it).
    common::eventually(
        "the yielding copy speeds up again",
        Duration::from_secs(150),
        || async {
            matches!(
                sample(&daemon, "reindexd_copy_yield_documents_per_second").await,
                Some(pace) if pace != 50.0
            )
        },
    )
    .await;
    ends_ready_and_exact(&env, &daemon, &target, docs).await;
    proxy.stop().await;
}

#[tokio::test]
async fn bad_priorities_are_refused_and_change_nothing() {
    let env = Env::with_index_options("priobad", &["kb"], "", "engine = \"server\"").await;
    let daemon = Daemon::start(&env).await;
    env.init("kb").await;
    env.set_mapping("kb", MAPPING_V2);
    let before = env.snapshot(&["kb"]).await;
    let rows = [
        (
            "/v1/indexes/kb/priority",
            r#"{"priority": "background"}"#,
            409,
            "illegal_transition",
        ),
        (
            "/v1/indexes/kb/priority",
            r#"{"priority": "urgent"}"#,
            400,
            "malformed_body",
        ),
        ("/v1/indexes/kb/priority", "{}", 400, "malformed_body"),
        (
            "/v1/indexes/kb/reindex",
            r#"{"priority": "urgent"}"#,
            400,
            "malformed_body",
        ),
        // The configured engine is the server's: it cannot yield.
        (
            "/v1/indexes/kb/reindex",
            r#"{"priority": "background"}"#,
            400,
            "invalid_value",
        ),
        (
            "/v1/indexes/kb/reindex",
            r#"{"engine": "external", "priority": "normal"}"#,
            400,
            "invalid_value",
        ),
    ];
    for (path, body, want_status, want_code) in rows {
        let (status, answer) = daemon.post(path, Some(body)).await;
        assert_eq!(
            common::code(status, &answer),
            (want_status, Some(want_code)),
            "{path} {body}: {answer}"
        );
        assert_eq!(env.snapshot(&["kb"]).await, before, "{path} {body}");
    }
}
