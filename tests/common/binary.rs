//! Runs the `reindexd` binary as an operator would and checks what it
//! said: exit code, stdout, and the one-line reason on stderr.

use serde_json::Value;

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{self:#?}");
        self
    }

    /// Asserts a non-zero exit with exactly one line of reason on stderr,
    /// which contains `needle`. Log lines (`2026-...Z  INFO ...`) are not
    /// the reason and may come before it.
    pub fn fails_with(&self, needle: &str) {
        assert!(matches!(self.code, Some(c) if c != 0), "{self:#?}");
        let is_log = |l: &str| {
            l.len() > 5
                && l.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && l.as_bytes()[4] == b'-'
        };
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !is_log(l))
            .collect();
        assert_eq!(lines.len(), 1, "one line of reason: {self:#?}");
        assert!(lines[0].starts_with("reindexd: "), "{self:#?}");
        assert!(
            lines[0].contains(needle),
            "the reason names {needle:?}: {self:#?}"
        );
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {self:#?}"))
    }
}

/// Runs `reindexd args...` with a clean environment (no `REINDEXD_*`
/// variables of the caller leak in).
pub async fn reindexd(args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_reindexd"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("the binary runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
