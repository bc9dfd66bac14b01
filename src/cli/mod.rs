//! The command line: clap definitions and one `match` that runs each
//! command. Commands talk to the cluster directly (state lives there), so
//! they work while the daemon is down or on another host.

use std::error::Error;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::bounds::check_rate;
use crate::config::{Config, CopyEngine, Overrides, Priority, DEFAULT_PATH};
use crate::logging::LogLevel;

/// `println!` that returns a write error (a closed pipe) to the caller
/// instead of panicking; `main` ends quietly on a broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

/// A line about work that goes on whether anyone reads it (a foreground
/// copy): a closed stdout or stderr must not stop the copy before its
/// checkpoint and lease release.
macro_rules! say {
    (stderr, $($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod output;
mod serve;

use crate::copy::{owner_id, CopyError, Jobs};
use crate::es::{ConnectOptions, EsClient};
use crate::migration::{Action, IndexView, Migrator, PhaseKind, Stage1Options, WritesPolicy};
use output::{describe, rollback_report, status, watch_progress};
use serve::{serve, stop_on_signal};

pub type CliResult = Result<(), Box<dyn Error + Send + Sync>>;

#[derive(Debug, Parser)]
#[command(
    name = "reindexd",
    version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("REINDEXD_GIT_REVISION"), ")"),
    about = "Zero-downtime mapping changes for Elasticsearch and OpenSearch"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "REINDEXD_CONFIG", default_value = DEFAULT_PATH)]
    pub config: PathBuf,
    /// Cluster URL (overrides elasticsearch.url).
    #[arg(long, global = true)]
    pub es_url: Option<String>,
    /// Log format: text or json (overrides log.format).
    #[arg(long, global = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// Log level or filter, e.g. info or reindexd=debug (overrides log.level).
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: HTTP API, metrics, and every copy in progress.
    Serve(Serve),
    /// Create the first generation and both aliases of logical indexes.
    Init(Names),
    /// Show which live generations differ from their mapping file.
    Plan(Plan),
    /// Stage 1: new generation, write alias moved, copy started.
    Reindex(Reindex),
    /// Show phase, aliases and copy progress.
    Status(Status),
    /// Pause a running copy.
    Pause(One),
    /// Resume a paused copy.
    Resume(One),
    /// Limit a running copy to RATE documents per second ("off" for none).
    Throttle(Throttle),
    /// Set a running copy's priority: normal, or background (it backs off
    /// while live searches slow down).
    Priority(PriorityArgs),
    /// Accept the recorded document failures of a copy, allowing `ready`.
    Accept(One),
    /// The application's refill (engine external) is done: count and verify.
    Filled(One),
    /// Stage 2: move the read alias to the new generation.
    Flip(One),
    /// Put read and write aliases back on the old generation.
    Rollback(Rollback),
    /// Delete generations no longer needed (after retention).
    Cleanup(One),
    /// Rebuild a lost state from the aliases, or put drifted aliases where
    /// the state says.
    Repair(One),
    /// Validate the configuration and mapping files; print the effective config.
    CheckConfig(CheckConfig),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(Completions),
    /// Print the man page (roff).
    Man,
}

#[derive(Debug, Args)]
pub struct Completions {
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct Serve {
    /// Listen address (overrides api.listen).
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct Names {
    /// Logical index names.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct One {
    /// Logical index name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct Rollback {
    /// Logical index name.
    pub name: String,
    /// Copy the application's writes and deletes since stage 1 into the
    /// old generation first (brief write block at the switch).
    #[arg(long, conflicts_with = "discard_writes")]
    pub replay: bool,
    /// Roll back at once, dropping the application's writes since stage 1
    /// (they stay in the abandoned generation).
    #[arg(long)]
    pub discard_writes: bool,
}

#[derive(Debug, Args)]
pub struct Plan {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Reindex {
    /// Logical index names; several start together (a megapack).
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Only do stage 1; a running daemon (`serve`) does the copy.
    #[arg(long)]
    pub detach: bool,
    /// Start throttled at this many documents per second.
    #[arg(long)]
    pub requests_per_second: Option<f64>,
    /// Fill with this engine instead of the configured one: client,
    /// server, or external (the application refills; end with `filled`).
    #[arg(long)]
    pub engine: Option<CopyEngine>,
    /// Run this ingest pipeline on every copied document instead of the
    /// configured one.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// normal, or background: the copy backs off while live searches
    /// slow down (instead of copy.priority).
    #[arg(long)]
    pub priority: Option<Priority>,
}

#[derive(Debug, Args)]
pub struct Status {
    /// One logical index; all when omitted.
    pub name: Option<String>,
    /// Keep showing progress until no copy runs.
    #[arg(long)]
    pub watch: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Throttle {
    pub name: String,
    /// Documents per second, or "off".
    pub rate: String,
}

#[derive(Debug, Args)]
pub struct PriorityArgs {
    pub name: String,
    /// normal or background.
    pub priority: Priority,
}

#[derive(Debug, Args)]
pub struct CheckConfig {}

impl Cli {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            es_url: self.es_url.clone(),
            listen: match &self.command {
                Command::Serve(s) => s.listen.clone(),
                _ => None,
            },
            log_level: self.log_level.clone(),
            log_format: self.log_format.clone(),
        }
    }
}

/// Runs the commands that need no configuration (completions, man page);
/// `None` for every other command.
pub fn run_without_config(cli: &Cli) -> Option<CliResult> {
    let mut command = <Cli as clap::CommandFactory>::command();
    match &cli.command {
        Command::Completions(c) => {
            let mut script = Vec::new();
            clap_complete::generate(c.shell, &mut command, "reindexd", &mut script);
            Some(write_stdout(&script))
        }
        Command::Man => {
            let mut page = Vec::new();
            Some(
                clap_mangen::Man::new(command)
                    .render(&mut page)
                    .map_err(Into::into)
                    .and_then(|()| write_stdout(&page)),
            )
        }
        _ => None,
    }
}

fn write_stdout(bytes: &[u8]) -> CliResult {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}

/// Runs one command with a loaded configuration.
pub async fn run(cli: Cli, config: Config, log: LogLevel) -> CliResult {
    let config = Arc::new(config);
    if let Command::CheckConfig(_) = cli.command {
        return check_config(&config);
    }
    let connect = ConnectOptions::from_config(&config.cluster)?;
    let migrator = Migrator::new(EsClient::connect(&connect)?, config.clone());
    if !matches!(cli.command, Command::Serve(_)) {
        let info = migrator.es().info().await?;
        if let Some(why) = info.unsupported() {
            return Err(why.into());
        }
    }
    match cli.command {
        Command::Serve(_) => serve(config, cli.config.clone(), cli.overrides(), log).await,
        Command::Init(n) => {
            for name in &n.names {
                let state = migrator.init(name).await?;
                out!(
                    "{name}: {} on {}",
                    state.phase.name(),
                    state.phase.read_index()
                );
            }
            Ok(())
        }
        Command::Plan(p) => plan(&migrator, p.json).await,
        Command::Reindex(r) => reindex(&migrator, r).await,
        Command::Status(s) => status(&migrator, s).await,
        Command::Pause(o) => control(&migrator, &o.name, Action::Pause, |c| c.paused = true).await,
        Command::Resume(o) => {
            control(&migrator, &o.name, Action::Resume, |c| c.paused = false).await
        }
        Command::Throttle(t) => {
            let rate = parse_rate(&t.rate)?;
            control(&migrator, &t.name, Action::Throttle, move |c| {
                c.requests_per_second = rate
            })
            .await
        }
        Command::Priority(p) => {
            let background = p.priority == Priority::Background;
            control(&migrator, &p.name, Action::Priority, move |c| {
                c.background = background
            })
            .await
        }
        Command::Accept(o) => {
            let state = migrator.accept(&o.name).await?;
            out!("{}: failures accepted; {}", o.name, state.phase.name());
            Ok(())
        }
        Command::Filled(o) => {
            let state = migrator.filled(&o.name).await?;
            let view = IndexView::new(&state, None, chrono::Utc::now());
            out!("{}", describe(&view));
            if state.phase.kind() == PhaseKind::Ready {
                Ok(())
            } else {
                Err(format!("{}: not ready", o.name).into())
            }
        }
        Command::Flip(o) => {
            let state = migrator.flip(&o.name).await?;
            out!(
                "STUCK THE LANDING! {} now reads from {}",
                o.name,
                state.phase.read_index()
            );
            Ok(())
        }
        Command::Rollback(r) => {
            let policy = match (r.replay, r.discard_writes) {
                (true, _) => WritesPolicy::Replay,
                (_, true) => WritesPolicy::Discard,
                _ => WritesPolicy::Refuse,
            };
            let (state, report) = migrator.rollback(&r.name, policy).await?;
            out!(
                "{}: rolled back; reads and writes on {}",
                r.name,
                state.phase.read_index()
            );
            out!("{}", rollback_report(&report));
            Ok(())
        }
        Command::Repair(o) => {
            let (state, repaired) = migrator.repair(&o.name).await?;
            let what = match repaired {
                crate::migration::Repaired::Nothing => "state and aliases agree; nothing to repair",
                crate::migration::Repaired::StateRebuilt => {
                    "the lost state was rebuilt from the aliases"
                }
                crate::migration::Repaired::AliasesMoved => {
                    "the aliases were moved to where the state says"
                }
                crate::migration::Repaired::WritesUnblocked => {
                    "the write block on the write alias's index was lifted"
                }
            };
            out!("{}: {what}", o.name);
            out!(
                "{}",
                describe(&IndexView::new(&state, None, chrono::Utc::now()))
            );
            Ok(())
        }
        Command::Cleanup(o) => {
            let (_, deleted) = migrator.cleanup(&o.name).await?;
            out!("{}: deleted {}", o.name, deleted.join(", "));
            Ok(())
        }
        Command::CheckConfig(_) | Command::Completions(_) | Command::Man => {
            unreachable!("handled above")
        }
    }
}

fn parse_rate(text: &str) -> Result<Option<f64>, String> {
    if text == "off" {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(r) => check_rate(r).map(Some),
        Err(_) => Err(format!(
            "throttle rate must be a number of documents per second or \"off\", found {text:?}"
        )),
    }
}

fn check_config(config: &Config) -> CliResult {
    let mut problems = Vec::new();
    for (i, index) in config.indexes.iter().enumerate() {
        if let Err(e) = crate::migration::MappingFile::load(&index.mapping) {
            problems.push(format!("indexes[{i}].mapping: {e}"));
        }
    }
    match ConnectOptions::from_config(&config.cluster) {
        // Builds the client too: a CA file that is not PEM is caught here.
        Ok(options) => {
            if let Err(e) = EsClient::connect(&options) {
                problems.push(e.to_string());
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    if let Err(e) = config.api_token() {
        problems.push(e.to_string());
    }
    if !problems.is_empty() {
        return Err(problems.join("\n").into());
    }
    out!("{}", serde_json::to_string_pretty(&config.redacted_json())?);
    use std::io::Write as _;
    writeln!(
        std::io::stderr().lock(),
        "configuration OK: {} logical index(es)",
        config.indexes.len()
    )?;
    Ok(())
}

async fn plan(migrator: &Migrator, json: bool) -> CliResult {
    let entries = migrator.plan().await?;
    if json {
        out!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    for e in entries {
        out!(
            "{:<16} {:<12} {:<14} {}",
            e.name,
            e.phase,
            e.action,
            e.detail
        );
        for f in &e.findings {
            out!("  {} {}: {}", f.level, f.code, f.message);
        }
    }
    Ok(())
}

async fn reindex(migrator: &Migrator, r: Reindex) -> CliResult {
    let options = Stage1Options {
        engine: r.engine,
        pipeline: r.pipeline.clone(),
        requests_per_second: r.requests_per_second,
        priority: r.priority,
    };
    let states = migrator.reindex_all(&r.names, &options).await?;
    let mut started = Vec::new();
    for state in states {
        say!(
            "{}: stage 1 done; writes go to {}, reads stay on {}",
            state.name,
            state.phase.write_index(),
            state.phase.read_index()
        );
        if state.phase.kind() == PhaseKind::Filling {
            say!(
                "{}: the application refills {} now; run `reindexd filled {}` when it is done",
                state.name,
                state.phase.write_index(),
                state.name
            );
        } else {
            started.push(state.name);
        }
    }
    if r.detach {
        return Ok(());
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let jobs = Jobs::new(migrator.clone(), owner_id(), shutdown.clone());
    let mut copies = Vec::new();
    for name in &started {
        if let Some(copy) = jobs.start(name) {
            copies.push((name.clone(), copy));
        }
    }
    let handles = started
        .iter()
        .filter_map(|name| Some((name.clone(), jobs.get(name)?)))
        .collect();
    let watcher = tokio::spawn(watch_progress(migrator.clone(), handles, shutdown.clone()));
    let mut results = Vec::new();
    for (name, copy) in copies {
        let result = copy
            .await
            .unwrap_or_else(|e| Err(CopyError::fatal(format!("the copy task ended: {e}"))));
        results.push((name, result));
    }
    watcher.abort();
    let mut failed = Vec::new();
    for (name, result) in results {
        match result {
            Ok(state) => {
                let view = IndexView::new(&state, None, chrono::Utc::now());
                say!("{}", describe(&view));
                if state.phase.kind() != PhaseKind::Ready {
                    failed.push(name);
                }
            }
            Err(e) => {
                say!(stderr, "{name}: {e}");
                failed.push(name);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("not ready: {}", failed.join(", ")).into())
    }
}

async fn control(
    migrator: &Migrator,
    name: &str,
    action: Action,
    f: impl Fn(&mut crate::migration::CopyProgress),
) -> CliResult {
    let state = migrator.update_copy(name, action, f).await?;
    let view = IndexView::new(&state, None, chrono::Utc::now());
    out!("{}", describe(&view));
    Ok(())
}
