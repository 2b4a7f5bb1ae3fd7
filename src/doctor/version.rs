//! The Claude Code versions this build is verified on (`lib/claude-code-versions`,
//! embedded), and where a given version stands against them.

use std::cmp::Ordering;
use std::fmt;

/// The file CI installs from; a version bump is one line in it.
const VERSIONS: &str = include_str!("../../lib/claude-code-versions");

/// A `major.minor.patch` version, compared numerically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses `2.1.332`, or the first such word of `claude --version` output
    /// (`2.1.332 (Claude Code)`).
    pub fn parse(text: &str) -> Option<Self> {
        text.split_whitespace().find_map(|word| {
            let mut parts = word.split('.').map(|p| p.parse::<u32>().ok());
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(Some(a)), Some(Some(b)), Some(Some(c)), None) => Some(Self(a, b, c)),
                _ => None,
            }
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The verified range, oldest to newest, both included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    pub oldest: Version,
    pub newest: Version,
}

impl Verified {
    /// The range this build was verified on.
    pub fn embedded() -> Self {
        Self::parse(VERSIONS).expect("lib/claude-code-versions names `newest` and `oldest`")
    }

    fn parse(text: &str) -> Option<Self> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
                .and_then(Version::parse)
        };
        Some(Self {
            oldest: field("oldest")?,
            newest: field("newest")?,
        })
    }

    /// Where `v` stands: `Less` below the range, `Greater` above it.
    pub fn place(&self, v: Version) -> Ordering {
        if v < self.oldest {
            Ordering::Less
        } else if v > self.newest {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.oldest, self.newest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_range_parses_and_orders_numerically() {
        let v = Verified::embedded();
        assert!(v.oldest <= v.newest);
        assert_eq!(
            Version::parse("2.1.332 (Claude Code)"),
            Some(Version(2, 1, 332))
        );
        assert!(Version(2, 1, 99) < Version(2, 1, 100));
        assert_eq!(Version::parse("Claude Code"), None);
        assert_eq!(Version::parse("1.2"), None);
        let r = Verified::parse("newest 2.1.332\noldest 2.1.197\n").unwrap();
        assert_eq!(r.place(Version(2, 1, 196)), Ordering::Less);
        assert_eq!(r.place(Version(2, 1, 200)), Ordering::Equal);
        assert_eq!(r.place(Version(2, 2, 0)), Ordering::Greater);
    }
}
