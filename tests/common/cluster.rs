//! Where the test nodes are and how to reach them: the main node
//! (`REINDEXD_TEST_ES_URL`), the node with a tiny write queue, the node the
//! fault tests restart, and a loopback address where nothing listens.

use std::time::Duration;

use reindexd::es::{ConnectOptions, EsClient, ServerInfo};
use url::Url;

/// The main test node: `REINDEXD_TEST_ES_URL`, else
/// `http://127.0.0.1:$REINDEXD_TEST_ES_PORT` (port 9200).
pub fn es_url() -> String {
    std::env::var("REINDEXD_TEST_ES_URL").unwrap_or_else(|_| {
        let port = std::env::var("REINDEXD_TEST_ES_PORT").unwrap_or_else(|_| "9200".into());
        format!("http://127.0.0.1:{port}")
    })
}

/// Options for a client of the node at `url`, with the tests' timeout.
pub fn options(url: &str) -> ConnectOptions {
    let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url} is not a URL: {e}"));
    let mut options = ConnectOptions::new(parsed);
    options.request_timeout = Duration::from_secs(60);
    options
}

/// A client of the main test node, after checking that it answers.
pub async fn client() -> (EsClient, ServerInfo) {
    let url = es_url();
    let client = EsClient::connect(&options(&url)).expect("client builds");
    match client.info().await {
        Ok(info) => (client, info),
        Err(e) => panic!(
            "no test cluster answers at {url} ({e}).\n\
             Start one with `scripts/test-cluster start` (or set REINDEXD_TEST_ES_URL)."
        ),
    }
}

/// Fails loudly, saying how to start it, when no node answers at `url`.
pub async fn require_node(url: &str, how: &str) -> EsClient {
    let client = EsClient::connect(&ConnectOptions::new(Url::parse(url).unwrap())).unwrap();
    if let Err(e) = client.info().await {
        panic!("no test node at {url} ({e}).\nStart it with `{how}` (bash .ci/run does).");
    }
    client
}

/// URL of a second, constrained test node: its write queue is tiny (429s
/// under load) and it has no ingest role. `REINDEXD_TEST_ES_TINY_URL`,
/// default port 9201; started as [`TINY_QUEUE_START`] says.
pub fn tiny_queue_url() -> String {
    std::env::var("REINDEXD_TEST_ES_TINY_URL").unwrap_or_else(|_| "http://127.0.0.1:9201".into())
}

/// How to start the node at [`tiny_queue_url`].
pub const TINY_QUEUE_START: &str = "scripts/test-cluster start --port 9201 --no-ingest \
     --setting thread_pool.write.size=1 --setting thread_pool.write.queue_size=2";

/// Port of a third test node that tests may restart:
/// `REINDEXD_TEST_ES_RESTART_PORT`, default 9202.
pub fn restartable_port() -> u16 {
    std::env::var("REINDEXD_TEST_ES_RESTART_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9202)
}

/// Deletes every index whose name starts with `prefix`, now.
pub async fn cleanup(client: &EsClient, prefix: &str) {
    for index in client
        .list_indexes(&format!("{prefix}*"))
        .await
        .expect("list indexes")
    {
        client.delete_index(&index).await.expect("delete index");
    }
}

/// A loopback URL where nothing listens, for as long as it lives: its port
/// is bound but never listened on, so no other process can take it
/// meanwhile and every connection to it is refused at once.
pub struct DeadUrl {
    pub url: String,
    pub port: u16,
    _reserved: tokio::net::TcpSocket,
}

impl std::fmt::Display for DeadUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// See [`DeadUrl`].
pub fn dead_url() -> DeadUrl {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind("127.0.0.1:0".parse().unwrap())
        .expect("bind a loopback port");
    let port = socket.local_addr().unwrap().port();
    DeadUrl {
        url: format!("http://127.0.0.1:{port}"),
        port,
        _reserved: socket,
    }
}
