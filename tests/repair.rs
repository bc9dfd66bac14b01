//! A lost state and drifted aliases, on the real node: the state index
//! deleted by hand is rebuilt from the aliases and the generations'
//! `_meta.reindexd` (by `repair`, and by the daemon at start); aliases moved
//! by hand are shown as drift and put back by `repair`; what the cluster
//! does not say is refused with the reason.

mod common;

use std::time::Duration;

use common::{code, Daemon, Env, MAPPING_V2};
use reindexd::es::AliasAction;
use reindexd::migration::{Repaired, WritesPolicy};

async fn drop_state_index(env: &Env) {
    env.es
        .delete_index(&format!("{}state", env.prefix))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_state_index_is_rebuilt_live_and_after_stage_1() {
    let env = Env::new("repair1", &["kb", "wiki"], "").await;
    let m = &env.migrator;
    let kb = env.init("kb").await;
    m.init("wiki").await.unwrap();
    env.load_docs("wiki", 50).await;
    env.set_mapping("wiki", MAPPING_V2);
    let stage1 = m.reindex("wiki").await.unwrap();
    let (wiki_a, wiki_b) = (
        stage1.phase.read_index().to_owned(),
        stage1.phase.write_index().to_owned(),
    );
    drop_state_index(&env).await;

    // Status says what is wrong instead of a plain "uninitialized".
    let view = m.view("kb").await.unwrap();
    assert_eq!(view.phase, "uninitialized");
    assert!(
        view.drift
            .as_deref()
            .unwrap_or("")
            .contains("reindexd repair kb"),
        "{view:?}"
    );

    // A new process (a fresh migrator, as the CLI is) repairs.
    let fresh = reindexd::migration::Migrator::new(env.es.clone(), env.config.clone());
    let (state, repaired) = fresh.repair("kb").await.unwrap();
    assert_eq!(repaired, Repaired::StateRebuilt);
    assert_eq!(state.phase, reindexd::migration::Phase::Live { index: kb });
    let (state, repaired) = fresh.repair("wiki").await.unwrap();
    assert_eq!(repaired, Repaired::StateRebuilt);
    assert_eq!(state.phase.name(), "failed");
    assert_eq!(
        (state.phase.read_index(), state.phase.write_index()),
        (wiki_a.as_str(), wiki_b.as_str())
    );
    // Nothing was written to the new generation: a bare rollback may go.
    let (state, _) = fresh.rollback("wiki", WritesPolicy::Refuse).await.unwrap();
    assert_eq!(state.phase.name(), "live");
    assert_eq!(
        env.aliases("wiki").await,
        (vec![wiki_a.clone()], vec![wiki_a])
    );
    let (_, repaired) = fresh.repair("kb").await.unwrap();
    assert_eq!(repaired, Repaired::Nothing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_rebuilds_a_lost_state_at_start() {
    let env = Env::new("repair2", &["kb"], "").await;
    let a = env.init("kb").await;
    drop_state_index(&env).await;
    let daemon = Daemon::start(&env).await;
    let view = daemon
        .wait_phase("kb", &["live"], Duration::from_secs(30))
        .await;
    assert_eq!(view["read_index"], a.as_str(), "{view}");
    assert!(view["drift"].is_null(), "{view}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drifted_aliases_show_in_status_and_repair_puts_them_back() {
    let env = Env::new("repair3", &["kb"], "").await;
    let a = env.init("kb").await;
    let stray = env.plain_index("stray").await;
    // Someone moves the write alias by hand.
    env.es
        .update_aliases(&[
            AliasAction::Remove {
                index: a.clone(),
                alias: env.write_alias("kb"),
                must_exist: Some(true),
            },
            AliasAction::Add {
                index: stray.clone(),
                alias: env.write_alias("kb"),
                is_write_index: Some(true),
            },
        ])
        .await
        .unwrap();
    let daemon = Daemon::start(&env).await;
    let (_, view) = daemon.get("/v1/indexes/kb").await;
    let drift = view["drift"].as_str().unwrap_or_default();
    assert!(drift.contains(&stray), "{view}");
    let (status, answer) = daemon.post("/v1/indexes/kb/repair", None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["repaired"], "aliases_moved");
    assert_eq!(env.aliases("kb").await, (vec![a.clone()], vec![a]));
    let (_, view) = daemon.get("/v1/indexes/kb").await;
    assert!(view["drift"].is_null(), "{view}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_refuses_what_the_cluster_does_not_say() {
    let env = Env::new("repair4", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    let before = env.snapshot(&["kb"]).await;
    let (status, err) = daemon.post("/v1/indexes/kb/repair", None).await;
    assert_eq!(code(status, &err), (409, Some("cannot_repair")), "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no alias"),
        "{err}"
    );
    assert_eq!(env.snapshot(&["kb"]).await, before);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_block_left_on_the_write_alias_shows_and_repair_lifts_it() {
    let env = Env::new("repair5", &["kb"], "").await;
    let a = env.init("kb").await;
    // What an interrupted `rollback --replay` can leave behind.
    env.es.set_write_block(&a, true).await.unwrap();
    let view = env.migrator.view("kb").await.unwrap();
    assert!(
        view.drift.as_deref().unwrap_or("").contains("blocked"),
        "{view:?}"
    );
    let (_, repaired) = env.migrator.repair("kb").await.unwrap();
    assert_eq!(repaired, Repaired::WritesUnblocked);
    assert!(!env.es.write_blocked(&a).await.unwrap());
    env.load_docs("kb", 10).await; // writes go through again
    assert!(env.migrator.view("kb").await.unwrap().drift.is_none());
}
