//! `reindexd serve`: bind the API, run the daemon, and turn signals into
//! actions — SIGTERM/SIGINT stop it (checkpoints saved), SIGHUP reloads
//! what may change while running (log level, copy throttle and concurrency).

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::CliResult;
use crate::config::{Config, Overrides};
use crate::logging::LogLevel;

pub(super) async fn serve(
    config: Arc<Config>,
    path: PathBuf,
    overrides: Overrides,
    log: LogLevel,
) -> CliResult {
    let listen = config.api.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen} (api.listen): {e}"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let (reload, reloads) = tokio::sync::watch::channel(config.clone());
    tokio::spawn(reload_on_hangup(path, overrides, log, reload));
    crate::daemon::run(config, listener, shutdown, reloads).await?;
    Ok(())
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
pub(super) async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stop signal received; saving checkpoints");
    shutdown.cancel();
}

/// On SIGHUP, reads the configuration file again, sets the log level and
/// hands the rest to the daemon (copy throttle and concurrency bounds). A
/// bad file is reported and ignored: the running configuration stays.
async fn reload_on_hangup(
    path: PathBuf,
    overrides: Overrides,
    log: LogLevel,
    reload: tokio::sync::watch::Sender<Arc<Config>>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangup.recv().await.is_some() {
        match Config::load(&path, &overrides) {
            Ok(config) => {
                match log.set(&config.log_level) {
                    Ok(()) => tracing::info!(level = %config.log_level, "configuration reloaded"),
                    Err(e) => tracing::warn!(error = %e, "reload: log level not applied"),
                }
                reload.send_replace(Arc::new(config));
            }
            Err(e) => {
                tracing::warn!(error = %e.to_string().replace('\n', "; "), "reload: configuration refused; keeping the running one")
            }
        }
    }
}
