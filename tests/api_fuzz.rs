//! Property test of the HTTP API: random methods, paths and bodies never
//! make it panic nor answer 5xx for a client's mistake, and every error
//! answer has the JSON error shape.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request};
use common::Env;
use http_body_util::BodyExt;
use proptest::prelude::*;
use reindexd::api::{router, AppState};
use reindexd::copy::Jobs;
use reindexd::metrics::Metrics;
use tower::ServiceExt;

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("v1".to_owned()),
        Just("indexes".to_owned()),
        Just("kb".to_owned()),
        Just("nope".to_owned()),
        Just("reindex".to_owned()),
        Just("flip".to_owned()),
        Just("rollback".to_owned()),
        Just("throttle".to_owned()),
        Just("cleanup".to_owned()),
        Just("repair".to_owned()),
        Just("metrics".to_owned()),
        Just("..".to_owned()),
        Just("%00".to_owned()),
        Just("%ff%fe".to_owned()),
        "[a-zA-Z0-9_*%.-]{0,12}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(b"{}".to_vec()),
        Just(b"[]".to_vec()),
        Just(b"null".to_vec()),
        Just(br#"{"requests_per_second": -1}"#.to_vec()),
        Just(br#"{"requests_per_second": 1e400}"#.to_vec()),
        Just(br#"{"indexes": ["kb", "kb"]}"#.to_vec()),
        Just(br#"{"indexes": [1, {}]}"#.to_vec()),
        "\\PC{0,200}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::PATCH)
    ]
}

#[test]
fn random_requests_never_panic_nor_answer_5xx() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // `_env` lives to the end: dropping it deletes the test's indexes.
    let (_env, app) = runtime.block_on(async {
        // `kb` stays uninitialised unless a random request inits it; both are fine.
        let env = Env::new("fuzz", &["kb"], "").await;
        let jobs = Jobs::new(env.migrator.clone(), "fuzz".into(), Default::default());
        let metrics = Arc::new(Metrics::new(&env.migrator, &jobs));
        let app = router(AppState {
            migrator: env.migrator.clone(),
            jobs,
            token: None,
            metrics,
        });
        (env, app)
    });
    let config = ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(method in method(), segments in proptest::collection::vec(segment(), 0..5), body in body())| {
        let path = format!("/{}", segments.join("/"));
        let request = Request::builder().method(method.clone()).uri(&path).body(Body::from(body.clone()));
        let Ok(request) = request else { return Ok(()) }; // not even a valid URI: never reaches a server
        let (status, bytes) = runtime.block_on(async {
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            (status, response.into_body().collect().await.unwrap().to_bytes())
        });
        prop_assert!(status.as_u16() < 500, "{method} {path} {:?} -> {status}: {}", String::from_utf8_lossy(&body), String::from_utf8_lossy(&bytes));
        if !status.is_success() {
            let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(format!("{method} {path} -> {status}: not JSON: {e}")))?;
            prop_assert!(json["error"]["code"].is_string(), "{method} {path} -> {status}: {json}");
        }
    });
}
