//! Ingest pipelines a stage 1 relies on: the copy's own (`pipeline`, which
//! every bulk request of the copy names) and the mapping file's
//! `index.default_pipeline` / `index.final_pipeline` (which every write to
//! the new generation runs). Each must exist and some node must be able to
//! run it; otherwise every document would fail, after the write alias
//! moved.

use serde_json::{Map, Value};

use super::{Finding, Level};

/// One pipeline stage 1 relies on, and what the cluster said of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::migration) struct PipelineUse {
    pub name: String,
    /// Who names it, for the message.
    pub by: &'static str,
    /// Whether it exists, or why that could not be read.
    pub exists: Result<bool, String>,
}

/// What preflight read about pipelines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(in crate::migration) struct Pipelines {
    pub uses: Vec<PipelineUse>,
    /// Nodes with the `ingest` role (read only when a pipeline is used).
    pub ingest_nodes: usize,
    /// The copy's pipeline and the mapping file's default one.
    pub copy: Option<String>,
    pub default: Option<String>,
}

/// The pipelines to look up: the copy's, then the mapping file's (`_none`
/// is the engines' way of saying "no pipeline").
pub(in crate::migration) fn wanted(
    copy: Option<&str>,
    file_settings: &Map<String, Value>,
) -> Vec<(String, &'static str)> {
    let mut wanted = Vec::new();
    if let Some(name) = copy {
        wanted.push((name.to_owned(), "the copy's pipeline"));
    }
    for (key, by) in [
        (
            "index.default_pipeline",
            "index.default_pipeline in the mapping file",
        ),
        (
            "index.final_pipeline",
            "index.final_pipeline in the mapping file",
        ),
    ] {
        if let Some(name) = file_settings.get(key).and_then(Value::as_str) {
            if name != "_none" && !wanted.iter().any(|(w, _)| w == name) {
                wanted.push((name.to_owned(), by));
            }
        }
    }
    wanted
}

pub(super) fn findings(seen: &Pipelines) -> Vec<Finding> {
    let mut findings = Vec::new();
    // First, as the cause: without an ingest node a pipeline can be neither
    // run nor created, so "create it first" would send the operator astray.
    if !seen.uses.is_empty() && seen.ingest_nodes == 0 {
        findings.push(Finding::new(
            Level::Refuse,
            "no_ingest_node",
            "no node of this cluster has the ingest role, so no pipeline can run; every document \
             written would fail"
                .into(),
        ));
    }
    for used in &seen.uses {
        match &used.exists {
            Ok(true) => {}
            Ok(false) => findings.push(Finding::new(
                Level::Refuse,
                "unknown_pipeline",
                format!(
                    "{} is {:?}, and no ingest pipeline of that name exists: create it first \
                     (PUT _ingest/pipeline/{}), or name another",
                    used.by, used.name, used.name
                ),
            )),
            Err(reason) => findings.push(Finding::new(
                Level::Refuse,
                "pipeline_unreadable",
                format!(
                    "{} is {:?}, which could not be read ({reason}); checking it needs the cluster \
                     privilege read_pipeline",
                    used.by, used.name
                ),
            )),
        }
    }
    if let Some(copy) = &seen.copy {
        if seen.default.as_deref() != Some(copy.as_str()) {
            findings.push(Finding::new(
                Level::Warn,
                "pipeline_not_default",
                format!(
                    "the copy runs pipeline {copy:?}, but the mapping file's index.default_pipeline is {}: \
                     the application's own writes during stage 1 will not run it; set \
                     \"index.default_pipeline\": {copy:?} in the mapping file",
                    seen.default
                        .as_deref()
                        .map_or("unset".to_owned(), |d| format!("{d:?}"))
                ),
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn used(name: &str, exists: Result<bool, String>) -> PipelineUse {
        PipelineUse {
            name: name.into(),
            by: "the copy's pipeline",
            exists,
        }
    }

    fn codes(seen: &Pipelines) -> Vec<(&'static str, Level)> {
        findings(seen).iter().map(|f| (f.code, f.level)).collect()
    }

    #[test]
    fn wanted_lists_each_pipeline_once_and_skips_none() {
        let file = json!({"index.default_pipeline": "p", "index.final_pipeline": "_none"});
        let file = file.as_object().unwrap();
        assert_eq!(
            wanted(Some("p"), file),
            vec![("p".into(), "the copy's pipeline")]
        );
        assert_eq!(
            wanted(None, file),
            vec![("p".into(), "index.default_pipeline in the mapping file")]
        );
        assert!(wanted(None, &Map::new()).is_empty());
    }

    #[test]
    fn each_problem_has_its_code() {
        let ok = Pipelines {
            uses: vec![used("p", Ok(true))],
            ingest_nodes: 1,
            copy: Some("p".into()),
            default: Some("p".into()),
        };
        assert!(codes(&ok).is_empty());
        let rows: Vec<(Pipelines, Vec<(&str, Level)>)> = vec![
            (
                Pipelines {
                    uses: vec![used("p", Ok(false))],
                    ..ok.clone()
                },
                vec![("unknown_pipeline", Level::Refuse)],
            ),
            (
                Pipelines {
                    uses: vec![used("p", Err("403".into()))],
                    ..ok.clone()
                },
                vec![("pipeline_unreadable", Level::Refuse)],
            ),
            (
                Pipelines {
                    ingest_nodes: 0,
                    ..ok.clone()
                },
                vec![("no_ingest_node", Level::Refuse)],
            ),
            (
                // No ingest node is the cause, so it comes first.
                Pipelines {
                    uses: vec![used("p", Ok(false))],
                    ingest_nodes: 0,
                    ..ok.clone()
                },
                vec![
                    ("no_ingest_node", Level::Refuse),
                    ("unknown_pipeline", Level::Refuse),
                ],
            ),
            (
                Pipelines {
                    default: None,
                    ..ok.clone()
                },
                vec![("pipeline_not_default", Level::Warn)],
            ),
            (
                Pipelines {
                    default: Some("other".into()),
                    ..ok.clone()
                },
                vec![("pipeline_not_default", Level::Warn)],
            ),
            (
                // A default pipeline alone: checked, no warning.
                Pipelines {
                    copy: None,
                    ..ok.clone()
                },
                vec![],
            ),
        ];
        for (seen, expected) in rows {
            assert_eq!(codes(&seen), expected, "{seen:?}");
        }
    }
}
