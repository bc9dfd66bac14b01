//! Read-only calls that describe what surrounds an index: its whole
//! definition, how a name resolves, and what templates (composable, legacy)
//! and ISM policies would give a new index of a name. Settings come back
//! flat (`index.max_result_window`) whatever shape the engine answers in.

use elasticsearch::http::Method;
use serde_json::{Map, Value};

use super::{seg, AliasDefinition, EsClient, EsError};

/// An index as `GET /{index}` describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexDefinition {
    /// Flat `index.*` keys.
    pub settings: Map<String, Value>,
    pub mappings: Map<String, Value>,
    pub aliases: Vec<AliasDefinition>,
}

/// What composable templates (with their component templates) would give
/// a new index of some name: `POST /_index_template/_simulate_index/{name}`.
/// Legacy templates are not folded in: the engine applies them only when
/// no composable template matches, and lists them under `overlapping`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimulatedIndex {
    /// Flat `index.*` keys.
    pub settings: Map<String, Value>,
    pub mappings: Map<String, Value>,
    /// Alias name → its definition (filter, routing, flags).
    pub aliases: Map<String, Value>,
}

/// One composable index template, as far as matching goes.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexTemplate {
    pub name: String,
    pub index_patterns: Vec<String>,
    pub priority: i64,
    pub composed_of: Vec<String>,
    /// The template makes data streams only; the engine refuses to create
    /// a plain index whose name it matches.
    pub data_stream: bool,
}

/// One legacy (`_template`) template with what it adds.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyTemplate {
    pub name: String,
    pub index_patterns: Vec<String>,
    pub order: i64,
    /// Flat `index.*` keys.
    pub settings: Map<String, Value>,
    pub mappings: Map<String, Value>,
    pub aliases: Map<String, Value>,
}

/// The `ism_template` of an ISM policy: indexes created with a matching
/// name get the policy attached.
#[derive(Debug, Clone, PartialEq)]
pub struct IsmTemplate {
    pub policy: String,
    pub index_patterns: Vec<String>,
}

/// `GET /_resolve/index/{names}`: what each name is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    /// Concrete indexes, each with the data stream it backs, if any.
    pub indices: Vec<(String, Option<String>)>,
    /// Aliases, each with the indexes or data streams it points at.
    pub aliases: Vec<(String, Vec<String>)>,
    pub data_streams: Vec<String>,
}

impl EsClient {
    /// Settings (flat), mappings and aliases (full definitions) of `index`.
    pub async fn index_definition(&self, index: &str) -> Result<IndexDefinition, EsError> {
        let path = format!("/{}", seg(index));
        let query = [("flat_settings", "true")];
        let mut all: Map<String, Value> = self.send_json(Method::Get, &path, &query, None).await?;
        let Some(mut entry) = all.remove(index) else {
            return Err(EsError::Decode {
                call: format!("GET {path}"),
                detail: format!("no definition of index {index} in the answer"),
            });
        };
        let aliases = object(entry["aliases"].take())
            .iter()
            .map(|(alias, props)| AliasDefinition::from_props(alias, index, props))
            .collect();
        Ok(IndexDefinition {
            settings: flat_settings(&object(entry["settings"].take())),
            mappings: object(entry["mappings"].take()),
            aliases,
        })
    }

    /// What composable templates would give a new index called `name`.
    pub async fn simulate_index(&self, name: &str) -> Result<SimulatedIndex, EsError> {
        let path = format!("/_index_template/_simulate_index/{}", seg(name));
        let mut answer: Value = self.send_json(Method::Post, &path, &[], None).await?;
        let mut template = answer["template"].take();
        Ok(SimulatedIndex {
            settings: flat_settings(&object(template["settings"].take())),
            mappings: object(template["mappings"].take()),
            aliases: object(template["aliases"].take()),
        })
    }

    /// Every composable index template of the cluster.
    pub async fn index_templates(&self) -> Result<Vec<IndexTemplate>, EsError> {
        let path = "/_index_template";
        let (status, bytes) = self.send_raw(Method::Get, path, &[], None, None).await?;
        match status {
            200 => {}
            404 => return Ok(Vec::new()), // some versions: none defined
            _ => return Err(super::status_error(Method::Get, path, status, &bytes)),
        }
        let answer: Value = super::decode(Method::Get, path, &bytes)?;
        let templates = answer["index_templates"].as_array().cloned();
        Ok(templates
            .unwrap_or_default()
            .iter()
            .map(|t| {
                let body = &t["index_template"];
                IndexTemplate {
                    name: t["name"].as_str().unwrap_or_default().to_owned(),
                    index_patterns: strings(&body["index_patterns"]),
                    priority: body["priority"].as_i64().unwrap_or(0),
                    composed_of: strings(&body["composed_of"]),
                    data_stream: body.get("data_stream").is_some_and(|d| !d.is_null()),
                }
            })
            .collect())
    }

    /// Every legacy template of the cluster, settings flat.
    pub async fn legacy_templates(&self) -> Result<Vec<LegacyTemplate>, EsError> {
        let path = "/_template";
        let query = [("flat_settings", "true")];
        let (status, bytes) = self.send_raw(Method::Get, path, &query, None, None).await?;
        match status {
            200 => {}
            404 => return Ok(Vec::new()),
            _ => return Err(super::status_error(Method::Get, path, status, &bytes)),
        }
        let by_name: Map<String, Value> = super::decode(Method::Get, path, &bytes)?;
        Ok(by_name
            .into_iter()
            .map(|(name, mut t)| LegacyTemplate {
                name,
                index_patterns: strings(&t["index_patterns"]),
                order: t["order"].as_i64().unwrap_or(0),
                settings: flat_settings(&object(t["settings"].take())),
                mappings: untyped(object(t["mappings"].take())),
                aliases: object(t["aliases"].take()),
            })
            .collect())
    }

    /// The `ism_template`s of every ISM policy; `None` when the cluster
    /// has no ISM (Elasticsearch, or OpenSearch without the plugin).
    pub async fn ism_templates(&self) -> Result<Option<Vec<IsmTemplate>>, EsError> {
        let path = "/_plugins/_ism/policies";
        let query = [("size", "10000")];
        let (status, bytes) = self.send_raw(Method::Get, path, &query, None, None).await?;
        match status {
            200 => {}
            // "no handler found for uri": the endpoint does not exist here.
            400 | 404 | 405 => return Ok(None),
            _ => return Err(super::status_error(Method::Get, path, status, &bytes)),
        }
        let answer: Value = super::decode(Method::Get, path, &bytes)?;
        let mut found = Vec::new();
        for p in answer["policies"].as_array().into_iter().flatten() {
            let policy = &p["policy"];
            let name = policy["policy_id"].as_str().or(p["_id"].as_str());
            let templates = match &policy["ism_template"] {
                Value::Array(list) => list.clone(),
                Value::Object(_) => vec![policy["ism_template"].clone()],
                _ => Vec::new(),
            };
            for t in templates {
                found.push(IsmTemplate {
                    policy: name.unwrap_or_default().to_owned(),
                    index_patterns: strings(&t["index_patterns"]),
                });
            }
        }
        Ok(Some(found))
    }

    /// `GET /_resolve/index/{names}` (a comma list); hidden names included,
    /// names that do not exist left out.
    pub async fn resolve_index(&self, names: &[&str]) -> Result<Resolved, EsError> {
        let list: Vec<String> = names.iter().map(|n| seg(n)).collect();
        let path = format!("/_resolve/index/{}", list.join(","));
        let query = [("expand_wildcards", "all"), ("ignore_unavailable", "true")];
        let answer: Value = self.send_json(Method::Get, &path, &query, None).await?;
        let items = |key: &str| answer[key].as_array().cloned().unwrap_or_default();
        let name = |v: &Value| v["name"].as_str().unwrap_or_default().to_owned();
        Ok(Resolved {
            indices: items("indices")
                .iter()
                .map(|i| (name(i), i["data_stream"].as_str().map(str::to_owned)))
                .collect(),
            aliases: items("aliases")
                .iter()
                .map(|a| {
                    let mut targets = strings(&a["indices"]);
                    targets.extend(strings(&a["data_streams"]));
                    (name(a), targets)
                })
                .collect(),
            data_streams: items("data_streams").iter().map(name).collect(),
        })
    }
}

/// Nested or flat settings as flat `index.*` keys, the way the engine
/// reports them with `flat_settings=true`.
pub(crate) fn flat_settings(settings: &Map<String, Value>) -> Map<String, Value> {
    let mut flat = Map::new();
    flatten("", settings, &mut flat);
    flat.into_iter()
        .map(|(k, v)| {
            if k.starts_with("index.") {
                (k, v)
            } else {
                (format!("index.{k}"), v)
            }
        })
        .collect()
}

fn flatten(prefix: &str, object: &Map<String, Value>, out: &mut Map<String, Value>) {
    for (key, value) in object {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) => flatten(&key, inner, out),
            other => {
                out.insert(key, other.clone());
            }
        }
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A string or a list of strings (`index_patterns` may be either).
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(list) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Legacy templates written by old clients wrap mappings in a type name
/// (`{"_doc": {"properties": ...}}`): one key that is no mapping parameter.
fn untyped(mappings: Map<String, Value>) -> Map<String, Value> {
    let is_type = |key: &str| {
        key == "_doc" || !(key.starts_with('_') || key == "properties" || key == "runtime")
    };
    match mappings.iter().next() {
        Some((key, Value::Object(inner))) if mappings.len() == 1 && is_type(key) => inner.clone(),
        _ => mappings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_flatten_under_index() {
        let nested = json!({"index": {"max_result_window": "5000", "analysis": {"analyzer": {"a": {"filter": ["lowercase"]}}}}, "number_of_shards": 2});
        let flat = flat_settings(nested.as_object().unwrap());
        assert_eq!(flat["index.max_result_window"], "5000");
        assert_eq!(flat["index.number_of_shards"], 2);
        assert_eq!(
            flat["index.analysis.analyzer.a.filter"],
            json!(["lowercase"])
        );
    }

    #[test]
    fn typed_legacy_mappings_are_unwrapped() {
        let typed = json!({"_doc": {"properties": {"a": {"type": "text"}}}});
        let plain = json!({"properties": {"a": {"type": "text"}}});
        let dynamic = json!({"dynamic": false});
        for (given, expected) in [(&typed, &plain), (&plain, &plain), (&dynamic, &dynamic)] {
            assert_eq!(
                &Value::Object(untyped(given.as_object().unwrap().clone())),
                expected
            );
        }
    }
}
