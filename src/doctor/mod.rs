//! `claude-editor-hook doctor`: checks the setup a user's team depends on, one line
//! per check (ok, warn or error, with the fix), for someone whose setup does not work.
//!
//! Owns nothing but the checks: each reads the same sources the product uses (the
//! verified versions in `lib/claude-code-versions`, the team config, the state
//! directory, the agents' status and locks, the chief's process) and changes nothing.

mod checks;
pub mod version;

use serde::Serialize;

pub use checks::run_checks;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Error,
}

/// One check's result: what was checked, what was found, and how to fix it.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub level: Level,
    /// A short name, e.g. `claude-code`, `tmux`, `state-dir`, `agent planning`.
    pub check: String,
    pub message: String,
    /// What to do about it (`None` when all is well).
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            level: Level::Ok,
            check: check.into(),
            message: message.into(),
            fix: None,
        }
    }

    pub fn warn(check: impl Into<String>, message: impl Into<String>, fix: &str) -> Self {
        Self {
            level: Level::Warn,
            check: check.into(),
            message: message.into(),
            fix: Some(fix.to_owned()),
        }
    }

    pub fn error(check: impl Into<String>, message: impl Into<String>, fix: &str) -> Self {
        Self {
            level: Level::Error,
            check: check.into(),
            message: message.into(),
            fix: Some(fix.to_owned()),
        }
    }

    /// The one line the text report prints.
    pub fn line(&self) -> String {
        let level = match self.level {
            Level::Ok => "ok   ",
            Level::Warn => "warn ",
            Level::Error => "error",
        };
        match &self.fix {
            Some(fix) => format!("{level} {}: {} — fix: {fix}", self.check, self.message),
            None => format!("{level} {}: {}", self.check, self.message),
        }
    }
}

/// The whole report, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Report {
    pub version: u32,
    pub checks: Vec<Finding>,
    pub errors: usize,
    pub warnings: usize,
}

impl Report {
    pub fn new(checks: Vec<Finding>) -> Self {
        let count = |l| checks.iter().filter(|f| f.level == l).count();
        Self {
            version: 1,
            errors: count(Level::Error),
            warnings: count(Level::Warn),
            checks,
        }
    }

    /// Non-zero when anything is an error.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.errors > 0)
    }
}
