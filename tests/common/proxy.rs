//! A fault-injecting HTTP proxy between a test's client and the real node.
//!
//! The faults reindexd must survive most are the ones a real node cannot
//! produce on demand, above all "the cluster applied the change but the
//! answer was lost". [`FaultProxy`] listens on a loopback port of its own,
//! forwards every request (method, path and query, headers, body) to the
//! node and streams the answer back, except where a [`Rule`] added by the
//! test says otherwise. A rule picks requests by method and path
//! ([`Match`]), applies its [`Fault`] to the next matching request (or the
//! next `times`, or from the k-th match on), then expires:
//!
//! - [`Fault::RespondWithoutForwarding`]: an error answer shaped like the
//!   engines' (`{"error":{"type":..,"reason":..},"status":N}`); the node
//!   never sees the request.
//! - [`Fault::ForwardThenRespond`]: the node answers in full, so the change
//!   is applied; the proxy throws that answer away and sends the status.
//! - [`Fault::HangWithoutForwarding`] and [`Fault::ForwardThenHang`]: no
//!   answer until the client gives up or the proxy stops; the second, the
//!   realistic one, lets the node apply the change first.
//! - [`Fault::DropMidAnswer`]: the node answers in full; the client gets
//!   the status line, the headers and half the body, then the connection
//!   closes.
//! - [`Fault::DelayThenForward`]: the request waits, then goes through as
//!   usual: a node that answers slowly.
//!
//! A fault test whose fault never fired proves nothing, so every rule counts
//! what it matched and what it fired on ([`RuleHandle`]), and the proxy
//! counts what it forwarded ([`FaultProxy::forwarded`]):
//!
//! ```ignore
//! let proxy = FaultProxy::start(&common::es_url());
//! let lost = proxy.inject(Rule::new(
//!     Match::path(Method::PUT, &format!("/{index}")),
//!     Fault::ForwardThenRespond(500),
//! ));
//! let es = EsClient::connect(&ConnectOptions::new(proxy.url().parse()?))?;
//! assert_eq!(es.create_index(&index, &body).await.unwrap_err().status(), Some(500));
//! assert_eq!(lost.fired(), 1);
//! assert!(direct.index_exists(&index).await?); // applied, answer lost
//! proxy.stop().await;
//! ```
//!
//! Requests are read whole before anything else happens (a `_bulk` NDJSON
//! body goes on byte for byte); answers are streamed unless a fault needs
//! them whole. Hop-by-hop headers (`Connection`, `Transfer-Encoding`, ...)
//! and `Host` are not passed on, compression is left to the two ends, and
//! redirects go back to the client, never followed. Forwarding runs in a
//! task of its own, so a request that reached the node completes there even
//! when the client gave up, as it would behind a real network fault.
//!
//! `rules` holds the bookkeeping (what to fault, when a rule expires, its
//! counters); `serve` forwards requests and shapes the faulty answers.
//! `Method` is the `http` crate's, as `reqwest::Method` and axum name it.

mod rules;
mod serve;

#[allow(unused_imports)] // as `dead_code` in `common`: not every test uses them
pub use rules::{Fault, Match, Rule, RuleHandle};

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The proxy: a server task on `127.0.0.1:<ephemeral>`. Stopped by
/// [`FaultProxy::stop`] or on drop.
pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    /// `None` once [`FaultProxy::stop`] has waited for it.
    server: Option<tokio::task::JoinHandle<()>>,
}

/// What the server task and the test share.
struct Shared {
    /// The node's URL without a trailing slash; the request's path is appended.
    upstream: String,
    http: reqwest::Client,
    /// In the order they were added: the first due rule wins.
    rules: Mutex<Vec<RuleHandle>>,
    received: AtomicU64,
    forwarded: AtomicU64,
    /// Cancelled by stop and drop: ends the server and every hanging answer.
    stop: CancellationToken,
}

impl FaultProxy {
    /// Starts the proxy in front of the node at `upstream` (`http://host:port`).
    /// Must be called inside a tokio runtime, which runs the proxy.
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let listener = tokio::net::TcpListener::from_std(listener)
            .expect("FaultProxy::start runs inside a tokio runtime");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .no_gzip()
            .no_brotli()
            .no_deflate()
            .no_zstd()
            .build()
            .expect("the proxy's HTTP client builds");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http,
            rules: Mutex::new(Vec::new()),
            received: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            stop: CancellationToken::new(),
        });
        let app = axum::Router::new()
            .fallback(serve::handle)
            .with_state(shared.clone());
        let stopped = shared.stop.clone().cancelled_owned();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await;
        });
        FaultProxy {
            url,
            shared,
            server: Some(server),
        }
    }

    /// `http://127.0.0.1:<port>`: the URL to give the client under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Adds `rule` after the existing ones; returns its counters.
    pub fn inject(&self, rule: Rule) -> RuleHandle {
        let handle = RuleHandle::new(rule);
        self.shared.rules.lock().unwrap().push(handle.clone());
        handle
    }

    /// Removes every rule: from now on, requests pass untouched.
    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// Requests the proxy received.
    pub fn received(&self) -> u64 {
        self.shared.received.load(Relaxed)
    }

    /// Requests sent on to the node, whatever became of their answers.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Relaxed)
    }

    /// Stops listening, ends hanging answers (a 503), and waits until the
    /// open connections are closed.
    pub async fn stop(mut self) {
        self.shared.stop.cancel();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("the proxy stops within 10 s")
                .expect("the proxy's server task does not panic");
        }
    }
}

impl Drop for FaultProxy {
    /// The server task ends by itself once its connections are closed.
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}
