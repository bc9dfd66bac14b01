//! What the application changed in the new generation since stage 1, from
//! the copy's version-0 tag — pure set logic over scanned keys, unit-tested
//! here; the scans and the replay are in `rollback`.
//!
//! Every copied document is written at external version 0 and every
//! application index, update or delete gives version ≥ 1, so in the new
//! generation `_version ≥ 1` is exactly an application write. A document
//! of the old generation missing from the new one is an application delete
//! once the copy has read everything — unless the copy recorded it as a
//! failure.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::es::{DocKey, KeyVersion};

/// Application writes and deletes found in the new generation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    /// Documents the application indexed or updated, with the sequence
    /// number of their last write (which, unlike the version, tells a
    /// document deleted and written again from the one seen before).
    pub written: HashMap<DocKey, i64>,
    /// Documents of the old generation the application deleted; `None`
    /// when that cannot be known (the copy has not read everything).
    pub deleted: Option<HashSet<DocKey>>,
}

/// The numbers a rollback reports and refuses on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeltaCounts {
    pub written: u64,
    /// `None`: unknown until the copy has read every document.
    pub deleted: Option<u64>,
}

impl Delta {
    pub fn counts(&self) -> DeltaCounts {
        DeltaCounts {
            written: self.written.len() as u64,
            deleted: self.deleted.as_ref().map(|d| d.len() as u64),
        }
    }

    /// Nothing the application did would be lost.
    pub fn is_empty(&self) -> bool {
        self.written.is_empty() && self.deleted.as_ref().is_some_and(HashSet::is_empty)
    }

    /// What changed between this delta and `later`, taken of the same
    /// generation afterwards: writes new or written again since, and
    /// documents present earlier (written or copied) that are gone now.
    pub fn since(
        &self,
        later: &Delta,
        earlier_present: &HashSet<DocKey>,
        now_present: &HashSet<DocKey>,
    ) -> Delta {
        let written = later
            .written
            .iter()
            .filter(|(k, v)| self.written.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let deleted = earlier_present.difference(now_present).cloned().collect();
        Delta {
            written,
            deleted: Some(deleted),
        }
    }
}

/// The application's writes in `new` (every key at version ≥ 1), with
/// their sequence numbers.
pub fn writes(new: &[KeyVersion]) -> HashMap<DocKey, i64> {
    new.iter()
        .filter(|k| k.version >= 1)
        .map(|k| (k.key.clone(), k.seq_no))
        .collect()
}

/// Keys of a scan.
pub fn present(scan: &[KeyVersion]) -> HashSet<DocKey> {
    scan.iter().map(|k| k.key.clone()).collect()
}

/// The old generation's documents the application deleted: in `old`, not
/// in `new`, and not a document the copy failed to write (`failed_ids`).
pub fn deletes(
    old: &[KeyVersion],
    new: &HashSet<DocKey>,
    failed_ids: &HashSet<&str>,
) -> HashSet<DocKey> {
    old.iter()
        .map(|k| &k.key)
        .filter(|k| !new.contains(*k) && !failed_ids.contains(k.id.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key at `version`, its last write at sequence number `version * 10`.
    fn kv(id: &str, routing: Option<&str>, version: i64) -> KeyVersion {
        KeyVersion {
            key: key(id, routing),
            version,
            seq_no: version * 10,
        }
    }

    fn key(id: &str, routing: Option<&str>) -> DocKey {
        DocKey {
            id: id.into(),
            routing: routing.map(str::to_owned),
        }
    }

    #[test]
    fn version_zero_is_the_copy_and_anything_above_is_the_application() {
        let new = [kv("a", None, 0), kv("b", None, 1), kv("c", Some("r"), 7)];
        let w = writes(&new);
        assert_eq!(w.len(), 2);
        assert_eq!(w.get(&key("b", None)), Some(&10));
        assert_eq!(w.get(&key("c", Some("r"))), Some(&70));
        assert!(!w.contains_key(&key("a", None)));
    }

    #[test]
    fn deletes_are_old_keys_missing_from_new_less_recorded_failures() {
        let old = [
            kv("a", None, 1),
            kv("b", None, 1),
            kv("c", None, 1),
            kv("x", Some("r1"), 1),
            kv("x", Some("r2"), 1),
        ];
        let new = present(&[kv("a", None, 0), kv("x", Some("r1"), 0), kv("n", None, 1)]);
        let failed: HashSet<&str> = ["c"].into();
        let d = deletes(&old, &new, &failed);
        // b was deleted; c failed to copy; x/r2 is a different document
        // than x/r1 and is gone.
        assert_eq!(d, [key("b", None), key("x", Some("r2"))].into());
    }

    #[test]
    fn an_unknown_delete_set_is_never_empty() {
        let delta = Delta {
            written: HashMap::new(),
            deleted: None,
        };
        assert!(!delta.is_empty());
        assert_eq!(
            delta.counts(),
            DeltaCounts {
                written: 0,
                deleted: None
            }
        );
        let nothing = Delta {
            written: HashMap::new(),
            deleted: Some(HashSet::new()),
        };
        assert!(nothing.is_empty());
    }

    #[test]
    fn a_second_look_finds_only_what_changed_in_between() {
        let first = Delta {
            written: [(key("a", None), 1), (key("b", None), 2)].into(),
            deleted: Some(HashSet::new()),
        };
        let later = Delta {
            written: [
                (key("a", None), 1),
                (key("b", None), 3),
                (key("c", None), 1),
            ]
            .into(),
            deleted: Some(HashSet::new()),
        };
        let before = present(&[kv("a", None, 1), kv("b", None, 2), kv("d", None, 0)]);
        let after = present(&[kv("a", None, 1), kv("b", None, 3), kv("c", None, 1)]);
        let change = first.since(&later, &before, &after);
        assert_eq!(
            change.written,
            [(key("b", None), 3), (key("c", None), 1)].into()
        );
        assert_eq!(change.deleted, Some([key("d", None)].into()));
    }
}
