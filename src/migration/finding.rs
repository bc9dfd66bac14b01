//! What preflight finds, and the refusal of stage 1 it makes of them: plain
//! data, shared by preflight, the lifecycle's errors and the API.

use std::fmt;

use serde::Serialize;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Stage 1 is refused while this holds.
    Refuse,
    /// Stage 1 goes ahead; the copy is not exact in the way the message says.
    Warn,
    /// Worth knowing before stage 1.
    Info,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Refuse => "refuse",
            Level::Warn => "warn",
            Level::Info => "info",
        })
    }
}

/// One thing preflight found, with a stable `code` for scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    pub code: &'static str,
    pub message: String,
}

impl Finding {
    pub(super) fn new(level: Level, code: &'static str, message: String) -> Self {
        Finding {
            level,
            code,
            message,
        }
    }
}

/// Stage 1 of `index` refused by preflight, with every refusing finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightRefusal {
    pub index: String,
    /// Never empty; the first one's code is the error's code.
    pub findings: Vec<Finding>,
}

impl PreflightRefusal {
    /// The stable code of the first refusal, e.g. `template_conflict`.
    pub fn code(&self) -> &'static str {
        self.findings.first().map_or("preflight", |f| f.code)
    }
}

impl fmt::Display for PreflightRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: stage 1 refused, nothing was changed: ", self.index)?;
        for (i, finding) in self.findings.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}[{}] {}", finding.code, finding.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for PreflightRefusal {}
