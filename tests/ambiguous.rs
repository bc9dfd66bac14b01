//! Lost answers on every mutating call of stage 1, the copy, `filled`,
//! flip, rollback and cleanup, from
//! the fault proxy in front of the real node, with an application writing
//! through the aliases: the answer lost after the change applied (a 500,
//! a dropped connection, a hang), and the refusal before it. Each ends with
//! the state and the aliases agreeing (no drift), the write alias on an
//! index holding every acknowledged write and no deleted document, and no
//! index that carries an alias deleted.

mod common;

use std::time::Duration;

use common::app::App;
use common::proxy::{Fault, FaultProxy, Match, Rule};
use common::{Env, MAPPING_V2};
use reindexd::config::CopyEngine;
use reindexd::copy::drive;
use reindexd::es::{ConnectOptions, EsClient};
use reindexd::migration::{FillPlan, Migrator, WritesPolicy};
use reqwest::Method;

const INITIAL: u64 = 300;

/// The faults, and whether the cluster applied the call.
fn faults() -> Vec<(Fault, bool)> {
    vec![
        (Fault::ForwardThenRespond(500), true),
        (Fault::DropMidAnswer, true),
        (Fault::ForwardThenHang, true),
        (Fault::RespondWithoutForwarding(500), false),
    ]
}

/// A test's world: the env reaches the node through the proxy, the
/// migrator gives up on a call after 3 s, `direct` bypasses the proxy.
struct World {
    env: Env,
    proxy: FaultProxy,
    migrator: Migrator,
    direct: EsClient,
}

impl World {
    async fn new(label: &str) -> World {
        Self::with(label, "").await
    }

    async fn with(label: &str, extra: &str) -> World {
        let proxy = FaultProxy::start(&common::es_url());
        let env = Env::behind_proxy(proxy.url(), label, &["kb"], extra).await;
        let mut options = ConnectOptions::new(proxy.url().parse().unwrap());
        options.request_timeout = Duration::from_secs(3);
        let migrator = Migrator::new(EsClient::connect(&options).unwrap(), env.config.clone());
        let (direct, _) = common::client().await;
        env.migrator.init("kb").await.unwrap();
        env.load_docs("kb", INITIAL).await;
        env.set_mapping("kb", MAPPING_V2);
        World {
            env,
            proxy,
            migrator,
            direct,
        }
    }

    /// Runs the copy of a `copying` index to its end.
    async fn finish_copy(&self) {
        let state = self.migrator.load("kb").await.unwrap().state;
        if state.phase.name() == "copying" {
            let handle = common::detached_handle("kb");
            let state = drive(&self.migrator, "kb", "ambiguous-test", &handle)
                .await
                .unwrap();
            assert_eq!(state.phase.name(), "ready", "{:?}", state.phase);
        }
    }

    /// State and aliases agree, and the write alias's index holds what the
    /// application expects.
    async fn assert_consistent(&self, app: &App, what: &str) {
        let state = self.migrator.load("kb").await.unwrap().state;
        let drift = self.migrator.drift(&state).await.unwrap();
        assert_eq!(drift, None, "{what}: drift");
        let (_, write) = self.env.aliases("kb").await;
        assert_eq!(write, vec![state.phase.write_index().to_owned()], "{what}");
        app.assert_matches(&self.direct, &write[0]).await;
    }

    async fn stop(self) {
        self.proxy.stop().await;
    }
}

/// The application writes `ops` operations in the background.
fn writer(direct: &EsClient, mut app: App, ops: u64) -> tokio::task::JoinHandle<App> {
    let es = direct.clone();
    tokio::spawn(async move {
        app.run(&es, ops).await;
        app
    })
}

fn state_write(env: &Env) -> Match {
    Match::new(Method::PUT, &format!("/{}state/_doc/kb", env.prefix))
}

fn aliases() -> Match {
    Match::path(Method::POST, "/_aliases")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stage_1_settles_every_lost_answer() {
    let w = World::new("amb1").await;
    let mut app = App::new(&w.env.write_alias("kb"), INITIAL, 0xa11_0001);
    let create = || Match::new(Method::PUT, &format!("/{}kb_", w.env.prefix));
    let mut calls = vec![("create", &create as &dyn Fn() -> Match)];
    let state = || state_write(&w.env);
    calls.push(("state", &state));
    calls.push(("aliases", &aliases));
    for (call, on) in calls {
        for (fault, applied) in faults() {
            let what = format!("stage 1, {call}, {fault:?}");
            let before = w.env.snapshot(&["kb"]).await;
            let rule = w.proxy.inject(Rule::new(on(), fault));
            let running = writer(&w.direct, app, 40);
            let result = w.migrator.reindex("kb").await;
            app = running.await.unwrap();
            assert_eq!(rule.fired(), 1, "{what}: the fault fired");
            if applied {
                let state = result.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(state.phase.name(), "copying", "{what}");
                w.finish_copy().await;
                w.assert_consistent(&app, &what).await;
                // Back to live for the next round; the writes go along.
                w.migrator
                    .rollback("kb", WritesPolicy::Replay)
                    .await
                    .unwrap();
            } else {
                result.expect_err(&what);
                assert_eq!(
                    w.env.snapshot(&["kb"]).await,
                    before,
                    "{what}: nothing changed"
                );
            }
            w.assert_consistent(&app, &what).await;
        }
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flip_and_rollback_settle_every_lost_answer() {
    let w = World::new("amb2").await;
    let mut app = App::new(&w.env.write_alias("kb"), INITIAL, 0xa11_0002);
    let state = || state_write(&w.env);
    for (call, on) in [
        ("state", &state as &dyn Fn() -> Match),
        ("aliases", &aliases),
    ] {
        for (fault, applied) in faults() {
            let running = writer(&w.direct, app, 30);
            w.migrator.reindex("kb").await.unwrap();
            w.finish_copy().await;
            app = running.await.unwrap();

            let what = format!("flip, {call}, {fault:?}");
            let rule = w.proxy.inject(Rule::new(on(), fault));
            let result = w.migrator.flip("kb").await;
            assert_eq!(rule.fired(), 1, "{what}: the fault fired");
            let phase = w.migrator.load("kb").await.unwrap().state.phase.name();
            assert_eq!(result.is_ok(), applied, "{what}: {result:?}");
            assert_eq!(phase, if applied { "flipped" } else { "ready" }, "{what}");
            w.assert_consistent(&app, &what).await;

            app = writer(&w.direct, app, 30).await.unwrap();
            let what = format!("rollback --replay, {call}, {fault:?}");
            let rule = w.proxy.inject(Rule::new(on(), fault));
            let result = w.migrator.rollback("kb", WritesPolicy::Replay).await;
            assert_eq!(rule.fired(), 1, "{what}: the fault fired");
            assert_eq!(result.is_ok(), applied, "{what}: {result:?}");
            w.assert_consistent(&app, &what).await;
            if !applied {
                w.migrator
                    .rollback("kb", WritesPolicy::Replay)
                    .await
                    .unwrap();
                w.assert_consistent(&app, &what).await;
            }
            assert_eq!(
                w.migrator.load("kb").await.unwrap().state.phase.name(),
                "live"
            );
        }
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_copy_and_cleanup_settle_every_lost_answer() {
    let w = World::with(
        "amb3",
        "[copy]\nbatch_bytes = \"16KiB\"\npage_size = 100\ncheckpoint_interval = \"1s\"",
    )
    .await;
    let mut app = App::new(&w.env.write_alias("kb"), INITIAL, 0xa11_0003);
    let bulk = || Match::path(Method::POST, "/_bulk");
    let rules = [
        w.proxy
            .inject(Rule::new(bulk(), Fault::ForwardThenRespond(500)).starting_at(2)),
        w.proxy
            .inject(Rule::new(bulk(), Fault::DropMidAnswer).starting_at(4)),
        w.proxy
            .inject(Rule::new(bulk(), Fault::RespondWithoutForwarding(503)).starting_at(6)),
        w.proxy
            .inject(Rule::new(state_write(&w.env), Fault::ForwardThenRespond(500)).starting_at(2)),
        w.proxy.inject(
            Rule::new(state_write(&w.env), Fault::RespondWithoutForwarding(500)).starting_at(4),
        ),
    ];
    w.migrator.reindex("kb").await.unwrap();
    w.env.throttle("kb", 300.0).await;
    let running = writer(&w.direct, app, 150);
    w.finish_copy().await;
    app = running.await.unwrap();
    for rule in &rules {
        assert_eq!(rule.fired(), 1, "every fault fired");
    }
    let state = w.migrator.load("kb").await.unwrap().state;
    let copy = state.phase.copy().unwrap();
    assert_eq!(
        copy.copied + copy.superseded + copy.resent,
        INITIAL,
        "{copy:?}"
    );
    assert_eq!(copy.failed, 0, "{copy:?}");
    assert!(
        copy.resent > 0,
        "the bulks whose answers were lost came back as resent: {copy:?}"
    );
    w.assert_consistent(&app, "copy").await;

    // Cleanup of the abandoned generation, its delete answered with a 500
    // after it applied, then refused before it reached the node.
    for (fault, deleted) in [
        (Fault::ForwardThenRespond(500), true),
        (Fault::RespondWithoutForwarding(500), false),
    ] {
        let what = format!("cleanup, {fault:?}");
        let (state, _) = w
            .migrator
            .rollback("kb", WritesPolicy::Replay)
            .await
            .unwrap();
        let abandoned = state.abandoned.last().unwrap().clone();
        let rule = w.proxy.inject(Rule::new(
            Match::path(Method::DELETE, &format!("/{abandoned}")),
            fault,
        ));
        let result = w.migrator.cleanup("kb").await;
        assert_eq!(rule.fired(), 1, "{what}");
        assert_eq!(result.is_ok(), deleted, "{what}: {result:?}");
        assert_eq!(
            w.direct.index_exists(&abandoned).await.unwrap(),
            !deleted,
            "{what}"
        );
        let listed = w.migrator.load("kb").await.unwrap().state.abandoned;
        assert_eq!(listed.contains(&abandoned), !deleted, "{what}: {listed:?}");
        w.assert_consistent(&app, &what).await;
        if !deleted {
            w.migrator.cleanup("kb").await.unwrap();
            assert!(!w.direct.index_exists(&abandoned).await.unwrap());
        }
        w.migrator.reindex("kb").await.unwrap();
        w.finish_copy().await;
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_deleted_during_the_copy_fails_it_with_the_reason() {
    let env = Env::new(
        "gone",
        &["kb"],
        "[copy]\ncheckpoint_interval = \"1s\"\npage_size = 100",
    )
    .await;
    let (_, target) = env.stage1("kb", 2_000).await;
    env.throttle("kb", 300.0).await;
    let copy = env.spawn_copy("kb", "gone-test");
    common::eventually("some documents copied", Duration::from_secs(30), || async {
        let _ = env.es.refresh(&target).await;
        env.es.count(&target).await.is_ok_and(|n| n > 0)
    })
    .await;
    env.es.delete_index(&target).await.unwrap();
    let state = copy.await.unwrap().unwrap();
    assert_eq!(state.phase.name(), "failed", "{:?}", state.phase);
    let reindexd::migration::Phase::Failed { reason, .. } = &state.phase else {
        unreachable!()
    };
    assert!(
        reason.contains(&target) && (reason.contains("deleted") || reason.contains("replaced")),
        "{reason}"
    );
    // Rollback is still there: the old generation takes reads and writes.
    let (state, _) = env
        .migrator
        .rollback("kb", WritesPolicy::Discard)
        .await
        .unwrap();
    assert_eq!(state.phase.name(), "live");
    let old = state.phase.read_index().to_owned();
    assert_eq!(env.aliases("kb").await, (vec![old.clone()], vec![old]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_settles_lost_answers_of_its_write_block_and_its_bulks() {
    let w = World::new("amb4").await;
    let mut app = App::new(&w.env.write_alias("kb"), INITIAL, 0xa11_0004);
    let block = || Match::new(Method::PUT, "/_block/write");
    let bulk = || Match::path(Method::POST, "/_bulk");
    for (call, on) in [("block", &block as &dyn Fn() -> Match), ("bulk", &bulk)] {
        for (fault, _) in faults() {
            let what = format!("rollback --replay, {call}, {fault:?}");
            w.migrator.reindex("kb").await.unwrap();
            w.finish_copy().await;
            app = writer(&w.direct, app, 30).await.unwrap();
            let new = w
                .migrator
                .load("kb")
                .await
                .unwrap()
                .state
                .phase
                .write_index()
                .to_owned();
            let rule = w.proxy.inject(Rule::new(on(), fault));
            let result = w.migrator.rollback("kb", WritesPolicy::Replay).await;
            assert_eq!(rule.fired(), 1, "{what}: the fault fired");
            // A lost block answer fails the rollback and leaves no block; a
            // lost bulk answer is sent again (index and delete are
            // idempotent) and the rollback goes through.
            assert_eq!(result.is_ok(), call == "bulk", "{what}: {result:?}");
            assert!(
                !w.direct.write_blocked(&new).await.unwrap(),
                "{what}: no block left"
            );
            w.assert_consistent(&app, &what).await;
            if result.is_err() {
                w.migrator
                    .rollback("kb", WritesPolicy::Replay)
                    .await
                    .unwrap();
                w.assert_consistent(&app, &what).await;
            }
        }
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filled_settles_every_lost_answer() {
    let w = World::new("amb5").await;
    let external = FillPlan {
        engine: CopyEngine::External,
        pipeline: None,
        requests_per_second: None,
        background: false,
    };
    for call in ["settings", "state"] {
        for (fault, applied) in faults() {
            let what = format!("filled, {call}, {fault:?}");
            let state = w.migrator.reindex_with("kb", &external).await.unwrap();
            assert_eq!(state.phase.name(), "filling", "{what}");
            let target = state.phase.write_index().to_owned();
            // The application's refill: every document again, through the
            // write alias.
            w.env.load_docs("kb", INITIAL).await;
            let on = match call {
                "state" => state_write(&w.env),
                _ => Match::path(Method::PUT, &format!("/{target}/_settings")),
            };
            let rule = w.proxy.inject(Rule::new(on, fault));
            let result = w.migrator.filled("kb").await;
            assert_eq!(rule.fired(), 1, "{what}: the fault fired");
            let phase = w.migrator.load("kb").await.unwrap().state.phase.name();
            if call == "state" {
                // The state write decides: applied is ready (read back),
                // refused is still filling.
                assert_eq!(result.is_ok(), applied, "{what}: {result:?}");
            }
            let expected = if result.is_ok() { "ready" } else { "filling" };
            assert_eq!(phase, expected, "{what}: {result:?}");
            if result.is_err() {
                // Asked again, `filled` puts the settings again and ends
                // the fill.
                let state = w.migrator.filled("kb").await.unwrap();
                assert_eq!(state.phase.name(), "ready", "{what}");
            }
            let state = w.migrator.load("kb").await.unwrap().state;
            let copy = state.phase.copy().unwrap();
            assert_eq!((copy.total, copy.copied), (INITIAL, INITIAL), "{what}");
            assert_eq!(w.migrator.drift(&state).await.unwrap(), None, "{what}");
            let settings = w.direct.get_settings(&target).await.unwrap();
            assert_eq!(settings["index.refresh_interval"], "1s", "{what}");
            // Back to live for the next round.
            w.migrator
                .rollback("kb", WritesPolicy::Discard)
                .await
                .unwrap();
            w.migrator.cleanup("kb").await.unwrap();
        }
    }
    w.stop().await;
}
