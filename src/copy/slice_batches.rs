//! One batch being built per source slice, so that a bulk request carries
//! the documents of one slice only.
//!
//! A slice reads one source shard, or part of one (unless fewer slices
//! than shards are configured), and a document's shard follows from its
//! routing and the index's shard count alone. So when the new generation
//! has as many primary shards as the old one (the usual mapping change),
//! every bulk lands on a single target shard: the node runs it on one
//! write thread as one shard-level request, instead of splitting it across
//! all shards and answering when the slowest is done. Measured on 2 cores
//! (README, *Measured*), a copy throttled to 4,500 docs/s cost live search
//! a p99 of 17–23 ms this way, 27–179 ms with bodies mixing both shards,
//! and the node less CPU for the same rate. With a different shard count
//! a body still holds one slice, which is no worse than a mix.
//!
//! Memory stays bounded whatever the number of slices: once the batches
//! being built hold more than twice `batch_bytes` in all, the largest is
//! sent as it is ([`SliceBatches::spill`]).

use std::collections::BTreeMap;

use super::encode::{Batch, Batcher, Uncopyable};
use crate::es::Hit;

#[derive(Debug)]
pub struct SliceBatches {
    target: String,
    pipeline: Option<String>,
    max_bytes: u64,
    max_docs: usize,
    /// Bytes all batches being built may hold before the largest goes.
    held_limit: usize,
    building: BTreeMap<u32, Batcher>,
}

impl SliceBatches {
    /// Batches for `target`, each cut at `max_bytes`; every action runs
    /// the ingest pipeline `pipeline`, if any.
    pub fn new(target: &str, max_bytes: u64, pipeline: Option<&str>) -> Self {
        SliceBatches {
            target: target.to_owned(),
            pipeline: pipeline.map(str::to_owned),
            max_bytes,
            max_docs: usize::MAX,
            held_limit: usize::try_from(max_bytes.saturating_mul(2)).unwrap_or(usize::MAX),
            building: BTreeMap::new(),
        }
    }

    /// Also cut every batch at this many documents (from the next
    /// document on). Called at every turn of the copy's loop: only a
    /// change walks the batches.
    pub fn set_max_docs(&mut self, max_docs: usize) {
        if max_docs == self.max_docs {
            return;
        }
        self.max_docs = max_docs;
        for batcher in self.building.values_mut() {
            batcher.set_max_docs(max_docs);
        }
    }

    /// Adds one hit of `slice`; returns that slice's batch when this hit
    /// filled it.
    pub fn push(&mut self, slice: u32, page: u64, hit: &Hit) -> Result<Option<Batch>, Uncopyable> {
        let batcher = self.building.entry(slice).or_insert_with(|| {
            let mut batcher =
                Batcher::new(&self.target, self.max_bytes).with_pipeline(self.pipeline.as_deref());
            batcher.set_max_docs(self.max_docs);
            batcher
        });
        batcher.push(slice, page, hit)
    }

    /// The largest batch being built, when all of them together hold more
    /// than the limit.
    pub fn spill(&mut self) -> Option<Batch> {
        let held: usize = self.building.values().map(Batcher::bytes).sum();
        if held <= self.held_limit {
            return None;
        }
        let largest = *self
            .building
            .iter()
            .max_by_key(|(_, batcher)| batcher.bytes())?
            .0;
        self.finish(largest)
    }

    /// Takes what `slice`'s batch holds: all that is left of it once the
    /// slice has been read to its end, or the batch a spill sends early.
    pub fn finish(&mut self, slice: u32) -> Option<Batch> {
        self.building.remove(&slice)?.flush()
    }

    /// Every batch still being built, in slice order.
    pub fn flush(&mut self) -> Vec<Batch> {
        std::mem::take(&mut self.building)
            .into_values()
            .filter_map(|mut batcher| batcher.flush())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    fn hit(id: &str, bytes: usize) -> Hit {
        let source = format!(r#"{{"f":"{}"}}"#, "x".repeat(bytes));
        Hit {
            id: id.into(),
            routing: None,
            source: Some(RawValue::from_string(source).unwrap()),
            sort: None,
        }
    }

    fn slices_of(batch: &Batch) -> Vec<u32> {
        let mut slices: Vec<u32> = batch.docs.iter().map(|d| d.slice).collect();
        slices.dedup();
        slices
    }

    #[test]
    fn a_batch_holds_one_slice_however_the_pages_interleave() {
        let mut batches = SliceBatches::new("t", 1000, None);
        let mut closed = Vec::new();
        // Pages of slices 0, 1 and 2 arrive interleaved, a document of
        // ~100 bytes each: 10 of a slice fill a batch.
        for round in 0..5u64 {
            for slice in 0..3u32 {
                for i in 0..4 {
                    let id = format!("{slice}-{round}-{i}");
                    closed.extend(batches.push(slice, round, &hit(&id, 60)).unwrap());
                }
            }
        }
        closed.extend(batches.flush());
        assert_eq!(closed.iter().map(Batch::len).sum::<usize>(), 60);
        for batch in &closed {
            assert_eq!(slices_of(batch).len(), 1, "{:?}", batch.docs);
        }
        // Within a slice the documents keep their order across batches.
        for slice in 0..3u32 {
            let ids: Vec<&str> = closed
                .iter()
                .flat_map(|b| &b.docs)
                .filter(|d| d.slice == slice)
                .map(|d| d.id.as_str())
                .collect();
            let expected: Vec<String> = (0..5)
                .flat_map(|round| (0..4).map(move |i| format!("{slice}-{round}-{i}")))
                .collect();
            assert_eq!(ids, expected);
        }
        assert!(batches.flush().is_empty());
    }

    #[test]
    fn the_largest_batch_goes_once_all_of_them_hold_over_twice_the_limit() {
        let mut batches = SliceBatches::new("t", 1000, None);
        // Eight slices of two documents: slice 5's are ~380 bytes each,
        // the others' ~100, about 2,200 bytes in all and none full.
        for slice in 0..8u32 {
            for i in 0..2 {
                let size = if slice == 5 { 300 } else { 20 };
                assert!(batches
                    .push(slice, 0, &hit(&format!("{slice}-{i}"), size))
                    .unwrap()
                    .is_none());
            }
        }
        let spilled = batches.spill().expect("over 2,000 bytes held");
        assert_eq!(slices_of(&spilled), vec![5]);
        assert_eq!(spilled.len(), 2);
        // Back under the limit, nothing more goes.
        assert!(batches.spill().is_none());
        let rest = batches.flush();
        assert_eq!(rest.len(), 7);
        assert_eq!(rest.iter().map(Batch::len).sum::<usize>(), 14);
    }

    #[test]
    fn a_finished_slice_hands_over_its_partial_batch_and_the_others_keep_theirs() {
        let mut batches = SliceBatches::new("t", 1000, None);
        for slice in 0..3u32 {
            batches
                .push(slice, 0, &hit(&format!("{slice}-a"), 10))
                .unwrap();
        }
        batches.push(1, 1, &hit("1-b", 10)).unwrap();
        let last = batches.finish(1).expect("slice 1 holds two documents");
        assert_eq!(slices_of(&last), vec![1]);
        assert_eq!(last.len(), 2);
        // Nothing is left of slice 1; a second end hands nothing over.
        assert!(batches.finish(1).is_none());
        let rest = batches.flush();
        assert_eq!(
            rest.iter().map(|b| slices_of(b)[0]).collect::<Vec<_>>(),
            vec![0, 2]
        );
    }

    #[test]
    fn a_document_limit_cuts_every_slice_from_the_next_document_on() {
        let mut batches = SliceBatches::new("t", 1 << 20, None);
        batches.push(0, 0, &hit("a", 10)).unwrap();
        batches.set_max_docs(2);
        assert!(batches.push(1, 0, &hit("b", 10)).unwrap().is_none());
        let full = batches.push(0, 0, &hit("c", 10)).unwrap().unwrap();
        assert_eq!(full.len(), 2);
        let full = batches.push(1, 0, &hit("d", 10)).unwrap().unwrap();
        assert_eq!(slices_of(&full), vec![1]);
        assert!(batches.flush().is_empty());
    }

    #[test]
    fn a_hit_without_source_is_refused_and_nothing_is_held() {
        let mut batches = SliceBatches::new("t", 1000, None);
        let bare = Hit {
            id: "x".into(),
            routing: None,
            source: None,
            sort: None,
        };
        assert_eq!(batches.push(2, 9, &bare).unwrap_err().page, 9);
        assert!(batches.flush().is_empty());
    }
}
