//! What the CLI prints for people: status lines with a progress bar, and
//! the live progress of copies it runs itself.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{CliResult, Status};
use crate::config::Priority;
use crate::copy::CopyHandle;
use crate::migration::{
    ClusterLook, IndexState, IndexView, Migrator, PhaseKind, RollbackReport, StoredEngine,
    WritesPolicy,
};

/// Prints the live progress of copies run by this process every 2 s.
pub(super) async fn watch_progress(
    migrator: Migrator,
    handles: Vec<(String, Arc<CopyHandle>)>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.cancelled() => return,
        }
        for (name, handle) in &handles {
            let live = |state: &IndexState| handle.live(state);
            if let Ok(view) = migrator
                .view_with(name, live, ClusterLook::BestEffort)
                .await
            {
                say!(stderr, "{}", describe(&view));
            }
        }
    }
}

pub(super) async fn status(migrator: &Migrator, s: Status) -> CliResult {
    loop {
        let views = match &s.name {
            Some(name) => vec![migrator.view(name).await?],
            None => migrator.views().await?,
        };
        if s.json {
            out!("{}", serde_json::to_string_pretty(&views)?);
        } else if s.watch && std::io::stdout().is_terminal() {
            write!(std::io::stdout().lock(), "\x1b[2J\x1b[H")?;
            for v in &views {
                out!("{}", describe(v));
            }
            std::io::stdout().flush()?;
        } else {
            for v in &views {
                out!("{}", describe(v));
            }
        }
        if !s.watch
            || views
                .iter()
                .all(|v| !matches!(v.phase, PhaseKind::Copying | PhaseKind::Filling))
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// One status line (plus failures) for people.
pub fn describe(v: &IndexView) -> String {
    let mut line = format!(
        "{}: {} (read {}, write {})",
        v.name,
        v.phase,
        v.read_index.as_deref().unwrap_or("-"),
        v.write_index.as_deref().unwrap_or("-")
    );
    if let Some(p) = &v.progress {
        let width = 30;
        let filled = (p.ratio * width as f64).round() as usize;
        let bar = format!(
            "\n  [{}{}] {:5.1}%  ",
            "#".repeat(filled),
            "-".repeat(width - filled.min(width)),
            p.ratio * 100.0
        );
        line.push_str(&bar);
        line.push_str(&if p.engine == StoredEngine::External {
            format!(
                "refilled by the application: {} in the new generation, {} in the old",
                p.copied, p.total
            )
        } else {
            format!(
                "{} of {}  copied {}  superseded {}  resent {}  failed {}  {:.0} docs/s",
                p.done(),
                p.total,
                p.copied,
                p.superseded,
                p.resent,
                p.failed,
                p.docs_per_second
            )
        });
        if let (None, Some(eta)) = (p.finished_at, p.eta_seconds) {
            line.push_str(&format!(
                "  ETA {}",
                humantime::format_duration(Duration::from_secs(eta))
            ));
        }
        if p.paused {
            line.push_str("  PAUSED");
        }
        if p.priority == Priority::Background {
            line.push_str("  background priority");
        }
        if let (None, Some(error)) = (p.finished_at, &p.last_error) {
            line.push_str(&format!("\n  retrying after: {error}"));
        }
        let unaccepted = p
            .old_generation_writes
            .saturating_sub(p.accepted_old_generation_writes);
        if unaccepted > 0 {
            line.push_str(&format!(
                "\n  WRITES TO THE OLD GENERATION: {unaccepted} operations by its name since the copy's snapshot block the flip"
            ));
        }
        if let Some(r) = p.requests_per_second {
            line.push_str(&format!("  throttled to {r} docs/s"));
        }
        if let Some(pipeline) = &p.pipeline {
            line.push_str(&format!(
                "\n  every document runs ingest pipeline {pipeline}"
            ));
        }
    }
    if let Some(reason) = &v.reason {
        line.push_str(&format!("\n  reason: {reason}"));
    }
    if let Some(drift) = &v.drift {
        line.push_str(&format!("\n  DRIFT: {drift}"));
    }
    for f in v.failures.iter().take(5) {
        line.push_str(&format!("\n  failed document {}: {}", f.id, f.reason));
    }
    if !v.abandoned.is_empty() {
        line.push_str(&format!(
            "\n  abandoned (cleanup deletes): {}",
            v.abandoned.join(", ")
        ));
    }
    line
}

/// One line on what a rollback did with the application's writes.
pub fn rollback_report(r: &RollbackReport) -> String {
    let deleted = r
        .counts
        .deleted
        .map_or("an unknown number of".to_owned(), |d| d.to_string());
    let mut line = match r.writes {
        WritesPolicy::Replay => format!(
            "  replayed {} writes and {deleted} deletes into the old generation; writes were blocked for {} ms at the switch",
            r.counts.written,
            r.write_pause_ms.unwrap_or(0)
        ),
        WritesPolicy::Discard => format!(
            "  discarded {} writes and {deleted} deletes made since stage 1 (they stay in the abandoned generation)",
            r.counts.written
        ),
        WritesPolicy::Refuse => "  no application writes or deletes since stage 1".to_owned(),
    };
    if r.late_operations > 0 {
        line.push_str(&format!(
            "\n  warning: {} application operations reached the abandoned generation during the switch",
            r.late_operations
        ));
    }
    line
}
