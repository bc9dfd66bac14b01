//! Megapacks over the HTTP API against the real node: several logical
//! indexes start stage 1 in one request, then each is flipped or rolled
//! back alone. A megapack that cannot start every index starts none: the
//! cluster is left exactly as it was.

mod common;

use std::time::Duration;

use common::{code, Daemon, Env, MAPPING_V2};
use reindexd::es::AliasAction;

/// Inits each of `names` and loads a few documents.
async fn live(env: &Env, daemon: &Daemon, names: &[&str]) {
    for name in names {
        let (status, view) = daemon.post(&format!("/v1/indexes/{name}/init"), None).await;
        assert_eq!(status, 200, "{view}");
        env.load_docs(name, 200).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megapack_starts_each_and_each_flips_or_rolls_back_alone() {
    let env = Env::new("mega", &["a", "b"], "").await;
    let daemon = Daemon::start(&env).await;
    live(&env, &daemon, &["a", "b"]).await;
    let (a_old, b_old) = (
        env.aliases("a").await.0[0].clone(),
        env.aliases("b").await.0[0].clone(),
    );
    env.set_mapping("a", MAPPING_V2);
    env.set_mapping("b", MAPPING_V2);

    let (status, body) = daemon
        .post("/v1/reindex", Some(r#"{"indexes": ["a", "b"]}"#))
        .await;
    assert_eq!(status, 200, "{body}");
    let started = body["indexes"].as_array().unwrap();
    assert_eq!(started.len(), 2, "{body}");
    for (view, (name, old)) in started.iter().zip([("a", &a_old), ("b", &b_old)]) {
        assert_eq!(
            (view["name"].as_str(), view["phase"].as_str()),
            (Some(name), Some("copying")),
            "{view}"
        );
        assert_eq!(view["read_index"], old.as_str(), "{view}");
    }
    let a_new = daemon
        .wait_phase("a", &["ready"], Duration::from_secs(60))
        .await["write_index"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_new = daemon
        .wait_phase("b", &["ready"], Duration::from_secs(60))
        .await["write_index"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        a_new.starts_with(&format!("{}a_", env.prefix))
            && b_new.starts_with(&format!("{}b_", env.prefix))
    );
    assert_eq!(
        env.aliases("a").await,
        (vec![a_old.clone()], vec![a_new.clone()])
    );
    assert_eq!(
        env.aliases("b").await,
        (vec![b_old.clone()], vec![b_new.clone()])
    );
    assert_eq!(env.es.count(&a_new).await.unwrap(), 200);
    assert_eq!(env.es.count(&b_new).await.unwrap(), 200);

    // Flip a only.
    let (status, body) = daemon.post("/v1/indexes/a/flip", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (200, Some("STUCK THE LANDING!")),
        "{body}"
    );
    assert_eq!(
        env.aliases("a").await,
        (vec![a_new.clone()], vec![a_new.clone()])
    );
    assert_eq!(
        env.aliases("b").await,
        (vec![b_old.clone()], vec![b_new.clone()])
    );
    assert_eq!(
        (env.phase("a").await, env.phase("b").await),
        ("flipped".into(), "ready".into())
    );

    // Roll back b only.
    let (status, body) = daemon.post("/v1/indexes/b/rollback", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        env.aliases("b").await,
        (vec![b_old.clone()], vec![b_old.clone()])
    );
    assert_eq!(
        env.aliases("a").await,
        (vec![a_new.clone()], vec![a_new.clone()])
    );
    assert_eq!(
        (env.phase("a").await, env.phase("b").await),
        ("flipped".into(), "live".into())
    );
    assert!(
        env.es.index_exists(&b_new).await.unwrap(),
        "a rollback deletes nothing"
    );
    daemon.stop().await;
}

/// Posts a megapack of `names` that must be refused with `expected`, and
/// checks that neither index changed.
async fn refused(env: &Env, daemon: &Daemon, names: &[&str], expected: (u16, Option<&str>)) {
    let mut all: Vec<&str> = ["a", "b"]
        .into_iter()
        .chain(names.iter().copied())
        .collect();
    all.sort();
    all.dedup();
    let before = env.snapshot(&all).await;
    let body = serde_json::json!({ "indexes": names }).to_string();
    let (status, answer) = daemon.post("/v1/reindex", Some(&body)).await;
    assert_eq!(code(status, &answer), expected, "{names:?}: {answer}");
    // A rolled-back partial start would show as a new index or an abandoned one.
    assert_eq!(env.snapshot(&all).await, before, "{names:?}");
}

#[tokio::test]
async fn megapack_naming_an_unknown_or_uninitialised_index_changes_nothing() {
    let env = Env::new("megaunknown", &["a", "b", "fresh"], "").await;
    let daemon = Daemon::start(&env).await;
    live(&env, &daemon, &["a", "b"]).await;
    refused(&env, &daemon, &["a", "nope"], (404, Some("unknown_index"))).await;
    refused(&env, &daemon, &["nope", "b"], (404, Some("unknown_index"))).await;
    refused(
        &env,
        &daemon,
        &["a", "b", "fresh"],
        (409, Some("not_initialized")),
    )
    .await;
    refused(&env, &daemon, &[], (400, Some("invalid_value"))).await;
    daemon.stop().await;
}

#[tokio::test]
async fn megapack_naming_an_index_that_is_not_live_changes_nothing() {
    let env = Env::new("meganotlive", &["a", "b"], "").await;
    let daemon = Daemon::start(&env).await;
    live(&env, &daemon, &["a", "b"]).await;
    let (status, view) = daemon.post("/v1/indexes/b/reindex", None).await;
    assert_eq!(status, 200, "{view}");
    daemon
        .wait_phase("b", &["ready"], Duration::from_secs(60))
        .await;
    refused(
        &env,
        &daemon,
        &["a", "b"],
        (409, Some("illegal_transition")),
    )
    .await;
    refused(
        &env,
        &daemon,
        &["b", "a"],
        (409, Some("illegal_transition")),
    )
    .await;
    daemon.stop().await;
}

#[tokio::test]
async fn megapack_naming_an_index_twice_changes_nothing() {
    let env = Env::new("megatwice", &["a", "b"], "").await;
    let daemon = Daemon::start(&env).await;
    live(&env, &daemon, &["a", "b"]).await;
    let before = env.snapshot(&["a", "b"]).await;
    let (status, answer) = daemon
        .post("/v1/reindex", Some(r#"{"indexes": ["a", "b", "a"]}"#))
        .await;
    assert!(
        matches!(status, 400 | 409) && answer["error"]["code"].is_string(),
        "{status} {answer}"
    );
    assert_eq!(env.snapshot(&["a", "b"]).await, before);
    daemon.stop().await;
}

#[tokio::test]
async fn megapack_whose_later_index_has_moved_aliases_changes_nothing() {
    let env = Env::new("megaalias", &["a", "b"], "").await;
    let daemon = Daemon::start(&env).await;
    live(&env, &daemon, &["a", "b"]).await;
    let stray = env.plain_index("stray").await;
    let add = AliasAction::Add {
        index: stray,
        alias: env.read_alias("b"),
        is_write_index: None,
    };
    env.es.update_aliases(&[add]).await.unwrap();
    refused(&env, &daemon, &["a", "b"], (409, Some("alias_conflict"))).await;
    daemon.stop().await;
}

#[tokio::test]
async fn megapack_whose_later_index_has_a_bad_mapping_changes_nothing() {
    let env = Env::new("megamapping", &["a", "b"], "").await;
    let daemon = Daemon::start(&env).await;
    live(&env, &daemon, &["a", "b"]).await;
    env.set_mapping(
        "b",
        r#"{"mappings": {"properties": {"title": {"type": "no_such_type"}}}}"#,
    );
    refused(&env, &daemon, &["a", "b"], (400, Some("mapping_rejected"))).await;
    env.set_mapping("b", "{ not json");
    refused(&env, &daemon, &["a", "b"], (400, Some("invalid_mapping"))).await;
    daemon.stop().await;
}
