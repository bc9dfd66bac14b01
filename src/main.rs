//! `reindexd`: parse the command line, start logging, run one command,
//! and turn any error into a one-line reason and a non-zero exit code.

use std::process::ExitCode;

use clap::Parser;
use reindexd::cli::{self, Cli};
use reindexd::config::Config;

fn main() -> ExitCode {
    // glibc gives each thread that allocates an arena of its own, and
    // raises its mmap threshold as big blocks are freed, so megabyte-sized
    // bulk bodies end up fragmenting arenas. Two arenas and a fixed 1 MiB
    // threshold (big buffers are mapped and returned to the OS when freed)
    // keep the resident memory near what is really in use.
    // SAFETY: called before any thread exists; mallopt only tunes malloc.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    let cli = Cli::parse();
    if !matches!(cli.command, cli::Command::Serve(_)) {
        // A one-shot command piped into `head` should end quietly, like
        // other command-line tools; the daemon keeps Rust's "ignore" so a
        // closed client socket never kills it.
        // SAFETY: called before any thread exists; SIG_DFL is a valid handler.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    if let Some(result) = cli::run_without_config(&cli) {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("reindexd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::load(&cli.config, &cli.overrides()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("reindexd: {e}");
            return ExitCode::from(2);
        }
    };
    let log = reindexd::logging::init(&config.log_level, config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("reindexd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli, config, log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reindexd: {}", e.to_string().replace(['\r', '\n'], "; "));
            ExitCode::FAILURE
        }
    }
}
