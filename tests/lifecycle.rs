//! The staged mapping change end to end over the HTTP API, against the
//! real node: init, stage 1, copy, stage 2, rollback, flip again, cleanup —
//! with a search probe that must never fail nor see fewer documents.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Daemon, Env, MAPPING_V2};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staged_change_with_zero_failed_searches() {
    let env = Env::new("life", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    let (status, view) = daemon.post("/v1/indexes/kb/init", None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["phase"], "live");
    let a = view["read_index"].as_str().unwrap().to_owned();
    assert_eq!(view["write_index"], a.as_str());
    assert!(a.starts_with(&format!("{}kb_2", env.prefix)), "{a}");

    let start_docs = 6_000;
    env.load_docs("kb", start_docs).await;

    // The probe searches the read alias all along.
    let stop = Arc::new(AtomicBool::new(false));
    let (searches, failures, min_hits) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(u64::MAX)),
    );
    let probe = {
        let (es, alias) = (env.es.clone(), env.read_alias("kb"));
        let (stop, searches, failures, min_hits) = (
            stop.clone(),
            searches.clone(),
            failures.clone(),
            min_hits.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match es.count(&alias).await {
                    Ok(n) => {
                        min_hits.fetch_min(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("probe search failed: {e}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                searches.fetch_add(1, Ordering::Relaxed);
                // The probe's pace (traffic, not a wait for anything).
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Stage 1 with the changed mapping.
    env.set_mapping("kb", MAPPING_V2);
    let (status, view) = daemon.post("/v1/indexes/kb/reindex", Some("{}")).await;
    assert_eq!(status, 200, "{view}");
    let b = view["write_index"].as_str().unwrap().to_owned();
    assert_ne!(a, b);
    assert_eq!(view["read_index"], a.as_str());
    assert_eq!(env.aliases("kb").await, (vec![a.clone()], vec![b.clone()]));
    // While copying the target has bulk-load settings.
    let settings = env.es.get_settings(&b).await.unwrap();
    assert_eq!(settings["index.refresh_interval"], "-1");

    let view = daemon
        .wait_phase("kb", &["ready", "failed"], Duration::from_secs(120))
        .await;
    assert_eq!(view["phase"], "ready", "{view}");
    let p = &view["progress"];
    assert_eq!(p["total"], start_docs);
    assert_eq!(
        p["copied"].as_u64().unwrap() + p["superseded"].as_u64().unwrap(),
        start_docs
    );
    assert_eq!(p["failed"], 0);
    // Original settings back, the new mapping in force, every document there.
    let settings = env.es.get_settings(&b).await.unwrap();
    assert_eq!(settings["index.refresh_interval"], "1s");
    assert_eq!(settings["index.number_of_shards"], "3");
    assert_eq!(env.es.count(&b).await.unwrap(), start_docs);

    // Stage 2.
    let (status, flipped) = daemon.post("/v1/indexes/kb/flip", None).await;
    assert_eq!(status, 200, "{flipped}");
    assert_eq!(flipped["message"], "STUCK THE LANDING!");
    assert_eq!(env.aliases("kb").await, (vec![b.clone()], vec![b.clone()]));

    // Cleanup is refused within retention; nothing is deleted.
    let (status, err) = daemon.post("/v1/indexes/kb/cleanup", None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("illegal_transition")),
        "{err}"
    );
    assert!(env.es.index_exists(&a).await.unwrap());

    // Rollback, then flip again through a new migration.
    let (status, view) = daemon.post("/v1/indexes/kb/rollback", None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["phase"], "live");
    assert_eq!(env.aliases("kb").await, (vec![a.clone()], vec![a.clone()]));
    assert_eq!(view["abandoned"], json!([b.clone()]));
    let (status, _) = daemon.post("/v1/indexes/kb/reindex", None).await;
    assert_eq!(status, 200);
    let view = daemon
        .wait_phase("kb", &["ready", "failed"], Duration::from_secs(120))
        .await;
    assert_eq!(view["phase"], "ready", "{view}");
    let c = view["write_index"].as_str().unwrap().to_owned();
    let (status, _) = daemon.post("/v1/indexes/kb/flip", None).await;
    assert_eq!(status, 200);
    assert_eq!(env.aliases("kb").await, (vec![c.clone()], vec![c.clone()]));

    stop.store(true, Ordering::Relaxed);
    probe.await.unwrap();
    let searches = searches.load(Ordering::Relaxed);
    assert!(searches > 10, "the probe ran {searches} searches");
    assert_eq!(failures.load(Ordering::Relaxed), 0, "failed searches");
    assert!(
        min_hits.load(Ordering::Relaxed) >= start_docs,
        "a search saw fewer documents"
    );

    daemon.stop().await;
}

#[tokio::test]
async fn cleanup_after_retention_deletes_only_unaliased_generations() {
    let env = Env::new("clean", &["kb"], "retention = \"1h\"").await;
    let clock = common::clock::ManualClock::now();
    let m = &env.migrator.clone().with_clock(clock.clone());
    let a = m.init("kb").await.unwrap().phase.read_index().to_owned();
    env.load_docs("kb", 300).await;
    env.set_mapping("kb", MAPPING_V2);
    let b = m
        .reindex("kb")
        .await
        .unwrap()
        .phase
        .write_index()
        .to_owned();
    let handle = common::detached_handle("kb");
    let state = reindexd::copy::drive(m, "kb", "test-owner", &handle)
        .await
        .unwrap();
    assert_eq!(state.phase.name(), "ready");
    m.flip("kb").await.unwrap();
    // Within retention the old generation stays.
    let err = m.cleanup("kb").await.unwrap_err();
    assert!(err.to_string().contains("retention keeps"), "{err}");
    assert!(env.es.index_exists(&a).await.unwrap());
    clock.advance(Duration::from_secs(3601));

    // Someone still reads the old generation through an alias of their own.
    let stray = format!("{}stray", env.prefix);
    env.es
        .update_aliases(&[reindexd::es::AliasAction::Add {
            index: a.clone(),
            alias: stray.clone(),
            is_write_index: None,
        }])
        .await
        .unwrap();
    let err = m.cleanup("kb").await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("{a} is still behind {stray}")),
        "{err}"
    );
    assert!(env.es.index_exists(&a).await.unwrap());
    assert_eq!(m.load("kb").await.unwrap().state.phase.name(), "flipped");

    env.es
        .update_aliases(&[reindexd::es::AliasAction::Remove {
            index: a.clone(),
            alias: stray,
            must_exist: Some(true),
        }])
        .await
        .unwrap();
    let (state, deleted) = m.cleanup("kb").await.unwrap();
    assert_eq!(deleted, std::slice::from_ref(&a));
    assert_eq!(
        state.phase,
        reindexd::migration::Phase::Live { index: b.clone() }
    );
    assert_eq!(
        env.indexes().await,
        [b.clone(), format!("{}state", env.prefix)]
    );
    // Nothing left to clean: refused.
    assert!(m
        .cleanup("kb")
        .await
        .unwrap_err()
        .to_string()
        .contains("nothing to clean up"));
}
