//! What the credentials may do: `_security/user/_has_privileges`, on
//! clusters whose security offers it (Elasticsearch with security on).

use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use super::{status_error, Body, EsClient, EsError};

/// Privileges on some index names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPrivileges {
    /// Names or patterns, e.g. `kb_*`.
    pub names: Vec<String>,
    pub privileges: Vec<&'static str>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    cluster: BTreeMap<String, bool>,
    #[serde(default)]
    index: BTreeMap<String, BTreeMap<String, bool>>,
}

impl EsClient {
    /// The requested privileges the credentials lack, each as
    /// "cluster privilege X" or "index privilege X on NAME". `None` when
    /// the cluster has no `_has_privileges` (no security, or OpenSearch):
    /// then nothing can be checked ahead, and a refused call says itself
    /// which privilege it needed.
    pub async fn missing_privileges(
        &self,
        cluster: &[&'static str],
        index: &[IndexPrivileges],
    ) -> Result<Option<Vec<String>>, EsError> {
        let body = json!({
            "cluster": cluster,
            "index": index
                .iter()
                .map(|i| json!({"names": i.names, "privileges": i.privileges}))
                .collect::<Vec<_>>(),
        });
        let path = "/_security/user/_has_privileges";
        let (status, bytes) = self
            .send_raw(Method::Post, path, &[], Some(Body::json(&body)), None)
            .await?;
        if !(200..300).contains(&status) {
            return match no_such_api(status, &bytes) {
                true => Ok(None),
                false => Err(status_error(Method::Post, path, status, &bytes)),
            };
        }
        let answer: Answer = super::decode(Method::Post, path, &bytes)?;
        Ok(Some(missing(&answer)))
    }
}

/// An answer of a cluster without the API: no handler for the path, or
/// (Elasticsearch without x-pack) the path read as an index name.
fn no_such_api(status: u16, body: &[u8]) -> bool {
    let error = serde_json::from_slice::<Map<String, Value>>(body)
        .ok()
        .and_then(|mut v| v.remove("error"));
    let kind = error.as_ref().and_then(|e| e["type"].as_str());
    match status {
        404 | 405 => true,
        400 => matches!(kind, None | Some("invalid_index_name_exception")),
        _ => false,
    }
}

fn missing(answer: &Answer) -> Vec<String> {
    let cluster = answer
        .cluster
        .iter()
        .filter(|(_, has)| !**has)
        .map(|(p, _)| format!("cluster privilege {p}"));
    let index = answer.index.iter().flat_map(|(name, privileges)| {
        privileges
            .iter()
            .filter(|(_, has)| !**has)
            .map(move |(p, _)| format!("index privilege {p} on {name}"))
    });
    cluster.chain(index).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_missing_privilege() {
        let answer: Answer = serde_json::from_str(
            r#"{"username":"rx","has_all_requested":false,
                "cluster":{"manage_index_templates":false,"monitor":true},
                "index":{"kb_*":{"manage":true,"write":false},".state":{"read":true}},"application":{}}"#,
        )
        .unwrap();
        assert_eq!(
            missing(&answer),
            [
                "cluster privilege manage_index_templates",
                "index privilege write on kb_*"
            ]
        );
    }

    #[test]
    fn tells_a_missing_api_from_a_refusal() {
        let no_handler = br#"{"error":"no handler found for uri [/_security/user/_has_privileges] and method [POST]"}"#;
        assert!(no_such_api(400, no_handler));
        assert!(no_such_api(404, b""));
        let refused = br#"{"error":{"type":"security_exception","reason":"unable to authenticate user [x]"},"status":401}"#;
        assert!(!no_such_api(401, refused));
        let as_index = br#"{"error":{"type":"invalid_index_name_exception","reason":"Invalid index name [_security], must not start with '_', '-', or '+'"},"status":400}"#;
        assert!(no_such_api(400, as_index));
        let typed_400 = br#"{"error":{"type":"illegal_argument_exception","reason":"unknown privilege"},"status":400}"#;
        assert!(!no_such_api(400, typed_400));
    }
}
