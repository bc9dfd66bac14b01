//! What templates and ISM policies would add to the new generation beyond
//! its mapping file.
//!
//! The rule: a template may only set what the mapping file also states,
//! because the create request's values win over a template's. Anything
//! else it would add is a silent change and refused: an alias, a setting
//! the file leaves unset (pipelines and lifecycle policies included), a
//! mapping parameter, field or dynamic template the file does not have.
//! The settings reindexd sets itself at stage 1 count as stated.
//!
//! Which templates apply follows the engine: the matching composable
//! template of highest priority (with its component templates, as the
//! simulate API composes them); only when none matches, every matching
//! legacy template.

use serde_json::{Map, Value};

use super::{glob, Finding, Ism, Level, Observed};
use crate::es::{IndexTemplate, LegacyTemplate};
use crate::migration::mapping::MappingFile;
use crate::migration::mapping::BULK_SETTING_KEYS;

/// Settings an engine puts into every simulated index by itself.
const ENGINE_SETTINGS: [&str; 1] = ["index.routing.allocation.include._tier_preference"];

pub(super) fn findings(target: &str, file: &MappingFile, seen: &Observed) -> Vec<Finding> {
    let mut out = Vec::new();
    let winner = seen
        .composable
        .iter()
        .filter(|t| matches(&t.index_patterns, target))
        .max_by_key(|t| t.priority);
    let s = &seen.simulated;
    let simulated_empty = s.settings.is_empty() && s.mappings.is_empty() && s.aliases.is_empty();
    if let Some(t) = winner.filter(|t| t.data_stream) {
        out.push(refuse(format!(
            "index template {} matches {target} and makes data streams only: the cluster would refuse the new generation; \
             narrow its index_patterns",
            t.name
        )));
    } else if winner.is_some() || !simulated_empty {
        let added = additions(&s.settings, &s.mappings, &s.aliases, file);
        if !added.is_empty() {
            out.push(refuse(format!(
                "{} would add to {target}: {}; state them in {} or narrow the template's index_patterns",
                winner.map_or("an index template".into(), composable_name),
                added.join(", "),
                file.path.display()
            )));
        }
    } else {
        out.extend(legacy(target, file, &seen.legacy));
    }
    out.extend(ism(target, seen));
    out
}

fn composable_name(t: &IndexTemplate) -> String {
    if t.composed_of.is_empty() {
        format!("index template {}", t.name)
    } else {
        format!(
            "index template {} (with component templates {})",
            t.name,
            t.composed_of.join(", ")
        )
    }
}

fn legacy(target: &str, file: &MappingFile, templates: &[LegacyTemplate]) -> Vec<Finding> {
    let mut matching: Vec<&LegacyTemplate> = templates
        .iter()
        .filter(|t| matches(&t.index_patterns, target))
        .collect();
    matching.sort_by_key(|t| (t.order, t.name.clone()));
    matching
        .into_iter()
        .filter_map(|t| {
            let added = additions(&t.settings, &t.mappings, &t.aliases, file);
            (!added.is_empty()).then(|| {
                refuse(format!(
                    "legacy template {} would add to {target}: {}; state them in {} or narrow the template's index_patterns",
                    t.name,
                    added.join(", "),
                    file.path.display()
                ))
            })
        })
        .collect()
}

fn ism(target: &str, seen: &Observed) -> Vec<Finding> {
    match &seen.ism {
        Ism::Absent => Vec::new(),
        Ism::Templates(templates) => templates
            .iter()
            .filter(|t| matches(&t.index_patterns, target))
            .map(|t| {
                refuse(format!(
                    "ISM policy {} would attach itself to {target} (its ism_template matches {}); \
                     narrow the ism_template's index_patterns",
                    t.policy,
                    t.index_patterns.join(", ")
                ))
            })
            .collect(),
        Ism::Unreadable(reason) => vec![Finding::new(
            Level::Warn,
            "ism_unchecked",
            format!("could not read ISM policies ({reason}): one whose ism_template matches {target} would attach itself to it"),
        )],
    }
}

fn matches(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| glob(p, name))
}

fn refuse(message: String) -> Finding {
    Finding::new(Level::Refuse, "template_conflict", message)
}

/// What a template's `settings` (flat), `mappings` and `aliases` add that
/// the mapping file does not state, each described for people.
pub(super) fn additions(
    settings: &Map<String, Value>,
    mappings: &Map<String, Value>,
    aliases: &Map<String, Value>,
    file: &MappingFile,
) -> Vec<String> {
    let mut added: Vec<String> = aliases
        .iter()
        .map(|(alias, def)| match def["is_write_index"].as_bool() {
            Some(true) => format!("write alias {alias}"),
            _ => format!("alias {alias}"),
        })
        .collect();
    let stated = file.flat_settings();
    for (key, value) in settings {
        let ours = BULK_SETTING_KEYS.contains(&key.as_str());
        if stated.contains_key(key) || ours || ENGINE_SETTINGS.contains(&key.as_str()) {
            continue;
        }
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let kind = if key.ends_with("_pipeline") {
            "ingest pipeline"
        } else if key.starts_with("index.lifecycle.") || key.contains("index_state_management.") {
            "lifecycle policy"
        } else {
            "setting"
        };
        added.push(format!("{kind} {key} = {value}"));
    }
    mapping_additions(mappings, &file.mappings, &mut added);
    added
}

fn mapping_additions(
    template: &Map<String, Value>,
    file: &Map<String, Value>,
    out: &mut Vec<String>,
) {
    for (key, value) in template {
        match key.as_str() {
            "_meta" => {} // descriptive only; reindexd adds its own key
            "properties" => fields(value, file.get("properties"), "", out),
            "dynamic_templates" => {
                let names = |v: Option<&Value>| -> Vec<String> {
                    let list = v.and_then(Value::as_array).cloned().unwrap_or_default();
                    list.iter()
                        .filter_map(|t| t.as_object().and_then(|o| o.keys().next().cloned()))
                        .collect()
                };
                let stated = names(file.get("dynamic_templates"));
                for name in names(Some(value)) {
                    if !stated.contains(&name) {
                        out.push(format!("dynamic template {name}"));
                    }
                }
            }
            other if !file.contains_key(other) => {
                out.push(format!("mapping parameter {other} = {value}"))
            }
            _ => {}
        }
    }
}

/// Fields (by path) a template maps that the file does not.
fn fields(template: &Value, file: Option<&Value>, prefix: &str, out: &mut Vec<String>) {
    let Some(template) = template.as_object() else {
        return;
    };
    for (name, def) in template {
        let path = format!("{prefix}{name}");
        match file.and_then(|f| f.get(name)) {
            None => out.push(format!("field {path}")),
            Some(stated) => {
                if let Some(inner) = def.get("properties") {
                    fields(inner, stated.get("properties"), &format!("{path}."), out);
                }
            }
        }
    }
}
