//! Writes during the copy: an application indexes, partially updates and
//! deletes documents through the aliases while the copy runs. Afterwards
//! the new generation must equal what the application expects, document by
//! document: no lost write, no deleted document resurrected.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Env, MAPPING_V2};
use reindexd::copy::{drive, CopyHandle};
use reindexd::es::{EsClient, Slice};
use reindexd::migration::Action;
use serde_json::{json, Value};

/// A tiny deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn routing(i: u64) -> Option<String> {
    (i % 10 == 3).then(|| format!("r{}", i % 4))
}

fn original(i: u64) -> Value {
    json!({"n": i, "title": format!("document number {i}"), "tag": format!("t{}", i % 7)})
}

/// One single-item bulk request; returns the item's status.
async fn op(es: &EsClient, action: &str, alias: &str, id: u64, body: Option<&Value>) -> u16 {
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
    let response = es.bulk(text.into(), None, None).await.unwrap();
    response.items[0].status
}

async fn all_docs(es: &EsClient, index: &str) -> BTreeMap<String, Value> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_copy_never_overwrites_or_resurrects_application_writes() {
    // Small batches and a throttle make the copy last a few seconds, so the
    // writer's operations land before, during and after each document's copy.
    let env = Env::new(
        "writes",
        &["kb"],
        "[copy]\nbatch_bytes = \"16KiB\"\npage_size = 200\nslices = 2",
    )
    .await;
    let m = &env.migrator;
    m.init("kb").await.unwrap();
    let initial = 4_000u64;
    env.load_docs("kb", initial).await;
    env.set_mapping("kb", MAPPING_V2);
    let state = m.reindex("kb").await.unwrap();
    let target = state.phase.write_index().to_owned();
    m.update_copy("kb", Action::Throttle, |c| {
        c.requests_per_second = Some(1_000.0)
    })
    .await
    .unwrap();

    let copy = {
        let m = m.clone();
        tokio::spawn(async move {
            let handle = CopyHandle::detached("kb");
            drive(&m, "kb", "test-copier", &handle).await
        })
    };

    // The application: its own view of what each id must end up as.
    let alias = env.write_alias("kb");
    let mut expected: BTreeMap<u64, Option<Value>> =
        (0..initial).map(|i| (i, Some(original(i)))).collect();
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let (mut indexed, mut updated, mut update_missing, mut deleted) = (0, 0, 0, 0);
    for k in 0..1_500u64 {
        let id = rng.next() % (initial + 300); // some ids are new documents
        match rng.next() % 3 {
            0 => {
                let doc =
                    json!({"n": id, "title": format!("app write {k}"), "tag": "app", "boost": 1.5});
                let status = op(&env.es, "index", &alias, id, Some(&doc)).await;
                assert!(status == 200 || status == 201, "index {id}: {status}");
                expected.insert(id, Some(doc));
                indexed += 1;
            }
            1 => {
                let patch = json!({"doc": {"tag": format!("updated {k}")}});
                match op(&env.es, "update", &alias, id, Some(&patch)).await {
                    200 => {
                        // Applied on the document as the target had it.
                        let current = expected
                            .get_mut(&id)
                            .and_then(Option::as_mut)
                            .expect("updated a document the app knows");
                        current["tag"] = json!(format!("updated {k}"));
                        updated += 1;
                    }
                    // Not in the target yet (or deleted): the contract says
                    // the application gets 404 and its update is not applied.
                    404 => update_missing += 1,
                    other => panic!("update {id}: {other}"),
                }
            }
            _ => {
                let status = op(&env.es, "delete", &alias, id, None).await;
                assert!(status == 200 || status == 404, "delete {id}: {status}");
                expected.insert(id, None);
                deleted += 1;
            }
        }
    }
    eprintln!("writer: {indexed} indexed, {updated} updated, {update_missing} updates of missing documents, {deleted} deleted");
    assert!(
        update_missing > 0 && updated > 0,
        "the writer must race the copy both ways"
    );

    let state = copy.await.unwrap().unwrap();
    assert_eq!(state.phase.name(), "ready", "{:?}", state.phase);
    let progress = state.phase.copy().unwrap();
    assert_eq!(progress.total, initial);
    assert_eq!(progress.copied + progress.superseded, initial);
    assert!(
        progress.superseded > 0,
        "some copies must have lost to application writes"
    );

    env.es.refresh(&target).await.unwrap();
    let actual = all_docs(&env.es, &target).await;
    let wanted: BTreeMap<String, Value> = expected
        .into_iter()
        .filter_map(|(id, doc)| doc.map(|d| (id.to_string(), d)))
        .collect();
    let missing: Vec<&String> = wanted.keys().filter(|k| !actual.contains_key(*k)).collect();
    let resurrected: Vec<&String> = actual.keys().filter(|k| !wanted.contains_key(*k)).collect();
    let differing: Vec<&String> = wanted
        .keys()
        .filter(|k| actual.get(*k).is_some_and(|a| a != &wanted[*k]))
        .collect();
    assert!(missing.is_empty(), "lost documents: {missing:?}");
    assert!(
        resurrected.is_empty(),
        "resurrected documents: {resurrected:?}"
    );
    assert!(differing.is_empty(), "overwritten documents: {differing:?}");
    env.cleanup().await;
}
