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
    /// Data streams (an x-pack feature on Elasticsearch).
    pub data_streams: bool,
}

/// The table: what each engine of the matrix is expected to have.
pub fn expected(info: &ServerInfo) -> Capabilities {
    match info.engine {
        Engine::OpenSearch => Capabilities {
            painless: true,
            data_streams: true,
        },
        // 7.17 in-process from Elastic's jars: no painless module was ever
        // published, and no x-pack.
        Engine::Elasticsearch => Capabilities {
            painless: false,
            data_streams: false,
        },
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
    let data_streams = http
        .get(format!("{url}/_data_stream"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    let found = Capabilities {
        painless,
        data_streams,
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
