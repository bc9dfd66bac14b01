//! How the proxy answers: forwards a request as it came, or applies a
//! fault, and shapes the answers (passed on, injected errors, cut short).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode};
use axum::response::Response;
use tokio_util::sync::CancellationToken;

use super::rules::{self, Fault};
use super::Shared;

impl Shared {
    /// Sends `request` to the node; the answer's body is still to be read.
    async fn send(&self, request: Forward) -> Result<reqwest::Response, reqwest::Error> {
        self.forwarded.fetch_add(1, Relaxed);
        let mut headers = end_to_end(&request.headers);
        // Set by the client from the URL and the body; the body is read, so
        // nothing is to be continued.
        for name in [header::HOST, header::CONTENT_LENGTH, header::EXPECT] {
            headers.remove(name);
        }
        let url = format!("{}{}", self.upstream, request.target);
        let mut outgoing = self.http.request(request.method, url).headers(headers);
        if !request.body.is_empty() {
            outgoing = outgoing.body(request.body);
        }
        outgoing.send().await
    }

    /// Sends `request` and reads the node's whole answer, in a task of its
    /// own so that the exchange completes even when the client gave up.
    async fn exchange(self: &Arc<Self>, request: Forward) -> Result<Whole, reqwest::Error> {
        let shared = self.clone();
        let task = tokio::spawn(async move {
            let answer = shared.send(request).await?;
            let (status, headers) = (answer.status(), answer.headers().clone());
            Ok(Whole {
                status,
                headers,
                body: answer.bytes().await?,
            })
        });
        task.await.expect("the forwarding task does not panic")
    }
}

/// A request as the proxy read it, to be forwarded.
struct Forward {
    method: Method,
    /// Path and query, as the client sent them.
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

/// An answer of the node, read whole.
struct Whole {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Every request: picks its fault (before anything else, so that counters
/// are set when the client sees the outcome), reads the body, then forwards
/// or applies the fault.
pub(super) async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    shared.received.fetch_add(1, Relaxed);
    let (parts, body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let fault = rules::pick(&shared.rules.lock().unwrap(), &parts.method, &target);
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => return error_answer(400, "proxy_request_exception", &e.to_string()),
    };
    let request = Forward {
        method: parts.method,
        target,
        headers: parts.headers,
        body,
    };
    match fault {
        None => match shared.send(request).await {
            Ok(answer) => stream_back(answer),
            Err(e) => upstream_failed(&e),
        },
        Some(Fault::RespondWithoutForwarding(status)) => injected(status),
        // Whether the node took the change is for the test to read back.
        Some(Fault::ForwardThenRespond(status)) => {
            let _ = shared.exchange(request).await;
            injected(status)
        }
        Some(Fault::HangWithoutForwarding) => hang(&shared.stop).await,
        Some(Fault::ForwardThenHang) => {
            let _ = shared.exchange(request).await;
            hang(&shared.stop).await
        }
        Some(Fault::DropMidAnswer) => match shared.exchange(request).await {
            Ok(answer) => cut_short(answer),
            Err(e) => upstream_failed(&e),
        },
        Some(Fault::DelayThenForward(delay)) => {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shared.stop.cancelled() => {
                    return error_answer(503, "proxy_stopped_exception", "the test proxy stopped");
                }
            }
            match shared.send(request).await {
                Ok(answer) => stream_back(answer),
                Err(e) => upstream_failed(&e),
            }
        }
    }
}

/// The node's answer as it comes, minus hop-by-hop headers.
fn stream_back(answer: reqwest::Response) -> Response {
    let (mut parts, body) = axum::http::Response::<reqwest::Body>::from(answer).into_parts();
    parts.headers = end_to_end(&parts.headers);
    Response::from_parts(parts, Body::new(body))
}

/// The head and the first half of `answer`, then a closed connection.
fn cut_short(answer: Whole) -> Response {
    let mut headers = end_to_end(&answer.headers);
    if answer.body.is_empty() {
        // No bytes to withhold: chunked, the missing last chunk is the cut.
        headers.remove(header::CONTENT_LENGTH);
    }
    let half = answer.body.slice(..answer.body.len() / 2);
    let mut response = Response::new(Body::new(cut::CutBody::new(half)));
    *response.status_mut() = answer.status;
    *response.headers_mut() = headers;
    response
}

/// Waits for the proxy to stop, then answers 503.
async fn hang(stop: &CancellationToken) -> Response {
    stop.cancelled().await;
    error_answer(503, "proxy_stopped_exception", "the test proxy stopped")
}

fn injected(status: u16) -> Response {
    error_answer(
        status,
        "injected_fault_exception",
        "injected by the test proxy",
    )
}

fn upstream_failed(e: &reqwest::Error) -> Response {
    let reason = format!("the test proxy could not reach the node: {e:?}");
    error_answer(502, "proxy_upstream_exception", &reason)
}

/// An error answer as the engines shape them.
fn error_answer(status: u16, kind: &str, reason: &str) -> Response {
    let cause = serde_json::json!({"type": kind, "reason": reason});
    let mut error = cause.clone();
    error["root_cause"] = serde_json::json!([cause]);
    let body = serde_json::json!({"error": error, "status": status});
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=UTF-8")
        .body(Body::from(body.to_string()))
        .expect("a fault's status is a valid HTTP status")
}

/// `headers` without the hop-by-hop ones: those named by `Connection` and
/// those RFC 9110 (7.6.1) says a proxy must not forward.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    const HOP_BY_HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    let mut kept = headers.clone();
    for name in HOP_BY_HOP
        .iter()
        .map(|n| HeaderName::from_static(n))
        .chain(named)
    {
        kept.remove(name);
    }
    kept
}

mod cut {
    //! The body of a [`Fault::DropMidAnswer`](super::Fault::DropMidAnswer) answer.

    use std::pin::Pin;
    use std::task::{Context, Poll};

    use axum::body::{Bytes, HttpBody};
    use http_body::Frame;

    /// Yields `part`, then an error, on which hyper closes the connection.
    /// In between it waits once, so that hyper flushes the head and `part`
    /// to the socket before it sees the error. The size is left unknown:
    /// hyper trusts the `Content-Length` header, and the client waits for
    /// bytes that never come.
    pub struct CutBody {
        part: Option<Bytes>,
        flushed: bool,
    }

    impl CutBody {
        pub fn new(part: Bytes) -> CutBody {
            let part = (!part.is_empty()).then_some(part);
            CutBody {
                part,
                flushed: false,
            }
        }
    }

    impl HttpBody for CutBody {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if let Some(part) = self.part.take() {
                return Poll::Ready(Some(Ok(Frame::data(part))));
            }
            if !self.flushed {
                self.flushed = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let cut = std::io::ErrorKind::ConnectionAborted;
            let error = std::io::Error::new(cut, "the test proxy cut the answer short");
            Poll::Ready(Some(Err(error)))
        }
    }
}
