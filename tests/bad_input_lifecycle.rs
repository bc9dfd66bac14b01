//! Operations asked for at the wrong time, over the HTTP API against the
//! real node: flip before ready, cleanup too early, rollback of nothing, a
//! second stage 1, and requests racing each other. Each is refused with a
//! 409 naming the current phase, and the cluster is left as it was.

mod common;

use std::time::Duration;

use common::{code, Daemon, Env};
use reindexd::es::AliasAction;

/// Documents and rate that keep a copy in `copying` for about a minute.
const SLOW_DOCS: u64 = 3_000;
const SLOW_RATE: u32 = 50;

async fn init(daemon: &Daemon, name: &str) -> String {
    let (status, view) = daemon.post(&format!("/v1/indexes/{name}/init"), None).await;
    assert_eq!(status, 200, "{view}");
    view["read_index"].as_str().unwrap().to_owned()
}

/// `init`, a few documents, stage 1 and the copy: returns `(A, B)` once ready.
async fn ready(env: &Env, daemon: &Daemon, name: &str) -> (String, String) {
    let a = init(daemon, name).await;
    env.load_docs(name, 100).await;
    let (status, view) = daemon
        .post(&format!("/v1/indexes/{name}/reindex"), None)
        .await;
    assert_eq!(status, 200, "{view}");
    let view = daemon
        .wait_phase(name, &["ready", "failed"], Duration::from_secs(60))
        .await;
    assert_eq!(view["phase"], "ready", "{view}");
    (a, view["write_index"].as_str().unwrap().to_owned())
}

/// Asserts a 409 `illegal_transition` whose message names `phase`.
fn assert_illegal(status: u16, body: &serde_json::Value, phase: &str) {
    assert_eq!(
        code(status, body),
        (409, Some("illegal_transition")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("it is {phase}")),
        "the message names the phase {phase}: {message}"
    );
}

#[tokio::test]
async fn flip_before_ready_names_the_current_phase() {
    let env = Env::new("flipearly", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    init(&daemon, "kb").await;

    let before = env.snapshot(&["kb"]).await;
    let (status, body) = daemon.post("/v1/indexes/kb/flip", None).await;
    assert_illegal(status, &body, "live");
    assert_eq!(env.snapshot(&["kb"]).await, before);

    env.load_docs("kb", SLOW_DOCS).await;
    daemon.start_slow_copy("kb", SLOW_RATE).await;
    let before = env.snapshot(&["kb"]).await;
    let (status, body) = daemon.post("/v1/indexes/kb/flip", None).await;
    assert_illegal(status, &body, "copying");
    assert_eq!(env.snapshot(&["kb"]).await, before);

    let (status, body) = daemon.post("/v1/indexes/kb/rollback", None).await;
    assert_eq!(status, 200, "{body}");
    daemon.stop().await;
}

#[tokio::test]
async fn second_reindex_while_copying_is_refused_without_a_third_index() {
    let env = Env::new("twice", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    let a = init(&daemon, "kb").await;
    env.load_docs("kb", SLOW_DOCS).await;
    let b = daemon.start_slow_copy("kb", SLOW_RATE).await;

    let before = env.snapshot(&["kb"]).await;
    assert_eq!(
        before.indexes,
        [a.clone(), b.clone(), format!("{}state", env.prefix)]
    );
    for body in [None, Some("{}"), Some(r#"{"requests_per_second": 10}"#)] {
        let (status, answer) = daemon.post("/v1/indexes/kb/reindex", body).await;
        assert_illegal(status, &answer, "copying");
        assert_eq!(env.snapshot(&["kb"]).await, before, "{body:?}");
    }
    // The throttle of the running copy was not changed by the refused request.
    let (_, view) = daemon.get("/v1/indexes/kb").await;
    assert_eq!(
        view["progress"]["requests_per_second"],
        f64::from(SLOW_RATE),
        "{view}"
    );
    let (status, body) = daemon.post("/v1/indexes/kb/cleanup", None).await;
    assert_illegal(status, &body, "copying");
    assert_eq!(env.snapshot(&["kb"]).await, before);

    let (status, body) = daemon.post("/v1/indexes/kb/rollback", None).await;
    assert_eq!(status, 200, "{body}");
    daemon.stop().await;
}

#[tokio::test]
async fn cleanup_within_retention_is_refused_and_deletes_nothing() {
    let env = Env::new("cleanearly", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    let (status, body) = daemon.post("/v1/indexes/kb/cleanup", None).await;
    assert_eq!(
        code(status, &body),
        (409, Some("not_initialized")),
        "{body}"
    );
    init(&daemon, "kb").await;
    let before = env.snapshot(&["kb"]).await;
    let (status, body) = daemon.post("/v1/indexes/kb/cleanup", None).await;
    assert_illegal(status, &body, "live");
    assert_eq!(env.snapshot(&["kb"]).await, before);

    // Ready: the copy is not flipped yet.
    env.load_docs("kb", 100).await;
    let (status, view) = daemon.post("/v1/indexes/kb/reindex", None).await;
    assert_eq!(status, 200, "{view}");
    daemon
        .wait_phase("kb", &["ready"], Duration::from_secs(60))
        .await;
    let before = env.snapshot(&["kb"]).await;
    let (status, body) = daemon.post("/v1/indexes/kb/cleanup", None).await;
    assert_illegal(status, &body, "ready");
    assert_eq!(env.snapshot(&["kb"]).await, before);

    // Flipped, within the default 24h retention.
    let (status, body) = daemon.post("/v1/indexes/kb/flip", None).await;
    assert_eq!(status, 200, "{body}");
    let before = env.snapshot(&["kb"]).await;
    let (status, body) = daemon.post("/v1/indexes/kb/cleanup", None).await;
    assert_illegal(status, &body, "flipped");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retention keeps"),
        "{body}"
    );
    assert_eq!(env.snapshot(&["kb"]).await, before);
    daemon.stop().await;
}

#[tokio::test]
async fn cleanup_while_an_alias_points_at_the_old_generation_is_refused() {
    let env = Env::new("cleanalias", &["kb"], "retention = \"1s\"").await;
    let daemon = Daemon::start(&env).await;
    let (a, _) = ready(&env, &daemon, "kb").await;
    let (status, body) = daemon.post("/v1/indexes/kb/flip", None).await;
    assert_eq!(status, 200, "{body}");

    // Someone put the read alias back on the old generation as well.
    let read = env.read_alias("kb");
    let back = AliasAction::Add {
        index: a.clone(),
        alias: read.clone(),
        is_write_index: None,
    };
    env.es.update_aliases(&[back]).await.unwrap();
    let before = env.snapshot(&["kb"]).await;
    // Asked again until the 1 s retention no longer is the reason.
    let (status, body) = common::eventually_value(
        "a cleanup refused for another reason than retention",
        Duration::from_secs(30),
        || async {
            let (status, body) = daemon.post("/v1/indexes/kb/cleanup", None).await;
            match body["error"]["message"].as_str() {
                Some(m) if m.contains("retention keeps") => Err(body.to_string()),
                _ => Ok((status, body)),
            }
        },
    )
    .await;
    assert_illegal(status, &body, "flipped");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&read),
        "names the alias: {body}"
    );
    assert_eq!(env.snapshot(&["kb"]).await, before);
    assert!(env.es.index_exists(&a).await.unwrap());

    // A stray alias of someone else's on the old generation.
    let stray = format!("{}stray", env.prefix);
    env.es
        .update_aliases(&[
            AliasAction::Remove {
                index: a.clone(),
                alias: read,
                must_exist: Some(true),
            },
            AliasAction::Add {
                index: a.clone(),
                alias: stray,
                is_write_index: None,
            },
        ])
        .await
        .unwrap();
    let before = env.snapshot(&["kb"]).await;
    let (status, body) = daemon.post("/v1/indexes/kb/cleanup", None).await;
    assert_illegal(status, &body, "flipped");
    assert_eq!(env.snapshot(&["kb"]).await, before);
    daemon.stop().await;
}

#[tokio::test]
async fn rollback_with_nothing_to_roll_back_is_refused() {
    let env = Env::new("rbnothing", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    let (status, body) = daemon.post("/v1/indexes/kb/rollback", None).await;
    assert_eq!(
        code(status, &body),
        (409, Some("not_initialized")),
        "{body}"
    );
    init(&daemon, "kb").await;
    let before = env.snapshot(&["kb"]).await;
    let (status, body) = daemon.post("/v1/indexes/kb/rollback", None).await;
    assert_illegal(status, &body, "live");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing to roll back"),
        "{body}"
    );
    assert_eq!(env.snapshot(&["kb"]).await, before);
    daemon.stop().await;
}

/// Of two answers, exactly one 200 and one 409 with a code a racing
/// request may get.
fn one_wins(answers: [(u16, serde_json::Value); 2]) {
    let wins = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(wins, 1, "{answers:?}");
    let (status, body) = answers.iter().find(|(s, _)| *s != 200).unwrap();
    let c = code(*status, body);
    assert!(
        matches!(
            c,
            (
                409,
                Some("conflict" | "illegal_transition" | "alias_conflict")
            )
        ),
        "the loser gets a 409: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_flips_and_rollbacks_one_wins() {
    let env = Env::new("race", &["kb", "wiki"], "").await;
    let daemon = Daemon::start(&env).await;
    let (_, kb_b) = ready(&env, &daemon, "kb").await;
    let (wiki_a, wiki_b) = ready(&env, &daemon, "wiki").await;

    let (x, y) = tokio::join!(
        daemon.post("/v1/indexes/kb/flip", None),
        daemon.post("/v1/indexes/kb/flip", None)
    );
    one_wins([x, y]);
    assert_eq!(env.aliases("kb").await, (vec![kb_b.clone()], vec![kb_b]));
    assert_eq!(env.phase("kb").await, "flipped");

    let (x, y) = tokio::join!(
        daemon.post("/v1/indexes/wiki/rollback", None),
        daemon.post("/v1/indexes/wiki/rollback", None)
    );
    one_wins([x, y]);
    assert_eq!(
        env.aliases("wiki").await,
        (vec![wiki_a.clone()], vec![wiki_a])
    );
    let state = env
        .migrator
        .store()
        .get("wiki")
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(
        (state.phase.name(), state.abandoned),
        ("live", vec![wiki_b])
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inits_make_one_generation() {
    let names = ["a", "b", "c", "d"];
    let env = Env::new("raceinit", &names, "").await;
    let daemon = Daemon::start(&env).await;
    env.state_index_ready().await; // the daemon's race is about the state document, not the index
    for name in names {
        let path = format!("/v1/indexes/{name}/init");
        let (x, y) = tokio::join!(daemon.post(&path, None), daemon.post(&path, None));
        let generations: Vec<String> = env
            .indexes()
            .await
            .into_iter()
            .filter(|i| i.starts_with(&format!("{}{name}_", env.prefix)))
            .collect();
        assert_eq!(generations.len(), 1, "{name}: {generations:?}");
        let g = generations[0].clone();
        assert_eq!(
            env.aliases(name).await,
            (vec![g.clone()], vec![g.clone()]),
            "{name}"
        );
        let state = env.migrator.store().get(name).await.unwrap().unwrap().state;
        assert_eq!(
            (state.phase.name(), state.phase.read_index()),
            ("live", g.as_str()),
            "{name}"
        );
        for (status, body) in [&x, &y] {
            // Init is idempotent: the loser either sees the winner's index or
            // loses the compare-and-set; it never blames the mapping.
            assert!(
                *status == 200 || code(*status, body) == (409, Some("conflict")),
                "{name}: {body}"
            );
        }
    }
    daemon.stop().await;
}

/// Two clients (two CLI runs, or a CLI run next to a starting daemon) init
/// on a cluster where the state index does not exist yet: each has its
/// own state store, so one of them finds the index the other is creating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inits_from_two_clients_on_a_fresh_state_index() {
    for round in 0..3 {
        let env = Env::new("freshinit", &["kb"], "").await;
        let other = reindexd::migration::Migrator::new(env.es.clone(), env.config.clone());
        let (x, y) = tokio::join!(env.migrator.init("kb"), other.init("kb"));
        assert!(
            x.is_ok() || y.is_ok(),
            "round {round}: one init succeeds: {x:?} {y:?}"
        );
        let generations: Vec<String> = env
            .indexes()
            .await
            .into_iter()
            .filter(|i| !i.ends_with("state"))
            .collect();
        assert_eq!(generations.len(), 1, "round {round}: {generations:?}");
        let g = generations[0].clone();
        assert_eq!(
            env.aliases("kb").await,
            (vec![g.clone()], vec![g]),
            "round {round}"
        );
        for result in [&x, &y] {
            if let Err(e) = result {
                assert!(
                    matches!(e, reindexd::migration::MigrationError::Conflict(_)),
                    "round {round}: a racing init may lose the compare-and-set, nothing else: {e}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_stage_1_requests_make_one_generation_and_the_others_get_409() {
    let env = Env::new("race1", &["kb"], "").await;
    env.migrator.init("kb").await.unwrap();
    env.load_docs("kb", 50).await;
    env.set_mapping("kb", common::MAPPING_V2);
    let daemon = Daemon::start(&env).await;
    env.state_index_ready().await;
    let path = "/v1/indexes/kb/reindex";
    let (x, y, z) = tokio::join!(
        daemon.post(path, None),
        daemon.post(path, None),
        daemon.post(path, None)
    );
    let answers = [x, y, z];
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{answers:?}"
    );
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert!(
            matches!(
                code(*status, body),
                (409, Some("conflict" | "illegal_transition"))
            ),
            "a losing stage 1 is a 409: {body}"
        );
    }
    // One new generation, the one the state and the write alias name.
    let view = daemon
        .wait_phase(
            "kb",
            &["ready", "failed"],
            std::time::Duration::from_secs(60),
        )
        .await;
    let generations: Vec<String> = env
        .indexes()
        .await
        .into_iter()
        .filter(|i| i.contains("kb_"))
        .collect();
    assert_eq!(
        generations.len(),
        2,
        "the source and one new generation: {generations:?}"
    );
    let (read, write) = env.aliases("kb").await;
    assert_eq!(read, vec![view["read_index"].as_str().unwrap().to_owned()]);
    assert_eq!(
        write,
        vec![view["write_index"].as_str().unwrap().to_owned()]
    );
    assert!(view["drift"].is_null(), "{view}");
    daemon.stop().await;
}
