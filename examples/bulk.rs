//! `bulk`: bulk NDJSON into a cluster through reindexd's own batcher and
//! bulk write path ([`Batcher`], [`BulkWriter`]): the bodies a copy sends,
//! sent the way a copy sends them.
//!
//! ```text
//! bulk write-ceiling --url URL --ndjson FILE --create-body FILE --index NAME \
//!   [--concurrency 1,2,4,8] [--batch-bytes 8388608] [--node-pid PID] [--plain-actions]
//! bulk load --url URL --index NAME [--ndjson FILE|-] [--concurrency 2] \
//!   [--batch-bytes BYTES] [--batch-docs N] [--create-body FILE] [--refresh [--expect-count N]]
//! ```
//!
//! The input is bulk NDJSON as `scripts/gen-kb --output` writes it: an
//! `index` action line (`_id`, optional `routing`; its `_index` is ignored)
//! then the document's source line. Each document goes through
//! [`Batcher::push`], which writes the action line for `--index` and cuts
//! a body once it reaches `--batch-bytes`; each body goes through
//! [`BulkWriter::send`]: items answered 429 (or a whole 429/5xx answer) are
//! sent again after a backoff, a 409 against a version-0 write counts as
//! written once a look at the target shows it is this run's own earlier
//! write, and any other refused item ends the program with exit status 1
//! and the reason. Usage errors exit with 2.
//!
//! `write-ceiling` (measurement (e) of `scripts/bench`): how fast the node
//! takes the copy's bulk bodies when nothing has to be read first. All
//! bodies are built before the clock starts; they are byte for byte what
//! the copy sends (`version: 0`, `version_type: external`, unless
//! `--plain-actions`). For each `--concurrency`: deletes and creates the
//! target from `--create-body`, starts the clock, sends every body with
//! that many requests in flight, refreshes, stops the clock, checks
//! `_count`, deletes the target, and prints one JSON line on stdout: docs,
//! bodies, seconds, docs/s, this program's own CPU seconds in that window
//! (so a reader can check that it was not the bottleneck), the node's when
//! `--node-pid` names its process, and the whole machine's busy CPU
//! seconds (what else ran shows as the difference).
//!
//! `load` (what `scripts/gen-kb` loads through): streams the NDJSON from a
//! file or stdin into `--index` (an index or a write alias) with plain
//! `index` actions — the engine's own versioning, as an application
//! writes — or with the copy's actions (`--external-versions`).
//!
//! An example rather than a binary of the package: it is a development
//! tool that must not ship in the Debian package, it reaches reindexd only
//! through the library's public items like any other user of them, and
//! `cargo clippy --all-targets` and `cargo test` build it, so it cannot
//! drift from the copy path it measures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use reindexd::copy::{Batch, Batcher, BulkWriter, RetryPolicy};
use reindexd::es::{Auth, ConnectOptions, EsClient, Hit};
use reindexd::secret::Secret;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(
    name = "bulk",
    about = "Bulk NDJSON into a cluster through reindexd's batcher and bulk writer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replays the copy's bulk bodies from memory at each concurrency; one JSON line per run.
    WriteCeiling(CeilingArgs),
    /// Loads bulk NDJSON (a file or stdin) into an index or alias.
    Load(LoadArgs),
}

#[derive(Args)]
struct CeilingArgs {
    /// Cluster base URL.
    #[arg(long)]
    url: String,
    /// Bulk NDJSON of the dataset (`scripts/gen-kb --output`).
    #[arg(long)]
    ndjson: PathBuf,
    /// JSON body the target is created from before each run.
    #[arg(long)]
    create_body: PathBuf,
    /// Target index, deleted after each run.
    #[arg(long)]
    index: String,
    /// Requests in flight, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8", value_parser = positive)]
    concurrency: Vec<usize>,
    /// A body is closed once it reaches this many bytes.
    #[arg(long, default_value_t = 8 << 20)]
    batch_bytes: u64,
    /// The node's process, to report its CPU seconds per run too.
    #[arg(long)]
    node_pid: Option<u32>,
    /// Leave out `version`/`version_type` (to measure what external versioning costs).
    #[arg(long)]
    plain_actions: bool,
}

#[derive(Args)]
struct LoadArgs {
    /// Cluster base URL; may carry user:password@.
    #[arg(long, default_value = "http://127.0.0.1:9200")]
    url: String,
    /// Index or alias written into (the input's `_index` is ignored).
    #[arg(long)]
    index: String,
    /// Bulk NDJSON file, `-` for stdin.
    #[arg(long, default_value = "-")]
    ndjson: PathBuf,
    /// Bulk requests in flight.
    #[arg(long, default_value_t = 2, value_parser = positive)]
    concurrency: usize,
    /// A body is closed once it reaches this many bytes.
    #[arg(long, default_value_t = 5 << 20)]
    batch_bytes: u64,
    /// Also close a body at this many documents (0: no cap).
    #[arg(long, default_value_t = 0)]
    batch_docs: usize,
    /// Write the copy's actions (`version: 0`, `version_type: external`)
    /// instead of plain `index` actions.
    #[arg(long)]
    external_versions: bool,
    /// Create the index with this JSON body first (fails if it exists).
    #[arg(long)]
    create_body: Option<PathBuf>,
    /// After loading, refresh and check `_count`.
    #[arg(long)]
    refresh: bool,
    /// Documents `--refresh` expects (default: the documents loaded).
    #[arg(long, requires = "refresh")]
    expect_count: Option<u64>,
    /// Retries of a bulk item answered 429/5xx.
    #[arg(long, default_value_t = 10)]
    max_retries: u32,
    /// Seconds one request may take.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// PEM file of a CA that signs the cluster's certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// No summary line.
    #[arg(long)]
    quiet: bool,
}

fn positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a whole number above 0")),
    }
}

/// The cluster at `url`; credentials in it become basic authentication.
fn connect(url: &str, timeout: Duration, ca: Option<&Path>) -> Result<EsClient, Failure> {
    let mut url = url::Url::parse(url)?;
    let mut options = ConnectOptions::new(url.clone());
    if !url.username().is_empty() {
        options.auth = Auth::Basic {
            username: percent_decoded(url.username())?,
            password: Secret::new(percent_decoded(url.password().unwrap_or(""))?),
        };
        let _ = url.set_username("");
        let _ = url.set_password(None);
        options.urls = vec![url];
    }
    if let Some(ca) = ca {
        options.ca_pem = Some(std::fs::read(ca)?);
    }
    options.request_timeout = timeout;
    Ok(EsClient::connect(&options)?)
}

/// `%XX` escapes of a URL's user or password decoded.
fn percent_decoded(text: &str) -> Result<String, Failure> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next().unwrap_or(0), bytes.next().unwrap_or(0)];
            let hex = std::str::from_utf8(&hex).map_err(|_| "bad %-escape in the URL")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad %-escape in the URL")?);
        } else {
            out.push(b);
        }
    }
    Ok(String::from_utf8(out)?)
}

/// An action line as gen-kb writes it: `{"index":{"_index":..,"_id":..[,"routing":..]}}`.
#[derive(Deserialize)]
struct Action {
    index: ActionMeta,
}

#[derive(Deserialize)]
struct ActionMeta {
    #[serde(rename = "_id")]
    id: String,
    routing: Option<String>,
}

/// The document of one action line and the source line after it.
fn hit(action: &[u8], source: Vec<u8>) -> Result<Hit, String> {
    let action: Action = serde_json::from_slice(action).map_err(|e| {
        format!(
            "not an index action line ({e}): {}",
            String::from_utf8_lossy(action)
        )
    })?;
    let source =
        String::from_utf8(source).map_err(|e| format!("source of {}: {e}", action.index.id))?;
    let source =
        RawValue::from_string(source).map_err(|e| format!("source of {}: {e}", action.index.id))?;
    Ok(Hit {
        id: action.index.id,
        routing: action.index.routing,
        source: Some(source),
        sort: None,
    })
}

/// Pushes one document into `batcher` (slice 0: a [`BulkWriter`]'s).
fn push(batcher: &mut Batcher, action: &[u8], source: Vec<u8>) -> Result<Option<Batch>, String> {
    let hit = hit(action, source)?;
    batcher
        .push(0, 0, &hit)
        .map_err(|u| format!("document {} has no source", u.id))
}

fn batcher(index: &str, batch_bytes: u64, plain: bool) -> Batcher {
    let batcher = Batcher::new(index, batch_bytes);
    if plain {
        batcher.without_external_versions()
    } else {
        batcher
    }
}

// ------------------------------------------------------- write-ceiling ---

/// Every body of the dataset, built before any clock starts.
fn encode_all(args: &CeilingArgs) -> Result<Vec<Batch>, Failure> {
    let data = std::fs::read(&args.ndjson)?;
    let mut batcher = batcher(&args.index, args.batch_bytes, args.plain_actions);
    let mut batches = Vec::new();
    let mut lines = data.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    while let Some(action) = lines.next() {
        let source = lines.next().ok_or("an action line without a source line")?;
        batches.extend(push(&mut batcher, action, source.to_vec())?);
    }
    batches.extend(batcher.flush());
    Ok(batches)
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

fn ceiling_policy() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(5),
        max_retries: 50,
        request_timeout: Duration::from_secs(600),
    }
}

/// Sends every batch with `concurrency` requests in flight.
async fn replay(
    writer: Arc<BulkWriter>,
    batches: Arc<Vec<Batch>>,
    concurrency: usize,
) -> Result<(), Failure> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (writer, batches, next) = (writer.clone(), batches.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = batches.get(i) else {
                    return Ok::<(), Failure>(());
                };
                writer.send(batch.clone()).await?;
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined??;
    }
    Ok(())
}

/// One measurement at `concurrency`: its JSON line.
async fn ceiling_run(
    es: &EsClient,
    args: &CeilingArgs,
    create_body: &Value,
    batches: &Arc<Vec<Batch>>,
    concurrency: usize,
) -> Result<Value, Failure> {
    let total_docs: usize = batches.iter().map(Batch::len).sum();
    let _ = es.delete_index(&args.index).await;
    let node_pid = args.node_pid.map(|p| p.to_string());
    let node_before = node_pid.as_deref().map(cpu_seconds);
    let cpu_before = cpu_seconds("self");
    let machine_before = machine_busy_seconds();
    let started = Instant::now();
    es.create_index(&args.index, create_body).await?;
    let writer = Arc::new(BulkWriter::new(es.clone(), ceiling_policy()));
    replay(writer, batches.clone(), concurrency).await?;
    es.refresh(&args.index).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self") - cpu_before;
    let machine_cpu = machine_busy_seconds() - machine_before;
    let node_cpu = node_pid
        .as_deref()
        .map(cpu_seconds)
        .zip(node_before)
        .map(|(after, before)| after - before);
    let count = es.count(&args.index).await?;
    let _ = es.delete_index(&args.index).await;
    if count != total_docs as u64 {
        return Err(format!(
            "concurrency {concurrency}: target holds {count} documents, expected {total_docs}"
        )
        .into());
    }
    eprintln!(
        "write_ceiling: concurrency {concurrency}: {:.0} docs/s ({seconds:.1} s, own CPU {cpu:.1} s)",
        total_docs as f64 / seconds
    );
    Ok(serde_json::json!({
        "concurrency": concurrency,
        "docs": total_docs,
        "bodies": batches.len(),
        "seconds": seconds,
        "docs_per_second": total_docs as f64 / seconds,
        "cpu_seconds": cpu,
        "node_cpu_seconds": node_cpu,
        "machine_cpu_seconds": machine_cpu,
    }))
}

async fn write_ceiling(args: CeilingArgs) -> Result<(), Failure> {
    let create_body: Value = serde_json::from_slice(&std::fs::read(&args.create_body)?)?;
    let encode_started = Instant::now();
    let batches = Arc::new(encode_all(&args)?);
    let total_docs: usize = batches.iter().map(Batch::len).sum();
    let total_bytes: usize = batches.iter().map(|b| b.body.len()).sum();
    eprintln!(
        "write_ceiling: {total_docs} docs in {} bodies, {:.1} MiB, encoded in {:.1} s",
        batches.len(),
        total_bytes as f64 / (1 << 20) as f64,
        encode_started.elapsed().as_secs_f64()
    );
    let es = connect(&args.url, Duration::from_secs(600), None)?;
    for &concurrency in &args.concurrency {
        let line = ceiling_run(&es, &args, &create_body, &batches, concurrency).await?;
        println!("{line}");
    }
    Ok(())
}

// ---------------------------------------------------------------- load ---

fn read_line(input: &mut impl std::io::BufRead, buf: &mut Vec<u8>) -> Result<usize, String> {
    input
        .read_until(b'\n', buf)
        .map_err(|e| format!("reading the NDJSON: {e}"))
}

/// Reads the NDJSON and hands out full batches; returns the documents
/// and NDJSON bytes read. Runs on a blocking thread.
fn read_batches(args: &LoadArgs, tx: mpsc::Sender<Batch>) -> Result<(u64, u64), String> {
    let input: Box<dyn std::io::Read> = if args.ndjson == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&args.ndjson)
                .map_err(|e| format!("{}: {e}", args.ndjson.display()))?,
        )
    };
    let mut input = std::io::BufReader::with_capacity(1 << 20, input);
    let mut batcher = batcher(&args.index, args.batch_bytes, !args.external_versions);
    if args.batch_docs > 0 {
        batcher.set_max_docs(args.batch_docs);
    }
    let (mut docs, mut bytes) = (0u64, 0u64);
    let mut action = Vec::new();
    loop {
        action.clear();
        let n = read_line(&mut input, &mut action)?;
        if n == 0 {
            break;
        }
        if action.trim_ascii().is_empty() {
            continue;
        }
        let mut source = Vec::new();
        bytes += (n + read_line(&mut input, &mut source)?) as u64;
        source.truncate(source.trim_ascii_end().len());
        if source.is_empty() {
            return Err(format!(
                "document {}: an action line without a source line",
                docs + 1
            ));
        }
        docs += 1;
        if let Some(batch) = push(&mut batcher, action.trim_ascii_end(), source)? {
            // A closed channel: the sending side stopped on an error it reports.
            if tx.blocking_send(batch).is_err() {
                return Ok((docs, bytes));
            }
        }
    }
    if let Some(batch) = batcher.flush() {
        let _ = tx.blocking_send(batch);
    }
    Ok((docs, bytes))
}

/// Sends batches as they come, at most `concurrency` at a time.
async fn send_all(
    writer: Arc<BulkWriter>,
    mut rx: mpsc::Receiver<Batch>,
    concurrency: usize,
) -> Result<u64, Failure> {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut senders = JoinSet::new();
    let mut requests = 0u64;
    while let Some(batch) = rx.recv().await {
        let permit = permits.clone().acquire_owned().await?;
        while let Some(joined) = senders.try_join_next() {
            joined??;
        }
        let writer = writer.clone();
        requests += 1;
        senders.spawn(async move {
            let sent = writer.send(batch).await;
            drop(permit);
            sent.map_err(Failure::from)
        });
    }
    while let Some(joined) = senders.join_next().await {
        joined??;
    }
    Ok(requests)
}

async fn load(args: LoadArgs) -> Result<(), Failure> {
    let timeout = Duration::from_secs_f64(args.timeout.max(1.0));
    let es = connect(&args.url, timeout, args.ca.as_deref())?;
    if let Some(path) = &args.create_body {
        let body: Value = serde_json::from_slice(&std::fs::read(path)?)
            .map_err(|e| format!("--create-body {}: {e}", path.display()))?;
        es.create_index(&args.index, &body).await?;
    }
    let policy = RetryPolicy {
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(10),
        max_retries: args.max_retries,
        request_timeout: timeout,
    };
    let writer = Arc::new(BulkWriter::new(es.clone(), policy));
    let started = Instant::now();
    let (tx, rx) = mpsc::channel(args.concurrency);
    let args = Arc::new(args);
    let reading = tokio::task::spawn_blocking({
        let args = args.clone();
        move || read_batches(&args, tx)
    });
    let sent = send_all(writer.clone(), rx, args.concurrency).await;
    let (docs, bytes) = reading.await??;
    let requests = sent?;
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    if writer.written() != docs {
        return Err(format!("{} of {docs} documents written", writer.written()).into());
    }
    let mut verified = String::new();
    if args.refresh {
        es.refresh(&args.index).await?;
        let (got, want) = (
            es.count(&args.index).await?,
            args.expect_count.unwrap_or(docs),
        );
        if got != want {
            return Err(format!(
                "after refresh {} holds {got} documents, expected {want}",
                args.index
            )
            .into());
        }
        verified = format!(", refresh+count={got} ok");
    }
    if !args.quiet {
        eprintln!(
            "bulk load: {docs} docs into {}: {:.1} MB NDJSON in {seconds:.2} s = {:.0} docs/s \
             [concurrency={} bulk_requests={requests} rejections={}{verified}]",
            args.index,
            bytes as f64 / 1e6,
            docs as f64 / seconds,
            args.concurrency,
            writer.rejections(),
        );
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (name, result) = match cli.command {
        Command::WriteCeiling(args) => ("write_ceiling", runtime.block_on(write_ceiling(args))),
        Command::Load(args) => ("bulk load", runtime.block_on(load(args))),
    };
    if let Err(e) = result {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}
