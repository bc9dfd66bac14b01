//! `reindexd`: parse the command line, start logging, run one command,
//! and turn any error into a one-line reason and a non-zero exit code, in
//! one place. Output to a closed pipe (`reindexd status | head -1`) ends
//! the command quietly; it never kills a foreground copy (SIGPIPE stays
//! ignored, and the copy's progress lines ignore write errors).

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;
use reindexd::cli::{self, Cli};
use reindexd::config::Config;

/// Why the command failed, and the exit code that says so.
struct Failure {
    code: u8,
    error: Box<dyn Error + Send + Sync>,
}

impl Failure {
    /// What stderr gets: one line, except for an invalid configuration,
    /// which names each bad key on a line of its own.
    fn reason(&self) -> String {
        let text = self.error.to_string();
        if self.code == 2 {
            text
        } else {
            text.replace(['\r', '\n'], "; ")
        }
    }

    /// Exit code 2: the configuration is invalid.
    fn config(error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Failure {
            code: 2,
            error: error.into(),
        }
    }

    /// Whether the command stopped because whoever read its output went
    /// away; that is no failure.
    fn is_broken_pipe(&self) -> bool {
        let mut cause: Option<&(dyn Error + 'static)> = Some(self.error.as_ref());
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return true;
                }
            }
            cause = e.source();
        }
        false
    }
}

impl From<Box<dyn Error + Send + Sync>> for Failure {
    fn from(error: Box<dyn Error + Send + Sync>) -> Self {
        Failure { code: 1, error }
    }
}

fn main() -> ExitCode {
    tune_malloc();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) if failure.is_broken_pipe() => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("reindexd: {}", failure.reason());
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    if let Some(result) = cli::run_without_config(&cli) {
        return Ok(result?);
    }
    let config = Config::load(&cli.config, &cli.overrides()).map_err(Failure::config)?;
    let log = reindexd::logging::init(&config.log_level, config.log_format);
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the runtime: {e}"))
        .map_err(|e| Failure::from(Box::<dyn Error + Send + Sync>::from(e)))?;
    Ok(runtime.block_on(cli::run(cli, config, log))?)
}

/// glibc gives each thread that allocates an arena of its own, and raises
/// its mmap threshold as big blocks are freed, so megabyte-sized bulk
/// bodies end up fragmenting arenas. Two arenas and a fixed 1 MiB threshold
/// (big buffers are mapped and returned to the OS when freed) keep the
/// resident memory near what is really in use.
fn tune_malloc() {
    // SAFETY: called before any thread exists; mallopt only tunes malloc.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
