//! Names reindexd gives to a logical index's aliases and generations.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Timestamp format of a generation's suffix.
const GENERATION_FORMAT: &str = "%Y%m%d%H%M%S";

/// The names of one logical index: `{prefix}{name}_read`,
/// `{prefix}{name}_write` and generations `{prefix}{name}_{%Y%m%d%H%M%S}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    base: String,
}

impl Names {
    pub fn new(prefix: &str, logical: &str) -> Self {
        Names {
            base: format!("{prefix}{logical}"),
        }
    }

    pub fn read_alias(&self) -> String {
        format!("{}_read", self.base)
    }

    pub fn write_alias(&self) -> String {
        format!("{}_write", self.base)
    }

    pub fn generation(&self, at: DateTime<Utc>) -> String {
        format!("{}_{}", self.base, at.format(GENERATION_FORMAT))
    }

    /// A pattern matching every generation (and nothing else reindexd makes).
    pub fn generation_pattern(&self) -> String {
        format!("{}_2*", self.base)
    }

    /// The creation time encoded in a generation's name, if `index` is one.
    pub fn generation_time(&self, index: &str) -> Option<DateTime<Utc>> {
        let suffix = index.strip_prefix(&self.base)?.strip_prefix('_')?;
        if suffix.len() != 14 {
            return None;
        }
        NaiveDateTime::parse_from_str(suffix, GENERATION_FORMAT)
            .ok()
            .map(|t| t.and_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_follow_the_contract() {
        let n = Names::new("", "wiki");
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 3, 39, 0).unwrap();
        assert_eq!(n.read_alias(), "wiki_read");
        assert_eq!(n.write_alias(), "wiki_write");
        assert_eq!(n.generation(at), "wiki_20261125033900");
        assert_eq!(n.generation_time("wiki_20261125033900"), Some(at));
        assert_eq!(n.generation_time("wiki_read"), None);
        assert_eq!(n.generation_time("wiki_kb_20261125033900"), None);
        let p = Names::new("prod-", "wiki");
        assert_eq!(p.generation(at), "prod-wiki_20261125033900");
        assert_eq!(p.write_alias(), "prod-wiki_write");
    }
}
