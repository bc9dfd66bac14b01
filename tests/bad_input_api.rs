//! Bad requests as such, over the HTTP API against the real node: broken
//! bodies, bad throttle values, oversize bodies, missing or wrong bearer
//! tokens, and a cluster that does not answer. Each gets a 4xx/5xx with a
//! stable code, and the cluster is left as it was.

mod common;

use common::{code, config_at, dead_url, Daemon, Env};

/// Endpoints taking a JSON object body (or none).
const ENDPOINTS: [&str; 10] = [
    "init", "reindex", "pause", "resume", "throttle", "accept", "flip", "rollback", "cleanup",
    "repair",
];

/// Bodies that are not the object an endpoint takes. Arrays matter: serde
/// would read `[1]` as a struct's fields in order.
const MALFORMED: [&str; 9] = [
    "{",
    "{\"requests_per_second\": 1,}",
    "{\"bogus\": 1}",
    "[1]",
    "[]",
    "\"x\"",
    "42",
    "null",
    "true",
];

#[tokio::test]
async fn malformed_bodies_are_400_and_change_nothing() {
    let env = Env::new("malformed", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    let (status, view) = daemon.post("/v1/indexes/kb/init", None).await;
    assert_eq!(status, 200, "{view}");
    env.load_docs("kb", 50).await;

    // Every case is tried, so one run reports all that are accepted.
    let before = env.snapshot(&["kb"]).await;
    let mut accepted = Vec::new();
    for endpoint in ENDPOINTS {
        for body in MALFORMED {
            let (status, answer) = daemon
                .post(&format!("/v1/indexes/kb/{endpoint}"), Some(body))
                .await;
            if code(status, &answer) != (400, Some("malformed_body")) {
                accepted.push(format!("{endpoint} {body} -> {status} {answer}"));
            }
        }
    }
    let megapack = [
        r#"{"indexes": "kb"}"#,
        "{}",
        r#"{"indexes": ["kb"], "bogus": 1}"#,
        r#"[["kb"]]"#,
    ];
    for body in MALFORMED.iter().chain(&megapack) {
        let (status, answer) = daemon.post("/v1/reindex", Some(body)).await;
        if code(status, &answer) != (400, Some("malformed_body")) {
            accepted.push(format!("megapack {body} -> {status} {answer}"));
        }
    }
    assert!(
        accepted.is_empty(),
        "not refused as malformed_body:\n{}",
        accepted.join("\n")
    );
    assert_eq!(env.snapshot(&["kb"]).await, before);
    daemon.stop().await;
}

#[tokio::test]
async fn bad_throttle_values_are_400_and_change_nothing() {
    let env = Env::new("badrate", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    let (status, view) = daemon.post("/v1/indexes/kb/init", None).await;
    assert_eq!(status, 200, "{view}");
    env.load_docs("kb", 3_000).await;
    let bad = ["-5", "0", "-0.0", "1e999", "\"NaN\"", "\"fast\"", "[10]"];

    // At stage 1: nothing is created.
    let before = env.snapshot(&["kb"]).await;
    for rate in bad {
        let body = format!("{{\"requests_per_second\": {rate}}}");
        for path in [
            "/v1/indexes/kb/reindex".to_owned(),
            "/v1/reindex".to_owned(),
        ] {
            let body = if path == "/v1/reindex" {
                format!("{{\"indexes\": [\"kb\"], \"requests_per_second\": {rate}}}")
            } else {
                body.clone()
            };
            let (status, answer) = daemon.post(&path, Some(&body)).await;
            assert_eq!(status, 400, "{path} {body}: {answer}");
            assert!(
                answer["error"]["code"].is_string(),
                "{path} {body}: {answer}"
            );
        }
    }
    assert_eq!(env.snapshot(&["kb"]).await, before);

    // On a running copy: the throttle in force stays.
    daemon.start_slow_copy("kb", 50).await;
    let before = env.snapshot(&["kb"]).await;
    for rate in bad {
        let body = format!("{{\"requests_per_second\": {rate}}}");
        let (status, answer) = daemon.post("/v1/indexes/kb/throttle", Some(&body)).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"]["code"].is_string(), "{body}: {answer}");
    }
    let (status, answer) = daemon.post("/v1/indexes/kb/throttle", None).await;
    assert_eq!(
        code(status, &answer),
        (400, Some("malformed_body")),
        "no body: {answer}"
    );
    let (_, view) = daemon.get("/v1/indexes/kb").await;
    assert_eq!(view["progress"]["requests_per_second"], 50.0, "{view}");
    assert_eq!(env.snapshot(&["kb"]).await, before);

    let (status, answer) = daemon.post("/v1/indexes/kb/rollback", None).await;
    assert_eq!(status, 200, "{answer}");
    daemon.stop().await;
}

#[tokio::test]
async fn oversize_body_is_413_with_an_error_code() {
    let env = Env::new("oversize", &["kb"], "").await;
    let daemon = Daemon::start(&env).await;
    let (status, view) = daemon.post("/v1/indexes/kb/init", None).await;
    assert_eq!(status, 200, "{view}");
    let before = env.snapshot(&["kb"]).await;
    let body = format!(
        "{{\"requests_per_second\": 10, \"pad\": \"{}\"}}",
        "x".repeat(70 * 1024)
    );
    for path in [
        "/v1/indexes/kb/reindex",
        "/v1/indexes/kb/flip",
        "/v1/reindex",
    ] {
        let (status, answer) = daemon.post(path, Some(&body)).await;
        assert_eq!(status, 413, "{path}: {answer}");
        assert!(
            answer["error"]["code"].is_string(),
            "{path}: errors are {{\"error\": {{\"code\", \"message\"}}}}, found {answer}"
        );
    }
    assert_eq!(env.snapshot(&["kb"]).await, before);
    daemon.stop().await;
}

#[tokio::test]
async fn bearer_token_guards_every_change_but_not_reads() {
    let token = "s3cret-token-for-tests";
    let env = Env::with_api("token", &["kb"], &format!("token = \"{token}\""), "").await;
    let daemon = Daemon::start(&env).await;
    let right = format!("Bearer {token}");

    let before = env.snapshot(&["kb"]).await;
    let wrong = [
        None,
        Some("Bearer nope"),
        Some("Bearer "),
        Some(token),
        Some("Basic czNjcmV0"),
        Some("Bearer s3cret-token-for-test"),
    ];
    for authorization in wrong {
        for path in [
            "/v1/indexes/kb/init",
            "/v1/indexes/kb/reindex",
            "/v1/indexes/kb/flip",
            "/v1/reindex",
            "/v1/indexes/nope/init",
        ] {
            let (status, body) = daemon
                .post_auth(path, Some(r#"{"indexes": ["kb"]}"#), authorization)
                .await;
            assert_eq!(
                code(status, &body),
                (401, Some("unauthorized")),
                "{path} with {authorization:?}: {body}"
            );
            assert!(
                !body.to_string().contains(token),
                "the answer never shows the token: {body}"
            );
        }
    }
    assert_eq!(env.snapshot(&["kb"]).await, before);

    // Reads need no token.
    let (status, view) = daemon.get("/v1/indexes/kb").await;
    assert_eq!(
        (status, view["phase"].as_str()),
        (200, Some("uninitialized")),
        "{view}"
    );
    let (status, _) = daemon.get("/v1/indexes").await;
    assert_eq!(status, 200);

    let (status, view) = daemon
        .post_auth("/v1/indexes/kb/init", None, Some(&right))
        .await;
    assert_eq!(
        (status, view["phase"].as_str()),
        (200, Some("live")),
        "{view}"
    );
    let a = view["read_index"].as_str().unwrap().to_owned();
    assert_eq!(env.aliases("kb").await, (vec![a.clone()], vec![a]));
    daemon.stop().await;
}

#[tokio::test]
async fn unreachable_cluster_is_503_and_the_daemon_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dead_url();
    let config = config_at(dir.path(), &dead.url, &["kb"], "");
    let daemon = Daemon::start_config(config).await;

    let (status, body) = daemon.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    for round in 0..2 {
        let (status, body) = daemon.get("/v1/indexes/kb").await;
        assert_eq!(
            code(status, &body),
            (503, Some("cluster_unavailable")),
            "round {round}: {body}"
        );
        let (status, body) = daemon.get("/v1/indexes").await;
        assert_eq!(
            code(status, &body),
            (503, Some("cluster_unavailable")),
            "round {round}: {body}"
        );
        for path in [
            "/v1/indexes/kb/reindex",
            "/v1/indexes/kb/init",
            "/v1/indexes/kb/flip",
            "/v1/reindex",
        ] {
            let (status, body) = daemon
                .post(
                    path,
                    Some(r#"{"indexes": ["kb"]}"#).filter(|_| path == "/v1/reindex"),
                )
                .await;
            assert_eq!(
                code(status, &body),
                (503, Some("cluster_unavailable")),
                "round {round} {path}: {body}"
            );
        }
        let (status, body) = daemon.get("/readyz").await;
        assert_eq!(
            code(status, &body),
            (503, Some("cluster_unavailable")),
            "round {round}: {body}"
        );
        // Bad input is still told apart from the cluster being down.
        let (status, body) = daemon.get("/v1/indexes/nope").await;
        assert_eq!(
            code(status, &body),
            (404, Some("unknown_index")),
            "round {round}: {body}"
        );
    }
    let (status, _) = daemon.get("/healthz").await;
    assert_eq!(status, 200);
    assert!(!daemon.task.is_finished(), "the daemon keeps running");
    daemon.stop().await;
}
