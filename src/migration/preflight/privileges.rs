//! The privileges reindexd needs, asked of the cluster (where it can say:
//! Elasticsearch with security on) before anything else preflight reads,
//! so a missing one is named rather than met halfway through stage 1.
//! The README's "Privileges" section lists the same.

use super::{Finding, Level};
use crate::es::IndexPrivileges;
use crate::migration::names::Names;

/// `GET /`, health, pending tasks, node and index statistics.
pub const CLUSTER: [&str; 2] = ["monitor", "manage_index_templates"];
/// Create, alias, set, block and delete generations and the state index
/// (`manage`); read them (`read`: points in time, searches); write them
/// (`write`: the copy's bulks, state documents).
pub const INDEX: [&str; 3] = ["manage", "read", "write"];

/// The index names one logical index touches: its generations, aliases
/// and the state index.
pub(super) fn required(names: &Names, state_index: &str) -> Vec<IndexPrivileges> {
    vec![IndexPrivileges {
        names: vec![
            names.generation_pattern(),
            names.read_alias(),
            names.write_alias(),
            state_index.to_owned(),
        ],
        privileges: INDEX.to_vec(),
    }]
}

/// One refusal naming every missing privilege; none when nothing lacks.
pub(super) fn findings(missing: &[String]) -> Vec<Finding> {
    if missing.is_empty() {
        return Vec::new();
    }
    vec![Finding::new(
        Level::Refuse,
        "missing_privileges",
        format!(
            "the credentials lack {}; grant them to reindexd's role (README: Privileges)",
            missing.join(", ")
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_for_every_name_reindexd_touches() {
        let asked = required(&Names::new("p-", "kb"), ".reindexd");
        assert_eq!(asked.len(), 1);
        assert_eq!(
            asked[0].names,
            ["p-kb_2*", "p-kb_read", "p-kb_write", ".reindexd"]
        );
        assert_eq!(asked[0].privileges, INDEX);
    }

    #[test]
    fn names_the_missing_privileges_in_one_refusal() {
        assert!(findings(&[]).is_empty());
        let f = findings(&[
            "cluster privilege monitor".into(),
            "index privilege write on p-kb_2*".into(),
        ]);
        assert_eq!(
            (f.len(), f[0].level, f[0].code),
            (1, Level::Refuse, "missing_privileges")
        );
        assert!(f[0]
            .message
            .contains("cluster privilege monitor, index privilege write on p-kb_2*"));
    }
}
