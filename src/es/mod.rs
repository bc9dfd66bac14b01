//! The only code that speaks HTTP to the cluster.
//!
//! Built on the official `elasticsearch` crate; every call goes through its
//! raw [`Transport::send`](elasticsearch::http::transport::Transport::send)
//! so that one code path talks to Elasticsearch and OpenSearch alike and
//! pre-built bulk bodies are sent as they are. This module owns connection
//! settings, engine detection and typed errors; it knows nothing of
//! migrations, aliases' meaning or state.
//!
//! Submodules add calls to [`EsClient`] by area: `indices`, `aliases`,
//! `bulk`, `search` (sliced scroll, point in time), `keys` (documents by
//! key and version), `seq_nos` (per-shard sequence numbers), `tasks` and
//! `inspect` (an index's whole definition, name resolution, templates).

mod aliases;
mod bulk;
mod connect;
mod docs;
mod error;
mod indices;
mod info;
mod ingest;
mod inspect;
mod keys;
mod search;
mod search_health;
mod security;
mod seq_nos;
mod tasks;

pub use aliases::{AliasAction, AliasDefinition, AliasEntry};

pub use bulk::BulkResponse;
pub(crate) use docs::WriteCondition;
pub use error::EsError;
pub use info::{Engine, ServerInfo, Version};
pub(crate) use inspect::flat_settings;
pub use inspect::{
    IndexDefinition, IndexTemplate, IsmTemplate, LegacyTemplate, Resolved, SimulatedIndex,
};
pub use keys::Found;
pub(crate) use keys::{DocKey, KeyVersion};
pub(crate) use search::PitId;
pub use search::{Hit, Page, Slice};
pub(crate) use security::IndexPrivileges;
pub(crate) use seq_nos::operations_between;
pub(crate) use tasks::ServerCopySupport;
pub use tasks::{Availability, TaskStatus};

use std::time::Duration;

use bytes::Bytes;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_TYPE};
use elasticsearch::http::transport::{
    MultiNodeConnectionPool, SingleNodeConnectionPool, Transport, TransportBuilder,
};
use elasticsearch::http::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use url::Url;

use crate::secret::Secret;

/// How the client authenticates to the cluster.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        username: String,
        password: Secret,
    },
    /// An API key as the engine issues it: base64 of `id:key`.
    ApiKey(Secret),
}

/// Everything needed to reach the cluster.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// One or more node URLs; requests are spread round-robin.
    pub urls: Vec<Url>,
    pub auth: Auth,
    /// PEM bytes of a CA that signs the cluster's certificate, trusted in
    /// addition to the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Upper bound of any single call unless the call sets its own.
    pub request_timeout: Duration,
}

impl ConnectOptions {
    pub fn new(url: Url) -> Self {
        ConnectOptions {
            urls: vec![url],
            auth: Auth::None,
            ca_pem: None,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A handle to the cluster. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct EsClient {
    transport: Transport,
    /// For error messages: the first configured URL, without credentials.
    url: String,
    request_timeout: Duration,
    /// How many node URLs the pool rotates through.
    nodes: usize,
}

impl std::fmt::Debug for EsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsClient").field("url", &self.url).finish()
    }
}

/// A query string: pairs of key and value, serialised by the transport.
pub(crate) type Query<'a> = [(&'a str, &'a str)];

impl EsClient {
    /// Builds the client. Does no I/O: call [`EsClient::info`] to check that
    /// the cluster answers.
    pub fn connect(options: &ConnectOptions) -> Result<Self, EsError> {
        let first = options
            .urls
            .first()
            .ok_or_else(|| EsError::Config("no cluster URL configured".into()))?;
        for url in &options.urls {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(EsError::Config(format!(
                    "cluster URL {url} must start with http:// or https://"
                )));
            }
        }
        let mut builder = if options.urls.len() == 1 {
            TransportBuilder::new(SingleNodeConnectionPool::new(first.clone()))
        } else {
            TransportBuilder::new(MultiNodeConnectionPool::round_robin(
                options.urls.clone(),
                None,
            ))
        };
        builder = builder
            .timeout(options.request_timeout)
            .enable_meta_header(false)
            .disable_proxy()
            // The crate asks for gzip answers; compressing every search and
            // bulk answer costs the cluster more CPU than it saves on a LAN.
            .header(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        builder = match &options.auth {
            Auth::None => builder,
            Auth::Basic { username, password } => builder.auth(Credentials::Basic(
                username.clone(),
                password.expose().to_owned(),
            )),
            Auth::ApiKey(key) => builder.auth(Credentials::EncodedApiKey(key.expose().to_owned())),
        };
        if let Some(pem) = &options.ca_pem {
            let cert = Certificate::from_pem(pem)
                .map_err(|e| EsError::Config(format!("CA certificate is not valid PEM: {e}")))?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder
            .build()
            .map_err(|e| EsError::Config(format!("cannot build the HTTP client: {e}")))?;
        let mut shown = first.clone();
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        Ok(EsClient {
            transport,
            url: shown.as_str().trim_end_matches('/').to_owned(),
            request_timeout: options.request_timeout,
            nodes: options.urls.len(),
        })
    }

    /// The first configured URL, credentials removed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one request and returns the status and body of any HTTP answer.
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        path: &str,
        query: &Query<'_>,
        body: Option<Body>,
        timeout: Option<Duration>,
    ) -> Result<(u16, Bytes), EsError> {
        let mut headers = HeaderMap::new();
        let payload = match body {
            None => None,
            Some(Body::Json(b)) => Some(b),
            Some(Body::NdJson(b)) => {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ndjson"),
                );
                Some(b)
            }
        };
        let query = (!query.is_empty()).then_some(query);
        // A node that refuses the connection never saw the request: the
        // next node of the pool gets it, as any cluster client does.
        let mut tries = self.nodes;
        let response = loop {
            tries -= 1;
            let result = self
                .transport
                .send(
                    method,
                    path,
                    headers.clone(),
                    query,
                    payload.clone(),
                    timeout,
                )
                .await;
            match result {
                Err(e) if tries > 0 && never_sent(&e) => continue,
                result => {
                    break result.map_err(|e| self.transport_error(method, path, &e, timeout))?
                }
            }
        };
        let status = response.status_code().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(method, path, &e, timeout))?;
        Ok((status, bytes))
    }

    /// Sends one request; any status outside 2xx becomes [`EsError::Status`].
    pub(crate) async fn send_ok(
        &self,
        method: Method,
        path: &str,
        query: &Query<'_>,
        body: Option<Body>,
        timeout: Option<Duration>,
    ) -> Result<Bytes, EsError> {
        let (status, bytes) = self.send_raw(method, path, query, body, timeout).await?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        Err(status_error(method, path, status, &bytes))
    }

    /// Sends one request and decodes a 2xx JSON answer into `T`.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &Query<'_>,
        body: Option<Body>,
    ) -> Result<T, EsError> {
        let bytes = self.send_ok(method, path, query, body, None).await?;
        decode(method, path, &bytes)
    }

    fn transport_error(
        &self,
        method: Method,
        path: &str,
        e: &elasticsearch::Error,
        timeout: Option<Duration>,
    ) -> EsError {
        let call = call_name(method, path);
        if e.is_timeout() {
            return EsError::Timeout {
                call,
                url: self.url.clone(),
                timeout: timeout.unwrap_or(self.request_timeout),
            };
        }
        EsError::Unreachable {
            call,
            url: self.url.clone(),
            detail: error_chain(e),
        }
    }
}

/// A request body, already encoded.
pub(crate) enum Body {
    Json(Bytes),
    NdJson(Bytes),
}

impl Body {
    pub(crate) fn json(value: &impl Serialize) -> Body {
        // Serialising our own request types cannot fail: no maps with
        // non-string keys, no failing Serialize impls.
        Body::Json(Bytes::from(
            serde_json::to_vec(value).expect("request bodies serialise"),
        ))
    }
}

/// The typed error for an answer outside 2xx.
pub(crate) fn status_error(method: Method, path: &str, status: u16, body: &[u8]) -> EsError {
    let (error_type, reason) = error::describe_error_body(body);
    EsError::Status {
        call: call_name(method, path),
        status,
        error_type,
        reason,
    }
}

pub(crate) fn decode<T: DeserializeOwned>(
    method: Method,
    path: &str,
    bytes: &[u8],
) -> Result<T, EsError> {
    serde_json::from_slice(bytes).map_err(|e| EsError::Decode {
        call: call_name(method, path),
        detail: e.to_string(),
    })
}

fn call_name(method: Method, path: &str) -> String {
    let verb = match method {
        Method::Get => "GET",
        Method::Put => "PUT",
        Method::Post => "POST",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    };
    format!("{verb} {path}")
}

/// Whether the request failed before reaching the node (the connection
/// itself could not be made), so sending it elsewhere cannot apply it twice.
fn never_sent(e: &elasticsearch::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<reqwest::Error>() {
            return r.is_connect();
        }
        source = s.source();
    }
    false
}

/// The error and its sources on one line: the innermost cause ("connection
/// refused", "invalid peer certificate") is what an operator needs.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Percent-encodes one path segment (index names may hold `+`, `%`, `#`...).
pub(crate) fn seg(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
