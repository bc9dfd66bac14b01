//! CPU cost per document of the copy's client-side work that the public API
//! exposes: decoding a scroll page into [`reindexd::es::Hit`]s (`_source`
//! kept as raw bytes) and parsing a `_bulk` answer with
//! [`reindexd::es::BulkResponse::parse`].
//!
//! The batcher (`src/copy/encode.rs`) is private to `reindexd::copy`, so it
//! is not benchmarked here; see the end of this file for the bench to add
//! once `Batcher` and `Batch` are exported.
//!
//! Data: 128 documents from `scripts/gen-kb` (wiki kind, every tenth one
//! routed; `benches/fixtures/wiki-128.ndjson`), cycled to 1000-hit pages
//! shaped like OpenSearch 2.x scroll answers (`sort: [_doc]`).
//!
//! Quick settings for a 2-core machine: `cargo bench --bench codec`
//! (~30 s). Throughput is reported in documents (elements) per second.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use reindexd::es::{BulkResponse, Hit};
use serde::Deserialize;

const FIXTURE: &str = include_str!("fixtures/wiki-128.ndjson");
const PAGE: usize = 1000;

struct Doc {
    id: String,
    routing: Option<String>,
    source: String,
}

fn fixture() -> Vec<Doc> {
    let lines: Vec<&str> = FIXTURE.lines().filter(|l| !l.is_empty()).collect();
    lines
        .chunks(2)
        .map(|pair| {
            let action: serde_json::Value = serde_json::from_str(pair[0]).expect("action line");
            Doc {
                id: action["index"]["_id"].as_str().expect("_id").to_owned(),
                routing: action["index"]["routing"].as_str().map(str::to_owned),
                source: pair[1].to_owned(),
            }
        })
        .collect()
}

/// A scroll answer of `n` hits as OpenSearch 2.x sends it for `sort: [_doc]`.
fn scroll_page(docs: &[Doc], n: usize) -> Vec<u8> {
    let mut out = String::from(
        r#"{"_scroll_id":"FGluY2x1ZGVfY29udGV4dF91dWlkDXF1ZXJ5QW5kRmV0Y2gBFnNvbWUtbm9kZS1pZAAAAAAAAAAqFnNvbWUtdXVpZA==","took":7,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},"hits":{"total":{"value":1000000,"relation":"eq"},"max_score":null,"hits":["#,
    );
    for i in 0..n {
        let d = &docs[i % docs.len()];
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"_index":"bench-wiki_20260101000000","_id":"#);
        out.push_str(&serde_json::to_string(&format!("{}-{i}", d.id)).unwrap());
        out.push_str(r#","_score":null"#);
        if let Some(r) = &d.routing {
            out.push_str(r#","_routing":"#);
            out.push_str(&serde_json::to_string(r).unwrap());
        }
        out.push_str(r#","_source":"#);
        out.push_str(&d.source);
        out.push_str(&format!(r#","sort":[{i}]}}"#));
    }
    out.push_str("]}}");
    out.into_bytes()
}

/// A `_bulk` answer of `n` items; every `conflict_every`-th one a 409.
fn bulk_answer(n: usize, conflict_every: Option<usize>) -> Vec<u8> {
    let mut out = format!(
        r#"{{"took":412,"errors":{},"items":["#,
        conflict_every.is_some()
    );
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        if conflict_every.is_some_and(|k| i % k == 0) {
            out.push_str(&format!(
                r#"{{"index":{{"_index":"bench-wiki_20260102000000","_id":"wiki-{i:09}","status":409,"error":{{"type":"version_conflict_engine_exception","reason":"[wiki-{i:09}]: version conflict, current version [2] is higher or equal to the one provided [1]","index":"bench-wiki_20260102000000","shard":"0","index_uuid":"aBcDeFgHiJkLmNoPqRsTuV"}}}}}}"#
            ));
        } else {
            out.push_str(&format!(
                r#"{{"index":{{"_index":"bench-wiki_20260102000000","_id":"wiki-{i:09}","_version":1,"result":"created","_shards":{{"total":1,"successful":1,"failed":0}},"_seq_no":{i},"_primary_term":1,"status":201}}}}"#
            ));
        }
    }
    out.push_str("]}");
    out.into_bytes()
}

/// The part of a search answer the copy reads (mirrors the crate's private
/// `SearchResponse`, built on the public `Hit`).
#[derive(Deserialize)]
struct SearchAnswer {
    #[serde(rename = "_scroll_id")]
    _scroll_id: Option<String>,
    hits: Hits,
}

#[derive(Deserialize)]
struct Hits {
    hits: Vec<Hit>,
}

fn decode_page(c: &mut Criterion) {
    let docs = fixture();
    let page = scroll_page(&docs, PAGE);
    // Sanity: the fixture decodes and sources stay byte-identical.
    let decoded: SearchAnswer = serde_json::from_slice(&page).unwrap();
    assert_eq!(decoded.hits.hits.len(), PAGE);
    assert_eq!(
        decoded.hits.hits[3].source.as_ref().unwrap().get(),
        docs[3].source
    );

    let mut group = c.benchmark_group("search_page");
    group.throughput(Throughput::Elements(PAGE as u64));
    group.bench_function(
        BenchmarkId::new("decode_hits", format!("{PAGE}x{}B", page.len() / PAGE)),
        |b| {
            b.iter(|| {
                let answer: SearchAnswer = serde_json::from_slice(black_box(&page)).unwrap();
                black_box(answer.hits.hits.len())
            })
        },
    );
    group.finish();
}

fn parse_bulk(c: &mut Criterion) {
    let clean = bulk_answer(PAGE, None);
    let mixed = bulk_answer(PAGE, Some(10));
    assert!(!BulkResponse::parse(&clean).unwrap().errors);
    let m = BulkResponse::parse(&mixed).unwrap();
    assert_eq!(
        m.items.iter().filter(|i| i.status == 409).count(),
        PAGE / 10
    );

    let mut group = c.benchmark_group("bulk_response");
    group.throughput(Throughput::Elements(PAGE as u64));
    group.bench_function("parse_all_created", |b| {
        b.iter(|| black_box(BulkResponse::parse(black_box(&clean)).unwrap().items.len()))
    });
    group.bench_function("parse_10pct_conflicts", |b| {
        b.iter(|| black_box(BulkResponse::parse(black_box(&mixed)).unwrap().items.len()))
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = quick();
    targets = decode_page, parse_bulk, encode
}
criterion_main!(benches);

/// The batcher: encoding a page of hits into a bulk body, and the subset
/// a retry sends.
fn encode(c: &mut Criterion) {
    let docs = fixture();
    let hits: Vec<Hit> = serde_json::from_slice::<SearchAnswer>(&scroll_page(&docs, PAGE))
        .unwrap()
        .hits
        .hits;
    let mut group = c.benchmark_group("batcher");
    group.throughput(Throughput::Elements(PAGE as u64));
    group.bench_function("push_1000_hits_8MiB", |b| {
        let mut batcher = reindexd::copy::Batcher::new("bench-wiki_20260102000000", 8 << 20);
        b.iter(|| {
            for hit in &hits {
                black_box(batcher.push(0, 0, hit).unwrap());
            }
            black_box(batcher.flush())
        })
    });
    group.bench_function("subset_every_other", |b| {
        let mut batcher = reindexd::copy::Batcher::new("t", u64::MAX);
        for hit in &hits {
            batcher.push(0, 0, hit).unwrap();
        }
        let batch = batcher.flush().unwrap();
        let keep: Vec<usize> = (0..batch.len()).step_by(2).collect();
        b.iter(|| black_box(batch.subset(&keep)))
    });
    group.finish();
}
