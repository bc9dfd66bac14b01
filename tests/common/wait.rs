//! Waiting for a condition instead of sleeping: poll until it holds, fail
//! naming it (and what was last seen) when the deadline passes first.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `condition` until it holds; fails naming `what` when `deadline`
/// passes first. For outcomes that become true a little later (a change
/// the node applies after the client gave up), never for wall-clock windows.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while !condition().await {
        assert!(Instant::now() < end, "{what}: not true within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `look` until it returns `Ok(value)`; fails naming `what` and the
/// last observation (`look`'s `Err`) when `deadline` passes first.
pub async fn eventually_value<T, F, Fut>(what: &str, deadline: Duration, mut look: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let end = Instant::now() + deadline;
    loop {
        match look().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < end,
                "{what}: not within {deadline:?}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to `deadline`) until `name` leaves `copying`; returns the state.
pub async fn copy_ended(
    m: &reindexd::migration::Migrator,
    name: &str,
    deadline: Duration,
) -> reindexd::migration::IndexState {
    eventually_value(
        &format!("the copy of {name} ended"),
        deadline,
        || async move {
            let state = m.load(name).await.map_err(|e| e.to_string())?.state;
            match state.phase.name() {
                "copying" => Err(format!("{:?}", state.phase.copy())),
                _ => Ok(state),
            }
        },
    )
    .await
}

/// Documents a running copy has written so far, from its live counters.
pub fn copied_so_far(handle: &reindexd::copy::CopyHandle) -> u64 {
    handle.stats().map_or(0, |s| {
        let mut c = reindexd::migration::CopyProgress::new(
            reindexd::migration::StoredEngine::Client,
            0,
            chrono::Utc::now(),
        );
        s.apply(&mut c);
        c.done()
    })
}

/// Waits (up to 60 s) until a running copy has written `docs` documents.
pub async fn wait_for_progress(handle: &reindexd::copy::CopyHandle, docs: u64) {
    eventually_value(
        &format!("{docs} documents copied"),
        Duration::from_secs(60),
        || async {
            match copied_so_far(handle) {
                done if done >= docs => Ok(()),
                done => Err(format!("{done} documents")),
            }
        },
    )
    .await
}
