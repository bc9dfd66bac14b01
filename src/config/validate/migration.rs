//! The `[migration]` section and the `[[indexes]]` list: what is migrated,
//! under which names, and how long a flipped-away generation is kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::units::duration;
use super::{resolve, Problems};
use crate::config::bounds;
use crate::config::raw::RawConfig;
use crate::config::{check_pipeline, CopyEngine, IndexConfig, MigrationConfig};

pub(super) fn migration(raw: &RawConfig, p: &mut Problems) -> MigrationConfig {
    let m = &raw.migration;
    let prefix = m.prefix.clone().unwrap_or_default();
    if !prefix.is_empty() && !valid_name(&prefix) {
        p.add(
            "migration.prefix",
            format!(
                "{prefix:?} may only hold a-z, 0-9, '_' and '-', and not start with '_' or '-'"
            ),
        );
    }
    let state_index = m
        .state_index
        .clone()
        .unwrap_or_else(|| "reindexd-state".into());
    if !valid_name(&state_index) {
        p.add(
            "migration.state_index",
            format!("{state_index:?} is not a valid index name"),
        );
    }
    MigrationConfig {
        prefix,
        retention: duration(
            m.retention.as_deref(),
            "migration.retention",
            Duration::from_secs(24 * 3600),
            &bounds::RETENTION,
            p,
        ),
        state_index,
    }
}

pub(super) fn indexes(raw: &RawConfig, base: &Path, p: &mut Problems) -> Vec<IndexConfig> {
    let mut out: Vec<IndexConfig> = Vec::new();
    for (i, index) in raw.indexes.iter().enumerate() {
        let key = |k: &str| format!("indexes[{i}].{k}");
        let Some(name) = index.name.clone() else {
            p.add(key("name"), "every [[indexes]] entry needs a name");
            continue;
        };
        if !valid_name(&name) || name.len() > 100 {
            p.add(key("name"), format!("{name:?} must be 1-100 characters of a-z, 0-9, '_' and '-', not starting with '_' or '-'"));
        }
        if out.iter().any(|o| o.name == name) {
            p.add(
                key("name"),
                format!("logical index {name:?} is configured twice"),
            );
        }
        let mapping = match &index.mapping {
            Some(m) => resolve(base, m),
            None => {
                p.add(
                    key("mapping"),
                    format!("set the mapping file of {name:?}, e.g. \"mappings/{name}.json\""),
                );
                PathBuf::new()
            }
        };
        let engine = match index.engine.as_deref().map(str::parse::<CopyEngine>) {
            None => CopyEngine::Client,
            Some(Ok(engine)) => engine,
            Some(Err(e)) => {
                p.add(key("engine"), e);
                CopyEngine::Client
            }
        };
        if let Some(Err(e)) = index.pipeline.as_deref().map(check_pipeline) {
            p.add(key("pipeline"), e);
        }
        if index.pipeline.is_some() && engine == CopyEngine::External {
            p.add(
                key("pipeline"),
                "an external refill writes through the application, not reindexd: set index.default_pipeline in the mapping file instead",
            );
        }
        let fill_tolerance = match index.fill_tolerance {
            None => 0,
            Some(n) if n >= 0 => n as u64,
            Some(n) => {
                p.add(
                    key("fill_tolerance"),
                    format!("expected a number of documents (0 or more), found {n}"),
                );
                0
            }
        };
        let accept_lost_fields = index.accept_lost_fields.clone().unwrap_or_default();
        if accept_lost_fields.iter().any(|f| f.trim().is_empty()) {
            p.add(
                key("accept_lost_fields"),
                "expected field names such as [\"body\", \"meta.secret\"], found an empty one",
            );
        }
        out.push(IndexConfig {
            name,
            mapping,
            engine,
            pipeline: index.pipeline.clone(),
            fill_tolerance,
            accept_lost_fields,
        });
    }
    out
}

/// Index-name rules of the engines, narrowed to what is safe in URLs.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['_', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::super::tests::{problems, valid};
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("wiki"));
        assert!(valid_name("kb-2_x"));
        assert!(!valid_name("Wiki"));
        assert!(!valid_name("_wiki"));
        assert!(!valid_name("wi*ki"));
        assert!(!valid_name(""));
    }

    #[test]
    fn retention_may_be_zero_but_not_centuries() {
        for (text, secs) in [("0s", 0), ("1s", 1), ("365d", 365 * 86_400)] {
            let c = valid(&format!("[migration]\nretention = \"{text}\"\n"));
            assert_eq!(c.migration.retention, Duration::from_secs(secs));
        }
        for text in ["366d", "300000years", "18446744073709551615s"] {
            let found = problems(&format!("[migration]\nretention = \"{text}\"\n"));
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            assert_eq!(found[0].0, "migration.retention");
            assert!(found[0].1.contains("expected 0s to 365d"), "{found:?}");
        }
    }
}
