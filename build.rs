//! Marks the end-to-end tests ignored, with the reason, when what they drive is not
//! installed, so a plain `cargo test` counts them as ignored instead of passing them
//! silently. With `REQUIRE_CLAUDE_E2E=1` (CI) nothing is ignored, and a missing Claude
//! Code or tmux fails those tests. The same holds for the tests that need root
//! (`missing_root`: they mount a small tmpfs). The same lookup as `tests/helper/claude.rs`.
//!
//! `CLAUDE_E2E_ONLY=1` marks the Claude Code tests ignored whatever is installed, so
//! that `cargo test -- --ignored` runs exactly them: `.ci/run` does that on the oldest
//! verified Claude Code.
//!
//! `missing_browser`: the page's browser test (tests/web_page.rs) needs Chromium
//! (`$CHROMIUM`, else `/usr/bin/chromium`), node and `tests/web/node_modules` (`npm ci`
//! in tests/web). Ignored like the others when they are missing; with
//! `REQUIRE_CLAUDE_E2E=1` it runs, and fails if they are. With `CLAUDE_E2E_ONLY=1` it is
//! not marked, so that `-- --ignored` leaves it out.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(missing_claude)");
    println!("cargo::rustc-check-cfg=cfg(missing_tmux)");
    println!("cargo::rustc-check-cfg=cfg(missing_root)");
    println!("cargo::rustc-check-cfg=cfg(missing_browser)");
    for var in [
        "CLAUDE_BIN",
        "REQUIRE_CLAUDE_E2E",
        "CLAUDE_E2E_ONLY",
        "PATH",
        "CHROMIUM",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rerun-if-changed=lib/claude-code-versions");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let local = manifest.join(".claude-code");
    if local.is_dir() {
        println!("cargo::rerun-if-changed=.claude-code");
    }
    if env::var("CLAUDE_E2E_ONLY").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=missing_claude");
        return;
    }
    if env::var("REQUIRE_CLAUDE_E2E").as_deref() == Ok("1") {
        return;
    }
    // The full-disk faults mount a small tmpfs, which takes root.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        println!("cargo::rustc-cfg=missing_root");
    }
    let tmux = on_path("tmux").is_some();
    if !tmux {
        println!("cargo::rustc-cfg=missing_tmux");
    }
    if !tmux || find_claude(&manifest).is_none() {
        println!("cargo::rustc-cfg=missing_claude");
    }
    if !browser_ready(&manifest) {
        println!("cargo::rustc-cfg=missing_browser");
    }
}

/// Chromium, node and playwright-core are all there. Watches what it looked at, never a
/// path that does not exist (cargo would rerun this script on every build): the
/// directory a missing thing would appear in instead.
fn browser_ready(manifest: &Path) -> bool {
    let chromium = env::var_os("CHROMIUM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let has_chromium = chromium.is_file();
    let watch = match has_chromium {
        true => Some(chromium.as_path()),
        false => chromium.parent().filter(|d| d.is_dir()),
    };
    if let Some(path) = watch {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    let playwright = manifest.join("tests/web/node_modules/playwright-core/package.json");
    let has_playwright = playwright.is_file();
    let watch = match has_playwright {
        true => playwright,
        false => manifest.join("tests/web"),
    };
    if watch.exists() {
        println!("cargo::rerun-if-changed={}", watch.display());
    }
    has_chromium && has_playwright && on_path("node").is_some()
}

fn find_claude(manifest: &Path) -> Option<PathBuf> {
    if let Some(bin) = env::var_os("CLAUDE_BIN").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(bin)).filter(|p| p.is_file());
    }
    if let Some(bin) = on_path("claude") {
        return Some(bin);
    }
    let versions = std::fs::read_to_string(manifest.join("lib/claude-code-versions")).ok()?;
    let newest = versions
        .lines()
        .find_map(|l| l.strip_prefix("newest "))?
        .trim()
        .to_owned();
    let local = manifest.join(format!(".claude-code/{newest}/node_modules/.bin/claude"));
    local.is_file().then_some(local)
}

fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}
