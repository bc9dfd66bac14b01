//! Live control and visibility of a running copy: documents the new mapping
//! refuses, throttle, pause/resume, and metrics that agree with the state.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{metric, Daemon, Env, MAPPING_V2};
use reindexd::copy::{drive, Control, CopyHandle, RunState};
use reindexd::migration::Action;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_documents_are_recorded_and_the_rest_copied() {
    let env = Env::new("refused", &["kb"], "").await;
    let m = &env.migrator;
    m.init("kb").await.unwrap();
    env.load_docs("kb", 2_000).await;
    // Valid for the old mapping (`boost` is not mapped there), not for the new.
    let alias = env.write_alias("kb");
    let mut body = String::new();
    for i in 0..7 {
        body.push_str(&format!("{{\"index\":{{\"_index\":\"{alias}\",\"_id\":\"bad-{i}\"}}}}\n{{\"n\":{i},\"boost\":\"not a number\"}}\n"));
    }
    assert!(
        !env.es
            .bulk(body.into(), Some("true"), None)
            .await
            .unwrap()
            .errors
    );
    env.set_mapping("kb", MAPPING_V2);
    let target = m
        .reindex("kb")
        .await
        .unwrap()
        .phase
        .write_index()
        .to_owned();

    let state = drive(m, "kb", "refused-test", &common::detached_handle("kb"))
        .await
        .unwrap();
    assert_eq!(state.phase.name(), "failed", "{:?}", state.phase);
    let p = state.phase.copy().unwrap();
    assert_eq!((p.total, p.copied, p.failed), (2_007, 2_000, 7));
    let mut ids: Vec<&str> = p.failures.iter().map(|f| f.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["bad-0", "bad-1", "bad-2", "bad-3", "bad-4", "bad-5", "bad-6"]
    );
    assert!(
        p.failures
            .iter()
            .all(|f| f.status == 400 && f.reason.contains("boost")),
        "{:?}",
        p.failures
    );
    let reindexd::migration::Phase::Failed { reason, .. } = &state.phase else {
        unreachable!()
    };
    assert!(
        reason.contains("7 documents failed") && reason.contains("reindexd accept"),
        "{reason}"
    );
    // The target's own settings are back even though it failed.
    assert_eq!(
        env.es.get_settings(&target).await.unwrap()["index.refresh_interval"],
        "1s"
    );
    env.es.refresh(&target).await.unwrap();
    assert_eq!(env.es.count(&target).await.unwrap(), 2_000);

    // Not ready: no flip until the operator accepts the failures.
    assert!(m
        .flip("kb")
        .await
        .unwrap_err()
        .to_string()
        .contains("it is failed"));
    assert_eq!(m.accept("kb").await.unwrap().phase.name(), "ready");
    assert_eq!(m.flip("kb").await.unwrap().phase.read_index(), target);
}

/// The throttle, pause and resume by their outcomes; the timing of pacing
/// and pause is `copy::control`'s scenario table, on a virtual clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_copy_is_exact_and_pause_stops_it() {
    let env = Env::new("throttle", &["kb"], "[copy]\npage_size = 200").await;
    let m = &env.migrator;
    m.init("kb").await.unwrap();
    let total = 3_000;
    env.load_docs("kb", total).await;
    env.set_mapping("kb", MAPPING_V2);
    let reindexed = m.reindex("kb").await.unwrap();
    let (source, target) = (
        reindexed.phase.read_index().to_owned(),
        reindexed.phase.write_index().to_owned(),
    );
    // At 400 documents a second a batch holds at most 100 documents.
    let rate = 400.0;
    let most_per_batch = 100;
    env.throttle("kb", rate).await;
    let handle = Arc::new(common::detached_handle("kb"));
    let copy = {
        let (m, handle) = (m.clone(), handle.clone());
        tokio::spawn(async move { drive(&m, "kb", "throttle-test", &handle).await })
    };
    common::wait_for_progress(&handle, 1).await;
    // The run took the stored throttle.
    assert_eq!(handle.control().requests_per_second, Some(rate));

    // Paused: the requests in flight finish, then nothing moves. Wait
    // until ten reads in a row, 100 ms apart, see the same count.
    set_control(m, &handle, true, Some(rate)).await;
    assert_eq!(handle.run_state(), RunState::Paused);
    let mut seen = (u64::MAX, 0);
    let held = common::eventually_value(
        "the paused copy stands still",
        Duration::from_secs(30),
        || {
            let now = common::copied_so_far(&handle);
            seen = (now, if now == seen.0 { seen.1 + 1 } else { 1 });
            let still = if seen.1 >= 10 {
                Ok(now)
            } else {
                Err(format!("{now} documents done, {} reads alike", seen.1))
            };
            async move { still }
        },
    )
    .await;
    assert!(
        held < total && !copy.is_finished(),
        "the copy ran on while paused: {held} of {total} documents done"
    );
    assert_eq!(handle.run_state(), RunState::Paused);
    let stored = m.load("kb").await.unwrap().state;
    let stored = stored.phase.copy().unwrap();
    assert!(stored.paused);
    assert_eq!(stored.requests_per_second, Some(rate));

    // Resumed, still throttled: the copy finishes.
    set_control(m, &handle, false, Some(rate)).await;
    let state = tokio::time::timeout(Duration::from_secs(120), copy)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(state.phase.name(), "ready", "{:?}", state.phase);
    let p = state.phase.copy().unwrap();
    assert_eq!((p.total, p.copied, p.failed), (total, total, 0));
    assert_eq!(p.requests_per_second, Some(rate));
    assert!(!p.paused);
    assert_eq!(handle.run_state(), RunState::Done);
    // The throttle shaped the batches: unthrottled, 3,000 small documents
    // fit one 8 MiB bulk body.
    let t = &handle.telemetry;
    let requests = t.bulk_ok.get() + t.bulk_retried.get();
    assert!(
        requests >= total / most_per_batch,
        "{requests} bulk requests for {total} documents at {rate}/s"
    );
    // An exact copy.
    env.es.refresh(&target).await.unwrap();
    let (old, new) = (
        common::app::all_docs(&env.es, &source).await,
        common::app::all_docs(&env.es, &target).await,
    );
    assert_eq!(old.len() as u64, total);
    assert!(old == new, "the copy differs from its source");
    env.cleanup().await;
}

/// Pause or throttle, as the API does it: stored state plus the running
/// copy's control.
async fn set_control(
    m: &reindexd::migration::Migrator,
    handle: &CopyHandle,
    paused: bool,
    rate: Option<f64>,
) {
    m.update_copy("kb", Action::Pause, |c| {
        c.paused = paused;
        c.requests_per_second = rate;
    })
    .await
    .unwrap();
    handle.set_control(Control {
        paused,
        requests_per_second: rate,
        background: false,
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_move_with_the_copy_and_agree_with_the_state() {
    // One bulk request in flight at most: the copy's limit (2 at the
    // start) is held at 1, which the gauge must show.
    let env = Env::new(
        "metrics",
        &["kb"],
        "[copy]\npage_size = 200\nmax_concurrency = 1",
    )
    .await;
    let daemon = Daemon::start(&env).await;
    daemon.post("/v1/indexes/kb/init", None).await;
    env.load_docs("kb", 6_000).await;
    env.set_mapping("kb", MAPPING_V2);
    let (status, _) = daemon
        .post(
            "/v1/indexes/kb/reindex",
            Some(r#"{"requests_per_second": 1500}"#),
        )
        .await;
    assert_eq!(status, 200);
    let scrape = || daemon.metrics();
    let label = "index=\"kb\"";
    let copied = |t: &str| metric(t, "reindexd_documents_copied_total", label);
    // Two scrapes while copying, the second once the counter moved on.
    let first = common::eventually_value(
        "a scrape of a copy under way",
        Duration::from_secs(30),
        || async {
            let text = scrape().await;
            match copied(&text) {
                Some(n) if n > 0.0 => Ok(text),
                _ => Err(text),
            }
        },
    )
    .await;
    assert_eq!(
        metric(&first, "reindexd_phase", "phase=\"copying\""),
        Some(1.0),
        "{first}"
    );
    let second = common::eventually_value(
        "the copied counter moving on",
        Duration::from_secs(30),
        || async {
            let text = scrape().await;
            match copied(&text) > copied(&first) {
                true => Ok(text),
                false => Err(format!("{:?} then {:?}", copied(&first), copied(&text))),
            }
        },
    )
    .await;
    assert_eq!(
        metric(&first, "reindexd_source_documents", label),
        Some(6_000.0)
    );
    assert!(metric(&second, "reindexd_bulk_requests_total", "outcome=\"ok\"").unwrap() > 0.0);
    assert_eq!(
        metric(&second, "reindexd_concurrency_limit", label),
        Some(1.0),
        "copy.max_concurrency bounds the running copy: {second}"
    );

    let view = daemon
        .wait_phase("kb", &["ready"], Duration::from_secs(60))
        .await;
    let last = scrape().await;
    assert_eq!(
        metric(&last, "reindexd_phase", "phase=\"ready\""),
        Some(1.0)
    );
    assert_eq!(copied(&last), view["progress"]["copied"].as_f64());
    assert_eq!(
        metric(&last, "reindexd_documents_superseded_total", label),
        view["progress"]["superseded"].as_f64()
    );
    assert_eq!(metric(&last, "reindexd_progress_ratio", label), Some(1.0));
    assert_eq!(
        metric(&last, "reindexd_alias_changes_total", "kind=\"write\""),
        Some(1.0)
    );
    assert!(last.trim_end().ends_with("# EOF"));
    daemon.stop().await;
}
