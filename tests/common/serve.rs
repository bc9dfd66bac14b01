//! `reindexd serve` as a child process, the way an operator or systemd runs
//! it. The child listens on `127.0.0.1:0` and the test learns the port the
//! kernel gave it from the daemon's own `API listening` log line: no port is
//! picked in advance, so none can be taken by another process in between.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use super::wait::eventually;

/// `reindexd --config CONFIG serve --listen 127.0.0.1:0`: killed on drop,
/// and without systemd's variables from this environment. [`Served::start`]
/// runs it; a test expecting it to fail may run it itself.
pub fn serve_command(config: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_reindexd"));
    command
        .args([
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    command
}

/// A running `reindexd serve` child: where it listens, and everything it
/// has written (stdout and stderr, line by line).
pub struct Served {
    pub child: tokio::process::Child,
    /// `127.0.0.1:PORT`, as the daemon logged it.
    pub listen: String,
    lines: mpsc::UnboundedReceiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Served {
    /// Spawns `command` (a [`serve_command`], perhaps with more arguments
    /// or variables) with its output captured, reads the address from its
    /// `API listening` line, and waits until `/healthz` answers there.
    pub async fn start(mut command: tokio::process::Command) -> Served {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("reindexd serve starts");
        let (tx, lines) = mpsc::unbounded_channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            follow(child.stdout.take().unwrap(), tx.clone(), log.clone()),
            follow(child.stderr.take().unwrap(), tx, log.clone()),
        ];
        let mut served = Served {
            child,
            listen: String::new(),
            lines,
            log,
            readers,
        };
        let line = served.line_with("API listening").await;
        served.listen = listen_address(&line)
            .unwrap_or_else(|| panic!("no address in the daemon's line: {line}"));
        let (http, health) = (reqwest::Client::new(), format!("{}/healthz", served.url()));
        eventually(
            "reindexd serve answers /healthz",
            Duration::from_secs(10),
            || async { http.get(&health).send().await.is_ok() },
        )
        .await;
        served
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// The next output line containing `needle` (earlier lines are passed
    /// over, and stay in [`Served::log`]); fails after 20 s or when the
    /// daemon's output ends first.
    pub async fn line_with(&mut self, needle: &str) -> String {
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                if line.contains(needle) {
                    return line;
                }
            }
            panic!(
                "the daemon's output ended without a line with {needle:?}:\n{}",
                self.log()
            )
        };
        match tokio::time::timeout(Duration::from_secs(20), wait).await {
            Ok(line) => line,
            Err(_) => panic!("no line with {needle:?} within 20 s:\n{}", self.log()),
        }
    }

    /// Everything the daemon has written so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends signal `name` (`TERM`, `HUP`, ...) to this child, by its pid.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the daemon still runs").to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name} {pid}");
    }

    /// SIGKILL, and waits until it is gone.
    pub async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, then [`Served::wait`].
    pub async fn stop(self) -> (ExitStatus, String) {
        self.signal("TERM");
        self.wait().await
    }

    /// Waits (up to 60 s) for the exit (after a signal the test sent) and
    /// the end of its output. Returns the exit status and the whole log.
    pub async fn wait(mut self) -> (ExitStatus, String) {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("no exit within 60 s:\n{}", self.log()))
            .unwrap();
        for reader in self.readers.drain(..) {
            reader.await.unwrap();
        }
        (status, self.log())
    }
}

/// Copies `output`'s lines into `log` and `tx` until it ends.
fn follow(
    output: impl AsyncRead + Unpin + Send + 'static,
    tx: mpsc::UnboundedSender<String>,
    log: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(output).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    })
}

/// The `listen` field of an `API listening` line, text (`listen=ADDR`) or
/// JSON (`"listen":"ADDR"`).
fn listen_address(line: &str) -> Option<String> {
    let rest = match line.split_once("listen=") {
        Some((_, rest)) => rest,
        None => line.split_once("\"listen\":\"")?.1,
    };
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    addr.parse::<std::net::SocketAddr>().ok()?;
    Some(addr)
}
