//! Rollback never loses the application's work silently, on the real node:
//! with writes and deletes since stage 1 a bare rollback is refused with
//! the exact numbers and changes nothing; `replay` puts every write and
//! delete into the old generation, which then equals what the application
//! expects document by document; `discard` rolls back at once and says
//! what it dropped.

mod common;

use std::time::Duration;

use common::app::App;
use common::binary::reindexd;
use common::{code, Daemon, Env, MAPPING_V2};
use serde_json::json;

/// Stage 1 of `kb` with a throttled copy while `app` writes; returns the
/// old and new generations once the copy is `ready`.
async fn copy_with_writer(env: &Env, app: &mut App, ops: u64) -> (String, String) {
    let state = env.migrator.reindex("kb").await.unwrap();
    let (old, new) = (
        state.phase.read_index().to_owned(),
        state.phase.write_index().to_owned(),
    );
    env.throttle("kb", 1_500.0).await;
    let copy = env.spawn_copy("kb", "rollback-test");
    app.run(&env.es, ops).await;
    let state = copy.await.unwrap().unwrap();
    assert_eq!(state.phase.name(), "ready", "{:?}", state.phase);
    (old, new)
}

/// A bare rollback over the API is refused as losing writes, saying `what`.
async fn bare_rollback_refused(daemon: &Daemon, what: &str) {
    let (status, err) = daemon.post("/v1/indexes/kb/rollback", None).await;
    assert_eq!(
        code(status, &err),
        (409, Some("writes_would_be_lost")),
        "{err}"
    );
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains(what), "{message}");
}

async fn setup(label: &str, initial: u64) -> (Env, App) {
    let env = Env::new(
        label,
        &["kb"],
        "[copy]\nbatch_bytes = \"16KiB\"\npage_size = 200\nslices = 2",
    )
    .await;
    env.migrator.init("kb").await.unwrap();
    env.load_docs("kb", initial).await;
    env.set_mapping("kb", MAPPING_V2);
    let app = App::new(&env.write_alias("kb"), initial, 0x0dd_ba11_5eed_0002);
    (env, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_puts_every_write_and_delete_since_stage_1_into_the_old_generation() {
    let (env, mut app) = setup("replay", 3_000).await;
    let (old, new) = copy_with_writer(&env, &mut app, 700).await;
    env.migrator.flip("kb").await.unwrap();
    // After the flip the application goes on writing into the new generation.
    app.run(&env.es, 300).await;
    let (written, deleted) = (app.live_writes(), app.deleted_originals());
    assert!(
        written > 100 && deleted > 50,
        "{written} written, {deleted} deleted"
    );

    let daemon = Daemon::start(&env).await;
    let before = env.snapshot(&["kb"]).await;
    bare_rollback_refused(
        &daemon,
        &format!("{written} documents written, {deleted} deleted"),
    )
    .await;
    let (status, err) = daemon
        .post("/v1/indexes/kb/rollback", Some(r#"{"writes": "keep"}"#))
        .await;
    assert_eq!(code(status, &err), (400, Some("malformed_body")), "{err}");
    assert_eq!(
        env.snapshot(&["kb"]).await,
        before,
        "a refused rollback changes nothing"
    );

    // The application keeps writing through the rollback, retrying what
    // the switch blocks.
    let writer = {
        let es = env.es.clone();
        let mut app = app;
        tokio::spawn(async move {
            app.run(&es, 150).await;
            app
        })
    };
    let (status, view) = daemon
        .post("/v1/indexes/kb/rollback", Some(r#"{"writes": "replay"}"#))
        .await;
    let mut app = writer.await.unwrap();
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["phase"], "live");
    let report = &view["rollback"];
    assert_eq!(report["writes"], "replay");
    assert!(report["written"].as_u64().unwrap() >= written, "{report}");
    assert!(report["deleted"].as_u64().unwrap() >= deleted, "{report}");
    assert!(report["write_pause_ms"].is_u64(), "{report}");
    assert_eq!(
        env.aliases("kb").await,
        (vec![old.clone()], vec![old.clone()])
    );
    app.assert_matches(&env.es, &old).await;
    // The abandoned generation is writable again and kept for inspection.
    let settings = env.es.get_settings(&new).await.unwrap();
    assert!(settings.get("index.blocks.write").is_none(), "{settings:?}");

    // The application carries on against the old generation.
    app.run(&env.es, 100).await;
    app.assert_matches(&env.es, &old).await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discard_rolls_back_at_once_and_reports_what_it_dropped() {
    let (env, mut app) = setup("discard", 1_500).await;
    let (old, new) = copy_with_writer(&env, &mut app, 0).await;
    app.run(&env.es, 300).await;
    let (written, deleted) = (app.live_writes(), app.deleted_originals());
    assert!(written > 0 && deleted > 0);

    let err = env
        .migrator
        .rollback("kb", reindexd::migration::WritesPolicy::Refuse)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("{written} documents written, {deleted} deleted")),
        "{err}"
    );
    // The same from the command line: refused in one line, then discarded.
    let config = env.config_path();
    let config = config.to_str().unwrap();
    reindexd(&["rollback", "kb", "--config", config])
        .await
        .fails_with(&format!("{written} documents written, {deleted} deleted"));
    let both = reindexd(&[
        "rollback",
        "kb",
        "--replay",
        "--discard-writes",
        "--config",
        config,
    ])
    .await;
    assert_eq!(both.code, Some(2), "a usage error: {both:?}");
    assert!(both.stderr.contains("cannot be used with"), "{both:?}");
    let run = reindexd(&["rollback", "kb", "--discard-writes", "--config", config]).await;
    run.ok();
    assert!(
        run.stdout
            .contains(&format!("discarded {written} writes and {deleted} deletes")),
        "{}",
        run.stdout
    );
    let state = env.migrator.load("kb").await.unwrap().state;
    assert_eq!(state.phase.name(), "live");
    assert_eq!(
        env.aliases("kb").await,
        (vec![old.clone()], vec![old.clone()])
    );
    // The old generation is as it was at stage 1; the writes stay in the new one.
    let untouched = App::new("unused", 1_500, 1);
    untouched.assert_matches(&env.es, &old).await;
    app.assert_matches(&env.es, &new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_copying_replay_waits_for_the_copy_and_a_bare_rollback_counts_writes() {
    let (env, mut app) = setup("copying", 3_000).await;
    let daemon = Daemon::start(&env).await;
    let new = daemon.start_slow_copy("kb", 200).await;
    app.run(&env.es, 60).await;
    let written = app.live_writes();
    assert!(written > 0);
    let before = env.snapshot(&["kb"]).await;

    let (status, err) = daemon
        .post("/v1/indexes/kb/rollback", Some(r#"{"writes": "replay"}"#))
        .await;
    assert_eq!(
        code(status, &err),
        (409, Some("illegal_transition")),
        "{err}"
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("waits for the copy to finish"),
        "{err}"
    );
    bare_rollback_refused(&daemon, &format!("{written} documents written")).await;
    assert_eq!(env.snapshot(&["kb"]).await, before);

    let (status, view) = daemon
        .post("/v1/indexes/kb/rollback", Some(r#"{"writes": "discard"}"#))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["rollback"]["written"], written, "{view}");
    assert_eq!(view["abandoned"], json!([new]));
    daemon
        .wait_phase("kb", &["live"], Duration::from_secs(30))
        .await;
    daemon.stop().await;
}
