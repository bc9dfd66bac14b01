//! What the test engine can do, as a table per engine, checked against the
//! node itself: a test that cannot run on an engine says so by name, and a
//! capability that unexpectedly appears or disappears fails loudly (the
//! table is then wrong, or the engine's build changed).

use reindexd::es::{Engine, ServerInfo};

/// Features some engines of the test matrix lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Painless scripts (the server engine's `ctx._version = 0`).
    pub painless: bool,
    /// The `_reindex` API (the server engine's copy).
    pub reindex: bool,
    /// Data streams (an x-pack feature on Elasticsearch).
    pub data_streams: bool,
    /// Elasticsearch's x-pack security (users, roles, `_has_privileges`).
    pub security: bool,
    /// Ingest processors (the ingest-common module: `uppercase`, `set`…);
    /// pipelines themselves are core everywhere.
    pub ingest_processors: bool,
}

/// The table: what each engine of the matrix is expected to have.
pub fn expected(info: &ServerInfo) -> Capabilities {
    match info.engine {
        Engine::OpenSearch => Capabilities {
            painless: true,
            reindex: true,
            data_streams: true,
            security: false,
            ingest_processors: true,
        },
        // 7.17 in-process from Elastic's jars: reindex, but no painless or
        // ingest-common module was ever published, and no x-pack.
        Engine::Elasticsearch if info.version.major == 7 => Capabilities {
            painless: false,
            reindex: true,
            data_streams: false,
            security: false,
            ingest_processors: false,
        },
        // The 8.x/9.x integ-test zips: only apm, netty4 and x-pack core and
        // security modules (data streams and ingest-common are modules of
        // their own). The
        // test nodes run with security off; tests/security.rs has its own.
        Engine::Elasticsearch => Capabilities {
            painless: false,
            reindex: false,
            data_streams: false,
            security: true,
            ingest_processors: false,
        },
    }
}

/// The exception type a document the mapping rejects gets: Elasticsearch
/// renamed it in 8.0.
pub fn parsing_exception(info: &ServerInfo) -> &'static str {
    match info.engine {
        Engine::Elasticsearch if info.version.major >= 8 => "document_parsing_exception",
        _ => "mapper_parsing_exception",
    }
}

/// The test node's capabilities: the table, after checking that the node
/// agrees with it.
pub async fn of_test_node() -> (Capabilities, ServerInfo) {
    let (_, info) = super::client().await;
    let want = expected(&info);
    let http = reqwest::Client::new();
    let url = super::es_url();
    let painless = http
        .post(format!("{url}/_scripts/painless/_execute"))
        .json(&serde_json::json!({"script": {"source": "1"}}))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    // A reindex from an index that cannot exist (upper case): the module
    // answers with a typed error about the index; without the module the
    // node has no handler for the path (a string error or 405).
    let reindex = http
        .post(format!("{url}/_reindex"))
        .json(&serde_json::json!({
            "source": {"index": "REINDEXD-CAPABILITY-PROBE"},
            "dest": {"index": "reindexd-capability-probe"}
        }))
        .send()
        .await
        .expect("POST /_reindex")
        .json::<serde_json::Value>()
        .await
        .is_ok_and(|body| body["error"]["type"].is_string());
    let data_streams = http
        .get(format!("{url}/_data_stream"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    // The module is there even where the node runs with security off.
    let modules: serde_json::Value = http
        .get(format!("{url}/_nodes/_local/plugins"))
        .send()
        .await
        .expect("GET /_nodes/_local/plugins")
        .json()
        .await
        .expect("a JSON answer");
    let security = modules["nodes"]
        .as_object()
        .into_iter()
        .flat_map(|nodes| nodes.values())
        .flat_map(|node| node["modules"].as_array().into_iter().flatten())
        .any(|m| m["name"] == "x-pack-security");
    let ingest_processors = http
        .post(format!("{url}/_ingest/pipeline/_simulate"))
        .json(&serde_json::json!({
            "pipeline": {"processors": [{"uppercase": {"field": "t"}}]},
            "docs": [{"_source": {"t": "a"}}]
        }))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    let found = Capabilities {
        painless,
        reindex,
        security,
        data_streams,
        ingest_processors,
    };
    assert_eq!(
        found, want,
        "{info}: the node's capabilities differ from tests/common/capabilities.rs; update the table"
    );
    (found, info)
}

/// Says loudly that a test does not run on this engine, and why: written
/// to the process's stderr directly, which the test harness does not
/// capture, so the line shows in every run's output.
pub fn not_on(info: &ServerInfo, test: &str, missing: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "NOT RUN on {info}: {test} needs {missing}, which this engine lacks (tests/common/capabilities.rs)"
    );
}

/// Says loudly that a test does not run on this engine because the engine
/// has what the test needs to be missing.
pub fn not_for(info: &ServerInfo, test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "NOT RUN on {info}: {test}: {why} (tests/common/capabilities.rs)"
    );
}
