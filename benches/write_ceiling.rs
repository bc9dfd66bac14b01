//! The write ceiling of `scripts/bench` (measurement (e)): how fast the node
//! takes the copy's bulk bodies when nothing has to be read first.
//!
//! Not a criterion bench: a plain program (`harness = false`) that
//! `scripts/bench` builds with `cargo bench --no-run` and runs directly.
//!
//! 1. Reads the dataset's bulk NDJSON (`scripts/gen-kb --output`), rewrites
//!    every action line the way reindexd's batcher writes it (`index` into
//!    the target, same `_id` and `routing`, `version: 1`,
//!    `version_type: external`) and cuts bodies at `--batch-bytes` the same
//!    way (a body is closed once it reaches the size). All bodies are held
//!    in memory before the clock starts.
//! 2. For each concurrency in `--concurrency` (e.g. `1,2,4,8`): deletes and
//!    creates the target from `--create-body` (the v2 mapping with the
//!    bulk-load settings), starts the clock, replays every body with that
//!    many requests in flight, refreshes, stops the clock, checks `_count`,
//!    deletes the target.
//! 3. Prints one JSON line per concurrency on stdout: docs, seconds,
//!    docs/s, and this program's own CPU seconds in that window (so a
//!    reader can check that the replayer was not the bottleneck), plus the
//!    node's CPU seconds when `--node-pid` names its process, and the whole
//!    machine's busy CPU seconds (what else ran shows as the difference).
//!
//! Items answered 429 (or a whole 429/5xx answer) are sent again after a
//! short pause; 409 (version conflict: already written by an earlier try)
//! counts as written; any other item error aborts with exit status 1.
//!
//! ```text
//! write_ceiling --url http://127.0.0.1:9290 --ndjson data.ndjson \
//!   --create-body target.json --index bench-ceiling --concurrency 1,2,4,8 \
//!   [--batch-bytes 8388608] [--node-pid PID] [--plain-actions]
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::Value;

struct Args {
    url: String,
    ndjson: String,
    create_body: String,
    index: String,
    concurrency: Vec<usize>,
    batch_bytes: usize,
    /// The node's process, to report its CPU seconds per run too.
    node_pid: Option<u32>,
    /// Leave out `version`/`version_type` (to measure what external versioning costs).
    plain: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: write_ceiling --url URL --ndjson FILE --create-body FILE --index NAME \
         [--concurrency 1,2,4,8] [--batch-bytes BYTES] [--node-pid PID] [--plain-actions]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut url = None;
    let mut ndjson = None;
    let mut create_body = None;
    let mut index = None;
    let mut concurrency = vec![1, 2, 4, 8];
    let mut batch_bytes = 8 << 20;
    let mut node_pid = None;
    let mut plain = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--url" => url = Some(value().trim_end_matches('/').to_owned()),
            "--ndjson" => ndjson = Some(value()),
            "--create-body" => create_body = Some(value()),
            "--index" => index = Some(value()),
            "--concurrency" => {
                concurrency = value()
                    .split(',')
                    .map(|c| c.trim().parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--batch-bytes" => batch_bytes = value().parse().unwrap_or_else(|_| usage()),
            "--plain-actions" => plain = true,
            "--node-pid" => node_pid = Some(value().parse().unwrap_or_else(|_| usage())),
            // `cargo bench` appends `--bench`; harmless when run directly.
            "--bench" => {}
            _ => usage(),
        }
    }
    let (Some(url), Some(ndjson), Some(create_body), Some(index)) =
        (url, ndjson, create_body, index)
    else {
        usage()
    };
    if concurrency.is_empty() || concurrency.contains(&0) {
        usage()
    }
    Args {
        url,
        ndjson,
        create_body,
        index,
        concurrency,
        batch_bytes,
        node_pid,
        plain,
    }
}

/// Action line as gen-kb writes it: `{"index":{"_index":..,"_id":..[,"routing":..]}}`.
#[derive(Deserialize)]
struct Action {
    index: ActionBody,
}

#[derive(Deserialize)]
struct ActionBody {
    #[serde(rename = "_id")]
    id: String,
    routing: Option<String>,
}

fn json_string(buf: &mut BytesMut, s: &str) {
    buf.extend_from_slice(
        serde_json::to_string(s)
            .expect("a str serialises")
            .as_bytes(),
    );
}

/// Bodies and the number of documents in each.
fn encode(data: &[u8], target: &str, batch_bytes: usize, plain: bool) -> Vec<(Bytes, usize)> {
    let mut bodies = Vec::new();
    let mut body = BytesMut::with_capacity(batch_bytes + (64 << 10));
    let mut docs = 0usize;
    let mut lines = data.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    while let Some(action) = lines.next() {
        let source = lines
            .next()
            .expect("an action line is followed by a source line");
        let action: Action = serde_json::from_slice(action).expect("gen-kb action line");
        body.extend_from_slice(b"{\"index\":{\"_index\":");
        json_string(&mut body, target);
        body.extend_from_slice(b",\"_id\":");
        json_string(&mut body, &action.index.id);
        if let Some(routing) = &action.index.routing {
            body.extend_from_slice(b",\"routing\":");
            json_string(&mut body, routing);
        }
        if plain {
            body.extend_from_slice(b"}}\n");
        } else {
            body.extend_from_slice(b",\"version\":1,\"version_type\":\"external\"}}\n");
        }
        body.extend_from_slice(source);
        body.extend_from_slice(b"\n");
        docs += 1;
        if body.len() >= batch_bytes {
            bodies.push((body.split().freeze(), docs));
            docs = 0;
        }
    }
    if docs > 0 {
        bodies.push((body.split().freeze(), docs));
    }
    bodies
}

/// Busy CPU seconds of the whole machine, all cores (from `/proc/stat`).
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = cpu
        .iter()
        .enumerate()
        .filter(|(i, _)| !matches!(i, 3 | 4) && *i < 8)
        .map(|(_, v)| v)
        .sum();
    busy / 100.0
}

/// user+sys CPU seconds of a process (`self` or a pid; USER_HZ is 100 on Linux).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime 11, stime 12.
    (tick(11) + tick(12)) / 100.0
}

#[derive(Deserialize)]
struct BulkAnswer {
    errors: bool,
    #[serde(default)]
    items: Vec<Value>,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn send_body(client: &reqwest::Client, url: &str, body: Bytes) -> Result<(), Failure> {
    let mut body = body;
    for attempt in 0..50u32 {
        let response = client
            .post(format!("{url}/_bulk"))
            .header("content-type", "application/x-ndjson")
            .body(body.clone())
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        if status == 429 || status >= 500 {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
            continue;
        }
        if status != 200 {
            return Err(format!(
                "bulk answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            )
            .into());
        }
        let answer: BulkAnswer = serde_json::from_slice(&bytes)?;
        if !answer.errors {
            return Ok(());
        }
        // Keep only the items to send again (429); 409 means already written.
        let mut again = BytesMut::new();
        let mut lines = body.split(|&b| b == b'\n').filter(|l| !l.is_empty());
        for item in &answer.items {
            let (action, source) = (
                lines.next().unwrap_or_default(),
                lines.next().unwrap_or_default(),
            );
            let inner = item
                .as_object()
                .and_then(|o| o.values().next())
                .cloned()
                .unwrap_or(Value::Null);
            match inner["status"].as_u64().unwrap_or(0) {
                200..=299 | 409 => {}
                429 => {
                    again.extend_from_slice(action);
                    again.extend_from_slice(b"\n");
                    again.extend_from_slice(source);
                    again.extend_from_slice(b"\n");
                }
                other => return Err(format!("item answered {other}: {}", inner["error"]).into()),
            }
        }
        if again.is_empty() {
            return Ok(());
        }
        body = again.freeze();
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
    }
    Err("bulk still rejected after 50 attempts".into())
}

async fn check(response: reqwest::Response, what: &str) -> Result<Value, Failure> {
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        return Err(format!(
            "{what} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        )
        .into());
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn run(args: Args) -> Result<(), Failure> {
    let data = std::fs::read(&args.ndjson)?;
    let create_body: Value = serde_json::from_slice(&std::fs::read(&args.create_body)?)?;
    let encode_started = Instant::now();
    let bodies = Arc::new(encode(&data, &args.index, args.batch_bytes, args.plain));
    drop(data);
    let total_docs: usize = bodies.iter().map(|(_, n)| n).sum();
    let total_bytes: usize = bodies.iter().map(|(b, _)| b.len()).sum();
    eprintln!(
        "write_ceiling: {total_docs} docs in {} bodies, {:.1} MiB, encoded in {:.1} s",
        bodies.len(),
        total_bytes as f64 / (1 << 20) as f64,
        encode_started.elapsed().as_secs_f64()
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .pool_max_idle_per_host(64)
        .build()?;
    let url = args.url.clone();
    let index_url = format!("{url}/{}", args.index);
    for &concurrency in &args.concurrency {
        let _ = client.delete(&index_url).send().await?;
        let node_pid = args.node_pid.map(|p| p.to_string());
        let node_before = node_pid.as_deref().map(cpu_seconds);
        let cpu_before = cpu_seconds("self");
        let machine_before = machine_busy_seconds();
        let started = Instant::now();
        check(
            client.put(&index_url).json(&create_body).send().await?,
            "create index",
        )
        .await?;
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (client, url, bodies, next) =
                (client.clone(), url.clone(), bodies.clone(), next.clone());
            workers.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((body, _)) = bodies.get(i) else {
                        return Ok::<(), Failure>(());
                    };
                    send_body(&client, &url, body.clone()).await?;
                }
            });
        }
        while let Some(joined) = workers.join_next().await {
            joined??;
        }
        check(
            client.post(format!("{index_url}/_refresh")).send().await?,
            "refresh",
        )
        .await?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds("self") - cpu_before;
        let machine_cpu = machine_busy_seconds() - machine_before;
        let node_cpu = node_pid
            .as_deref()
            .map(cpu_seconds)
            .zip(node_before)
            .map(|(after, before)| after - before);
        let count = check(
            client.get(format!("{index_url}/_count")).send().await?,
            "count",
        )
        .await?;
        let count = count["count"].as_u64().unwrap_or(0);
        let _ = client.delete(&index_url).send().await?;
        if count != total_docs as u64 {
            return Err(format!(
                "concurrency {concurrency}: target holds {count} documents, expected {total_docs}"
            )
            .into());
        }
        println!(
            "{}",
            serde_json::json!({
                "concurrency": concurrency,
                "docs": total_docs,
                "bodies": bodies.len(),
                "seconds": seconds,
                "docs_per_second": total_docs as f64 / seconds,
                "cpu_seconds": cpu,
                "node_cpu_seconds": node_cpu,
                "machine_cpu_seconds": machine_cpu,
            })
        );
        eprintln!(
            "write_ceiling: concurrency {concurrency}: {:.0} docs/s ({seconds:.1} s, own CPU {cpu:.1} s)",
            total_docs as f64 / seconds
        );
    }
    Ok(())
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("write_ceiling: {e}");
        std::process::exit(1);
    }
}
