//! Live counters of a running copy, shared by readers, writers, the
//! checkpoint loop and metrics; and, per slice, the resume cursor: the
//! last page whose documents — and all earlier ones — have an outcome.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde_json::Value;

use super::telemetry::IndexTelemetry;
use crate::migration::{CopyProgress, DocFailure, SliceCheckpoint, MAX_RECORDED_FAILURES};

/// The fate of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Copied,
    Superseded,
    /// Already in the target from this copy's own earlier write.
    Resent,
    Failed,
}

/// Counts of documents with an outcome.
#[derive(Debug, Clone, Default, PartialEq)]
struct Counts {
    copied: u64,
    superseded: u64,
    resent: u64,
    failed: u64,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Copied => self.copied += 1,
            Outcome::Superseded => self.superseded += 1,
            Outcome::Resent => self.resent += 1,
            Outcome::Failed => self.failed += 1,
        }
    }

    fn merge(&mut self, other: &Counts) {
        self.copied += other.copied;
        self.superseded += other.superseded;
        self.resent += other.resent;
        self.failed += other.failed;
    }
}

/// A page read but not yet fully accounted for.
#[derive(Debug)]
struct PageTrack {
    seq: u64,
    remaining: usize,
    counts: Counts,
    last_sort: Option<Value>,
}

#[derive(Debug, Default)]
struct Cursor {
    pages: VecDeque<PageTrack>,
    /// Outcomes of every document up to `after`.
    confirmed: Counts,
    after: Option<Value>,
}

#[derive(Debug, Default)]
pub struct SliceStats {
    pub total: AtomicU64,
    pub read: AtomicU64,
    pub read_done: AtomicBool,
    pub copied: AtomicU64,
    pub superseded: AtomicU64,
    pub resent: AtomicU64,
    pub failed: AtomicU64,
    /// Done in an earlier run; not read again.
    pub done_before: bool,
    cursor: Mutex<Cursor>,
}

impl SliceStats {
    fn accounted(&self) -> u64 {
        self.copied.load(Relaxed)
            + self.superseded.load(Relaxed)
            + self.resent.load(Relaxed)
            + self.failed.load(Relaxed)
    }

    /// Every document of the slice was read and has an outcome.
    pub fn is_done(&self) -> bool {
        self.done_before
            || (self.read_done.load(Relaxed) && self.accounted() == self.read.load(Relaxed))
    }

    /// Registers page `seq` of `count` documents before any of them is
    /// accounted for; `last_sort` is where a read resumes after it.
    pub fn begin_page(&self, seq: u64, count: usize, last_sort: Option<Value>) {
        let mut cursor = self.cursor.lock().expect("cursor lock");
        cursor.pages.push_back(PageTrack {
            seq,
            remaining: count,
            counts: Counts::default(),
            last_sort,
        });
        confirm(&mut cursor);
    }

    /// Records the outcome of one document of page `seq`.
    pub fn account(&self, seq: u64, outcome: Outcome) {
        match outcome {
            Outcome::Copied => self.copied.fetch_add(1, Relaxed),
            Outcome::Superseded => self.superseded.fetch_add(1, Relaxed),
            Outcome::Resent => self.resent.fetch_add(1, Relaxed),
            Outcome::Failed => self.failed.fetch_add(1, Relaxed),
        };
        let mut cursor = self.cursor.lock().expect("cursor lock");
        let front = cursor.pages.front().map_or(0, |p| p.seq);
        if let Some(page) = cursor.pages.get_mut((seq - front) as usize) {
            page.remaining -= 1;
            page.counts.add(outcome);
        }
        confirm(&mut cursor);
    }

    /// Where a read of this slice resumes (`None`: from the start).
    pub fn resume_after(&self) -> Option<Value> {
        self.cursor.lock().expect("cursor lock").after.clone()
    }

    /// The resume point: sort values and the outcomes up to them.
    fn checkpoint(&self) -> (Option<Value>, Counts) {
        let cursor = self.cursor.lock().expect("cursor lock");
        (cursor.after.clone(), cursor.confirmed.clone())
    }
}

/// Moves the cursor past every leading page whose documents all have an outcome.
fn confirm(cursor: &mut Cursor) {
    while cursor.pages.front().is_some_and(|p| p.remaining == 0) {
        let page = cursor.pages.pop_front().expect("checked above");
        cursor.confirmed.merge(&page.counts);
        if page.last_sort.is_some() {
            cursor.after = page.last_sort;
        }
    }
}

/// Counters of one copy run, seeded from the last checkpoint.
#[derive(Debug)]
pub struct CopyStats {
    /// Indexed by slice id.
    pub slices: Vec<SliceStats>,
    pub slice_max: u32,
    failures: Mutex<Vec<DocFailure>>,
    /// The point in time read by this run, if any (saved in checkpoints).
    pub pit: Option<String>,
    /// The source's sequence numbers at this run's read snapshot (saved in
    /// checkpoints).
    pub source_seq_nos: Option<Vec<i64>>,
    /// Bulk traffic metrics of this index (they outlive the run).
    pub telemetry: IndexTelemetry,
}

impl CopyStats {
    /// Stats for a run resuming `copy`. Finished slices keep their counts.
    /// With `exact` (the point in time of `copy` is still open) unfinished
    /// slices resume after their cursor with the outcomes up to it;
    /// otherwise they start over (their documents are read again, and those
    /// already copied come back as resent).
    pub fn resume(
        copy: &CopyProgress,
        exact: bool,
        pit: Option<String>,
        telemetry: IndexTelemetry,
    ) -> CopyStats {
        let slice_max = copy.slices.first().map_or(1, |s| s.max);
        let slices = copy
            .slices
            .iter()
            .map(|s| {
                let keep = s.done || exact;
                let v = |x: u64| if keep { x } else { 0 };
                let confirmed = Counts {
                    copied: v(s.copied),
                    superseded: v(s.superseded),
                    resent: v(s.resent),
                    failed: v(s.failed),
                };
                let read =
                    confirmed.copied + confirmed.superseded + confirmed.resent + confirmed.failed;
                SliceStats {
                    total: AtomicU64::new(v(s.total)),
                    read: AtomicU64::new(read),
                    read_done: AtomicBool::new(s.done),
                    copied: AtomicU64::new(confirmed.copied),
                    superseded: AtomicU64::new(confirmed.superseded),
                    resent: AtomicU64::new(confirmed.resent),
                    failed: AtomicU64::new(confirmed.failed),
                    done_before: s.done,
                    cursor: Mutex::new(Cursor {
                        pages: VecDeque::new(),
                        after: if keep { s.after.clone() } else { None },
                        confirmed,
                    }),
                }
            })
            .collect();
        CopyStats {
            slices,
            slice_max,
            failures: Mutex::new(copy.failures.clone()),
            pit,
            source_seq_nos: None,
            telemetry,
        }
    }

    pub fn slice(&self, id: u32) -> &SliceStats {
        &self.slices[id as usize]
    }

    /// Records a document the target refused (or that cannot be copied).
    pub fn record_failure(&self, slice: u32, page: u64, failure: DocFailure) {
        self.slice(slice).account(page, Outcome::Failed);
        let mut list = self.failures.lock().expect("failure list lock");
        if list.len() < MAX_RECORDED_FAILURES && !list.iter().any(|f| f.id == failure.id) {
            list.push(failure);
        }
    }

    /// Documents the copy is done with so far, whatever became of them
    /// (the live counterpart of `CopyProgress::done`).
    pub fn done(&self) -> u64 {
        self.slices.iter().map(SliceStats::accounted).sum()
    }

    /// Writes the counters into `copy` (a checkpoint or the final state):
    /// live totals for progress, and per slice the resume cursor with the
    /// outcomes up to it.
    pub fn apply(&self, copy: &mut CopyProgress) {
        let sum = |f: fn(&SliceStats) -> u64| self.slices.iter().map(f).sum::<u64>();
        copy.total = sum(|s| s.total.load(Relaxed));
        copy.copied = sum(|s| s.copied.load(Relaxed));
        copy.superseded = sum(|s| s.superseded.load(Relaxed));
        copy.resent = sum(|s| s.resent.load(Relaxed));
        copy.failed = sum(|s| s.failed.load(Relaxed));
        copy.failures = self.failures.lock().expect("failure list lock").clone();
        copy.pit = self.pit.clone();
        if self.source_seq_nos.is_some() {
            copy.source_seq_nos = self.source_seq_nos.clone();
        }
        copy.slices = self
            .slices
            .iter()
            .enumerate()
            .map(|(id, s)| {
                let (after, confirmed) = s.checkpoint();
                let done = s.is_done();
                let counts = if done {
                    Counts {
                        copied: s.copied.load(Relaxed),
                        superseded: s.superseded.load(Relaxed),
                        resent: s.resent.load(Relaxed),
                        failed: s.failed.load(Relaxed),
                    }
                } else {
                    confirmed
                };
                SliceCheckpoint {
                    id: id as u32,
                    max: self.slice_max,
                    done,
                    total: s.total.load(Relaxed),
                    copied: counts.copied,
                    superseded: counts.superseded,
                    resent: counts.resent,
                    failed: counts.failed,
                    after,
                }
            })
            .collect();
    }
}

/// Slices of a copy that has none yet.
pub fn plan_slices(count: u32) -> Vec<SliceCheckpoint> {
    let max = count.max(1);
    (0..max)
        .map(|id| SliceCheckpoint {
            id,
            max,
            done: false,
            total: 0,
            copied: 0,
            superseded: 0,
            resent: 0,
            failed: 0,
            after: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn telemetry() -> IndexTelemetry {
        crate::copy::Telemetry::default().for_index("t")
    }

    #[test]
    fn the_cursor_only_passes_pages_whose_documents_all_have_an_outcome() {
        let s = SliceStats::default();
        s.begin_page(0, 2, Some(json!([1])));
        s.begin_page(1, 2, Some(json!([3])));
        s.account(1, Outcome::Copied);
        s.account(1, Outcome::Superseded);
        // Page 1 is complete but page 0 is not: the cursor stays put.
        assert_eq!(s.checkpoint(), (None, Counts::default()));
        s.account(0, Outcome::Copied);
        s.account(0, Outcome::Failed);
        assert_eq!(
            s.checkpoint(),
            (
                Some(json!([3])),
                Counts {
                    copied: 2,
                    superseded: 1,
                    resent: 0,
                    failed: 1
                }
            )
        );
        s.begin_page(2, 0, None);
        assert_eq!(s.checkpoint().0, Some(json!([3])));
    }

    #[test]
    fn exact_resume_keeps_cursor_and_counts_restart_drops_them() {
        let mut copy = CopyProgress::new(
            crate::migration::StoredEngine::Client,
            0,
            chrono::Utc::now(),
        );
        copy.slices = plan_slices(2);
        copy.slices[0] = SliceCheckpoint {
            id: 0,
            max: 2,
            done: true,
            total: 10,
            copied: 9,
            superseded: 1,
            resent: 0,
            failed: 0,
            after: Some(json!([9])),
        };
        copy.slices[1] = SliceCheckpoint {
            id: 1,
            max: 2,
            done: false,
            total: 7,
            copied: 3,
            superseded: 0,
            resent: 0,
            failed: 0,
            after: Some(json!([2])),
        };

        let exact = CopyStats::resume(&copy, true, Some("pit".into()), telemetry());
        assert!(exact.slice(0).is_done() && !exact.slice(1).is_done());
        assert_eq!(
            exact.slice(1).checkpoint(),
            (
                Some(json!([2])),
                Counts {
                    copied: 3,
                    superseded: 0,
                    resent: 0,
                    failed: 0
                }
            )
        );
        assert_eq!(exact.slice(1).read.load(Relaxed), 3);

        let restart = CopyStats::resume(&copy, false, None, telemetry());
        assert_eq!(restart.slice(1).checkpoint(), (None, Counts::default()));
        assert_eq!(restart.slice(1).total.load(Relaxed), 0);
        assert_eq!(restart.slice(0).copied.load(Relaxed), 9);

        // Finish slice 1 in the exact run: 4 more documents.
        let s1 = exact.slice(1);
        s1.read.fetch_add(4, Relaxed);
        s1.begin_page(0, 4, Some(json!([6])));
        for outcome in [Outcome::Copied, Outcome::Copied, Outcome::Superseded] {
            s1.account(0, outcome);
        }
        exact.record_failure(
            1,
            0,
            DocFailure {
                id: "x".into(),
                status: 400,
                reason: "bad".into(),
            },
        );
        s1.read_done.store(true, Relaxed);
        assert!((0..exact.slice_max).all(|id| exact.slice(id).is_done()));
        exact.apply(&mut copy);
        assert_eq!(
            (copy.total, copy.copied, copy.superseded, copy.failed),
            (17, 14, 2, 1)
        );
        assert_eq!(copy.slices[1].after, Some(json!([6])));
        assert_eq!(copy.pit.as_deref(), Some("pit"));
        assert_eq!(copy.failures.len(), 1);
    }
}
