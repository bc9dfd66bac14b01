//! Turning source hits into NDJSON bulk bodies, cut by bytes.
//!
//! Every copied document is an `index` action with `version_type=external`
//! and `version=0`: any application write or delete in the target (version
//! ≥ 1, a delete's tombstone included) beats it with a 409, so the copy
//! never overwrites a live write nor resurrects a deleted document. Version
//! 0 also tags the copy: in the target, `_version == 0` is an untouched
//! copy and `_version ≥ 1` is exactly what the application wrote since
//! stage 1. `_source` bytes are copied as they are.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde_json::value::RawValue;

use crate::es::Hit;

/// One document inside a batch body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocRef {
    pub id: String,
    /// Its custom routing, if any: a 409 is told apart from a different
    /// document with the same `_id` by it.
    pub routing: Option<String>,
    /// Which source slice it came from, and which page of it, for
    /// per-slice accounting and the resume cursor.
    pub slice: u32,
    pub page: u64,
    /// Its two NDJSON lines within the body.
    pub range: Range<usize>,
}

/// A bulk body and the documents in it, in order: item `i` of the bulk
/// answer is `docs[i]`.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The index the body writes into.
    pub index: Arc<str>,
    pub body: Bytes,
    pub docs: Vec<DocRef>,
}

impl Batch {
    /// A body holding only `keep` (indexes into `docs`): what a retry
    /// sends, so items that already succeeded are never sent again.
    pub fn subset(&self, keep: &[usize]) -> Batch {
        let mut body =
            BytesMut::with_capacity(keep.iter().map(|&i| self.docs[i].range.len()).sum());
        let mut docs = Vec::with_capacity(keep.len());
        for &i in keep {
            let doc = &self.docs[i];
            let start = body.len();
            body.extend_from_slice(&self.body[doc.range.clone()]);
            docs.push(DocRef {
                id: doc.id.clone(),
                routing: doc.routing.clone(),
                slice: doc.slice,
                page: doc.page,
                range: start..body.len(),
            });
        }
        Batch {
            index: self.index.clone(),
            body: body.freeze(),
            docs,
        }
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

/// Accumulates documents and hands out a [`Batch`] whenever the body
/// reaches `max_bytes`.
#[derive(Debug)]
pub struct Batcher {
    target: Arc<str>,
    /// The ingest pipeline every action names, if any.
    pipeline: Option<Arc<str>>,
    max_bytes: usize,
    /// Also cut at this many documents (small batches when throttled).
    max_docs: usize,
    /// Whether action lines carry `version: 0, version_type: external`.
    external_versions: bool,
    body: BytesMut,
    docs: Vec<DocRef>,
}

/// A hit that cannot be copied (its index stores no `_source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncopyable {
    pub id: String,
    pub slice: u32,
    pub page: u64,
}

impl Batcher {
    pub fn new(target: &str, max_bytes: u64) -> Self {
        let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        Batcher {
            target: Arc::from(target),
            pipeline: None,
            max_bytes,
            max_docs: usize::MAX,
            external_versions: true,
            body: BytesMut::with_capacity(max_bytes.min(64 << 20) + 4096),
            docs: Vec::new(),
        }
    }

    /// Every action runs the ingest pipeline `name`.
    pub fn with_pipeline(mut self, name: Option<&str>) -> Self {
        self.pipeline = name.map(Arc::from);
        self
    }

    pub fn set_max_docs(&mut self, max_docs: usize) {
        self.max_docs = max_docs.max(1);
    }

    /// Writes plain `index` actions, without `version` and
    /// `version_type`: the engine's own versioning, so a write replaces
    /// whatever is stored. Never for a copy (it would overwrite the
    /// application's writes); for loading data, and for measuring what
    /// external versioning costs.
    pub fn without_external_versions(mut self) -> Self {
        self.external_versions = false;
        self
    }

    /// Adds one hit; returns a full batch when this hit filled one.
    pub fn push(&mut self, slice: u32, page: u64, hit: &Hit) -> Result<Option<Batch>, Uncopyable> {
        let Some(source) = hit.source.as_deref() else {
            return Err(Uncopyable {
                id: hit.id.clone(),
                slice,
                page,
            });
        };
        let start = self.body.len();
        self.write_action(hit);
        write_source(&mut self.body, source);
        self.docs.push(DocRef {
            id: hit.id.clone(),
            routing: hit.routing.clone(),
            slice,
            page,
            range: start..self.body.len(),
        });
        let full = self.body.len() >= self.max_bytes || self.docs.len() >= self.max_docs;
        Ok(full.then(|| self.take()))
    }

    /// Bytes of the body built so far.
    pub fn bytes(&self) -> usize {
        self.body.len()
    }

    /// The documents gathered so far, if any.
    pub fn flush(&mut self) -> Option<Batch> {
        (!self.docs.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Batch {
        // A fresh buffer of full size for the next batch: growing one from
        // the remains of a split doubles its way up and leaves freed
        // buffers of every size behind.
        let capacity = self.max_bytes.min(64 << 20) + 4096;
        let body = std::mem::replace(&mut self.body, BytesMut::with_capacity(capacity)).freeze();
        Batch {
            index: self.target.clone(),
            body,
            docs: std::mem::take(&mut self.docs),
        }
    }

    fn write_action(&mut self, hit: &Hit) {
        let b = &mut self.body;
        b.extend_from_slice(b"{\"index\":{\"_index\":");
        write_json_string(b, &self.target);
        b.extend_from_slice(b",\"_id\":");
        write_json_string(b, &hit.id);
        if let Some(routing) = &hit.routing {
            b.extend_from_slice(b",\"routing\":");
            write_json_string(b, routing);
        }
        if self.external_versions {
            b.extend_from_slice(b",\"version\":0,\"version_type\":\"external\"");
        }
        if let Some(pipeline) = &self.pipeline {
            b.extend_from_slice(b",\"pipeline\":");
            write_json_string(b, pipeline);
        }
        b.extend_from_slice(b"}}\n");
    }
}

fn write_json_string(buf: &mut BytesMut, s: &str) {
    // Serialising a str into JSON cannot fail.
    let quoted = serde_json::to_string(s).expect("a str serialises");
    buf.extend_from_slice(quoted.as_bytes());
}

/// Appends `_source` on one line. Raw newlines can only be whitespace
/// between JSON tokens (inside strings they are escaped), so they become
/// spaces; the document is otherwise untouched.
fn write_source(buf: &mut BytesMut, source: &RawValue) {
    let bytes = source.get().as_bytes();
    let start = buf.len();
    buf.extend_from_slice(bytes);
    if memchr_newline(bytes) {
        for b in &mut buf[start..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
    }
    buf.extend_from_slice(b"\n");
}

fn memchr_newline(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == b'\n' || b == b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, routing: Option<&str>, source: &str) -> Hit {
        Hit {
            id: id.into(),
            routing: routing.map(Into::into),
            source: Some(RawValue::from_string(source.into()).unwrap()),
            sort: None,
        }
    }

    #[test]
    fn encodes_external_version_zero_and_keeps_source_bytes() {
        let mut b = Batcher::new("wiki_2", 1 << 20);
        assert!(b
            .push(0, 0, &hit("a\"1", Some("r"), r#"{"x": 1.50}"#))
            .unwrap()
            .is_none());
        b.push(1, 0, &hit("2", None, "{\n  \"y\": \"line\\nbreak\"\n}"))
            .unwrap();
        let batch = b.flush().unwrap();
        let text = std::str::from_utf8(&batch.body).unwrap();
        assert_eq!(
            text,
            "{\"index\":{\"_index\":\"wiki_2\",\"_id\":\"a\\\"1\",\"routing\":\"r\",\"version\":0,\"version_type\":\"external\"}}\n{\"x\": 1.50}\n\
             {\"index\":{\"_index\":\"wiki_2\",\"_id\":\"2\",\"version\":0,\"version_type\":\"external\"}}\n{   \"y\": \"line\\nbreak\" }\n"
        );
        assert_eq!(batch.docs[1].slice, 1);
        assert!(b.flush().is_none());
    }

    #[test]
    fn cuts_by_bytes_and_subsets_resend_only_chosen_items() {
        let mut b = Batcher::new("t", 200);
        let mut batches = Vec::new();
        for i in 0..10 {
            if let Some(full) = b
                .push(
                    0,
                    0,
                    &hit(&i.to_string(), None, r#"{"field":"some value here"}"#),
                )
                .unwrap()
            {
                batches.push(full);
            }
        }
        batches.extend(b.flush());
        assert!(batches.len() > 1);
        assert_eq!(batches.iter().map(Batch::len).sum::<usize>(), 10);
        for batch in &batches[..batches.len() - 1] {
            assert!(batch.body.len() >= 200);
            assert_eq!(batch.docs.last().unwrap().range.end, batch.body.len());
        }
        let first = &batches[0];
        let again = first.subset(&[1]);
        assert_eq!(again.docs[0].id, first.docs[1].id);
        assert_eq!(&again.body[..], &first.body[first.docs[1].range.clone()]);
    }

    #[test]
    fn plain_actions_leave_versioning_to_the_engine() {
        let mut b = Batcher::new("t", 1 << 20).without_external_versions();
        b.push(0, 0, &hit("1", Some("r"), r#"{"x":1}"#)).unwrap();
        let batch = b.flush().unwrap();
        assert_eq!(
            std::str::from_utf8(&batch.body).unwrap(),
            "{\"index\":{\"_index\":\"t\",\"_id\":\"1\",\"routing\":\"r\"}}\n{\"x\":1}\n"
        );
    }

    #[test]
    fn a_hit_without_source_is_refused() {
        let mut b = Batcher::new("t", 100);
        let h = Hit {
            id: "x".into(),
            routing: None,
            source: None,
            sort: None,
        };
        assert_eq!(
            b.push(3, 7, &h).unwrap_err(),
            Uncopyable {
                id: "x".into(),
                slice: 3,
                page: 7
            }
        );
        assert!(b.flush().is_none());
    }
}
