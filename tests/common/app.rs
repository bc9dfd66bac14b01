//! A stand-in for the application: it indexes, partially updates and
//! deletes documents through the write alias, one at a time, and keeps its
//! own view of what each id must end up as — the expectation that
//! generations are compared with, document by document.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reindexd::es::{EsClient, Slice};
use serde_json::{json, Value};

/// A tiny deterministic generator, so a failure can be replayed.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The custom routing `Env::load_docs` gives document `i`.
pub fn routing(i: u64) -> Option<String> {
    (i % 10 == 3).then(|| format!("r{}", i % 4))
}

/// Document `i` as `Env::load_docs` writes it.
pub fn original(i: u64) -> Value {
    json!({"n": i, "title": format!("document number {i}"), "tag": format!("t{}", i % 7)})
}

/// One single-item bulk request; returns the item's status. A write
/// blocked for a moment (403, `cluster_block_exception`: a rollback's
/// switch), refused as busy (429, 503), or sent to a node that is down is
/// sent again, as the application contract asks (every operation here is
/// idempotent, so a resend after a lost answer changes nothing).
pub async fn op(es: &EsClient, action: &str, alias: &str, id: u64, body: Option<&Value>) -> u16 {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let outcome = op_once(es, action, alias, id, body).await;
        let again = match &outcome {
            Ok(status) => matches!(status, 403 | 429 | 503),
            Err(e) => e.is_unavailable(),
        };
        if !again || std::time::Instant::now() > deadline {
            return outcome.unwrap_or_else(|e| panic!("{action} {id}: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn op_once(
    es: &EsClient,
    action: &str,
    alias: &str,
    id: u64,
    body: Option<&Value>,
) -> Result<u16, reindexd::es::EsError> {
    let mut meta = json!({"_index": alias, "_id": id.to_string()});
    if let Some(r) = routing(id) {
        meta["routing"] = json!(r);
    }
    let mut text = json!({ action: meta }).to_string();
    text.push('\n');
    if let Some(b) = body {
        text.push_str(&b.to_string());
        text.push('\n');
    }
    let response = es.bulk(text.into(), None, None).await?;
    Ok(response.items[0].status)
}

/// Every document of `index` by id (refresh first).
pub async fn all_docs(es: &EsClient, index: &str) -> BTreeMap<String, Value> {
    let mut docs = BTreeMap::new();
    let keep = Duration::from_secs(60);
    let mut page = es
        .scroll_start(index, None::<Slice>, 1000, keep)
        .await
        .unwrap();
    while !page.hits.is_empty() {
        for hit in page.hits.drain(..) {
            let source: Value = serde_json::from_str(hit.source.unwrap().get()).unwrap();
            assert!(
                docs.insert(hit.id.clone(), source).is_none(),
                "{} twice",
                hit.id
            );
        }
        page = es
            .scroll_next(page.scroll_id.as_deref().unwrap(), keep)
            .await
            .unwrap();
    }
    docs
}

/// The application and what it expects.
pub struct App {
    pub alias: String,
    /// Per id: the document it must be, or `None` for deleted/never written.
    pub expected: BTreeMap<u64, Option<Value>>,
    /// Ids whose index or update the cluster acknowledged.
    pub written: BTreeSet<u64>,
    rng: XorShift,
    /// Ids `0..initial` were loaded before the application started.
    initial: u64,
    pub indexed: u64,
    pub updated: u64,
    pub update_missing: u64,
    pub deleted: u64,
    /// Whether `run` deletes too.
    deletes: bool,
}

impl App {
    pub fn new(alias: &str, initial: u64, seed: u64) -> App {
        App {
            alias: alias.to_owned(),
            expected: (0..initial).map(|i| (i, Some(original(i)))).collect(),
            written: BTreeSet::new(),
            rng: XorShift(seed),
            initial,
            indexed: 0,
            updated: 0,
            update_missing: 0,
            deleted: 0,
            deletes: true,
        }
    }

    /// An application that only indexes and updates: see the rolling
    /// restart test in tests/multi_node.rs for why.
    pub fn without_deletes(alias: &str, initial: u64, seed: u64) -> App {
        App {
            deletes: false,
            ..App::new(alias, initial, seed)
        }
    }

    /// `ops` random operations (index, partial update, delete) on ids in
    /// `0..initial + 300`; some are new documents.
    pub async fn run(&mut self, es: &EsClient, ops: u64) {
        for _ in 0..ops {
            let k = self.indexed + self.updated + self.update_missing + self.deleted;
            let id = self.rng.next() % (self.initial + 300);
            let kinds = if self.deletes { 3 } else { 2 };
            match self.rng.next() % kinds {
                0 => {
                    let doc = json!({"n": id, "title": format!("app write {k}"), "tag": "app", "boost": 1.5});
                    let status = op(es, "index", &self.alias, id, Some(&doc)).await;
                    assert!(status == 200 || status == 201, "index {id}: {status}");
                    self.expected.insert(id, Some(doc));
                    self.written.insert(id);
                    self.indexed += 1;
                }
                1 => {
                    let patch = json!({"doc": {"tag": format!("updated {k}")}});
                    match op(es, "update", &self.alias, id, Some(&patch)).await {
                        200 => {
                            // Applied on the document as the target had it.
                            let current = self
                                .expected
                                .get_mut(&id)
                                .and_then(Option::as_mut)
                                .expect("updated a document the app knows");
                            current["tag"] = json!(format!("updated {k}"));
                            self.written.insert(id);
                            self.updated += 1;
                        }
                        // Not in the target yet (or deleted): the contract
                        // says the application gets 404, nothing applied.
                        404 => self.update_missing += 1,
                        other => panic!("update {id}: {other}"),
                    }
                }
                _ => {
                    let status = op(es, "delete", &self.alias, id, None).await;
                    assert!(status == 200 || status == 404, "delete {id}: {status}");
                    self.expected.insert(id, None);
                    self.deleted += 1;
                }
            }
        }
    }

    /// Documents written since it started that still exist.
    pub fn live_writes(&self) -> u64 {
        self.written
            .iter()
            .filter(|id| self.expected[id].is_some())
            .count() as u64
    }

    /// Documents loaded before it started that it deleted.
    pub fn deleted_originals(&self) -> u64 {
        (0..self.initial)
            .filter(|id| self.expected[id].is_none())
            .count() as u64
    }

    /// Asserts that `index` holds exactly what the application expects.
    pub async fn assert_matches(&self, es: &EsClient, index: &str) {
        es.refresh(index).await.unwrap();
        let actual = all_docs(es, index).await;
        let wanted: BTreeMap<String, Value> = self
            .expected
            .iter()
            .filter_map(|(id, doc)| doc.clone().map(|d| (id.to_string(), d)))
            .collect();
        let missing: Vec<&String> = wanted.keys().filter(|k| !actual.contains_key(*k)).collect();
        let resurrected: Vec<&String> =
            actual.keys().filter(|k| !wanted.contains_key(*k)).collect();
        let differing: Vec<&String> = wanted
            .keys()
            .filter(|k| actual.get(*k).is_some_and(|a| a != &wanted[*k]))
            .collect();
        assert!(missing.is_empty(), "{index}: lost documents: {missing:?}");
        assert!(
            resurrected.is_empty(),
            "{index}: resurrected documents: {resurrected:?}"
        );
        assert!(
            differing.is_empty(),
            "{index}: overwritten documents: {differing:?}"
        );
    }
}
