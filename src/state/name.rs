//! Agent names: the only user-chosen string that becomes a path component.

use std::fmt;

use anyhow::{Result, bail};

/// A validated agent name: `[a-z0-9][a-z0-9_-]{0,31}`.
///
/// The pattern rules out path traversal (`..`, `/`), hidden files and names that differ
/// only by case, so a name can be joined to a directory path as is.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct AgentName(String);

/// Names with a meaning in prompts (`@any`, `@results`, `@board`): no agent may take them.
pub const RESERVED_NAMES: &[&str] = &["any", "results", "board"];

impl AgentName {
    /// Returns true if and only if `s` is one of [`RESERVED_NAMES`].
    pub fn is_reserved(s: &str) -> bool {
        RESERVED_NAMES.contains(&s)
    }

    /// Returns true if and only if `s` matches the agent name pattern.
    pub fn is_valid(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 32
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
    }

    /// Parses a name, refusing anything outside the pattern with a message saying why.
    pub fn parse(s: &str) -> Result<Self> {
        if Self::is_valid(s) {
            return Ok(Self(s.to_owned()));
        }
        bail!(
            "invalid agent name {s:?}: use 1-32 characters from a-z, 0-9, '_' and '-', \
             starting with a letter or digit"
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AgentName {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<AgentName> for String {
    fn from(name: AgentName) -> String {
        name.0
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_pattern() {
        for ok in ["planning", "a", "0", "db-2", "x_y", &"a".repeat(32)] {
            assert!(AgentName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "../etc",
            "Planning",
            "-x",
            "_x",
            "a b",
            "é",
            &"a".repeat(33),
            "a\0b",
        ] {
            let err = AgentName::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid agent name"), "{bad}: {err}");
        }
    }
}
