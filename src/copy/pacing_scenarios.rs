//! Pacing, pause and permits against a fake bulk endpoint, on tokio's
//! paused clock. Each row of the table says what the endpoint answers
//! (ok, 429 or 503, after how long) and what the operator does when
//! (pause, resume, throttle, a new `max_concurrency`); the run records
//! when each batch went, how many requests were in flight and the
//! concurrency limit after every change, and the row states them exactly.
//! Virtual time only: a row takes the same time on any machine.
//!
//! The dispatcher here is the pipeline's, step for step: [`admit`], then
//! a permit, then a writer task. The writer follows `send_batch`'s permit
//! protocol: the permit is held for the whole request, retries included;
//! every answer is fed back (backpressure for a 429 or 5xx); the permit
//! goes back through [`Concurrency::release`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{admit, max_docs_per_batch, Control, Pacer};
use crate::copy::adaptive::Answer;
use crate::copy::permits::Concurrency;

/// What the fake endpoint answers to one bulk request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reply {
    /// Every item indexed.
    Ok,
    /// 429: the node's write queue is full.
    TooMany,
    /// 503: the node cannot take the request now.
    Unavailable,
}
use Reply::*;

/// An operator's action at some point of the run.
#[derive(Debug, Clone, Copy)]
enum Event {
    Pause,
    Resume,
    Throttle(Option<f64>),
    MaxConcurrency(usize),
}
use Event::*;

/// The writer's delay before resending after backpressure.
const BACKOFF: Duration = Duration::from_millis(50);

/// Bodies too small to tell the node's indexing speed: the limit follows
/// plain additive increase and multiplicative decrease (latency costs and
/// spikes are `adaptive`'s own tests).
const BODY: usize = 24 << 10;

struct Case {
    name: &'static str,
    batches: usize,
    /// Documents per batch when unthrottled; a throttle caps it as the
    /// pipeline's batcher does ([`max_docs_per_batch`]).
    docs: usize,
    rate: Option<f64>,
    initial: usize,
    max: usize,
    /// The endpoint's answers in the order requests arrive: (reply,
    /// latency in ms, how many); the script starts over when it ends.
    script: Vec<(Reply, u64, usize)>,
    /// (virtual ms, action)
    events: Vec<(u64, Event)>,
    expect: Expect,
}

/// What a run must show; `None` or empty: not checked.
#[derive(Default)]
struct Expect {
    /// Virtual ms at which the batches went, all of them.
    sent_ms: Option<Vec<u64>>,
    /// When the last answer came back.
    end_ms: Option<u64>,
    /// The concurrency limit: initial, then after every change.
    limits: Option<Vec<usize>>,
    /// Most requests in flight at once.
    max_in_flight: Option<usize>,
    /// (from ms, most requests in flight among those sent from then on)
    in_flight_from: Option<(u64, usize)>,
    /// Requests the endpoint answered, resends included.
    calls: Option<usize>,
}

#[derive(Debug, Default)]
struct Trace {
    sent_ms: Vec<u64>,
    end_ms: u64,
    limits: Vec<usize>,
    /// (ms a request arrived, requests in flight with it)
    arrivals: Vec<(u64, usize)>,
    calls: usize,
}

struct Endpoint {
    answers: Vec<(Reply, u64)>,
    t0: Instant,
    in_flight: usize,
    trace: Trace,
}

type Shared = Arc<Mutex<Endpoint>>;

fn ms_since(t0: Instant) -> u64 {
    (Instant::now() - t0).as_millis() as u64
}

/// One bulk request to the fake endpoint.
async fn bulk(endpoint: &Shared) -> Reply {
    let (reply, latency) = {
        let mut e = endpoint.lock().unwrap();
        let (reply, latency) = e.answers[e.trace.arrivals.len() % e.answers.len()];
        e.in_flight += 1;
        let arrival = (ms_since(e.t0), e.in_flight);
        e.trace.arrivals.push(arrival);
        (reply, latency)
    };
    tokio::time::sleep(Duration::from_millis(latency)).await;
    let mut e = endpoint.lock().unwrap();
    e.in_flight -= 1;
    e.trace.calls += 1;
    reply
}

fn record_limit(endpoint: &Shared, gauge: &Gauge) {
    let limit = gauge.get() as usize;
    let limits = &mut endpoint.lock().unwrap().trace.limits;
    if limits.last() != Some(&limit) {
        limits.push(limit);
    }
}

/// `send_batch`'s permit protocol against the fake endpoint.
async fn write(
    endpoint: Shared,
    concurrency: Arc<Concurrency>,
    gauge: Gauge,
    permit: OwnedSemaphorePermit,
) {
    loop {
        let started = Instant::now();
        let reply = bulk(&endpoint).await;
        let answer = (reply == Ok).then(|| Answer {
            latency: started.elapsed(),
            bytes: BODY,
            indexed: BODY,
        });
        concurrency.feedback(answer);
        record_limit(&endpoint, &gauge);
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(BACKOFF).await;
    }
    concurrency.release(permit);
}

/// Plays the operator's events of a case at their times.
async fn operate(
    events: Vec<(u64, Event)>,
    t0: Instant,
    controls: Arc<watch::Sender<Control>>,
    concurrency: Arc<Concurrency>,
    endpoint: Shared,
    gauge: Gauge,
) {
    for (ms, event) in events {
        tokio::time::sleep_until(t0 + Duration::from_millis(ms)).await;
        match event {
            Pause => controls.send_modify(|c| c.paused = true),
            Resume => controls.send_modify(|c| c.paused = false),
            Throttle(rate) => controls.send_modify(|c| c.requests_per_second = rate),
            MaxConcurrency(max) => {
                concurrency.set_max(max);
                record_limit(&endpoint, &gauge);
            }
        }
    }
}

async fn run(case: &Case) -> Trace {
    let t0 = Instant::now();
    let endpoint: Shared = Arc::new(Mutex::new(Endpoint {
        answers: case
            .script
            .iter()
            .flat_map(|&(reply, ms, n)| std::iter::repeat_n((reply, ms), n))
            .collect(),
        t0,
        in_flight: 0,
        trace: Trace::default(),
    }));
    let controls = Arc::new(watch::Sender::new(Control {
        paused: false,
        requests_per_second: case.rate,
        background: false,
    }));
    let mut control = controls.subscribe();
    let gauge = Gauge::default();
    let concurrency = Arc::new(Concurrency::new(case.initial, case.max, gauge.clone()));
    record_limit(&endpoint, &gauge);

    let operator = tokio::spawn(operate(
        case.events.clone(),
        t0,
        controls.clone(),
        concurrency.clone(),
        endpoint.clone(),
        gauge.clone(),
    ));

    let mut pacer = Pacer::new();
    let mut writers = JoinSet::new();
    for _ in 0..case.batches {
        let docs = case
            .docs
            .min(max_docs_per_batch(control.borrow().requests_per_second));
        assert!(
            admit(&mut pacer, docs, &mut control, || None).await,
            "{}",
            case.name
        );
        let permit = concurrency.acquire().await;
        endpoint.lock().unwrap().trace.sent_ms.push(ms_since(t0));
        writers.spawn(write(
            endpoint.clone(),
            concurrency.clone(),
            gauge.clone(),
            permit,
        ));
    }
    while let Some(joined) = writers.join_next().await {
        joined.unwrap();
    }
    operator.abort();
    let mut e = endpoint.lock().unwrap();
    e.trace.end_ms = ms_since(t0);
    std::mem::take(&mut e.trace)
}

/// `n` batch times `every` ms apart from `from`.
fn spaced(from: u64, every: u64, n: u64) -> Vec<u64> {
    (0..n).map(|i| from + i * every).collect()
}

fn cases() -> Vec<Case> {
    [
        throttle_cases(),
        throttle_change_cases(),
        pause_cases(),
        backpressure_cases(),
        max_concurrency_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Pacing under a throttle.
fn throttle_cases() -> Vec<Case> {
    vec![
        Case {
            name: "a throttle spaces batches by their share of time, exactly",
            batches: 40,
            docs: 1000,
            // 25 documents a batch, 250 ms each.
            rate: Some(100.0),
            initial: 2,
            max: 8,
            script: vec![(Ok, 10, 1)],
            events: vec![],
            expect: Expect {
                sent_ms: Some(spaced(0, 250, 40)),
                end_ms: Some(9_760),
                max_in_flight: Some(1),
                calls: Some(40),
                ..Expect::default()
            },
        },
        Case {
            name: "a lower throttle applies from the next batch",
            batches: 9,
            docs: 1000,
            rate: Some(100.0),
            initial: 2,
            max: 8,
            script: vec![(Ok, 10, 1)],
            // At 20/s, the 25 documents sent at 1 s take 1.25 s, and so
            // does the 25-document batch already built; then batches of 5
            // documents, 250 ms each.
            events: vec![(1_100, Throttle(Some(20.0)))],
            expect: Expect {
                sent_ms: Some(vec![0, 250, 500, 750, 1_000, 2_250, 3_500, 3_750, 4_000]),
                ..Expect::default()
            },
        },
    ]
}

/// A throttle changed live.
fn throttle_change_cases() -> Vec<Case> {
    vec![
        Case {
            name: "a copy throttled to a crawl goes on as soon as the throttle is raised",
            batches: 5,
            docs: 1000,
            rate: Some(1e-9),
            initial: 2,
            max: 8,
            script: vec![(Ok, 10, 1)],
            // One document at 100/s is 10 ms, then 25-document batches.
            events: vec![(3_000, Throttle(Some(100.0)))],
            expect: Expect {
                sent_ms: Some(vec![0, 3_000, 3_010, 3_260, 3_510]),
                ..Expect::default()
            },
        },
        Case {
            name: "removing the throttle sends at once",
            batches: 6,
            docs: 1000,
            rate: Some(1.0),
            initial: 1,
            max: 1,
            script: vec![(Ok, 10, 1)],
            events: vec![(2_500, Throttle(None))],
            expect: Expect {
                // 1 document a second, then only the single permit paces.
                sent_ms: Some(vec![0, 1_000, 2_000, 2_500, 2_510, 2_520]),
                ..Expect::default()
            },
        },
    ]
}

/// Pause and resume.
fn pause_cases() -> Vec<Case> {
    vec![
        Case {
            name: "pause admits nothing, even a batch already due; resume goes on at once",
            batches: 12,
            docs: 1000,
            rate: Some(100.0),
            initial: 2,
            max: 8,
            script: vec![(Ok, 10, 1)],
            // Paused while the batch due at 1.25 s waits.
            events: vec![(1_100, Pause), (5_100, Resume)],
            expect: Expect {
                sent_ms: Some([spaced(0, 250, 5), spaced(5_100, 250, 7)].concat()),
                end_ms: Some(6_610),
                calls: Some(12),
                ..Expect::default()
            },
        },
        Case {
            name: "pause and resume unthrottled: the requests in flight finish, no new ones",
            batches: 6,
            docs: 1000,
            rate: None,
            initial: 2,
            max: 2,
            script: vec![(Ok, 300, 1)],
            events: vec![(100, Pause), (2_000, Resume)],
            expect: Expect {
                // Two permits: two go at once; the third was admitted
                // before the pause and takes the first permit returned.
                sent_ms: Some(vec![0, 0, 300, 2_000, 2_000, 2_300]),
                end_ms: Some(2_600),
                ..Expect::default()
            },
        },
    ]
}

/// The concurrency limit: growth, and backpressure (429, 503).
fn backpressure_cases() -> Vec<Case> {
    vec![
        Case {
            name: "sustained success grows the limit one at a time up to max_concurrency",
            batches: 80,
            docs: 1000,
            rate: None,
            initial: 2,
            max: 5,
            script: vec![(Ok, 100, 1), (Ok, 130, 1), (Ok, 170, 1)],
            events: vec![],
            expect: Expect {
                limits: Some(vec![2, 3, 4, 5]),
                max_in_flight: Some(5),
                calls: Some(80),
                ..Expect::default()
            },
        },
        Case {
            name: "a 429 storm cuts the limit once per window, down to one; success regrows it",
            batches: 80,
            docs: 1000,
            rate: None,
            initial: 8,
            max: 8,
            script: [
                vec![(TooMany, 100, 30)],
                [(Ok, 100, 1), (Ok, 130, 1), (Ok, 170, 1)].repeat(40),
            ]
            .concat(),
            events: vec![],
            expect: Expect {
                limits: Some(vec![8, 6, 4, 3, 2, 1, 2, 3, 4, 5, 6, 7, 8]),
                calls: Some(80 + 30),
                ..Expect::default()
            },
        },
        Case {
            name: "a 503 is backpressure too, and the batch is resent",
            batches: 10,
            docs: 1000,
            rate: None,
            initial: 2,
            max: 2,
            script: vec![(Unavailable, 100, 1), (Ok, 100, 200)],
            events: vec![],
            expect: Expect {
                limits: Some(vec![2, 1, 2]),
                calls: Some(11),
                ..Expect::default()
            },
        },
    ]
}

/// max_concurrency changed live.
fn max_concurrency_cases() -> Vec<Case> {
    vec![
        Case {
            name: "a lower max_concurrency takes permits back, held ones as they return",
            batches: 40,
            docs: 1000,
            rate: None,
            initial: 8,
            max: 8,
            script: vec![(Ok, 100, 1)],
            // At 150 ms eight requests are in flight.
            events: vec![(150, MaxConcurrency(2))],
            expect: Expect {
                limits: Some(vec![8, 2]),
                max_in_flight: Some(8),
                in_flight_from: Some((200, 2)),
                // 16 requests by 100 ms, then 2 every 100 ms.
                end_ms: Some(1_400),
                ..Expect::default()
            },
        },
        Case {
            name: "a higher max_concurrency is earned, not given",
            batches: 60,
            docs: 1000,
            rate: None,
            initial: 2,
            max: 2,
            script: vec![(Ok, 100, 1), (Ok, 130, 1), (Ok, 170, 1)],
            events: vec![(500, MaxConcurrency(4))],
            expect: Expect {
                limits: Some(vec![2, 3, 4]),
                max_in_flight: Some(4),
                ..Expect::default()
            },
        },
    ]
}

fn check(case: &Case, trace: &Trace) -> Vec<String> {
    let e = &case.expect;
    let mut wrong = Vec::new();
    let mut compare = |what: &str, expected: String, actual: String| {
        if expected != actual {
            wrong.push(format!("{what}: expected {expected}, got {actual}"));
        }
    };
    if let Some(sent) = &e.sent_ms {
        compare(
            "sent at ms",
            format!("{sent:?}"),
            format!("{:?}", trace.sent_ms),
        );
    }
    if let Some(end) = e.end_ms {
        compare("ended at ms", end.to_string(), trace.end_ms.to_string());
    }
    if let Some(limits) = &e.limits {
        compare(
            "limits",
            format!("{limits:?}"),
            format!("{:?}", trace.limits),
        );
    }
    let most = |from: u64| {
        trace
            .arrivals
            .iter()
            .filter(|(at, _)| *at >= from)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
    };
    if let Some(max) = e.max_in_flight {
        compare("most in flight", max.to_string(), most(0).to_string());
    }
    if let Some((from, max)) = e.in_flight_from {
        compare(
            &format!("most in flight from {from} ms"),
            max.to_string(),
            most(from).to_string(),
        );
    }
    if let Some(calls) = e.calls {
        compare("calls", calls.to_string(), trace.calls.to_string());
    }
    wrong.extend(invariants(case, trace, most(0)));
    wrong
}

/// What holds whatever the row: never more requests in flight (`most`)
/// than the bound allows, and every batch sent.
fn invariants(case: &Case, trace: &Trace, most: usize) -> Vec<String> {
    let mut wrong = Vec::new();
    let bound = case
        .events
        .iter()
        .filter_map(|(_, event)| match event {
            MaxConcurrency(max) => Some(*max),
            _ => None,
        })
        .fold(case.max.max(case.initial), usize::max);
    if most > bound {
        wrong.push(format!("{most} in flight, bound {bound}"));
    }
    if trace.sent_ms.len() != case.batches {
        wrong.push(format!(
            "{} of {} batches sent",
            trace.sent_ms.len(),
            case.batches
        ));
    }
    wrong
}

#[tokio::test(start_paused = true)]
async fn scenarios() {
    let mut failures = Vec::new();
    for case in cases() {
        let trace = run(&case).await;
        let wrong = check(&case, &trace);
        if !wrong.is_empty() {
            failures.push(format!(
                "{}:\n  {}\n  trace: {trace:?}",
                case.name,
                wrong.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
