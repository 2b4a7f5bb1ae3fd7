//! One test per fact in `docs/claude-code.md`: the behaviour of Claude Code itself that
//! the product relies on, checked against the real `claude` (no agent-wrap in between),
//! offline against the fake Messages API, in a private tmux server.
//!
//! A test is named `fact_` + the fact id with `-` turned into `_`, so a new Claude Code
//! release that changes a relied-on fact fails the test named after it. Where the two
//! verified versions differ, the test asserts each version's behaviour
//! ([`Cc::newer`]). Tests watch hook events (a hook script writes each payload and its
//! environment to a file), the fake API and files; only the facts that are about the
//! screen read it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helper::claude::{
    ClaudeSandbox, hook_settings, require_claude, shell_quote, submit_prompt,
};
use crate::helper::fake_api::{Reply, RequestKind, Usage};
use crate::helper::tmux::{TmuxServer, require_tmux};
use crate::helper::wait::{output_with_timeout, wait_until, wait_until_or};

/// Deadline for anything Claude Code does; far above what it takes, so only a hang trips it.
const WAIT: Duration = Duration::from_secs(60);

/// The first version where the facts marked "changed in 2.1.332" hold.
const NEWER: (u32, u32, u32) = (2, 1, 332);

/// Every hook event the facts record (the product's, and PreCompact and PostCompact for
/// `compact-command` and `compact-hook-notices`); each runs the recording hook script.
const HOOK_EVENTS: [&str; 12] = [
    "SessionStart",
    "UserPromptSubmit",
    "Stop",
    "StopFailure",
    "PreCompact",
    "PostCompact",
    "SessionEnd",
    "Notification",
    "PermissionRequest",
    "PostToolUse",
    "MessageDisplay",
    "PreToolUse",
];

/// `claude --version` as numbers, e.g. `(2, 1, 197)`.
fn claude_version(claude: &Path) -> (u32, u32, u32) {
    let out = Command::new(claude)
        .arg("--version")
        .output()
        .expect("run claude --version");
    let text = String::from_utf8_lossy(&out.stdout);
    let word = text.split_whitespace().next().unwrap_or("");
    let mut parts = word.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// How a test starts Claude Code.
#[derive(Default)]
struct Opts {
    /// Extra command-line arguments after `--settings`.
    args: Vec<String>,
    /// Extra environment for the pane.
    env: Vec<(String, String)>,
    /// The editor variable's value is `<probe><editor_suffix>`.
    editor_suffix: String,
    /// Set the probe as `VISUAL` and `/bin/false` as `EDITOR`.
    visual: bool,
    /// Do not wait for `SessionStart` (for the dialog facts).
    no_wait: bool,
    /// The project dir to run in instead of the sandbox's.
    cwd: Option<PathBuf>,
    /// The probe editor's file name (default `probe.sh`).
    probe_name: Option<&'static str>,
    /// A `statusLine` command for the `--settings` JSON.
    status_line: Option<String>,
}

/// An interactive Claude Code in a private tmux pane, with a recording hook for every
/// event and a probe script as its editor.
struct Cc {
    claude: PathBuf,
    version: (u32, u32, u32),
    tmux: TmuxServer,
    pane: String,
    sandbox: ClaudeSandbox,
    /// When the pane was started.
    started: Instant,
}

impl Cc {
    /// Starts Claude Code for `test` in a fresh sandbox; `None` (after a skip notice)
    /// when Claude Code or tmux is missing.
    fn start(test: &str, opts: Opts) -> Option<Cc> {
        Self::start_with(test, ClaudeSandbox::new(), |_| {}, opts)
    }

    /// [`Cc::start`] in `sandbox`, after `config` changed its `~/.claude.json`.
    fn start_with(
        test: &str,
        sandbox: ClaudeSandbox,
        config: impl FnOnce(&mut Value),
        opts: Opts,
    ) -> Option<Cc> {
        let claude = require_claude(test)?;
        require_tmux(test)?;
        sandbox.home.update_config(config);
        let dirs = Dirs::of(&sandbox);
        dirs.create();
        let hook = dirs.base.join("hook.sh");
        write_exec(
            &hook,
            &format!(
                "#!/bin/sh\nf={}/$(date +%s%N)-$$\ncat > \"$f.tmp\"\nenv > \"$f.env\"\nmv \"$f.tmp\" \"$f.json\"\n",
                shell_quote(&dirs.events.display().to_string())
            ),
        );
        let probe = dirs.base.join(opts.probe_name.unwrap_or("probe.sh"));
        write_exec(&probe, &probe_script(&dirs.probe));
        set_action(&dirs.probe, "exit 0");
        let hook_cmd = format!("sh {}", shell_quote(&hook.display().to_string()));
        let hooks: Vec<(&str, &str)> = HOOK_EVENTS
            .iter()
            .map(|e| (*e, hook_cmd.as_str()))
            .collect();
        let mut env = sandbox.env();
        let editor = format!("{}{}", probe.display(), opts.editor_suffix);
        if opts.visual {
            env.push(("VISUAL".into(), editor));
            env.push(("EDITOR".into(), "/bin/false".into()));
        } else {
            env.push(("EDITOR".into(), editor));
        }
        env.extend(opts.env);
        let mut settings: Value = serde_json::from_str(&hook_settings(&hooks)).unwrap();
        if let Some(cmd) = &opts.status_line {
            settings["statusLine"] = serde_json::json!({"type": "command", "command": cmd});
        }
        let mut command = vec![
            claude.display().to_string(),
            "--settings".to_string(),
            settings.to_string(),
        ];
        command.extend(opts.args);
        let mut tmux = TmuxServer::new();
        let cwd = opts
            .cwd
            .unwrap_or_else(|| sandbox.project_dir().to_path_buf());
        let pane = tmux.new_session("cc", &cwd, &env, &command);
        let cc = Cc {
            version: claude_version(&claude),
            claude,
            tmux,
            pane,
            sandbox,
            started: Instant::now(),
        };
        if !opts.no_wait {
            cc.wait_event("SessionStart", |e| e["hook_event_name"] == "SessionStart");
        }
        Some(cc)
    }

    /// Ends this Claude Code (its tmux server) and hands back the sandbox.
    fn stop(self) -> ClaudeSandbox {
        let Cc { tmux, sandbox, .. } = self;
        drop(tmux);
        sandbox
    }

    /// True on the versions where the facts marked "changed in 2.1.332" hold.
    fn newer(&self) -> bool {
        self.version >= NEWER
    }

    fn dirs(&self) -> Dirs {
        Dirs::of(&self.sandbox)
    }

    /// Every hook payload so far, oldest first, each with `_env` (the hook's environment).
    fn events(&self) -> Vec<Value> {
        read_events(&self.dirs().events)
    }

    /// The hook payloads named `name`.
    fn named(&self, name: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["hook_event_name"] == name)
            .collect()
    }

    /// Waits for a hook payload matching `pred`; panics with the screen after [`WAIT`].
    fn wait_event(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_until_or(WAIT, || self.events().into_iter().find(|e| pred(e))).unwrap_or_else(|| {
            panic!(
                "no {what} hook event; events: {:?}\nscreen:\n{}",
                self.event_names(),
                self.tmux.capture(&self.pane)
            )
        })
    }

    /// Waits until there are `n` payloads named `name` and returns the last.
    fn wait_nth(&self, name: &str, n: usize) -> Value {
        wait_until_or(WAIT, || {
            let found = self.named(name);
            (found.len() >= n).then(|| found[n - 1].clone())
        })
        .unwrap_or_else(|| {
            panic!(
                "fewer than {n} {name} events: {:?}\nscreen:\n{}",
                self.event_names(),
                self.tmux.capture(&self.pane)
            )
        })
    }

    /// Waits for the `n`th `Stop` and then for the registry to say `idle`: `Stop` runs
    /// before the turn is over, and a prompt sent in between is queued (on 2.1.197 its
    /// text was seen left in the box after it was sent, see docs/claude-code.md#hook-stop).
    fn turn_over(&self, n: usize) -> Value {
        let stop = self.wait_nth("Stop", n);
        self.wait_status("idle");
        stop
    }

    fn event_names(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["hook_event_name"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    fn type_text(&self, text: &str) {
        self.tmux.send_literal(&self.pane, text);
    }

    fn keys(&self, keys: &[&str]) {
        self.tmux.send_keys(&self.pane, keys);
    }

    /// Types `text`, presses Enter and waits until the API got exactly `text`.
    fn submit(&self, text: &str) {
        submit_prompt(&self.tmux, &self.pane, &self.sandbox.api, text, WAIT);
    }

    /// Presses Enter, and once more if `done` is still false after a few seconds: an
    /// Enter sent right after an editor exited was lost under load (2.1.197), and on a
    /// box that was already submitted a second Enter does nothing.
    fn enter(&self, done: impl Fn() -> bool) {
        self.keys(&["Enter"]);
        if wait_until_or(Duration::from_secs(3), || done().then_some(())).is_none() {
            eprintln!("Enter had no effect after 3 s; pressing it again");
            self.keys(&["Enter"]);
        }
    }

    /// [`Cc::enter`] until the API got `text`, then [`Cc::expect_prompt`].
    fn enter_expect(&self, text: &str) {
        self.enter(|| self.sandbox.api.prompts().iter().any(|p| p == text));
        self.expect_prompt(text);
    }

    /// Waits for a prompt equal to `text`; panics with the screen after [`WAIT`].
    fn expect_prompt(&self, text: &str) {
        if self
            .sandbox
            .api
            .wait_for_prompt(|p| p == text, WAIT)
            .is_none()
        {
            panic!(
                "the API never got {text:?}; prompts {:?}\nscreen:\n{}",
                self.sandbox.api.prompts(),
                self.tmux.capture(&self.pane)
            );
        }
    }

    /// Claude Code's pid: the program tmux started in the pane.
    fn pid(&self) -> i32 {
        self.tmux
            .display(&self.pane, "#{pane_pid}")
            .parse()
            .expect("pane pid")
    }

    /// True while the pane's terminal is in canonical (cooked) mode: Claude Code runs
    /// its prompt box in raw mode and hands the terminal back cooked to its editor.
    fn tty_cooked(&self) -> bool {
        use nix::sys::termios::{LocalFlags, tcgetattr};
        let tty = self.tmux.display(&self.pane, "#{pane_tty}");
        let file = fs::File::open(&tty).expect("open the pane's tty");
        let attrs = tcgetattr(&file).expect("tcgetattr");
        attrs.local_flags.contains(LocalFlags::ICANON)
    }

    /// Sets what the probe editor does next (`sh` code; `$F` is the prompt file,
    /// `$D` the probe dir).
    fn action(&self, code: &str) {
        set_action(&self.dirs().probe, code);
    }

    /// Makes the next editor run write `content` to the prompt file and exit 0.
    fn editor_writes(&self, content: &str) {
        let probe = self.dirs().probe;
        fs::write(probe.join("content"), content).expect("write editor content");
        self.action("cat \"$D/content\" > \"$F\"\nexit 0");
    }

    /// How many times the probe editor has started.
    fn editor_runs(&self) -> usize {
        fs::read_to_string(self.dirs().probe.join("count"))
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Types `text` and waits until the screen shows it: a key that follows typed
    /// text at once can act on the box before the text is in it.
    fn type_shown(&self, text: &str) {
        self.type_text(text);
        self.wait_screen("the typed text", |s| s.contains(text));
    }

    /// Presses Ctrl-G and waits until the probe editor (run `n`) has started.
    ///
    /// A Ctrl-G that Claude Code ignored (2.1.332 sometimes ignores one that comes
    /// soon after start) is pressed again after a few seconds, but only while the
    /// terminal is still raw: cooked means the editor is on its way.
    fn ctrl_g(&self) -> Run {
        let n = self.editor_runs() + 1;
        let dir = self.dirs().probe.join(format!("run{n}"));
        let started = || dir.join("started").exists().then_some(());
        let pressed = Instant::now();
        self.keys(&["C-g"]);
        let mut retried = false;
        for _ in 0..3 {
            if wait_until_or(Duration::from_secs(3), started).is_some() {
                return Run { dir, n, retried };
            }
            if !self.tty_cooked() {
                eprintln!(
                    "Ctrl-G for editor run {n} was ignored ({:?} after start, {:?} after the \
                     press, registry {:?}); pressing it again",
                    self.started.elapsed(),
                    pressed.elapsed(),
                    self.registry().map(|r| r["status"].clone())
                );
                self.keys(&["C-g"]);
                retried = true;
            }
        }
        wait_until_or(WAIT, started).unwrap_or_else(|| {
            panic!(
                "Ctrl-G did not start the editor; screen:\n{}",
                self.tmux.capture(&self.pane)
            )
        });
        Run { dir, n, retried }
    }

    /// Waits until the editor of `run` has exited and Claude Code has its prompt box
    /// back (the terminal is raw again).
    fn wait_editor_done(&self, run: &Run) {
        let pid = run.pid();
        wait_until(WAIT, "the editor to exit", || {
            (!is_running(pid)).then_some(())
        });
        wait_until(WAIT, "Claude Code to take its terminal back", || {
            (!self.tty_cooked()).then_some(())
        });
        if run.retried {
            // Both presses may have been taken, the first late: then a second editor
            // run follows this one. Let it start and end too.
            let next = self.dirs().probe.join(format!("run{}", run.n + 1));
            let again = || next.join("started").exists().then_some(());
            if wait_until_or(Duration::from_millis(1500), again).is_some() {
                eprintln!("the first Ctrl-G was late, not lost: a second editor ran");
                self.wait_editor_done(&Run {
                    dir: next,
                    n: run.n + 1,
                    retried: false,
                });
            }
        }
    }

    /// Loads `content` into the prompt box through Ctrl-G, as the product does.
    fn load(&self, content: &str) -> Run {
        self.editor_writes(content);
        let run = self.ctrl_g();
        self.wait_editor_done(&run);
        run
    }

    /// Waits until the prompt box takes control keys: one Ctrl-G round trip that leaves
    /// the box as it was. On 2.1.332 `SessionStart` runs before the interface has set
    /// up the terminal, and a control key or a paste sent in that window can be lost
    /// (docs/claude-code.md#hook-session-start); once an editor has run, it is up.
    fn warm_up(&self) {
        self.action("exit 0");
        let run = self.ctrl_g();
        self.wait_editor_done(&run);
    }

    /// [`Cc::warm_up`], then proves the box takes typed text and a control key: types a
    /// word (once more if it did not show: under load, text typed right after the first
    /// editor run was lost on 2.1.197), deletes it with Ctrl-U and waits until it is gone.
    fn ready_box(&self) {
        self.warm_up();
        let word = "box-ready-check";
        self.type_text(word);
        let shown = |t| {
            self.tmux
                .wait_for_screen(&self.pane, |s| s.contains(word), t)
        };
        if shown(Duration::from_secs(5)).is_err() {
            eprintln!("typed text after the first editor run was lost; typing it again");
            self.type_text(word);
            shown(WAIT).unwrap_or_else(|s| panic!("the box never showed {word}:\n{s}"));
        }
        self.keys(&["C-u"]);
        self.wait_screen("the check word gone", |s| !s.contains(word));
    }

    /// Lets a probe editor that waits in `wait_release` go on.
    fn release_editor(&self) {
        fs::write(self.dirs().probe.join("release"), "").expect("write release");
    }

    /// Claude Code's session registry file, `~/.claude/sessions/<pid>.json`.
    fn registry_path(&self) -> PathBuf {
        self.sandbox
            .home
            .root()
            .join(format!(".claude/sessions/{}.json", self.pid()))
    }

    fn registry(&self) -> Option<Value> {
        let text = fs::read_to_string(self.registry_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Waits until the registry's `status` is `status` and returns the registry.
    fn wait_status(&self, status: &str) -> Value {
        wait_until_or(WAIT, || self.registry().filter(|r| r["status"] == status)).unwrap_or_else(
            || {
                panic!(
                    "status never became {status}: {:?}\nscreen:\n{}",
                    self.registry(),
                    self.tmux.capture(&self.pane)
                )
            },
        )
    }

    fn screen(&self) -> String {
        self.tmux.capture(&self.pane)
    }

    fn wait_screen(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.tmux
            .wait_for_screen(&self.pane, pred, WAIT)
            .unwrap_or_else(|s| panic!("waiting for {what}; screen:\n{s}"))
    }

    /// Holds the fake's answer to prompts matching `pred` until the returned gate opens.
    fn gate_replies(&self, pred: impl Fn(&str) -> bool + Send + Sync + 'static) -> Gate {
        let gate = Gate::default();
        let open = Arc::clone(&gate.open);
        let answered = Arc::clone(&gate.answered);
        self.sandbox.api.set_reply(move |prompt| {
            if pred(prompt) {
                wait_until_or(WAIT, || open.load(Ordering::SeqCst).then_some(()));
                answered.store(true, Ordering::SeqCst);
            }
            Reply::Text(crate::helper::fake_api::default_reply(prompt))
        });
        gate
    }
}

/// A hold on the fake's replies (see [`Cc::gate_replies`]).
#[derive(Default)]
struct Gate {
    open: Arc<AtomicBool>,
    answered: Arc<AtomicBool>,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    fn wait_answered(&self) {
        wait_until(WAIT, "the held reply to go out", || {
            self.answered.load(Ordering::SeqCst).then_some(())
        });
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}

/// What one run of the probe editor recorded.
struct Run {
    dir: PathBuf,
    /// Its number, 1 for the first editor run of the session.
    n: usize,
    /// Ctrl-G had to be pressed more than once.
    retried: bool,
}

impl Run {
    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    /// The editor's arguments.
    fn argv(&self) -> Vec<String> {
        let raw = fs::read(self.dir.join("argv")).expect("read argv");
        let mut args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        args.pop(); // after the last NUL
        args
    }

    fn file(&self) -> PathBuf {
        PathBuf::from(self.read("file").trim_end())
    }

    fn pid(&self) -> i32 {
        self.read("pid").trim().parse().expect("probe pid")
    }

    fn env(&self) -> Vec<(String, String)> {
        parse_env(&self.read("env"))
    }
}

/// The sandbox paths the recording scripts use.
struct Dirs {
    base: PathBuf,
    events: PathBuf,
    probe: PathBuf,
}

impl Dirs {
    fn of(sandbox: &ClaudeSandbox) -> Dirs {
        let base = sandbox.path().join("facts");
        Dirs {
            events: base.join("events"),
            probe: base.join("probe"),
            base,
        }
    }

    fn create(&self) {
        fs::create_dir_all(&self.events).expect("create events dir");
        fs::create_dir_all(&self.probe).expect("create probe dir");
    }
}

/// The probe editor: records its argv, environment, parent, cwd, the prompt file
/// (path, content, directory mode) into `run<N>/`, then runs `action.sh`.
fn probe_script(dir: &Path) -> String {
    let d = shell_quote(&dir.display().to_string());
    format!(
        r#"#!/bin/sh
D={d}
n=$(( $(cat "$D/count" 2>/dev/null || echo 0) + 1 ))
echo $n > "$D/count"
R="$D/run$n"
mkdir "$R"
printf '%s\0' "$@" > "$R/argv"
env > "$R/env"
echo $PPID > "$R/ppid"
pwd > "$R/cwd"
for F in "$@"; do :; done
echo "$F" > "$R/file"
cp "$F" "$R/input"
stat -c '%a %u' "$(dirname "$F")" > "$R/dirstat"
cut -d' ' -f5 /proc/$$/stat > "$R/pgid"
echo $$ > "$R/pid"
wait_release() {{ i=0; while [ ! -e "$D/release" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; rm -f "$D/release"; }}
touch "$R/started"
. "$D/action.sh"
"#
    )
}

fn set_action(probe_dir: &Path, code: &str) {
    fs::write(probe_dir.join("action.sh"), format!("{code}\n")).expect("write action");
}

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod script");
}

fn read_events(dir: &Path) -> Vec<Value> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .filter_map(|p| {
            let mut value: Value = serde_json::from_str(&fs::read_to_string(p).ok()?).ok()?;
            let env = fs::read_to_string(p.with_extension("env")).unwrap_or_default();
            let env: serde_json::Map<String, Value> = parse_env(&env)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            value["_env"] = Value::Object(env);
            Some(value)
        })
        .collect()
}

/// Parses `env` output (values with newlines are rare here and cut at the newline).
fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn env_get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// True if `pid` exists and is not a zombie.
fn is_running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// Samples the screen every 100 ms for `window` and returns (ms offset, screen) pairs.
fn sample_screens(cc: &Cc, window: Duration) -> Vec<(u128, String)> {
    let start = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < window {
        out.push((start.elapsed().as_millis(), cc.screen()));
        std::thread::sleep(Duration::from_millis(100));
    }
    out
}

/// A user message's text, whether `content` is a string or blocks.
fn message_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------
// Ctrl-G: the external editor
// ---------------------------------------------------------------------------

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_argv() {
    // Two spaces make an empty argument; quotes and `$HOME` stay literal: no shell.
    let opts = Opts {
        editor_suffix: " --wait  'a b' $HOME".into(),
        ..Opts::default()
    };
    let Some(cc) = Cc::start("fact_editor_argv", opts) else {
        return;
    };
    cc.type_shown("original");
    let run = cc.ctrl_g();
    let argv = run.argv();
    assert_eq!(argv.len(), 6, "{argv:?}");
    assert_eq!(&argv[..5], ["--wait", "", "'a", "b'", "$HOME"], "{argv:?}");
    assert_eq!(PathBuf::from(&argv[5]), run.file());
    cc.wait_editor_done(&run);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_file() {
    let Some(cc) = Cc::start("fact_editor_file", Opts::default()) else {
        return;
    };
    cc.type_shown("original prompt text");
    // Atomic replace: write a sibling, rename it over the path.
    cc.action("printf 'VIA RENAME' > \"$F.new\"\nmv \"$F.new\" \"$F\"\nexit 0");
    let run = cc.ctrl_g();
    cc.wait_editor_done(&run);
    let file = run.file();
    let uid = nix::unistd::getuid().as_raw();
    let dir = cc.sandbox.home.tmpdir().join(format!("claude-{uid}"));
    assert_eq!(file.parent(), Some(dir.as_path()), "{}", file.display());
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let uuid = name
        .strip_prefix("claude-prompt-")
        .and_then(|n| n.strip_suffix(".md"))
        .unwrap_or_else(|| panic!("file name {name}"));
    assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{name}");
    assert_eq!(run.read("dirstat").trim(), format!("700 {uid}"));
    assert_eq!(
        run.read("input"),
        "original prompt text",
        "no trailing newline"
    );
    cc.enter_expect("VIA RENAME");
    assert!(
        !file.exists(),
        "Claude Code removes the prompt file after the editor"
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_visual_wins() {
    let opts = Opts {
        visual: true,
        ..Opts::default()
    };
    let Some(cc) = Cc::start("fact_editor_visual_wins", opts) else {
        return;
    };
    cc.type_text("x");
    cc.load("FROM VISUAL");
    cc.enter_expect("FROM VISUAL");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_env() {
    let opts = Opts {
        env: vec![("MYEXPORTED".into(), "from-parent".into())],
        ..Opts::default()
    };
    let Some(cc) = Cc::start("fact_editor_env", opts) else {
        return;
    };
    let start = cc.wait_event("SessionStart", |e| e["hook_event_name"] == "SessionStart");
    cc.type_text("x");
    let run = cc.ctrl_g();
    let env = run.env();
    let ppid: i32 = run.read("ppid").trim().parse().unwrap();
    assert_eq!(ppid, cc.pid(), "the editor's parent is claude");
    let cwd = fs::canonicalize(run.read("cwd").trim()).unwrap();
    assert_eq!(cwd, fs::canonicalize(cc.sandbox.project_dir()).unwrap());
    assert_eq!(env_get(&env, "MYEXPORTED"), Some("from-parent"));
    assert_eq!(env_get(&env, "TMUX_PANE"), Some(cc.pane.as_str()));
    assert!(env_get(&env, "TMUX").is_some(), "{env:?}");
    assert_eq!(env_get(&env, "CLAUDE_CODE_SESSION_ID"), None, "{env:?}");
    assert_eq!(env_get(&env, "CLAUDECODE"), None, "{env:?}");
    // Through its parent pid the editor finds the session in the registry.
    let registry = cc.registry().expect("registry of the editor's parent");
    assert_eq!(registry["sessionId"], start["session_id"]);
    cc.wait_editor_done(&run);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_exit_zero_loads() {
    let Some(cc) = Cc::start("fact_editor_exit_zero_loads", Opts::default()) else {
        return;
    };
    cc.type_shown("original");
    for (i, content) in ["abc\n", "abc\n\n", "abc", "a\nb\n", "abc\n\n\n", "abc\r\n"]
        .iter()
        .enumerate()
    {
        cc.load(content);
        cc.type_text("Z");
        cc.enter(|| cc.sandbox.api.prompts().len() > i);
        let got = wait_until(WAIT, "the prompt", || {
            cc.sandbox.api.prompts().get(i).cloned()
        });
        eprintln!("file {content:?} + typed Z -> {got:?}");
        cc.turn_over(i + 1);
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_exit_nonzero_keeps() {
    let Some(cc) = Cc::start("fact_editor_exit_nonzero_keeps", Opts::default()) else {
        return;
    };
    cc.type_shown("original prompt");
    cc.action("printf 'SHOULD-NOT-APPEAR' > \"$F\"\nexit 3");
    let run = cc.ctrl_g();
    cc.wait_editor_done(&run);
    cc.action("printf 'SHOULD-NOT-APPEAR' > \"$F\"\nkill -TERM $$");
    let run = cc.ctrl_g();
    assert_eq!(
        run.read("input"),
        "original prompt",
        "exit 3 kept the prompt"
    );
    cc.wait_editor_done(&run);
    cc.enter_expect("original prompt");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_empty_clears() {
    let Some(cc) = Cc::start("fact_editor_empty_clears", Opts::default()) else {
        return;
    };
    cc.type_shown("original");
    cc.load("");
    cc.type_text("after");
    cc.enter_expect("after");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_large() {
    let Some(cc) = Cc::start("fact_editor_large", Opts::default()) else {
        return;
    };
    let big: String = (0..10_000)
        .map(|i| format!("line {i:05} {}", "x".repeat(95)))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(big.len() > 1_000_000);
    cc.type_text("x");
    cc.load(&format!("{big}\n"));
    cc.enter(|| cc.sandbox.api.prompts().iter().any(|p| p.len() > 1000));
    let got = cc
        .sandbox
        .api
        .wait_for_prompt(|p| p.len() > 1000, WAIT)
        .expect("the large prompt");
    assert_eq!(got.len(), big.len());
    assert!(got == big, "the 1 MB prompt arrived changed");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_freezes_claude() {
    let Some(cc) = Cc::start("fact_editor_freezes_claude", Opts::default()) else {
        return;
    };
    let gate = cc.gate_replies(|p| p == "slow turn");
    cc.submit("slow turn");
    // Ctrl-G works during a turn; while the editor runs, the reply arrives.
    cc.action("wait_release\nexit 1");
    let run = cc.ctrl_g();
    gate.open();
    gate.wait_answered();
    // A free event loop ends a turn within ~40 ms of the reply; 2 s without Stop or
    // MessageDisplay means Claude Code is not handling events.
    std::thread::sleep(Duration::from_secs(2));
    let names = cc.event_names();
    assert!(
        !names.iter().any(|n| n == "Stop" || n == "MessageDisplay"),
        "Claude Code handled the reply while its editor ran: {names:?}"
    );
    cc.release_editor();
    cc.wait_editor_done(&run);
    cc.turn_over(1);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_screen() {
    // A terminal editor, and one whose name makes Claude Code treat it as a GUI editor.
    for name in ["probe.sh", "my-code-probe"] {
        let opts = Opts {
            probe_name: Some(name),
            ..Opts::default()
        };
        let Some(cc) = Cc::start("fact_editor_screen", opts) else {
            return;
        };
        cc.type_shown("the prompt box text");
        let alternate_before = cc.tmux.display(&cc.pane, "#{alternate_on}");
        cc.action("wait_release\nexit 1");
        let run = cc.ctrl_g();
        let gui = name.contains("code");
        let waiting = if cc.newer() {
            "Save and close the editor to continue…"
        } else {
            "Save and close editor to continue..."
        };
        // What Claude Code draws for the editor, once it has drawn it.
        let screen = if gui {
            cc.wait_screen("the GUI editor notice", |s| s.contains(waiting))
        } else {
            cc.wait_screen("a blank screen", |s| s.trim().is_empty())
        };
        let alternate = cc.tmux.display(&cc.pane, "#{alternate_on}");
        eprintln!(
            "{name}: alternate_on {alternate_before} before, {alternate} during; argv {:?}\n{}",
            run.argv(),
            screen.trim_end()
        );
        assert!(!screen.contains("the prompt box text"), "{screen}");
        let argv = run.argv();
        match (gui, cc.newer()) {
            (false, _) => {
                assert_eq!(
                    alternate, "1",
                    "a terminal editor gets the alternate screen"
                );
                assert_eq!(argv, [run.file().display().to_string()]);
            }
            (true, false) => {
                assert_eq!(alternate, "0", "no alternate screen for a GUI editor");
                assert_eq!(argv, [run.file().display().to_string()]);
            }
            (true, true) => {
                // 2.1.332 runs its whole UI on the alternate screen, and hands a
                // GUI editor `-g <file>:1`.
                assert_eq!(alternate, "1");
                assert_eq!(argv.len(), 2, "{argv:?}");
                assert_eq!(argv[0], "-g");
                assert!(argv[1].ends_with(".md:1"), "{argv:?}");
            }
        }
        cc.release_editor();
        cc.wait_editor_done(&run);
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_keys_queued() {
    let Some(cc) = Cc::start("fact_editor_keys_queued", Opts::default()) else {
        return;
    };
    cc.type_text("x");
    cc.action("printf 'AFTER' > \"$F\"\nwait_release\nexit 0");
    let run = cc.ctrl_g();
    cc.type_text("typed");
    cc.keys(&["Enter"]);
    cc.release_editor();
    cc.wait_editor_done(&run);
    cc.type_text("Z");
    cc.enter_expect("AFTERtyped\nZ");
    assert_eq!(cc.sandbox.api.prompts(), ["AFTERtyped\nZ"]);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_ctrl_c() {
    let Some(cc) = Cc::start("fact_editor_ctrl_c", Opts::default()) else {
        return;
    };
    cc.type_text("x");
    cc.action(
        "trap 'touch \"$D/sigint\"; exit 130' INT\ntouch \"$D/trapped\"\nwait_release\nexit 0",
    );
    let run = cc.ctrl_g();
    let trapped = cc.dirs().probe.join("trapped");
    wait_until(WAIT, "the editor's SIGINT trap", || {
        trapped.exists().then_some(())
    });
    let pgid: i32 = run.read("pgid").trim().parse().unwrap();
    let claude_pgid = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(cc.pid())))
        .unwrap()
        .as_raw();
    assert_eq!(
        pgid, claude_pgid,
        "the editor runs in claude's process group"
    );
    cc.keys(&["C-c"]);
    let marker = cc.dirs().probe.join("sigint");
    wait_until(WAIT, "SIGINT to reach the editor", || {
        marker.exists().then_some(())
    });
    // The same SIGINT reaches claude, which exits with 0 (what the waiting view must
    // prevent by turning the terminal's signal keys off). On a loaded machine it once
    // stayed up for over a minute: its exit is measured here, its timing not asserted.
    match wait_until_or(WAIT, || cc.tmux.pane_exit_status(&cc.pane)) {
        Some(status) => assert_eq!(status, 0, "claude's exit status after Ctrl-C"),
        None => eprintln!("claude was still running {WAIT:?} after Ctrl-C in the editor"),
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_context_block() {
    let Some(cc) = Cc::start_with(
        "fact_editor_context_block",
        ClaudeSandbox::new(),
        |c| c["externalEditorContext"] = Value::Bool(true),
        Opts::default(),
    ) else {
        return;
    };
    cc.sandbox
        .api
        .set_reply(|_| Reply::Text("line 1\nline 2\nline 3".into()));
    cc.submit("first");
    cc.turn_over(1);
    cc.type_shown("draft");
    cc.action("sed 's/^draft$/edited/' \"$F\" > \"$F.new\"\nmv \"$F.new\" \"$F\"\nexit 0");
    let run = cc.ctrl_g();
    cc.wait_editor_done(&run);
    let input = run.read("input");
    eprintln!("editor file with the context block:\n{input}");
    let lines: Vec<&str> = input.lines().collect();
    assert!(
        lines[0].starts_with("# ─── Claude's last response"),
        "{input}"
    );
    assert!(
        lines.contains(&"# line 1") && lines.contains(&"# line 3"),
        "{input}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("# ─── Write your reply below this line")),
        "{input}"
    );
    assert!(input.ends_with("\ndraft"), "{input:?}");
    cc.enter_expect("edited");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_exit_notices() {
    let Some(cc) = Cc::start("fact_editor_exit_notices", Opts::default()) else {
        return;
    };
    cc.type_shown("original prompt");
    // The exit-0 cases first: a notice from an earlier case must not linger into them.
    let cases = [
        ("exit 0, unchanged", "exit 0", None),
        (
            "exit 0, changed",
            "printf 'changed prompt' > \"$F\"\nexit 0",
            None,
        ),
        (
            "exit 1",
            "exit 1",
            Some("Probe.sh quit unexpectedly (exit code 1)"),
        ),
        (
            "exit 130",
            "exit 130",
            Some("Probe.sh quit unexpectedly (exit code 130)"),
        ),
        (
            "SIGTERM",
            "kill -TERM $$",
            Some("Probe.sh closed unexpectedly (SIGTERM)"),
        ),
    ];
    let notice_in = |s: &str| {
        s.lines()
            .find(|l| l.contains("unexpectedly") || l.contains("Couldn't open"))
            .map(|l| l.trim().to_string())
    };
    for (what, action, expected) in cases {
        cc.action(action);
        let run = cc.ctrl_g();
        cc.wait_editor_done(&run);
        let exited = Instant::now();
        match expected {
            None => {
                // Measured: a notice shows within ~0.2 s; 3 s without one is none.
                let screens = sample_screens(&cc, Duration::from_secs(3));
                let notices: Vec<String> =
                    screens.iter().filter_map(|(_, s)| notice_in(s)).collect();
                assert!(notices.is_empty(), "{what}: {notices:?}");
            }
            Some(text) => {
                let screen = cc.wait_screen(what, |s| notice_in(s).is_some());
                let shown_after = exited.elapsed();
                assert_eq!(notice_in(&screen).as_deref(), Some(text), "{what}");
                cc.wait_screen("the notice to go", |s| notice_in(s).is_none());
                eprintln!(
                    "{what}: {text:?} shown {shown_after:?} after the exit, for about {:?}",
                    exited.elapsed() - shown_after
                );
            }
        }
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_chief_auto_submit() {
    let Some(cc) = Cc::start("fact_chief_auto_submit", Opts::default()) else {
        return;
    };
    cc.type_text("x");
    cc.action(
        "setsid sh -c 'sleep 0.3; tmux send-keys -t \"$TMUX_PANE\" Enter' </dev/null >/dev/null 2>&1 &\n\
         printf 'AUTO SUBMITTED' > \"$F\"\nexit 0",
    );
    let run = cc.ctrl_g();
    cc.wait_editor_done(&run);
    cc.expect_prompt("AUTO SUBMITTED");
}

// ---------------------------------------------------------------------------
// Session registry, hooks, transcript
// ---------------------------------------------------------------------------

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_session_registry() {
    let Some(cc) = Cc::start("fact_session_registry", Opts::default()) else {
        return;
    };
    let start = cc.wait_event("SessionStart", |e| e["hook_event_name"] == "SessionStart");
    let registry = cc.wait_status("idle");
    assert_eq!(registry["sessionId"], start["session_id"], "{registry}");
    assert_eq!(registry["pid"], cc.pid(), "{registry}");
    let gate = cc.gate_replies(|p| p == "busy turn");
    cc.submit("busy turn");
    cc.wait_status("busy");
    gate.open();
    cc.turn_over(1);
    cc.wait_status("idle");
    // That the file goes when claude exits is observed (docs/claude-code.md) but not
    // asserted: typing `/exit` into 2.1.332 did not always end it on a loaded machine.
    assert!(cc.registry_path().exists());
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_hooks_settings_flag() {
    let Some(claude) = require_claude("fact_hooks_settings_flag") else {
        return;
    };
    let sandbox = ClaudeSandbox::new();
    let marker = sandbox.path().join("inline");
    let inline = hook_settings(&[(
        "UserPromptSubmit",
        &format!("touch {}", shell_quote(&marker.display().to_string())),
    )]);
    let out = output_with_timeout(
        sandbox
            .command(&claude)
            .args(["-p", "--settings", &inline, "hi"]),
        WAIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(marker.exists(), "the inline --settings hook did not run");

    let file_marker = sandbox.path().join("from-file");
    let file = sandbox.path().join("settings.json");
    let settings = hook_settings(&[(
        "UserPromptSubmit",
        &format!("touch {}", shell_quote(&file_marker.display().to_string())),
    )]);
    fs::write(&file, settings).unwrap();
    let out = output_with_timeout(
        sandbox
            .command(&claude)
            .args(["-p", "--settings", &file.display().to_string(), "hi"]),
        WAIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(file_marker.exists(), "the --settings file hook did not run");

    let out = output_with_timeout(
        sandbox
            .command(&claude)
            .args(["-p", "--settings", "/nonexistent/settings.json", "hi"]),
        WAIT,
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("Settings file not found"), "{all}");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_hook_session_start() {
    let Some(cc) = Cc::start("fact_hook_session_start", Opts::default()) else {
        return;
    };
    let start = cc.named("SessionStart").remove(0);
    assert_eq!(start["source"], "startup", "{start}");
    assert!(start["session_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(start["transcript_path"].is_string(), "{start}");
    assert!(start["cwd"].is_string(), "{start}");
    if cc.newer() {
        // 2.1.332 runs SessionStart before its interface is up: keys sent at once can be
        // lost. Once it is on the alternate screen with its footer drawn, they are not.
        cc.wait_screen("the interface", |s| s.contains("shift+tab"));
        wait_until(WAIT, "the alternate screen", || {
            (cc.tmux.display(&cc.pane, "#{alternate_on}") == "1").then_some(())
        });
    }
    // Input is accepted: one Enter submits.
    cc.type_text("right after start");
    cc.keys(&["Enter"]);
    cc.expect_prompt("right after start");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_box_type_ahead() {
    let opts = Opts {
        no_wait: true,
        ..Opts::default()
    };
    let Some(cc) = Cc::start("fact_box_type_ahead", opts) else {
        return;
    };
    // Typed before the box is ready: the text is kept, its Enter may be lost.
    cc.type_text("early text");
    cc.keys(&["Enter"]);
    cc.wait_event("SessionStart", |e| e["hook_event_name"] == "SessionStart");
    let early_submit = cc
        .sandbox
        .api
        .wait_for_prompt(|p| p == "early text", Duration::from_secs(2))
        .is_some();
    eprintln!("the Enter typed before SessionStart submitted: {early_submit}");
    // A second Enter submits the kept text, or does nothing on an empty box.
    cc.enter_expect("early text");
    cc.turn_over(1);
    cc.submit("sentinel");
    assert_eq!(cc.sandbox.api.prompts(), ["early text", "sentinel"]);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_hook_user_prompt_submit() {
    let Some(cc) = Cc::start("fact_hook_user_prompt_submit", Opts::default()) else {
        return;
    };
    let text = (1..=40)
        .map(|i| format!("line {i}"))
        .collect::<Vec<_>>()
        .join("\n");
    cc.type_text("x");
    // Trailing whitespace goes on submit; the rest arrives whole.
    cc.load(&format!("{text}   \n\n"));
    cc.keys(&["Enter"]);
    let event = cc.wait_event("UserPromptSubmit", |e| {
        e["hook_event_name"] == "UserPromptSubmit"
    });
    assert_eq!(event["prompt"].as_str(), Some(text.as_str()));
    cc.expect_prompt(&text);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_hook_stop() {
    let Some(cc) = Cc::start("fact_hook_stop", Opts::default()) else {
        return;
    };
    cc.sandbox
        .api
        .set_reply(|_| Reply::Texts(vec!["First block.".into(), "line 1\nline 2".into()]));
    cc.submit("one");
    let stop = cc.turn_over(1);
    assert_eq!(stop["last_assistant_message"], "line 1\nline 2", "{stop}");
    cc.sandbox
        .api
        .set_reply(|_| Reply::Text("second answer".into()));
    cc.submit("two");
    let stop = cc.turn_over(2);
    assert_eq!(stop["last_assistant_message"], "second answer");
    cc.submit("three");
    cc.turn_over(3);
    assert_eq!(cc.named("Stop").len(), 3, "one Stop per turn");
    // Each Stop names its turn's prompt: the `prompt_id` of its UserPromptSubmit.
    let submits: Vec<Value> = cc.named("UserPromptSubmit");
    let stops: Vec<Value> = cc.named("Stop");
    for (submit, stop) in submits.iter().zip(&stops) {
        assert!(submit["prompt_id"].is_string(), "{submit}");
        assert_eq!(stop["prompt_id"], submit["prompt_id"], "{stop}");
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_hook_stop_failure() {
    let Some(cc) = Cc::start("fact_hook_stop_failure", Opts::default()) else {
        return;
    };
    cc.sandbox.api.set_reply(|_| Reply::Error {
        status: 500,
        kind: "api_error".into(),
        message: "fake 500 for the fact".into(),
    });
    cc.submit("fail please");
    let failure = cc.wait_nth("StopFailure", 1);
    let message = failure["last_assistant_message"].as_str().unwrap_or("");
    assert!(message.contains("fake 500 for the fact"), "{failure}");
    assert_eq!(failure["error"], "server_error", "{failure}");
    cc.wait_status("idle");
    assert!(cc.named("Stop").is_empty(), "an API error gave Stop");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_hook_message_display() {
    let Some(cc) = Cc::start("fact_hook_message_display", Opts::default()) else {
        return;
    };
    cc.sandbox
        .api
        .set_reply(|_| Reply::Text("line 1\nline 2\nline 3".into()));
    cc.submit("stream");
    cc.turn_over(1);
    let events = wait_until(WAIT, "a final MessageDisplay", || {
        let shown = cc.named("MessageDisplay");
        let last = shown.iter().find(|e| e["final"] == true)?["index"].as_u64()?;
        (shown.len() as u64 == last + 1).then_some(shown)
    });
    let mut events = events;
    events.sort_by_key(|e| e["index"].as_u64());
    for e in &events {
        assert!(
            e["turn_id"].is_string() && e["message_id"].is_string(),
            "{e}"
        );
    }
    let text: String = events
        .iter()
        .map(|e| e["delta"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(text, "line 1\nline 2\nline 3");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_message_display_per_paragraph() {
    let Some(cc) = Cc::start("fact_message_display_per_paragraph", Opts::default()) else {
        return;
    };
    // One text block, streamed slowly: two paragraphs, then a long line without a
    // blank line after it.
    let pause = Duration::from_millis(1500);
    cc.sandbox.api.set_reply(move |_| Reply::Paced {
        chunks: vec![
            "first paragraph.\n\n".into(),
            "second paragraph.\n\n".into(),
            "a line that goes ".into(),
            "on and on".into(),
        ],
        pause,
        blocks: false,
    });
    let submitted = Instant::now();
    cc.submit("stream slowly");
    let first = cc.wait_event("the first paragraph's MessageDisplay", |e| {
        e["hook_event_name"] == "MessageDisplay" && e["delta"] == "first paragraph.\n\n"
    });
    let first_at = submitted.elapsed();
    assert!(first["final"] != true, "{first}");
    // The transcript holds nothing of the reply while it streams: its assistant line
    // is written once the message is complete.
    let transcript = PathBuf::from(first["transcript_path"].as_str().unwrap());
    let so_far = fs::read_to_string(&transcript).unwrap_or_default();
    assert!(!so_far.contains("first paragraph"), "{so_far}");
    // The rest of the reply is 3 pauses away: the first paragraph came on its own,
    // before its end.
    let stop = cc.turn_over(1);
    assert!(
        submitted.elapsed() >= first_at + pause * 2,
        "the first paragraph came only at the end ({first_at:?})"
    );
    let mut shown = cc.named("MessageDisplay");
    shown.sort_by_key(|e| e["index"].as_u64());
    let deltas: Vec<&str> = shown.iter().filter_map(|e| e["delta"].as_str()).collect();
    // The unfinished line comes only with the end of the block.
    assert_eq!(
        deltas.concat(),
        "first paragraph.\n\nsecond paragraph.\n\na line that goes on and on"
    );
    assert!(deltas.contains(&"second paragraph.\n\n"), "{deltas:?}");
    let at_end = wait_until(WAIT, "the reply in the transcript", || {
        let text = fs::read_to_string(&transcript).ok()?;
        text.contains("first paragraph").then_some(text)
    });
    assert!(at_end.contains("on and on"));
    assert_eq!(stop["transcript_path"], first["transcript_path"]);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_hook_pre_tool_use() {
    let Some(cc) = Cc::start("fact_hook_pre_tool_use", Opts::default()) else {
        return;
    };
    cc.sandbox.api.set_reply(|_| Reply::BashToolUse {
        command: "echo pre-tool-fact".into(),
    });
    cc.submit("run a tool");
    cc.turn_over(1);
    let pre = cc.wait_event("PreToolUse", |e| e["hook_event_name"] == "PreToolUse");
    assert_eq!(pre["tool_name"], "Bash", "{pre}");
    assert_eq!(pre["tool_input"]["command"], "echo pre-tool-fact", "{pre}");
    let names = cc.event_names();
    let pre_at = names.iter().position(|n| n == "PreToolUse").unwrap();
    let post_at = names.iter().position(|n| n == "PostToolUse").unwrap();
    assert!(pre_at < post_at, "{names:?}");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_hook_notification_permission() {
    let opts = Opts {
        args: vec!["--permission-mode".into(), "default".into()],
        ..Opts::default()
    };
    let Some(cc) = Cc::start("fact_hook_notification_permission", opts) else {
        return;
    };
    let target = cc.sandbox.project_dir().join("perm-file");
    let command = format!("touch {}", target.display());
    cc.sandbox.api.set_reply(move |_| Reply::BashToolUse {
        command: command.clone(),
    });
    cc.submit("make a file");
    let request = cc.wait_event("PermissionRequest", |e| {
        e["hook_event_name"] == "PermissionRequest"
    });
    assert_eq!(request["tool_name"], "Bash", "{request}");
    let registry = cc.wait_status("waiting");
    assert_eq!(registry["waitingFor"], "permission prompt", "{registry}");
    let note = cc.wait_event("Notification permission_prompt", |e| {
        e["hook_event_name"] == "Notification" && e["notification_type"] == "permission_prompt"
    });
    assert!(note["message"].is_string(), "{note}");
    assert!(!target.exists());
    // Enter takes the highlighted "Yes".
    cc.keys(&["Enter"]);
    cc.turn_over(1);
    assert!(target.exists(), "the approved command did not run");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_hook_env() {
    let opts = Opts {
        env: vec![("MYEXPORTED".into(), "from-parent".into())],
        ..Opts::default()
    };
    let Some(cc) = Cc::start("fact_hook_env", opts) else {
        return;
    };
    cc.submit("hello");
    let stop = cc.turn_over(1);
    let env = &stop["_env"];
    assert_eq!(env["CLAUDECODE"], "1", "{env}");
    assert_eq!(env["CLAUDE_CODE_SESSION_ID"], stop["session_id"], "{env}");
    assert_eq!(env["MYEXPORTED"], "from-parent", "{env}");
    assert_eq!(env["TMUX_PANE"], cc.pane.as_str(), "{env}");
}

/// How the prompt of `/compact`'s summary request begins (docs/claude-code.md#compact-command).
const SUMMARY_PROMPT: &str = "CRITICAL: Respond with TEXT ONLY";

/// The fake's answer: a summary in the tags Claude Code asks for, to its summary request.
fn summary_reply(p: &str) -> Reply {
    if p.starts_with(SUMMARY_PROMPT) {
        Reply::Text("<analysis>fake</analysis>\n<summary>FAKE SUMMARY</summary>".into())
    } else {
        Reply::Text(crate::helper::fake_api::default_reply(p))
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_compact_command() {
    let Some(cc) = Cc::start("fact_compact_command", Opts::default()) else {
        return;
    };
    cc.submit("first");
    cc.turn_over(1);
    cc.submit("second");
    let stop = cc.turn_over(2);
    cc.wait_status("idle");
    // The summary is held until the registry was seen busy.
    let release = Arc::new(AtomicBool::new(false));
    let held = Arc::clone(&release);
    cc.sandbox.api.set_reply(move |p| {
        if p.starts_with(SUMMARY_PROMPT) {
            wait_until_or(WAIT, || held.load(Ordering::SeqCst).then_some(()));
        }
        summary_reply(p)
    });
    cc.type_shown("/compact");
    cc.keys(&["Enter"]);
    let pre = cc.wait_event("PreCompact", |e| e["hook_event_name"] == "PreCompact");
    assert_eq!(pre["trigger"], "manual", "{pre}");
    cc.wait_status("busy");
    release.store(true, Ordering::SeqCst);
    let start = cc.wait_event("SessionStart (compact)", |e| {
        e["hook_event_name"] == "SessionStart" && e["source"] == "compact"
    });
    assert_eq!(start["session_id"], stop["session_id"]);
    let post = cc.wait_event("PostCompact", |e| e["hook_event_name"] == "PostCompact");
    assert_eq!(post["session_id"], stop["session_id"]);
    assert!(
        post["compact_summary"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{post}"
    );
    let names = cc.event_names();
    let compact_at = names.iter().position(|n| n == "PreCompact").unwrap();
    let start_at = compact_at
        + names[compact_at..]
            .iter()
            .position(|n| n == "SessionStart")
            .unwrap();
    let post_at = names.iter().position(|n| n == "PostCompact").unwrap();
    assert!(
        start_at < post_at,
        "SessionStart before PostCompact: {names:?}"
    );
    let prompts = cc.sandbox.api.prompts();
    let summaries = prompts
        .iter()
        .filter(|p| p.starts_with(SUMMARY_PROMPT))
        .count();
    assert_eq!(summaries, 1, "one summary request");
    cc.wait_status("idle");
    cc.submit("after");
    cc.turn_over(3);
    assert_eq!(
        cc.named("UserPromptSubmit").len(),
        3,
        "{:?}",
        cc.event_names()
    );
    let names = cc.event_names();
    let stops_after = names[compact_at..].iter().filter(|n| *n == "Stop").count();
    assert_eq!(stops_after, 1, "no Stop for /compact: {names:?}");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_compact_hook_notices() {
    let Some(cc) = Cc::start("fact_compact_hook_notices", Opts::default()) else {
        return;
    };
    cc.submit("first");
    cc.turn_over(1);
    cc.submit("second");
    cc.turn_over(2);
    cc.sandbox.api.set_reply(summary_reply);
    cc.type_shown("/compact");
    cc.keys(&["Enter"]);
    cc.wait_event("PostCompact", |e| e["hook_event_name"] == "PostCompact");
    let notice = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.contains("completed successfully"))
            .map(|l| l.trim().to_owned())
            .collect()
    };
    let screen = cc.wait_screen("the hooks' lines", |s| notice(s).len() >= 2);
    let lines = notice(&screen);
    let hook = format!(
        "[sh {}]",
        shell_quote(&cc.dirs().base.join("hook.sh").display().to_string())
    );
    assert_eq!(
        lines,
        [
            format!("PreCompact {hook} completed successfully"),
            format!("PostCompact {hook} completed successfully"),
        ],
        "{screen}"
    );
    // The compaction's SessionStart ran the same hook, and left nothing on screen.
    assert!(
        cc.named("SessionStart")
            .iter()
            .any(|e| e["source"] == "compact"),
        "{:?}",
        cc.event_names()
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_editor_repaint() {
    let test = "fact_editor_repaint";
    // A user of some standing: on 2.1.332 a fresh install (fewer than three showings of
    // its fullscreen offer) starts in the fullscreen renderer.
    let seasoned = |c: &mut Value| c["fullscreenUpsellSeenCount"] = 3.into();
    let Some(cc) = Cc::start_with(test, ClaudeSandbox::new(), seasoned, Opts::default()) else {
        return;
    };
    cc.ready_box();
    cc.submit("first");
    cc.turn_over(1);
    let banners = |h: &str| h.matches("Claude Code v").count();
    // Typed text on screen: any repaint of the editor runs before it has been drawn.
    let history_now = |cc: &Cc, word: &str| {
        cc.type_shown(word);
        let h = cc.tmux.capture_history(&cc.pane);
        cc.keys(&["C-u"]);
        cc.wait_screen("the word gone", |s| !s.contains(word));
        h
    };
    let alternate = |cc: &Cc| cc.tmux.display(&cc.pane, "#{alternate_on}");
    assert_eq!(
        alternate(&cc),
        "0",
        "the classic renderer, on the main screen"
    );
    let before = history_now(&cc, "before-runs");
    for _ in 0..2 {
        cc.warm_up();
    }
    let after = history_now(&cc, "after-runs");
    let added = banners(&after) - banners(&before);
    if cc.newer() {
        assert_eq!(added, 0, "{after}");
        assert!(!after.contains("Save and close"), "{after}");
    } else {
        assert_eq!(added, 2, "one repaint per editor run:\n{after}");
        assert!(
            after
                .matches("Save and close editor to continue...")
                .count()
                >= 2,
            "{after}"
        );
        assert!(after.contains("first"));
    }

    // The fullscreen renderer, asked for with the variable: the alternate screen from
    // the start, and nothing added by the editor runs.
    let sandbox = cc.stop();
    let opts = Opts {
        env: vec![("CLAUDE_CODE_NO_FLICKER".into(), "1".into())],
        ..Opts::default()
    };
    let Some(cc) = Cc::start_with(test, sandbox, seasoned, opts) else {
        return;
    };
    cc.ready_box();
    cc.wait_screen("the box", |s| s.contains('❯'));
    assert_eq!(alternate(&cc), "1", "fullscreen: on the alternate screen");
    for _ in 0..2 {
        cc.warm_up();
    }
    let after = history_now(&cc, "after-runs");
    assert!(banners(&after) <= 1, "{after}");
    assert!(!after.contains("Save and close"), "{after}");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_transcript() {
    let Some(cc) = Cc::start("fact_transcript", Opts::default()) else {
        return;
    };
    cc.sandbox.api.set_usage(Usage {
        input_tokens: 111,
        output_tokens: 22,
        cache_creation_input_tokens: 333,
        cache_read_input_tokens: 444,
    });
    cc.sandbox
        .api
        .set_reply(|_| Reply::Texts(vec!["block one".into(), "block two".into()]));
    cc.submit("hello transcript");
    let stop = cc.turn_over(1);
    let sid = stop["session_id"].as_str().unwrap();
    let path = PathBuf::from(stop["transcript_path"].as_str().unwrap());
    let cwd = fs::canonicalize(cc.sandbox.project_dir()).unwrap();
    let sanitized: String = cwd
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let expected = cc
        .sandbox
        .home
        .root()
        .join(".claude/projects")
        .join(sanitized)
        .join(format!("{sid}.jsonl"));
    assert_eq!(path, expected);
    let read = || -> Vec<Value> {
        fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let at_stop = read();
    eprintln!(
        "at Stop the transcript had {} lines, {} assistant",
        at_stop.len(),
        at_stop.iter().filter(|l| l["type"] == "assistant").count()
    );
    let lines = wait_until(WAIT, "both assistant lines in the transcript", || {
        let lines = read();
        (lines.iter().filter(|l| l["type"] == "assistant").count() >= 2).then_some(lines)
    });
    assert!(
        lines.iter().any(
            |l| l["type"] == "user" && message_text(&l["message"]).contains("hello transcript")
        ),
        "no user line"
    );
    for l in lines.iter().filter(|l| l["type"] == "user") {
        eprintln!("user line: {}", l["message"]);
    }
    let assistant: Vec<&Value> = lines.iter().filter(|l| l["type"] == "assistant").collect();
    assert_eq!(
        assistant.len(),
        2,
        "one line per content block: {assistant:#?}"
    );
    assert_eq!(assistant[0]["message"]["id"], assistant[1]["message"]["id"]);
    let texts: Vec<String> = assistant
        .iter()
        .map(|l| message_text(&l["message"]))
        .collect();
    assert_eq!(texts, ["block one", "block two"]);
    let usage = &assistant[1]["message"]["usage"];
    eprintln!("transcript usage: {usage}");
    assert_eq!(usage["input_tokens"], 111, "{usage}");
    assert_eq!(usage["cache_creation_input_tokens"], 333, "{usage}");
    assert_eq!(usage["cache_read_input_tokens"], 444, "{usage}");
    assert!(usage["output_tokens"].is_u64(), "{usage}");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_session_id_flag() {
    let id = uuid::Uuid::new_v4().to_string();
    let opts = Opts {
        args: vec!["--session-id".into(), id.clone()],
        ..Opts::default()
    };
    let Some(cc) = Cc::start("fact_session_id_flag", opts) else {
        return;
    };
    let start = cc.named("SessionStart").remove(0);
    assert_eq!(start["session_id"], id.as_str());
    cc.submit("with my id");
    let stop = cc.turn_over(1);
    let request = cc
        .sandbox
        .api
        .wait_for_request(|r| r.prompt == "with my id", WAIT)
        .unwrap();
    assert_eq!(request.session_header.as_deref(), Some(id.as_str()));
    assert!(
        stop["transcript_path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{id}.jsonl"))
    );
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_session_resume() {
    let id = uuid::Uuid::new_v4().to_string();
    let opts = Opts {
        args: vec!["--session-id".into(), id.clone()],
        ..Opts::default()
    };
    let Some(cc) = Cc::start("fact_session_resume", opts) else {
        return;
    };
    cc.submit("first turn");
    cc.turn_over(1);
    let claude = cc.claude.clone();
    let sandbox = cc.stop();

    let opts = Opts {
        args: vec!["--resume".into(), id.clone()],
        ..Opts::default()
    };
    let cc = Cc::start_with("fact_session_resume", sandbox, |_| {}, opts).unwrap();
    let start = cc.wait_event("resume SessionStart", |e| {
        e["hook_event_name"] == "SessionStart" && e["source"] == "resume"
    });
    assert_eq!(start["session_id"], id.as_str());
    cc.submit("second turn");
    let request = cc
        .sandbox
        .api
        .wait_for_request(|r| r.prompt == "second turn", WAIT)
        .unwrap();
    assert_eq!(request.session_header.as_deref(), Some(id.as_str()));
    let body = request.body["messages"].to_string();
    assert!(
        body.contains("first turn") && body.contains("FAKE-REPLY: first turn"),
        "{body}"
    );
    cc.turn_over(2);
    let sandbox = cc.stop();

    let unknown = uuid::Uuid::new_v4().to_string();
    let out = output_with_timeout(
        sandbox
            .command(&claude)
            .args(["-p", "--resume", &unknown, "x"]),
        WAIT,
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("No conversation found with session ID: {unknown}")),
        "{all}"
    );

    let out = output_with_timeout(
        sandbox
            .command(&claude)
            .args(["-p", "--resume", &id, "--fork-session", "forked turn"]),
        WAIT,
    );
    assert!(out.status.success(), "{out:?}");
    let request = sandbox
        .api
        .wait_for_request(|r| r.prompt == "forked turn", WAIT)
        .unwrap();
    let header = request.session_header.clone().unwrap_or_default();
    assert!(
        !header.is_empty() && header != id,
        "fork kept the id {header}"
    );
    let body = request.body["messages"].to_string();
    assert!(body.contains("second turn"), "the fork lost the history");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_clear_new_session() {
    let Some(cc) = Cc::start("fact_clear_new_session", Opts::default()) else {
        return;
    };
    cc.submit("before clear");
    let stop = cc.turn_over(1);
    cc.type_text("/clear");
    cc.keys(&["Enter"]);
    let end = cc.wait_event("SessionEnd clear", |e| {
        e["hook_event_name"] == "SessionEnd" && e["reason"] == "clear"
    });
    assert_eq!(end["session_id"], stop["session_id"]);
    let start = cc.wait_event("SessionStart clear", |e| {
        e["hook_event_name"] == "SessionStart" && e["source"] == "clear"
    });
    assert_ne!(start["session_id"], stop["session_id"]);
    cc.submit("after clear");
    let request = cc
        .sandbox
        .api
        .wait_for_request(|r| r.prompt == "after clear", WAIT)
        .unwrap();
    assert_eq!(
        request.session_header.as_deref(),
        start["session_id"].as_str()
    );
    assert!(
        !request.body["messages"]
            .to_string()
            .contains("before clear")
    );
}

// ---------------------------------------------------------------------------
// The prompt box
// ---------------------------------------------------------------------------

/// What happened to a text loaded into an empty box through Ctrl-G and Enter.
#[derive(Debug, PartialEq)]
enum Fate {
    /// Sent as this prompt.
    Prompt(String),
    /// `/clear` ran (a new session).
    Cleared,
    /// Nothing reached the API.
    Nothing,
}

/// Loads `text` into the (empty) box through Ctrl-G, presses Enter, and finds out
/// what Claude Code did with it: a prompt, a `/clear`, or nothing (a sentinel prompt
/// typed after it shows that nothing else went out in between).
fn fate(cc: &Cc, text: &str, sentinel: &str) -> Fate {
    let prompts = cc.sandbox.api.prompts().len();
    let clears = cc.named("SessionEnd").len();
    let stops = cc.named("Stop").len();
    cc.load(text);
    let new_prompt = || cc.sandbox.api.prompts().get(prompts).cloned();
    let cleared = || cc.named("SessionEnd").len() > clears;
    // A second Enter, if the first seems lost, finds an empty box after a command ran.
    cc.enter(|| new_prompt().is_some() || cleared() || cc.screen().contains("Unknown command"));
    let fate = wait_until_or(Duration::from_secs(5), || {
        if let Some(p) = new_prompt() {
            return Some(Fate::Prompt(p));
        }
        cleared().then_some(Fate::Cleared)
    });
    match &fate {
        Some(Fate::Prompt(_)) => {
            cc.turn_over(stops + 1);
        }
        Some(Fate::Cleared) => {
            // The new session must be up and taking prompts before the next case.
            let starts = cc
                .named("SessionStart")
                .iter()
                .filter(|e| e["source"] == "clear")
                .count();
            wait_until(WAIT, "the SessionStart after /clear", || {
                let n = cc
                    .named("SessionStart")
                    .iter()
                    .filter(|e| e["source"] == "clear")
                    .count();
                (n >= starts.max(1)).then_some(())
            });
            cc.submit(sentinel);
            cc.turn_over(stops + 1);
        }
        _ => {}
    }
    if let Some(fate) = fate {
        return fate;
    }
    // Nothing within 5 s: load a sentinel (it replaces whatever is in the box), which
    // must be the very next prompt.
    cc.load(sentinel);
    cc.enter_expect(sentinel);
    let after: Vec<String> = cc.sandbox.api.prompts()[prompts..].to_vec();
    assert_eq!(after, [sentinel], "before the sentinel");
    cc.turn_over(stops + 1);
    Fate::Nothing
}

fn prompt(s: &str) -> Fate {
    Fate::Prompt(s.to_string())
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_box_leading_slash() {
    let Some(cc) = Cc::start("fact_box_leading_slash", Opts::default()) else {
        return;
    };
    let new = cc.newer();
    let cases: Vec<(&str, Fate)> = vec![
        // The product's escape: a backslash before the first `/` (sent verbatim).
        ("\\/review x", prompt("\\/review x")),
        ("\\/", prompt("\\/")),
        ("  \\/clear y", prompt("  \\/clear y")),
        // An unknown command after a newline is a prompt on both.
        ("\n/hello world", prompt("\n/hello world")),
        // An unknown command at the start: nothing is sent.
        ("/hello world", Fate::Nothing),
        // A path-like start.
        ("/tmp/x is a path", prompt("/tmp/x is a path")),
        // The old escape, a leading space or newline: a prompt on 2.1.197, the command
        // on 2.1.332.
        (
            " /clear y",
            if new {
                Fate::Cleared
            } else {
                prompt(" /clear y")
            },
        ),
        (
            "\n/clear y",
            if new {
                Fate::Cleared
            } else {
                prompt("\n/clear y")
            },
        ),
        // A leading `/` runs the command.
        ("/clear y", Fate::Cleared),
    ];
    let mut got = Vec::new();
    for (i, (text, _)) in cases.iter().enumerate() {
        let fate = fate(&cc, text, &format!("sentinel {i}"));
        eprintln!("{text:?} -> {fate:?}");
        got.push(fate);
    }
    let expected: Vec<&Fate> = cases.iter().map(|(_, f)| f).collect();
    let got: Vec<&Fate> = got.iter().collect();
    assert_eq!(got, expected);
}

/// With `--disable-slash-commands`, a leading `/` is an unknown command: nothing is sent.
#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_box_leading_slash_disabled() {
    let opts = Opts {
        args: vec!["--disable-slash-commands".into()],
        ..Opts::default()
    };
    let Some(cc) = Cc::start("fact_box_leading_slash_disabled", opts) else {
        return;
    };
    let mut got = Vec::new();
    for (i, text) in ["/clear y", "/review x", "\\/review x"].iter().enumerate() {
        let fate = fate(&cc, text, &format!("sentinel {i}"));
        eprintln!("--disable-slash-commands: {text:?} -> {fate:?}");
        got.push(fate);
    }
    assert_eq!(got, [Fate::Nothing, Fate::Nothing, prompt("\\/review x")]);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_box_paste() {
    let Some(cc) = Cc::start("fact_box_paste", Opts::default()) else {
        return;
    };
    cc.ready_box();
    let text = (0..40)
        .map(|i| format!("pasted line {i:02} {}", "y".repeat(40)))
        .collect::<Vec<_>>()
        .join("\n");
    let file = cc.sandbox.path().join("paste.txt");
    fs::write(&file, &text).unwrap();
    cc.tmux
        .run(&["load-buffer", "-b", "facts", &file.display().to_string()]);
    cc.tmux
        .run(&["paste-buffer", "-p", "-b", "facts", "-t", &cc.pane]);
    let screen = cc.wait_screen("the paste", |s| {
        s.contains("[Pasted text #1") || s.contains("pasted line 39")
    });
    eprintln!("the box after the paste:\n{}", screen.trim_end());
    cc.keys(&["Enter"]);
    let got = wait_until_or(Duration::from_secs(3), || {
        cc.sandbox.api.prompts().first().cloned()
    })
    .or_else(|| {
        // An Enter right after a paste can be lost: press it again.
        cc.keys(&["Enter"]);
        wait_until_or(WAIT, || cc.sandbox.api.prompts().first().cloned())
    })
    .expect("the pasted prompt");
    eprintln!(
        "pasted {} bytes, sent {} bytes: {:?}",
        text.len(),
        got.len(),
        got.chars().take(80).collect::<String>()
    );
    if cc.newer() {
        assert_ne!(got, text, "2.1.332 wraps a long paste");
        assert!(
            got.contains("<pasted_content") && got.contains(&text),
            "{got}"
        );
    } else {
        assert_eq!(got, text);
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_box_leading_other() {
    let Some(cc) = Cc::start("fact_box_leading_other", Opts::default()) else {
        return;
    };
    let verbatim = [
        "!ls",
        "#note this",
        "&bg task",
        "?what",
        "@file x",
        "?",
        "!",
        "#",
        "&",
        "  two leading spaces",
    ];
    let mut cases: Vec<(String, Fate)> = verbatim
        .iter()
        .map(|t| (t.to_string(), prompt(t)))
        .collect();
    // Trailing whitespace is trimmed on submit.
    cases.push(("trailing spaces   ".into(), prompt("trailing spaces")));
    // A leading zero-width space: kept on 2.1.197, removed on 2.1.332.
    let zw = if cc.newer() {
        "zero width"
    } else {
        "\u{200B}zero width"
    };
    cases.push(("\u{200B}zero width".into(), prompt(zw)));
    let mut got = Vec::new();
    for (i, (text, _)) in cases.iter().enumerate() {
        let fate = fate(&cc, text, &format!("sentinel {i}"));
        eprintln!("{text:?} -> {fate:?}");
        got.push(fate);
    }
    let expected: Vec<&Fate> = cases.iter().map(|(_, f)| f).collect();
    let got: Vec<&Fate> = got.iter().collect();
    assert_eq!(got, expected);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_box_escape_interrupts() {
    let Some(cc) = Cc::start("fact_box_escape_interrupts", Opts::default()) else {
        return;
    };
    let gate = cc.gate_replies(|p| p == "please wait");
    cc.submit("please wait");
    cc.wait_status("busy");
    cc.keys(&["Escape"]);
    cc.wait_status("idle");
    // No output had arrived: the prompt is back in the box; typed text is appended.
    cc.type_text(" and more");
    cc.enter_expect("please wait and more");
    gate.open();
    cc.turn_over(1);
    let stops = cc.named("Stop");
    assert_eq!(stops.len(), 1, "the interrupted turn gave a Stop");
    assert_eq!(
        stops[0]["last_assistant_message"],
        "FAKE-REPLY: please wait and more"
    );
    assert!(cc.named("StopFailure").is_empty());
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_box_escape_clears() {
    let Some(cc) = Cc::start("fact_box_escape_clears", Opts::default()) else {
        return;
    };
    cc.ready_box();
    cc.type_text("a draft");
    cc.wait_screen("the draft", |s| s.contains("a draft"));
    cc.keys(&["Escape"]);
    // One key sequence at a time: the second Escape after Claude Code saw the first.
    let hint = cc
        .tmux
        .wait_for_screen(&cc.pane, |s| s.contains("again"), Duration::from_secs(3));
    eprintln!("after one Escape: {hint:?}");
    cc.keys(&["Escape"]);
    let cleared =
        cc.tmux
            .wait_for_screen(&cc.pane, |s| !s.contains("a draft"), Duration::from_secs(3));
    if cleared.is_err() {
        // Seen once on 2.1.332: the second Escape, sent right after the hint showed,
        // did nothing. A second pair, spaced the same way, cleared.
        eprintln!("two Escapes did not clear the draft; trying once more");
        cc.keys(&["Escape"]);
        let _ = cc
            .tmux
            .wait_for_screen(&cc.pane, |s| s.contains("again"), Duration::from_secs(3));
        cc.keys(&["Escape"]);
        cc.wait_screen("the draft gone", |s| !s.contains("a draft"));
    }
    cc.type_text("fresh");
    cc.enter_expect("fresh");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_box_lf_newline() {
    let Some(cc) = Cc::start("fact_box_lf_newline", Opts::default()) else {
        return;
    };
    cc.ready_box();
    cc.type_text("first");
    cc.keys(&["C-j"]);
    cc.type_text("second\nthird");
    cc.enter_expect("first\nsecond\nthird");
}

// ---------------------------------------------------------------------------
// Starting Claude Code
// ---------------------------------------------------------------------------

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_startup_dialogs() {
    let test = "fact_startup_dialogs";
    if require_claude(test).is_none() {
        return;
    }
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, Vec<String>, &str); 3] = [
        (
            "trust",
            |c| c["projects"] = serde_json::json!({}),
            vec![],
            "trust this folder",
        ),
        (
            "api key",
            |c| c["customApiKeyResponses"]["approved"] = serde_json::json!([]),
            vec![],
            "Do you want to use this API key?",
        ),
        (
            "bypass permissions",
            |c| {
                c.as_object_mut()
                    .unwrap()
                    .remove("bypassPermissionsModeAccepted");
            },
            vec!["--permission-mode".into(), "bypassPermissions".into()],
            "Bypass Permissions mode",
        ),
    ];
    for (what, edit, args, text) in cases {
        let opts = Opts {
            args,
            no_wait: true,
            ..Opts::default()
        };
        let cc = Cc::start_with(test, ClaudeSandbox::new(), edit, opts).unwrap();
        let screen = cc.wait_screen(what, |s| s.contains(text));
        eprintln!("{what} dialog:\n{screen}");
        let selected = screen
            .lines()
            .find(|l| l.trim_start().starts_with('❯') && !l.contains('─'))
            .unwrap_or("")
            .trim_start_matches([' ', '❯', '\u{a0}'])
            .to_string();
        let expected = match (what, cc.newer()) {
            ("trust", false) => "1. Yes, I trust this folder",
            ("trust", true) => "No, exit",
            ("api key", false) => "2. No (recommended)",
            ("api key", true) => "No (recommended)",
            (_, false) => "1. No, exit",
            (_, true) => "No, exit",
        };
        assert_eq!(
            selected.trim(),
            expected,
            "{what}: the option Enter would take"
        );
        assert!(
            cc.named("SessionStart").is_empty(),
            "{what}: SessionStart before the dialog"
        );
    }
    // With every key set, no dialog: SessionStart fires and a prompt goes through.
    let cc = Cc::start(test, Opts::default()).unwrap();
    cc.submit("no dialogs");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_trust_key() {
    let test = "fact_trust_key";
    if require_claude(test).is_none() {
        return;
    }
    let sandbox = ClaudeSandbox::new();
    let repo = sandbox.path().join("repo");
    let sub = repo.join("sub");
    fs::create_dir_all(&sub).unwrap();
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&repo)
        .status()
        .unwrap();
    assert!(git.success());
    // Reached through a symlink: the key is the realpath of the git top level.
    let link = sandbox.path().join("link");
    std::os::unix::fs::symlink(&repo, &link).unwrap();
    let top = fs::canonicalize(&repo).unwrap().display().to_string();
    let opts = Opts {
        cwd: Some(link.join("sub")),
        ..Opts::default()
    };
    let cc = Cc::start_with(
        test,
        sandbox,
        move |c| {
            c["projects"] = serde_json::json!({ top: {"hasTrustDialogAccepted": true} });
        },
        opts,
    )
    .unwrap();
    cc.submit("trusted through the top level");
    assert!(!cc.screen().contains("trust this folder"));
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_permission_mode_default() {
    let Some(cc) = Cc::start("fact_permission_mode_default", Opts::default()) else {
        return;
    };
    let screen = cc.wait_screen("the footer", |s| {
        s.contains("shift+tab") || s.contains("? for")
    });
    eprintln!("start screen:\n{screen}");
    let target = cc.sandbox.project_dir().join("pm-file");
    let command = format!("touch {}", target.display());
    cc.sandbox.api.set_reply(move |_| Reply::BashToolUse {
        command: command.clone(),
    });
    cc.submit("make a file");
    let submit = cc.wait_event("UserPromptSubmit", |e| {
        e["hook_event_name"] == "UserPromptSubmit"
    });
    eprintln!("permission_mode: {}", submit["permission_mode"]);
    let outcome = wait_until(WAIT, "a dialog or the end of the turn", || {
        if !cc.named("PermissionRequest").is_empty() {
            return Some("dialog");
        }
        (!cc.named("Stop").is_empty()).then_some("ran")
    });
    eprintln!(
        "Bash touch in the default mode: {outcome}, file exists: {}\n{}",
        target.exists(),
        cc.screen()
    );
    if cc.newer() {
        assert_eq!(submit["permission_mode"], "auto");
        assert!(screen.contains("auto mode on"), "{screen}");
        assert_eq!(outcome, "ran");
        assert!(target.exists());
    } else {
        assert_eq!(submit["permission_mode"], "default");
        assert_eq!(outcome, "dialog");
        assert!(!target.exists());
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_offline_env() {
    let Some(cc) = Cc::start("fact_offline_env", Opts::default()) else {
        return;
    };
    cc.submit("hello offline");
    cc.turn_over(1);
    let other = cc.sandbox.api.other_requests();
    assert!(
        other.iter().all(|r| r == "HEAD /"),
        "requests other than POST /v1/messages: {other:?}"
    );
    let kinds: Vec<RequestKind> = cc.sandbox.api.requests().iter().map(|r| r.kind).collect();
    assert!(kinds.contains(&RequestKind::Prompt), "{kinds:?}");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_print_mode() {
    let Some(claude) = require_claude("fact_print_mode") else {
        return;
    };
    let sandbox = ClaudeSandbox::new();
    let out = output_with_timeout(
        sandbox.command(&claude).args([
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "hello print",
        ]),
        WAIT,
    );
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let init = lines
        .iter()
        .find(|l| l["type"] == "system" && l["subtype"] == "init")
        .expect("init line");
    let result = lines.last().expect("a result line");
    assert_eq!(result["type"], "result", "{result}");
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["result"], "FAKE-REPLY: hello print");
    assert_eq!(result["session_id"], init["session_id"]);
    assert!(lines.iter().any(|l| l["type"] == "assistant"));

    sandbox.api.set_reply(|_| Reply::Error {
        status: 529,
        kind: "overloaded_error".into(),
        message: "fake overload".into(),
    });
    let out = output_with_timeout(
        sandbox.command(&claude).args([
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "fail",
        ]),
        WAIT,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let result: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .next_back()
        .expect("result line");
    assert_eq!(result["is_error"], true, "{result}");
    assert_eq!(result["api_error_status"], 529, "{result}");
    assert!(
        result["result"]
            .as_str()
            .unwrap_or("")
            .contains("fake overload")
    );

    // A variadic list option swallows the prompt.
    let out = output_with_timeout(
        sandbox
            .command(&claude)
            .args(["-p", "--allowedTools", "Bash", "the prompt"]),
        WAIT,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Input must be provided"),
        "{out:?}"
    );
}

/// `claude ARGS…` in print mode with `prompt` on its stdin, in the sandbox's project.
fn print_with_stdin(
    sandbox: &ClaudeSandbox,
    claude: &Path,
    args: &[&str],
    prompt: &str,
) -> std::process::Output {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("printf '%s' \"$PROMPT\" | \"$0\" \"$@\"")
        .arg(claude)
        .args(args)
        .current_dir(sandbox.project_dir())
        .env_clear()
        .envs(sandbox.env())
        .env("PROMPT", prompt);
    output_with_timeout(&mut cmd, WAIT)
}

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A print-mode turn of `claude` with the team's MCP server (`claude-editor-hook mcp`,
/// the counterpart under test) as `--mcp-config` server `team`, whose `env` is
/// `server_env`; the fake API answers `prompt` with `reply`. Returns stdout and every
/// request.
fn mcp_turn(
    claude: &Path,
    sandbox: &ClaudeSandbox,
    state: &Path,
    server_env: Value,
    reply: Reply,
    prompt: &str,
) -> (String, Vec<crate::helper::fake_api::RecordedRequest>) {
    let config = serde_json::json!({"mcpServers": {"team": {
        "type": "stdio", "command": crate::fixture::HOOK, "args": ["mcp"], "env": server_env}}});
    let reply_once = reply.clone();
    sandbox.api.set_reply(move |_| reply_once.clone());
    let out = output_with_timeout(
        sandbox
            .command(claude)
            .env("CLAUDE_AGENTS_DIR", state)
            .env("CLAUDE_EDITOR_HOOK_BOARD", state.join("board"))
            .arg("-p")
            .arg(format!("--mcp-config={config}"))
            .arg("--allowedTools=mcp__team")
            .arg(prompt),
        WAIT,
    );
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        sandbox.api.requests(),
    )
}

fn team_tool_use(tool: &str, input: Value) -> Reply {
    Reply::ToolUse {
        name: format!("mcp__team__{tool}"),
        input,
    }
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_print_mode_session() {
    let Some(claude) = require_claude("fact_print_mode_session") else {
        return;
    };
    let sandbox = ClaudeSandbox::new();
    sandbox.api.set_usage(Usage {
        input_tokens: 11,
        output_tokens: 7,
        cache_creation_input_tokens: 5,
        cache_read_input_tokens: 3,
    });
    let id = "0b6f2c1e-4a5d-4e8f-9c3b-2d1a0e9f8c7b";
    let base = ["-p", "--output-format", "stream-json", "--verbose"];
    let first = [&base[..], &["--session-id", id]].concat();
    let out = print_with_stdin(&sandbox, &claude, &first, "first prompt from stdin");
    assert!(out.status.success(), "{out:?}");
    let lines = json_lines(&out);
    let result = lines.last().expect("a result line");
    assert_eq!(result["type"], "result", "{result}");
    assert_eq!(result["result"], "FAKE-REPLY: first prompt from stdin");
    assert_eq!(result["session_id"], id);
    assert_eq!(result["usage"]["input_tokens"], 11, "{result}");
    assert_eq!(result["usage"]["output_tokens"], 7, "{result}");
    assert_eq!(
        result["usage"]["cache_creation_input_tokens"], 5,
        "{result}"
    );
    assert_eq!(result["usage"]["cache_read_input_tokens"], 3, "{result}");
    assert!(result["total_cost_usd"].is_number(), "{result}");

    let next = [&base[..], &["--resume", id]].concat();
    let out = print_with_stdin(&sandbox, &claude, &next, "second prompt");
    assert!(out.status.success(), "{out:?}");
    let result = json_lines(&out).pop().expect("a result line");
    assert_eq!(result["result"], "FAKE-REPLY: second prompt");
    assert_eq!(
        result["session_id"], id,
        "print mode resumes under the same id"
    );
    let req = sandbox
        .api
        .wait_for_request(
            |r| r.kind == RequestKind::Prompt && r.prompt == "second prompt",
            WAIT,
        )
        .expect("the second prompt reached the API");
    let body = req.body["messages"].to_string();
    assert!(body.contains("first prompt from stdin"), "{body}");
    assert!(
        body.contains("FAKE-REPLY: first prompt from stdin"),
        "{body}"
    );
    assert_eq!(req.session_header.as_deref(), Some(id));

    // A permission mode for unattended turns, written with `=` (docs/run.md).
    let mode = [
        &base[..],
        &["--resume", id, "--permission-mode=acceptEdits"],
    ]
    .concat();
    let out = print_with_stdin(&sandbox, &claude, &mode, "third prompt");
    assert!(out.status.success(), "{out:?}");
    let result = json_lines(&out).pop().expect("a result line");
    assert_eq!(result["result"], "FAKE-REPLY: third prompt");
    assert_eq!(result["session_id"], id);
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_mcp_config_flag() {
    let Some(claude) = require_claude("fact_mcp_config_flag") else {
        return;
    };
    let sandbox = ClaudeSandbox::new();
    let state = sandbox.path().join("state");
    let (out, requests) = mcp_turn(
        &claude,
        &sandbox,
        &state,
        serde_json::json!({}),
        team_tool_use("team_status", serde_json::json!({})),
        "how is the team",
    );
    let first = requests
        .iter()
        .find(|r| r.kind == RequestKind::Prompt)
        .expect("the prompt's request");
    let offered: Vec<&str> = first.body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let body = first.body.to_string();
    let deferred = claude_version(&claude) >= NEWER;
    for tool in ceh::mcp::TOOL_NAMES {
        let name = format!("mcp__team__{tool}");
        // 2.1.332 defers MCP tools behind ToolSearch: named in the request, not in
        // `tools`; a tool_use naming one still runs (below).
        assert_eq!(
            offered.contains(&name.as_str()),
            !deferred,
            "{name} in `tools` {offered:?}"
        );
        assert!(body.contains(&name), "{name} is named in the request");
    }
    if deferred {
        assert!(offered.contains(&"ToolSearch"), "{offered:?}");
    }
    assert!(
        requests.iter().any(|r| r.kind == RequestKind::ToolResult),
        "the tool was called and its result sent"
    );
    assert!(out.starts_with("FAKE-TOOL-DONE: "), "{out}");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_mcp_server_env() {
    let Some(claude) = require_claude("fact_mcp_server_env") else {
        return;
    };
    let sandbox = ClaudeSandbox::new();
    let state = sandbox.path().join("state");
    let init = Command::new(crate::fixture::HOOK)
        .args(["board", "--board"])
        .arg(state.join("board"))
        .args(["init", "facts"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    // The board comes from Claude Code's own environment, the author from the config's
    // `env`: both reach the server.
    mcp_turn(
        &claude,
        &sandbox,
        &state,
        serde_json::json!({"CLAUDE_EDITOR_HOOK_AGENT": "from-config"}),
        team_tool_use(
            "board_note",
            serde_json::json!({"text": "env reached the server"}),
        ),
        "note it",
    );
    let notes = Command::new(crate::fixture::HOOK)
        .args(["board", "--board"])
        .arg(state.join("board"))
        .args(["notes", "--json"])
        .output()
        .unwrap();
    let notes: Value = serde_json::from_slice(&notes.stdout).unwrap();
    assert_eq!(notes["notes"][0]["author"], "from-config", "{notes}");
    assert_eq!(notes["notes"][0]["text"], "env reached the server");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_mcp_tool_result() {
    let Some(claude) = require_claude("fact_mcp_tool_result") else {
        return;
    };
    let sandbox = ClaudeSandbox::new();
    let state = sandbox.path().join("state");
    let (_, requests) = mcp_turn(
        &claude,
        &sandbox,
        &state,
        serde_json::json!({}),
        team_tool_use("team_status", serde_json::json!({})),
        "status",
    );
    let result = requests
        .iter()
        .find(|r| r.kind == RequestKind::ToolResult)
        .expect("a tool result");
    // The structured content, as JSON, not the content's text table.
    let doc: Value = serde_json::from_str(&result.tool_results[0])
        .unwrap_or_else(|_| panic!("not JSON: {}", result.tool_results[0]));
    assert_eq!(doc["version"], 1);
    assert!(doc["agents"].is_array(), "{doc}");

    // A tool error: its text, marked as an error.
    let (_, requests) = mcp_turn(
        &claude,
        &sandbox,
        &state,
        serde_json::json!({}),
        team_tool_use(
            "board_status",
            serde_json::json!({"board": "/nonexistent/b"}),
        ),
        "board",
    );
    let result = requests
        .iter()
        .rev()
        .find(|r| r.kind == RequestKind::ToolResult)
        .expect("a tool result");
    assert!(
        result.tool_results[0].contains("no board (at /nonexistent/b/board.db)"),
        "{:?}",
        result.tool_results
    );
    let messages = result.body["messages"].as_array().unwrap();
    let block = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_array())
        .and_then(|c| c.iter().find(|b| b["type"] == "tool_result"))
        .expect("the tool_result block");
    assert_eq!(block["is_error"], true, "{block}");
}

#[cfg_attr(
    missing_claude,
    ignore = "needs Claude Code and tmux: see README, Tests"
)]
#[test]
fn fact_status_line_cost() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("status.sh");
    write_exec(
        &script,
        &format!(
            "#!/bin/sh\nf={}/$(date +%s%N)-$$\ncat > \"$f.tmp\"\nmv \"$f.tmp\" \"$f.json\"\necho STATUS-LINE-SHOWN\n",
            shell_quote(&dir.path().display().to_string())
        ),
    );
    let opts = Opts {
        status_line: Some(format!("sh {}", shell_quote(&script.display().to_string()))),
        ..Opts::default()
    };
    let Some(cc) = Cc::start("fact_status_line_cost", opts) else {
        return;
    };
    // Every payload the status-line command got, oldest first.
    let payloads = || -> Vec<Value> {
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .filter_map(|p| serde_json::from_str(&fs::read_to_string(p).ok()?).ok())
            .collect()
    };
    let cost = |v: &Value| v["cost"]["total_cost_usd"].as_f64();
    cc.sandbox.api.set_usage(Usage {
        input_tokens: 1000,
        output_tokens: 2000,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
    });
    cc.submit("hello status line");
    let stop = cc.turn_over(1);
    let first = wait_until(WAIT, "a status-line payload with a cost", || {
        payloads()
            .into_iter()
            .rfind(|p| cost(p).is_some_and(|c| c > 0.0))
    });
    assert_eq!(first["session_id"], stop["session_id"], "{first:#}");
    assert!(
        cc.tmux.capture(&cc.pane).contains("STATUS-LINE-SHOWN"),
        "the command's output is the status line"
    );
    // The figure is the session's running total.
    cc.submit("second");
    cc.turn_over(2);
    let was = cost(&first).unwrap();
    let second = wait_until(WAIT, "a higher cost after the second turn", || {
        payloads()
            .into_iter()
            .rfind(|p| cost(p).is_some_and(|c| c > was))
    });
    eprintln!("cost after one turn {was}, after two {:?}", cost(&second));
}
