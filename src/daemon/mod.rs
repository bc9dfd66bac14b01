//! The long-running service: the API on its listener, copy jobs for every
//! index that is `copying`, systemd notifications, and one shutdown path
//! that waits for all of it; reloads apply what may change while running.

mod notify;
mod reload;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::{self, AppState};
use crate::config::Config;
use crate::copy::{owner_id, Jobs};
use crate::es::{ConnectOptions, EsClient};
use crate::metrics::Metrics;
use crate::migration::{Migrator, Phase};

/// How often the daemon looks for copies to run (resumed after a restart,
/// started by the CLI, or whose owner died).
const SCAN_INTERVAL: Duration = Duration::from_secs(5);
/// How long shutdown waits for copy jobs to save checkpoints and stop.
const STOP_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Cluster(#[from] crate::es::EsError),
    #[error("HTTP server: {0}")]
    Serve(#[from] std::io::Error),
}

/// Serves until `shutdown` is cancelled, then stops copies (checkpoints
/// saved) and returns. Every configuration sent on `reloads` (SIGHUP) is
/// applied as far as it may change while running (see `reload`).
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: CancellationToken,
    reloads: watch::Receiver<Arc<Config>>,
) -> Result<(), DaemonError> {
    let es = EsClient::connect(&ConnectOptions::from_config(&config.cluster)?)?;
    let token = config.api_token()?.map(Arc::new);
    let migrator = Migrator::new(es, config.clone());
    let jobs = Jobs::new(migrator.clone(), owner_id(), shutdown.child_token());
    let (cluster_ready, ready_rx) = tokio::sync::watch::channel(false);
    let scanner = tokio::spawn(scan(
        migrator.clone(),
        jobs.clone(),
        cluster_ready,
        shutdown.clone(),
    ));
    let notifier = tokio::spawn(notify::supervise(
        migrator.clone(),
        jobs.clone(),
        ready_rx,
        shutdown.clone(),
    ));
    let reloader = tokio::spawn(reload::follow(
        migrator.clone(),
        jobs.clone(),
        reloads,
        shutdown.clone(),
    ));
    let metrics = Arc::new(Metrics::new(&migrator, &jobs));
    let app = api::router(AppState {
        migrator,
        jobs: jobs.clone(),
        token,
        metrics,
    });
    info!(listen = %listener.local_addr()?, "API listening");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    notify::stopping();
    shutdown.cancel();
    let _ = scanner.await;
    let _ = notifier.await;
    let _ = reloader.await;
    if tokio::time::timeout(STOP_DEADLINE, jobs.wait())
        .await
        .is_err()
    {
        warn!("copy jobs did not stop within {STOP_DEADLINE:?}; their last checkpoints stand");
    }
    info!("stopped");
    Ok(served?)
}

/// At start: a configured index with aliases but no state document (the
/// state index was deleted by hand) gets its state rebuilt, or a log line
/// saying why it cannot.
async fn rebuild_lost_states(migrator: &Migrator) {
    for index in &migrator.config().indexes {
        let name = &index.name;
        match migrator.store().get(name).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => {
                warn!(index = %name, error = %e, "cannot read the state");
                continue;
            }
        }
        match migrator.missing_state(name).await {
            Ok(Some(_)) => match migrator.repair(name).await {
                Ok((state, _)) => {
                    warn!(index = %name, phase = state.phase.name(), "the state document was missing; rebuilt from the aliases")
                }
                Err(e) => {
                    error!(index = %name, error = %e, "the state document is missing and cannot be rebuilt")
                }
            },
            Ok(None) => {}
            Err(e) => warn!(index = %name, error = %e, "cannot read the aliases"),
        }
    }
}

/// Starts a job for every `copying` index whose lease is free or ours.
async fn scan(
    migrator: Migrator,
    jobs: Jobs,
    cluster_ready: tokio::sync::watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let mut ready = false;
    loop {
        if !ready {
            if let Ok(Some(why)) = migrator.es().info().await.map(|i| i.unsupported()) {
                // Nothing is changed on an engine reindexd cannot drive.
                error!("{why}");
                tokio::select! {
                    _ = tokio::time::sleep(SCAN_INTERVAL) => {}
                    _ = shutdown.cancelled() => return,
                }
                continue;
            }
            match migrator.store().ensure_index().await {
                Ok(()) => {
                    info!("cluster answered; state index ready");
                    ready = true;
                    cluster_ready.send_replace(true);
                    rebuild_lost_states(&migrator).await;
                }
                Err(e) if e.is_auth() => {
                    error!(error = %e, "the cluster refused the credentials; fix the configuration")
                }
                Err(e) => warn!(error = %e, "cluster not available yet"),
            }
        }
        if ready {
            match migrator.store().list().await {
                Ok(states) => {
                    for state in states {
                        let Phase::Copying { copy, .. } = &state.phase else {
                            continue;
                        };
                        if migrator.config().index(&state.name).is_none() {
                            continue;
                        }
                        let free = copy
                            .lease
                            .as_ref()
                            .is_none_or(|l| l.owner == jobs.owner() || l.expires_at <= Utc::now());
                        if free {
                            jobs.start(&state.name);
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot read the state index"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SCAN_INTERVAL) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
