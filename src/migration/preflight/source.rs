//! What the source generation itself allows: a plain index (no data
//! stream, no rollover series) whose `_source` gives back every field.

use serde_json::{Map, Value};

use super::{glob, Finding, Level};
use crate::es::{IndexDefinition, Resolved};

/// The source must be a plain index: not a data stream, not one's backing
/// index, and not reached through an alias of one.
pub(super) fn data_stream(read: &str, resolved: &Resolved) -> Vec<Finding> {
    let mut why: Vec<String> = resolved
        .data_streams
        .iter()
        .map(|d| format!("{d} is a data stream"))
        .collect();
    for (index, stream) in &resolved.indices {
        if let Some(stream) = stream {
            why.push(format!(
                "{index} is a backing index of data stream {stream}"
            ));
        }
    }
    for (alias, targets) in &resolved.aliases {
        if let Some(t) = targets.iter().find(|t| resolved.data_streams.contains(t)) {
            why.push(format!("{alias} points at data stream {t}"));
        }
    }
    if why.is_empty() {
        return Vec::new();
    }
    vec![Finding::new(
        Level::Refuse,
        "unsupported_source",
        format!(
            "{}: a data stream is a time series, not a generation reindexd can copy and swap behind {read}; \
             reindex it with the engine's own tools",
            why.join(", ")
        ),
    )]
}

/// Settings whose presence makes the source part of a rollover series.
pub(super) const ROLLOVER_SETTINGS: [&str; 3] = [
    "index.lifecycle.rollover_alias",
    "index.plugins.index_state_management.rollover_alias",
    "index.opendistro.index_state_management.rollover_alias",
];

/// Settings that attach a lifecycle policy to an index.
const POLICY_SETTINGS: [&str; 3] = [
    "index.lifecycle.name",
    "index.plugins.index_state_management.policy_id",
    "index.opendistro.index_state_management.policy_id",
];

pub(super) fn lifecycle(source: &str, def: &IndexDefinition) -> Vec<Finding> {
    let set = |keys: &[&str]| -> Vec<String> {
        keys.iter()
            .filter_map(|k| match def.settings.get(*k) {
                Some(Value::String(v)) if !v.is_empty() => Some(format!("{k} = {v}")),
                _ => None,
            })
            .collect()
    };
    let rollover = set(&ROLLOVER_SETTINGS);
    if !rollover.is_empty() {
        return vec![Finding::new(
            Level::Refuse,
            "unsupported_source",
            format!(
                "{source} is managed by rollover ({}): a rollover series is a time series, not a generation reindexd can copy and swap",
                rollover.join(", ")
            ),
        )];
    }
    let policy = set(&POLICY_SETTINGS);
    if policy.is_empty() {
        return Vec::new();
    }
    vec![Finding::new(
        Level::Warn,
        "source_lifecycle",
        format!(
            "{source} has a lifecycle policy ({}); it may act on the source during the copy, and the new generation will not have it",
            policy.join(", ")
        ),
    )]
}

/// Copies are made from `_source`: it must exist and hold every field.
pub(super) fn source_field(
    source: &str,
    def: &IndexDefinition,
    accepted: &[String],
) -> Vec<Finding> {
    let field = def.mappings.get("_source").cloned().unwrap_or(Value::Null);
    if field["enabled"] == Value::Bool(false) {
        return vec![Finding::new(
            Level::Refuse,
            "source_disabled",
            format!("{source} has _source disabled: documents cannot be read back, so there is nothing to copy them from; refill a new index from the application's source of truth instead"),
        )];
    }
    let mut findings = Vec::new();
    let synthetic = field["mode"] == "synthetic"
        || def.settings.get("index.mapping.source.mode") == Some(&Value::from("synthetic"));
    if synthetic {
        findings.push(Finding::new(
            Level::Warn,
            "synthetic_source",
            format!("{source} has synthetic _source: copies are rebuilt from doc values (arrays sorted and de-duplicated, some precision lost), not byte-identical"),
        ));
    }
    let lost = lost_fields(&def.mappings);
    if lost.is_empty() {
        return findings;
    }
    let filter = format!("_source {field}");
    if lost.iter().all(|f| accepted.contains(f)) {
        findings.push(Finding::new(
            Level::Warn,
            "source_filtered",
            format!(
                "{source} keeps {} out of {filter}; accepted: the new generation will not have them",
                quoted(&lost)
            ),
        ));
    } else {
        let missing = lost.iter().filter(|f| !accepted.contains(f));
        findings.push(Finding::new(
            Level::Refuse,
            "source_filtered",
            format!(
                "{source} keeps {} out of {filter}: they are indexed there but a copy from _source loses them; \
                 if that is acceptable, set accept_lost_fields = [{}] for this index in [[indexes]]",
                quoted(missing),
                quoted(&lost)
            ),
        ));
    }
    findings
}

fn quoted<'a>(fields: impl IntoIterator<Item = &'a String>) -> String {
    let quoted: Vec<String> = fields.into_iter().map(|f| format!("{f:?}")).collect();
    quoted.join(", ")
}

/// Fields `_source` filtering leaves out: the `excludes` patterns as
/// written, and the mapped fields no `includes` pattern covers.
pub(super) fn lost_fields(mappings: &Map<String, Value>) -> Vec<String> {
    let field = mappings.get("_source").cloned().unwrap_or(Value::Null);
    let list = |key: &str| -> Vec<String> {
        match &field[key] {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Value::String(s) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let (includes, excludes) = (list("includes"), list("excludes"));
    let mut lost = Vec::new();
    if !includes.is_empty() {
        let mut paths = Vec::new();
        leaf_paths(mappings.get("properties"), "", &mut paths);
        lost.extend(
            paths
                .into_iter()
                .filter(|p| !includes.iter().any(|i| covers(i, p))),
        );
    }
    for e in excludes {
        if !lost.contains(&e) {
            lost.push(e);
        }
    }
    lost
}

fn leaf_paths(properties: Option<&Value>, prefix: &str, out: &mut Vec<String>) {
    let Some(Value::Object(properties)) = properties else {
        return;
    };
    for (name, def) in properties {
        let path = format!("{prefix}{name}");
        match def.get("properties") {
            Some(inner) => leaf_paths(Some(inner), &format!("{path}."), out),
            None => out.push(path),
        }
    }
}

/// An `includes` pattern keeps a field when it matches the field's path
/// or the path of an object around it.
fn covers(pattern: &str, path: &str) -> bool {
    glob(pattern, path)
        || path
            .match_indices('.')
            .any(|(at, _)| glob(pattern, &path[..at]))
}
