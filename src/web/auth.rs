//! Who may talk to the server: the token (made once, kept 0600 in the durable state),
//! how a request presents it (a bearer header, the page's cookie, or the one-time URL
//! parameter that becomes the cookie), the Origin rule for requests that change state,
//! and the Host rule that keeps DNS rebinding out (docs/web.md, "Security model").
//!
//! [`check`] is a pure function of the request's parts, unit-tested below; the
//! middleware in `mod.rs` only carries out its verdict.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The token's folder and file in the durable part of the state directory.
pub const TOKEN_DIR: &str = "web";
pub const TOKEN_FILE: &str = "token";
/// The cookie the page authenticates with.
pub const COOKIE: &str = "ceh_token";

/// The server's token: 64 hex digits (256 random bits).
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token file of the state whose durable part is `root`.
    pub fn path(root: &Path) -> PathBuf {
        root.join(TOKEN_DIR).join(TOKEN_FILE)
    }

    /// Reads the token, making it on the first run. The file is created with
    /// `O_EXCL` (two servers starting at once agree on one token) and never read
    /// through a symlink; a file that is not a token is an error, not replaced.
    pub fn load_or_create(root: &Path) -> Result<Token> {
        let path = Self::path(root);
        crate::state::ensure_private_dir(&root.join(TOKEN_DIR))?;
        if let Some(bytes) = crate::state::read_optional(&path)? {
            return Self::parse(&bytes).with_context(|| {
                format!(
                    "{} is not a token; remove it to make a new one",
                    path.display()
                )
            });
        }
        let token = Token(random_hex()?);
        match crate::state::atomic_create(&path, token.0.as_bytes()) {
            Ok(true) => Ok(token),
            // Another server made it first: use that one.
            Ok(false) => Self::load_or_create(root),
            Err(e) => Err(e),
        }
    }

    fn parse(bytes: &[u8]) -> Result<Token> {
        let s = std::str::from_utf8(bytes)?.trim();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("expected 64 hex digits");
        }
        Ok(Token(s.to_owned()))
    }

    /// Whether `given` is the token, in time independent of where they differ.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("failed to read /dev/urandom for the server's token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What [`check`] needs of a request.
#[derive(Debug, Default)]
pub struct Parts<'a> {
    /// Whether the method changes state (anything but GET and HEAD).
    pub mutating: bool,
    pub authorization: Option<&'a str>,
    pub cookie: Option<&'a str>,
    /// The URL's `token` parameter.
    pub query_token: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub host: Option<&'a str>,
}

/// The verdict on a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// A GET with the right `?token=`: answer 303 to the URL without it, setting the
    /// cookie.
    SetCookie,
    /// 401, and nothing else is said.
    Unauthorized,
    /// 403: a request that changes state from another origin, or by cookie without an
    /// Origin.
    BadOrigin,
    /// 421: a Host that is not this loopback server's (DNS rebinding).
    BadHost,
}

/// The rules of docs/web.md, "Security model". `loopback`: the server listens on a
/// loopback address only, so every legitimate Host names loopback.
pub fn check(token: &Token, loopback: bool, p: &Parts) -> Verdict {
    let host = p.host.unwrap_or("");
    if loopback && !is_loopback_host(host) {
        return Verdict::BadHost;
    }
    let bearer = p
        .authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| token.matches(t.trim()));
    let cookie = p
        .cookie
        .and_then(|c| cookie_value(c, COOKIE))
        .is_some_and(|t| token.matches(t));
    if !bearer && !cookie {
        if !p.mutating && p.query_token.is_some_and(|t| token.matches(t)) {
            return Verdict::SetCookie;
        }
        return Verdict::Unauthorized;
    }
    if p.mutating {
        let own = format!("http://{host}");
        match p.origin {
            Some(o) if o != own => return Verdict::BadOrigin,
            // A browser always sends Origin with a POST; a cookie without one is not a
            // request of our page.
            None if !bearer => return Verdict::BadOrigin,
            _ => {}
        }
    }
    Verdict::Allow
}

/// Whether a Host header names loopback: `127.0.0.1`, `localhost`, `[::1]`, with or
/// without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The `Set-Cookie` value for the page.
pub fn set_cookie(token: &Token) -> String {
    format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        token.as_str()
    )
}

/// The query string without its `token` parameter (the URL the 303 goes to).
pub fn strip_token(query: &str) -> String {
    query
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some("token"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token("ab".repeat(32))
    }

    fn parts<'a>() -> Parts<'a> {
        Parts {
            host: Some("127.0.0.1:4000"),
            ..Parts::default()
        }
    }

    #[test]
    fn every_way_of_presenting_the_token_and_every_refusal() {
        let t = token();
        let good = t.as_str();
        let bearer = format!("Bearer {good}");
        let cookie = format!("other=1; {COOKIE}={good}");
        let wrong = format!("Bearer {}", "cd".repeat(32));
        let v = |p: &Parts| check(&t, true, p);
        assert_eq!(v(&parts()), Verdict::Unauthorized);
        assert_eq!(
            v(&Parts {
                authorization: Some(&bearer),
                ..parts()
            }),
            Verdict::Allow
        );
        assert_eq!(
            v(&Parts {
                authorization: Some(&wrong),
                ..parts()
            }),
            Verdict::Unauthorized
        );
        assert_eq!(
            v(&Parts {
                cookie: Some(&cookie),
                ..parts()
            }),
            Verdict::Allow
        );
        assert_eq!(
            v(&Parts {
                query_token: Some(good),
                ..parts()
            }),
            Verdict::SetCookie
        );
        assert_eq!(
            v(&Parts {
                query_token: Some("x"),
                ..parts()
            }),
            Verdict::Unauthorized
        );
        // The URL parameter never authorizes a change of state.
        assert_eq!(
            v(&Parts {
                mutating: true,
                query_token: Some(good),
                ..parts()
            }),
            Verdict::Unauthorized
        );
        // Origin: the own origin passes, another is refused, a cookie needs one.
        let own = Some("http://127.0.0.1:4000");
        assert_eq!(
            v(&Parts {
                mutating: true,
                cookie: Some(&cookie),
                origin: own,
                ..parts()
            }),
            Verdict::Allow
        );
        assert_eq!(
            v(&Parts {
                mutating: true,
                cookie: Some(&cookie),
                ..parts()
            }),
            Verdict::BadOrigin
        );
        assert_eq!(
            v(&Parts {
                mutating: true,
                cookie: Some(&cookie),
                origin: Some("http://evil.example"),
                ..parts()
            }),
            Verdict::BadOrigin
        );
        assert_eq!(
            v(&Parts {
                mutating: true,
                authorization: Some(&bearer),
                ..parts()
            }),
            Verdict::Allow
        );
        assert_eq!(
            v(&Parts {
                mutating: true,
                authorization: Some(&bearer),
                origin: Some("null"),
                ..parts()
            }),
            Verdict::BadOrigin
        );
        // DNS rebinding: a foreign Host on a loopback server.
        for host in ["evil.example:4000", "127.0.0.1.evil.example", ""] {
            assert_eq!(
                v(&Parts {
                    host: Some(host),
                    authorization: Some(&bearer),
                    ..parts()
                }),
                Verdict::BadHost,
                "{host}"
            );
        }
        for host in ["localhost:1", "[::1]:80", "127.0.0.1"] {
            assert_eq!(
                v(&Parts {
                    host: Some(host),
                    authorization: Some(&bearer),
                    ..parts()
                }),
                Verdict::Allow,
                "{host}"
            );
        }
        // Listening elsewhere on purpose: any Host.
        assert_eq!(
            check(
                &t,
                false,
                &Parts {
                    host: Some("box.lan:4000"),
                    authorization: Some(&bearer),
                    ..parts()
                }
            ),
            Verdict::Allow
        );
    }

    #[test]
    fn the_token_is_made_once_and_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        crate::state::ensure_private_dir(&root).unwrap();
        let a = Token::load_or_create(&root).unwrap();
        let b = Token::load_or_create(&root).unwrap();
        assert_eq!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 64);
        let mode = std::fs::metadata(Token::path(&root))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(Token::path(&root), b"short").unwrap();
        let err = Token::load_or_create(&root).unwrap_err();
        assert!(format!("{err:#}").contains("is not a token"), "{err:#}");
    }

    #[test]
    fn the_redirect_drops_only_the_token() {
        assert_eq!(strip_token("token=abc"), "");
        assert_eq!(strip_token("a=1&token=abc&b=2"), "a=1&b=2");
        assert_eq!(strip_token("tokens=1"), "tokens=1");
    }
}
