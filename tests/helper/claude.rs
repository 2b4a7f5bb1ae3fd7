//! Finding and starting the real Claude Code for end-to-end tests.
//!
//! Owns three things: locating the `claude` binary (or skipping the test
//! when it is absent), a throwaway `HOME` whose `~/.claude.json` lets Claude
//! Code start offline with no dialogs (docs/claude-code.md#startup-dialogs), and `--settings`
//! JSON with command hooks, so tests wait for hook events rather than read
//! the screen (docs/claude-code.md#hook-session-start: `SessionStart` fires when input is accepted).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::fake_api::FakeApi;
use super::tmux::TmuxServer;

/// Environment variable naming the `claude` binary to test against.
pub const CLAUDE_BIN_ENV: &str = "CLAUDE_BIN";
/// When set to `1`, a missing Claude Code or tmux fails the test instead of
/// skipping it (for CI, where they must be installed).
pub const REQUIRE_E2E_ENV: &str = "REQUIRE_CLAUDE_E2E";

/// Locates Claude Code: `$CLAUDE_BIN`, else `claude` on `PATH`, else the copy of the
/// newest verified version that `.ci/run` installs into `.claude-code/<version>/`
/// (`lib/claude-code-versions`). `build.rs` does the same lookup to mark the tests
/// that need it ignored when it is absent.
pub fn find_claude() -> Option<PathBuf> {
    if let Some(bin) = env::var_os(CLAUDE_BIN_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    if let Some(bin) = find_on_path("claude") {
        return Some(bin);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let versions = fs::read_to_string(manifest.join("lib/claude-code-versions")).ok()?;
    let newest = versions
        .lines()
        .find_map(|l| l.strip_prefix("newest "))?
        .trim();
    let local = manifest.join(format!(".claude-code/{newest}/node_modules/.bin/claude"));
    local.is_file().then_some(local)
}

/// The `(major, minor, patch)` version of the Claude Code at `claude`, from
/// `claude --version` (`2.1.332 (Claude Code)`), for tests of facts that changed
/// between the pinned versions.
pub fn claude_version(claude: &Path) -> (u32, u32, u32) {
    let out = Command::new(claude)
        .arg("--version")
        .output()
        .expect("run claude --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let word = text.split_whitespace().next().unwrap_or("");
    let mut parts = word.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

/// Returns the first executable file named `name` in `$PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Returns Claude Code's path, or `None` after printing a skip notice.
/// Panics instead of skipping when `REQUIRE_CLAUDE_E2E=1`.
pub fn require_claude(test_name: &str) -> Option<PathBuf> {
    let found = find_claude();
    if found.is_none() {
        skip_or_fail(
            test_name,
            "Claude Code not found (set CLAUDE_BIN, or install the pinned versions: \
             bash .ci/install-claude-code)",
        );
    }
    found
}

/// Prints "skipping <test>: <why>", or panics when `REQUIRE_CLAUDE_E2E=1`.
pub fn skip_or_fail(test_name: &str, why: &str) {
    let required = env::var(REQUIRE_E2E_ENV).as_deref() == Ok("1");
    assert!(!required, "{test_name}: {why}, and {REQUIRE_E2E_ENV}=1");
    eprintln!("skipping {test_name}: {why}");
}

/// A private `HOME` prepared so Claude Code starts offline without dialogs.
pub struct ClaudeHome {
    root: PathBuf,
    project_dir: PathBuf,
    api_key: String,
}

impl ClaudeHome {
    /// Writes `<root>/.claude.json` trusting `project_dir` and approving
    /// `api_key`, and creates `<root>/tmp` for `CLAUDE_CODE_TMPDIR`.
    pub fn new(root: &Path, project_dir: &Path, api_key: &str) -> ClaudeHome {
        let home = ClaudeHome {
            root: root.to_path_buf(),
            project_dir: project_dir.to_path_buf(),
            api_key: api_key.to_string(),
        };
        fs::create_dir_all(home.tmpdir()).expect("create CLAUDE_CODE_TMPDIR");
        home.write_config(&home.initial_config());
        home
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn project_dir(&self) -> &Path {
        &self.project_dir
    }

    /// `<root>/.claude.json`, Claude Code's global config file.
    pub fn config_path(&self) -> PathBuf {
        self.root.join(".claude.json")
    }

    /// `<root>/tmp`: where Claude Code puts its Ctrl-G prompt files and task
    /// dirs (under `claude-<uid>/`), instead of the shared `/tmp`.
    pub fn tmpdir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Reads `.claude.json`, lets `f` change it, and writes it back (for
    /// tests that need a setting such as `externalEditorContext`).
    pub fn update_config(&self, f: impl FnOnce(&mut Value)) {
        let text = fs::read_to_string(self.config_path()).expect("read .claude.json");
        let mut config: Value = serde_json::from_str(&text).expect("parse .claude.json");
        f(&mut config);
        self.write_config(&config);
    }

    /// The environment for a `claude` process talking to `api`. Meant to be
    /// used on top of an otherwise empty environment (see [`Self::command`]).
    pub fn env(&self, api: &FakeApi) -> Vec<(String, String)> {
        let path = env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        [
            ("HOME", self.root.display().to_string()),
            ("PATH", path),
            ("LANG", "C.UTF-8".into()),
            ("TERM", "xterm-256color".into()),
            ("ANTHROPIC_BASE_URL", api.base_url()),
            ("ANTHROPIC_API_KEY", self.api_key.clone()),
            // Only POST /v1/messages reaches the fake: no update checks,
            // telemetry or connectivity probes (docs/claude-code.md#offline-env).
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("DISABLE_AUTOUPDATER", "1".into()),
            // An error reply must end the turn at once, not retry for ~3 min.
            ("CLAUDE_CODE_MAX_RETRIES", "0".into()),
            // A hung fake must fail the test, not block it for 10 minutes.
            ("API_TIMEOUT_MS", "60000".into()),
            // As root, bypass-permissions mode refuses to start without it (docs/claude-code.md#startup-dialogs).
            ("IS_SANDBOX", "1".into()),
            ("CLAUDE_CODE_TMPDIR", self.tmpdir().display().to_string()),
            ("TMPDIR", self.tmpdir().display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// A `Command` for `claude` in the project dir with exactly [`Self::env`],
    /// so nothing from the test runner's environment (an outer Claude Code
    /// session's `CLAUDE*` variables, `TMUX`, ...) leaks in.
    pub fn command(&self, claude: &Path, api: &FakeApi) -> Command {
        let mut cmd = Command::new(claude);
        cmd.current_dir(&self.project_dir)
            .env_clear()
            .envs(self.env(api));
        cmd
    }

    fn initial_config(&self) -> Value {
        let mut projects = serde_json::Map::new();
        for dir in trusted_dirs(&self.project_dir) {
            projects.insert(
                dir.display().to_string(),
                json!({
                    "hasTrustDialogAccepted": true,
                    "hasCompletedProjectOnboarding": true,
                    "projectOnboardingSeenCount": 1,
                    "allowedTools": [],
                }),
            );
        }
        let key_tail: String = {
            // Claude Code remembers approved keys by their last 20 chars (docs/claude-code.md#startup-dialogs).
            let chars: Vec<char> = self.api_key.chars().collect();
            chars[chars.len().saturating_sub(20)..].iter().collect()
        };
        json!({
            "hasCompletedOnboarding": true,
            "lastOnboardingVersion": "2.1.197",
            "numStartups": 1,
            "autoUpdates": false,
            "bypassPermissionsModeAccepted": true,
            "customApiKeyResponses": {"approved": [key_tail], "rejected": []},
            "projects": projects,
        })
    }

    fn write_config(&self, config: &Value) {
        let text = serde_json::to_string_pretty(config).expect("serialize .claude.json");
        fs::write(self.config_path(), text).expect("write .claude.json");
    }
}

/// The dirs whose trust flag covers `project_dir`: its realpath and, inside a
/// git repo, the repo's top level, which is the key Claude Code uses (docs/claude-code.md#trust-key).
fn trusted_dirs(project_dir: &Path) -> Vec<PathBuf> {
    let real = fs::canonicalize(project_dir).expect("canonicalize project dir");
    let mut dirs = vec![real.clone()];
    if let Some(top) = real.ancestors().find(|d| d.join(".git").exists())
        && top != real
    {
        dirs.push(top.to_path_buf());
    }
    dirs
}

/// `--settings` JSON that runs each `(event, shell command)` as a command hook.
pub fn hook_settings(hooks: &[(&str, &str)]) -> String {
    let mut by_event = serde_json::Map::new();
    for (event, command) in hooks {
        let entry = json!({"hooks": [{"type": "command", "command": command}]});
        by_event
            .entry(event.to_string())
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("array")
            .push(entry);
    }
    json!({"hooks": by_event}).to_string()
}

/// `--settings` JSON whose `SessionStart` hook touches `marker`: the file
/// appears exactly when interactive Claude Code accepts input (docs/claude-code.md#hook-session-start).
pub fn session_start_marker_settings(marker: &Path) -> String {
    hook_settings(&[(
        "SessionStart",
        &format!("touch {}", shell_quote(&marker.display().to_string())),
    )])
}

/// How long [`submit_prompt`] waits before it presses Enter a second time.
const ENTER_RETRY_AFTER: Duration = Duration::from_secs(3);

/// Types `text` into the interactive Claude Code in `pane`, presses Enter,
/// and waits until `api` receives exactly `text` as a prompt; panics after
/// `timeout`. Call it once Claude Code is ready (the `SessionStart` marker).
///
/// An Enter that arrives before the prompt box is ready is dropped (docs/claude-code.md#hook-session-start,
/// #box-type-ahead), so Enter is pressed once more if nothing arrived after a
/// few seconds; on an already-submitted, empty box that second Enter does
/// nothing.
pub fn submit_prompt(tmux: &TmuxServer, pane: &str, api: &FakeApi, text: &str, timeout: Duration) {
    tmux.send_literal(pane, text);
    tmux.send_keys(pane, &["Enter"]);
    if api
        .wait_for_prompt(|p| p == text, ENTER_RETRY_AFTER.min(timeout))
        .is_some()
    {
        return;
    }
    tmux.send_keys(pane, &["Enter"]);
    if api
        .wait_for_prompt(|p| p == text, timeout.saturating_sub(ENTER_RETRY_AFTER))
        .is_none()
    {
        panic!(
            "the fake API never received {text:?}; screen:\n{}",
            tmux.capture(pane)
        );
    }
}

/// Quotes `s` for `sh` (hooks run via `sh -c`).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The API key the sandbox gives Claude Code; the fake accepts any key.
pub const FAKE_API_KEY: &str = "sk-ant-fake-key-for-tests-0123456789";

/// Everything one Claude Code test needs: a temp dir holding a private
/// `HOME` (`home/`) and a project dir (`project/`), and a running [`FakeApi`].
pub struct ClaudeSandbox {
    pub api: FakeApi,
    pub home: ClaudeHome,
    dir: tempfile::TempDir,
}

impl Default for ClaudeSandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl ClaudeSandbox {
    pub fn new() -> ClaudeSandbox {
        let dir = tempfile::Builder::new()
            .prefix("claude-test-")
            .tempdir()
            .expect("create sandbox dir");
        for sub in ["home", "project"] {
            fs::create_dir(dir.path().join(sub)).expect("create sandbox subdir");
        }
        let home = ClaudeHome::new(
            &dir.path().join("home"),
            &dir.path().join("project"),
            FAKE_API_KEY,
        );
        ClaudeSandbox {
            api: FakeApi::start(),
            home,
            dir,
        }
    }

    /// The sandbox's temp dir, for the test's own files (markers, scripts).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn project_dir(&self) -> &Path {
        self.home.project_dir()
    }

    /// [`ClaudeHome::env`] for this sandbox's fake API.
    pub fn env(&self) -> Vec<(String, String)> {
        self.home.env(&self.api)
    }

    /// [`ClaudeHome::command`] for this sandbox's fake API.
    pub fn command(&self, claude: &Path) -> Command {
        self.home.command(claude, &self.api)
    }
}
