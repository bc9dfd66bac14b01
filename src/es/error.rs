//! Errors of cluster calls: which call failed and what the cluster answered.

use std::time::Duration;

/// A failed call to the cluster. `call` is always `METHOD /path`.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    /// No HTTP answer at all: refused, reset, DNS, TLS handshake.
    #[error("{call}: cannot reach the cluster at {url}: {detail}")]
    Unreachable {
        call: String,
        url: String,
        detail: String,
    },
    /// The cluster did not answer in time.
    #[error("{call}: no answer from the cluster at {url} within {timeout:?}")]
    Timeout {
        call: String,
        url: String,
        timeout: Duration,
    },
    /// The cluster answered with an error status.
    #[error("{call}: the cluster answered {status}{}: {reason}{}", error_type.as_deref().map(|t| format!(" {t}")).unwrap_or_default(), credentials_hint(*status))]
    Status {
        call: String,
        status: u16,
        /// The engine's exception type, e.g. `resource_already_exists_exception`.
        error_type: Option<String>,
        reason: String,
    },
    /// The cluster answered 2xx but the body was not what this call expects.
    #[error("{call}: unexpected response from the cluster: {detail}")]
    Decode { call: String, detail: String },
    /// The connection settings themselves are unusable (bad URL, bad CA file).
    #[error("cluster connection settings: {0}")]
    Config(String),
}

impl EsError {
    /// HTTP status of a `Status` error.
    pub fn status(&self) -> Option<u16> {
        match self {
            EsError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The engine's exception type of a `Status` error.
    pub fn error_type(&self) -> Option<&str> {
        match self {
            EsError::Status { error_type, .. } => error_type.as_deref(),
            _ => None,
        }
    }

    /// The cluster refused to create an index because one of that name
    /// exists.
    pub fn is_already_exists(&self) -> bool {
        self.error_type() == Some("resource_already_exists_exception")
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The cluster refused the credentials (or their privileges).
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// True when the request may or may not have been applied: no answer
    /// (dropped connection, timeout) or a server error. The caller must
    /// read the cluster back rather than guess.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, EsError::Unreachable { .. } | EsError::Timeout { .. })
            || matches!(self.status(), Some(500..=599))
    }

    /// True when the cluster could not be reached, did not answer, or was
    /// too busy to take the request (429): the caller should report the
    /// cluster as unavailable, not the request as bad, and may try again.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, EsError::Unreachable { .. } | EsError::Timeout { .. })
            || matches!(self.status(), Some(429 | 502..=504))
    }
}

fn credentials_hint(status: u16) -> &'static str {
    match status {
        401 => " (the cluster refused the credentials: check elasticsearch.username/password or api_key)",
        403 => " (the credentials lack a privilege this call needs)",
        _ => "",
    }
}

/// Pulls `error.type` and `error.reason` (or `root_cause[0]`) out of an error body.
pub(crate) fn describe_error_body(body: &[u8]) -> (Option<String>, String) {
    let text = String::from_utf8_lossy(body);
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, truncate(&plain_text(&text), 500));
    };
    let error = &value["error"];
    if let Some(s) = error.as_str() {
        return (None, truncate(s, 500));
    }
    let cause = if error["reason"].is_string() {
        error
    } else {
        &error["root_cause"][0]
    };
    match (cause["type"].as_str(), cause["reason"].as_str()) {
        (ty, Some(reason)) => (ty.map(str::to_owned), truncate(reason, 500)),
        _ => (None, truncate(text.trim(), 500)),
    }
}

/// A non-JSON answer (a proxy's HTML page) as one line: its `<title>` if
/// it has one, else its text without tags.
fn plain_text(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    if let (Some(start), Some(end)) = (lower.find("<title>"), lower.find("</title>")) {
        if start + 7 <= end {
            return text[start + 7..end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_engine_exceptions() {
        let body = br#"{"error":{"root_cause":[{"type":"x","reason":"y"}],"type":"resource_already_exists_exception","reason":"index [a/b] already exists"},"status":400}"#;
        let (ty, reason) = describe_error_body(body);
        assert_eq!(ty.as_deref(), Some("resource_already_exists_exception"));
        assert_eq!(reason, "index [a/b] already exists");
    }

    #[test]
    fn describes_plain_and_garbage_bodies() {
        assert_eq!(
            describe_error_body(br#"{"error":"alias [x] missing","status":404}"#),
            (None, "alias [x] missing".to_owned())
        );
        assert_eq!(
            describe_error_body(b"<html>bad\r\n gateway</html>"),
            (None, "bad gateway".to_owned())
        );
        assert_eq!(
            describe_error_body(b"<html>\r\n<head><title>401 Authorization\r\n Required</title></head><body>x</body></html>"),
            (None, "401 Authorization Required".to_owned())
        );
    }

    #[test]
    fn truncates_on_char_boundary() {
        let long = "é".repeat(400);
        let t = truncate(&long, 501);
        assert!(t.ends_with('…'));
        assert!(t.len() <= 504);
    }

    #[test]
    fn classifies_unavailable() {
        let e = EsError::Status {
            call: "GET /".into(),
            status: 503,
            error_type: None,
            reason: "x".into(),
        };
        assert!(e.is_unavailable());
        assert!(!e.is_conflict());
        let busy = EsError::Status {
            call: "PUT /state/_doc/kb".into(),
            status: 429,
            error_type: Some("es_rejected_execution_exception".into()),
            reason: "rejected execution".into(),
        };
        assert!(busy.is_unavailable(), "a busy cluster is tried again");
        let bad = EsError::Status {
            call: "PUT /state/_doc/kb".into(),
            status: 400,
            error_type: None,
            reason: "bad".into(),
        };
        assert!(!bad.is_unavailable());
    }
}
