//! The page of `serve` in a real browser (docs/web.md, "The page"): two demo agents, the
//! server, and headless Chromium driven by `tests/web/browser.mjs` (playwright-core).
//! The script opens the one-time URL, watches the agents' rows change live, sends a task
//! and reads its answer, cancels a slow one from its button, checks a phone-sized screen
//! and saves a screenshot (`target/web-page.png`, the test's artifact).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::fixture::{Env, HOOK, SECS, text};
use crate::helper::serve::Serve;
use crate::helper::wait::output_with_timeout;

/// `target/`, where the screenshot goes (the integration tests' tmp dir is in it).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp")
        .to_path_buf()
}

#[test]
#[cfg_attr(
    missing_browser,
    ignore = "needs chromium and tests/web/node_modules (npm ci in tests/web)"
)]
fn the_page_shows_the_team_live_and_sends_and_cancels_tasks() {
    let env = Env::new();
    let _quick = env.agent("web1", &["--demo"]);
    // A task of this one runs for a minute: it is still working when cancelled.
    let _slow = env.agent("slow", &["--demo", "--demo-delay-ms", "60000"]);
    let mut serve = Serve::start(env.cmd(HOOK), &[]);

    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shot = target_dir().join("web-page.png");
    let _ = std::fs::remove_file(&shot);
    let mut node = Command::new("node");
    node.arg(manifest.join("tests/web/browser.mjs"))
        .current_dir(manifest.join("tests/web"))
        .env("URL", &serve.url)
        .env("SCREENSHOT", &shot)
        .env("AGENT", "web1")
        .env("SLOW_AGENT", "slow");
    // Each step of the script has its own 30 s deadline; this bounds the whole.
    let out = output_with_timeout(&mut node, Duration::from_secs(300));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "browser.mjs failed ({}):\n{stderr}\nstdout:\n{stdout}\nserve's stderr:\n{}",
        out.status,
        serve.stderr()
    );
    let last = stdout.lines().last().unwrap_or_default();
    let summary: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the last line of browser.mjs is not JSON ({e}): {last:?}"));
    assert_eq!(summary["ok"], true, "{summary}");
    let ms = summary["change_to_page_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("no change_to_page_ms in {summary}"));
    assert!(
        summary["statuses"]["web1"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "working")),
        "the row of @web1 never showed working: {summary}"
    );
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    println!("from the click on cancel to the agent idle on the page: {ms} ms");
    println!("screenshot: {}", shot.display());
    if let Some(wide) = summary["wide_screenshot"].as_str() {
        println!("screenshot (desktop width): {wide}");
    }

    // The server stops on SIGTERM, with status 0.
    let status = serve
        .stop(SECS)
        .unwrap_or_else(|| panic!("serve did not exit within {SECS:?} of SIGTERM"));
    assert_eq!(
        status.code(),
        Some(0),
        "serve exited {status} on SIGTERM; its stderr:\n{}",
        serve.stderr()
    );
}
