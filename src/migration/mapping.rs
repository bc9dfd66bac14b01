//! The next generation's definition: `mappings/NAME.json` read, checked and
//! fingerprinted, and the create-index body built from it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The target's settings reindexd sets for a copy (all but the replica
/// count, which it keeps), set from the mapping file afterwards.
pub const BULK_SETTING_KEYS: [&str; 3] = [
    "index.refresh_interval",
    "index.number_of_replicas",
    "index.gc_deletes",
];

/// A mapping file, checked.
#[derive(Debug, Clone)]
pub struct MappingFile {
    pub path: PathBuf,
    /// `settings` of the file (an object, possibly empty).
    pub settings: Map<String, Value>,
    /// `mappings` of the file (an object).
    pub mappings: Map<String, Value>,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping file {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error("mapping file {path} is not valid JSON: {detail}")]
    NotJson { path: PathBuf, detail: String },
    #[error("mapping file {path}: {detail}")]
    Shape { path: PathBuf, detail: String },
}

impl MappingFile {
    pub fn load(path: &Path) -> Result<MappingFile, MappingError> {
        let bytes = std::fs::read(path).map_err(|e| MappingError::Unreadable {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Self::parse(path, &bytes)
    }

    /// Checks the shape `{"settings": {...}, "mappings": {...}}`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<MappingFile, MappingError> {
        let shape = |detail: String| MappingError::Shape {
            path: path.to_path_buf(),
            detail,
        };
        let value: Value = serde_json::from_slice(bytes).map_err(|e| MappingError::NotJson {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let Value::Object(mut top) = value else {
            return Err(shape(
                "expected an object {\"settings\": {...}, \"mappings\": {...}}".into(),
            ));
        };
        if let Some(key) = top.keys().find(|k| *k != "settings" && *k != "mappings") {
            return Err(shape(format!("unexpected key {key:?}: only \"settings\" and \"mappings\" are allowed (aliases are reindexd's)")));
        }
        let settings = match top.remove("settings") {
            None => Map::new(),
            Some(Value::Object(s)) => s,
            Some(_) => return Err(shape("\"settings\" must be an object".into())),
        };
        let mappings = match top.remove("mappings") {
            Some(Value::Object(m)) => m,
            Some(_) => return Err(shape("\"mappings\" must be an object".into())),
            None => return Err(shape("\"mappings\" is missing".into())),
        };
        Ok(MappingFile {
            path: path.to_path_buf(),
            settings,
            mappings,
            sha256: hex(&Sha256::digest(bytes)),
        })
    }

    /// The create-index body of generation `index`: the file's settings and
    /// mappings, `_meta.reindexd` marking it as ours, and `extra_settings`
    /// (bulk-load settings) on top.
    pub fn create_body(
        &self,
        logical: &str,
        created_at: DateTime<Utc>,
        extra_settings: &Map<String, Value>,
    ) -> Value {
        let mut mappings = self.mappings.clone();
        let meta = mappings.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.insert(
                "reindexd".into(),
                json!({"logical": logical, "sha256": self.sha256, "created_at": created_at.to_rfc3339()}),
            );
        }
        let mut settings = self.flat_settings();
        for (k, v) in extra_settings {
            settings.insert(k.clone(), v.clone());
        }
        json!({"settings": settings, "mappings": mappings})
    }

    /// The file's settings as flat `index.*` keys, the way the engine
    /// reports them with `flat_settings=true`.
    pub fn flat_settings(&self) -> Map<String, Value> {
        crate::es::flat_settings(&self.settings)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MappingFile, MappingError> {
        MappingFile::parse(Path::new("m.json"), text.as_bytes())
    }

    #[test]
    fn accepts_settings_and_mappings() {
        let m = parse(r#"{"settings":{"number_of_shards":2},"mappings":{"properties":{"t":{"type":"text"}}}}"#).unwrap();
        assert_eq!(m.sha256.len(), 64);
        let body = m.create_body(
            "wiki",
            DateTime::UNIX_EPOCH,
            &json!({"index.refresh_interval": "-1"})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(body["settings"]["index.number_of_shards"], 2);
        assert_eq!(body["settings"]["index.refresh_interval"], "-1");
        assert_eq!(body["mappings"]["_meta"]["reindexd"]["sha256"], m.sha256);
        assert_eq!(body["mappings"]["properties"]["t"]["type"], "text");
    }

    #[test]
    fn flattens_settings_under_index() {
        let m = parse(r#"{"settings":{"number_of_shards":2,"index":{"refresh_interval":"5s"},"analysis":{"analyzer":{"a":{"type":"custom","filter":["lowercase"]}}}},"mappings":{}}"#).unwrap();
        let flat = m.flat_settings();
        assert_eq!(flat["index.number_of_shards"], 2);
        assert_eq!(flat["index.refresh_interval"], "5s");
        assert_eq!(
            flat["index.analysis.analyzer.a.filter"],
            json!(["lowercase"])
        );
    }

    #[test]
    fn refuses_bad_shapes() {
        assert!(matches!(parse("{"), Err(MappingError::NotJson { .. })));
        assert!(matches!(parse("[]"), Err(MappingError::Shape { .. })));
        assert!(parse(r#"{"settings":{}}"#)
            .unwrap_err()
            .to_string()
            .contains("\"mappings\" is missing"));
        assert!(parse(r#"{"mappings":{},"aliases":{}}"#)
            .unwrap_err()
            .to_string()
            .contains("\"aliases\""));
        assert!(parse(r#"{"mappings":[]}"#).is_err());
    }
}
