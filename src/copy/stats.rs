//! Live counters of a running copy, shared by readers, writers, the
//! checkpoint loop and metrics. Lock-free except the failure list.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use super::telemetry::IndexTelemetry;
use crate::migration::{CopyProgress, DocFailure, SliceCheckpoint, MAX_RECORDED_FAILURES};

#[derive(Debug, Default)]
pub struct SliceStats {
    pub total: AtomicU64,
    pub read: AtomicU64,
    pub read_done: AtomicBool,
    pub copied: AtomicU64,
    pub superseded: AtomicU64,
    pub failed: AtomicU64,
    /// Done in an earlier run; not read again.
    pub done_before: bool,
}

impl SliceStats {
    fn accounted(&self) -> u64 {
        self.copied.load(Relaxed) + self.superseded.load(Relaxed) + self.failed.load(Relaxed)
    }

    /// Every document of the slice was read and has an outcome.
    pub fn is_done(&self) -> bool {
        self.done_before
            || (self.read_done.load(Relaxed) && self.accounted() == self.read.load(Relaxed))
    }
}

/// Counters of one copy run, seeded from the last checkpoint.
#[derive(Debug)]
pub struct CopyStats {
    /// Indexed by slice id.
    pub slices: Vec<SliceStats>,
    pub slice_max: u32,
    failures: Mutex<Vec<DocFailure>>,
    /// Bulk traffic metrics of this index (they outlive the run).
    pub telemetry: IndexTelemetry,
}

impl CopyStats {
    /// Stats for a run resuming `copy`: finished slices keep their counts,
    /// the others start over (their documents are read again; those
    /// already copied come back as superseded).
    pub fn resume(copy: &CopyProgress, telemetry: IndexTelemetry) -> CopyStats {
        let slice_max = copy.slices.first().map_or(1, |s| s.max);
        let slices = copy
            .slices
            .iter()
            .map(|s| {
                let done = s.done;
                let keep = |v: u64| AtomicU64::new(if done { v } else { 0 });
                SliceStats {
                    total: keep(s.total),
                    read: keep(s.total),
                    read_done: AtomicBool::new(done),
                    copied: keep(s.copied),
                    superseded: keep(s.superseded),
                    failed: keep(s.failed),
                    done_before: done,
                }
            })
            .collect();
        let failures = copy.failures.clone();
        CopyStats {
            slices,
            slice_max,
            failures: Mutex::new(failures),
            telemetry,
        }
    }

    pub fn slice(&self, id: u32) -> &SliceStats {
        &self.slices[id as usize]
    }

    pub fn record_failure(&self, slice: u32, failure: DocFailure) {
        self.slice(slice).failed.fetch_add(1, Relaxed);
        let mut list = self.failures.lock().expect("failure list lock");
        if list.len() < MAX_RECORDED_FAILURES && !list.iter().any(|f| f.id == failure.id) {
            list.push(failure);
        }
    }

    pub fn all_done(&self) -> bool {
        self.slices.iter().all(SliceStats::is_done)
    }

    /// Writes the counters into `copy` (a checkpoint or the final state).
    pub fn apply(&self, copy: &mut CopyProgress) {
        let sum = |f: fn(&SliceStats) -> u64| self.slices.iter().map(f).sum::<u64>();
        copy.total = sum(|s| s.total.load(Relaxed));
        copy.copied = sum(|s| s.copied.load(Relaxed));
        copy.superseded = sum(|s| s.superseded.load(Relaxed));
        copy.failed = sum(|s| s.failed.load(Relaxed));
        copy.failures = self.failures.lock().expect("failure list lock").clone();
        copy.slices = self
            .slices
            .iter()
            .enumerate()
            .map(|(id, s)| SliceCheckpoint {
                id: id as u32,
                max: self.slice_max,
                done: s.is_done(),
                total: s.total.load(Relaxed),
                copied: s.copied.load(Relaxed),
                superseded: s.superseded.load(Relaxed),
                failed: s.failed.load(Relaxed),
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
            failed: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CopyEngine;

    #[test]
    fn resume_keeps_finished_slices_and_restarts_the_rest() {
        let mut copy = CopyProgress::new(CopyEngine::Client, 0, chrono::Utc::now());
        copy.slices = plan_slices(2);
        copy.slices[0] = SliceCheckpoint {
            id: 0,
            max: 2,
            done: true,
            total: 10,
            copied: 9,
            superseded: 1,
            failed: 0,
        };
        copy.slices[1] = SliceCheckpoint {
            id: 1,
            max: 2,
            done: false,
            total: 7,
            copied: 3,
            superseded: 0,
            failed: 0,
        };
        let stats = CopyStats::resume(&copy, crate::copy::Telemetry::default().for_index("t"));
        assert!(stats.slice(0).is_done());
        assert!(!stats.slice(1).is_done());
        stats.slice(1).total.store(7, Relaxed);
        stats.slice(1).read.store(7, Relaxed);
        stats.slice(1).read_done.store(true, Relaxed);
        stats.slice(1).copied.store(2, Relaxed);
        stats.slice(1).superseded.store(4, Relaxed);
        stats.record_failure(
            1,
            DocFailure {
                id: "x".into(),
                status: 400,
                reason: "bad".into(),
            },
        );
        stats.record_failure(
            1,
            DocFailure {
                id: "x".into(),
                status: 400,
                reason: "bad".into(),
            },
        );
        assert!(!stats.slice(1).is_done(), "7 read, 8 accounted");
        stats.slice(1).failed.store(1, Relaxed);
        assert!(stats.all_done());
        stats.apply(&mut copy);
        assert_eq!(
            (copy.total, copy.copied, copy.superseded, copy.failed),
            (17, 11, 5, 1)
        );
        assert_eq!(copy.failures.len(), 1);
        assert!(copy.slices.iter().all(|s| s.done));
    }
}
