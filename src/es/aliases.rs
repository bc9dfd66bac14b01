//! Alias calls: read who points where (briefly, or with each link's full
//! definition), and apply an atomic action list.

use elasticsearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{seg, Body, EsClient, EsError};

/// One alias → index link as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasEntry {
    pub alias: String,
    pub index: String,
    /// `Some(true)` when the link is the alias's write index.
    pub is_write_index: Option<bool>,
}

/// One alias → index link with everything an `_aliases` `add` action can
/// carry, so that it can be recreated on another index without losing its
/// filter, routing or flags. Serialises as the body of such an `add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasDefinition {
    pub alias: String,
    pub index: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_routing: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_routing: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_write_index: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_hidden: Option<bool>,
}

impl AliasDefinition {
    /// From one entry of an index's `aliases` object as the cluster
    /// reports it (`GET /{index}`, `GET /{index}/_alias`).
    pub(crate) fn from_props(alias: &str, index: &str, props: &Value) -> Self {
        let text = |key: &str| props[key].as_str().map(str::to_owned);
        AliasDefinition {
            alias: alias.to_owned(),
            index: index.to_owned(),
            filter: props.get("filter").cloned(),
            index_routing: text("index_routing"),
            search_routing: text("search_routing"),
            is_write_index: props["is_write_index"].as_bool(),
            is_hidden: props["is_hidden"].as_bool(),
        }
    }
}

/// One action of an `_aliases` request. The whole list is applied atomically
/// by the cluster: all of it or none of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AliasAction {
    Add {
        index: String,
        alias: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        is_write_index: Option<bool>,
    },
    /// An alias recreated with its whole definition (filter, routing,
    /// hidden) on the index it names.
    #[serde(rename = "add")]
    AddDefined(AliasDefinition),
    /// With `must_exist: true` the whole request fails when the link is
    /// gone, which turns the list into a compare-and-set on alias state.
    Remove {
        index: String,
        alias: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        must_exist: Option<bool>,
    },
}

#[derive(Serialize)]
struct AliasRequest<'a> {
    actions: &'a [AliasAction],
}

#[derive(Deserialize)]
struct IndexAliases {
    #[serde(default)]
    aliases: Map<String, Value>,
}

impl EsClient {
    /// Every link of the aliases matching `pattern` (a name, a comma list or
    /// a wildcard); empty when none exists.
    pub async fn get_aliases(&self, pattern: &str) -> Result<Vec<AliasEntry>, EsError> {
        let path = format!("/_alias/{}", seg(pattern).replace("%2C", ","));
        let query = [("expand_wildcards", "all")];
        let (status, bytes) = self
            .send_raw(Method::Get, &path, &query, None, None)
            .await?;
        // 404 means "no such alias"; its body may still list partial matches.
        if status != 200 && status != 404 {
            return Err(super::status_error(Method::Get, &path, status, &bytes));
        }
        let by_index: Map<String, Value> = super::decode(Method::Get, &path, &bytes)?;
        let mut entries = Vec::new();
        for (index, value) in by_index {
            let Ok(aliases) = serde_json::from_value::<IndexAliases>(value) else {
                continue; // the 404 body's "error"/"status" keys
            };
            for (alias, props) in aliases.aliases {
                entries.push(AliasEntry {
                    alias,
                    index: index.clone(),
                    is_write_index: props["is_write_index"].as_bool(),
                });
            }
        }
        entries.sort_by(|a, b| (&a.alias, &a.index).cmp(&(&b.alias, &b.index)));
        Ok(entries)
    }

    /// Every alias of one index with its full definition, sorted by name.
    pub async fn alias_definitions(&self, index: &str) -> Result<Vec<AliasDefinition>, EsError> {
        let path = format!("/{}/_alias", seg(index));
        let query = [("expand_wildcards", "all")];
        let by_index: Map<String, Value> = self.send_json(Method::Get, &path, &query, None).await?;
        let mut links = Vec::new();
        for (index, value) in by_index {
            let Ok(aliases) = serde_json::from_value::<IndexAliases>(value) else {
                continue;
            };
            for (alias, props) in &aliases.aliases {
                links.push(AliasDefinition::from_props(alias, &index, props));
            }
        }
        links.sort_by(|a, b| (&a.alias, &a.index).cmp(&(&b.alias, &b.index)));
        Ok(links)
    }

    /// `POST /_aliases`: applies every action or none.
    pub async fn update_aliases(&self, actions: &[AliasAction]) -> Result<(), EsError> {
        let body = Body::json(&AliasRequest { actions });
        self.send_ok(Method::Post, "/_aliases", &[], Some(body), None)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_serialise_as_the_engine_expects() {
        let actions = [
            AliasAction::Remove {
                index: "a".into(),
                alias: "w".into(),
                must_exist: Some(true),
            },
            AliasAction::Add {
                index: "b".into(),
                alias: "w".into(),
                is_write_index: Some(true),
            },
        ];
        let json = serde_json::to_string(&AliasRequest { actions: &actions }).unwrap();
        assert_eq!(
            json,
            r#"{"actions":[{"remove":{"index":"a","alias":"w","must_exist":true}},{"add":{"index":"b","alias":"w","is_write_index":true}}]}"#
        );
    }
}
