//! Agents on their own git worktree and branch (`agent-wrap --worktree`), and the verbs
//! `diff`, `merge`, `sync` and `forget`, in real temporary git repositories with real
//! `agent-wrap` hosts.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::fixture::*;
use crate::helper::wait::{output_with_timeout, wait_until};

/// Runs `git ARGS` in `dir` and returns its stdout; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout).trim_end().to_owned()
}

/// A repository with two committed files on `main` at `<env>/repo`.
pub fn repo(env: &Env) -> PathBuf {
    let dir = env.dir.path().join("repo");
    fs::create_dir(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["config", "user.name", "Test User"]);
    git(&dir, &["config", "user.email", "test@example.invalid"]);
    fs::write(dir.join("a.txt"), "one\n").unwrap();
    fs::write(dir.join("b.txt"), "two\n").unwrap();
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-q", "-m", "start"]);
    dir
}

pub fn commit_all(dir: &Path, msg: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
}

/// Starts `agent-wrap NAME ARGS…` in `cwd` and waits until it is idle.
fn agent_in(env: &Env, cwd: &Path, name: &str, args: &[&str]) -> Agent {
    let log = env.dir.path().join(format!("agent-{name}.log"));
    let out = fs::File::create(&log).unwrap();
    let child = env
        .cmd(WRAP)
        .current_dir(cwd)
        .arg(name)
        .args(args)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let agent = Agent { child };
    let pid = agent.pid();
    wait_until(SECS, &format!("agent {name} to be idle"), || {
        env.status(name)
            .filter(|s| s["status"] == "idle" && s["pid"] == pid)
            .map(|_| ())
            .or_else(|| {
                let log = fs::read_to_string(&log).unwrap_or_default();
                assert!(!log.contains("agent-wrap: "), "agent-wrap failed: {log}");
                None
            })
    });
    agent
}

/// `agent-wrap ARGS…` in `cwd` that is expected to fail at once.
fn wrap_fails(env: &Env, cwd: &Path, args: &[&str]) -> String {
    let out = output_with_timeout(env.cmd(WRAP).current_dir(cwd).args(args), SECS);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    text(&out.stderr)
}

/// `claude-editor-hook ARGS…` in `cwd`.
fn verb(env: &Env, cwd: &Path, args: &[&str]) -> Output {
    output_with_timeout(
        env.cmd(HOOK).current_dir(cwd).args(args),
        Duration::from_secs(30),
    )
}

fn verb_ok(env: &Env, cwd: &Path, args: &[&str]) -> String {
    let out = verb(env, cwd, args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn verb_fails(env: &Env, cwd: &Path, args: &[&str]) -> String {
    let out = verb(env, cwd, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// The files `diff NAME --stat` lists.
fn stat_files(env: &Env, cwd: &Path, name: &str) -> Vec<String> {
    let out = verb_ok(env, cwd, &["diff", name, "--stat"]);
    let mut files: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(f, _)| f.trim().to_owned())
        .collect();
    files.sort();
    files
}

fn worktree_of(env: &Env, name: &str) -> PathBuf {
    let status = env.status(name).expect("a status file");
    PathBuf::from(
        status["worktree"]["path"]
            .as_str()
            .expect("a worktree path"),
    )
}

/// The agent's row of `status --json`.
fn status_row(env: &Env, name: &str) -> Value {
    let out = verb_ok(env, env.dir.path(), &["status", "--json"]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    doc["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
        .expect("the agent in status")
}

/// Stops the agent's host as `kill` would (SIGTERM) and waits for it.
fn stop(mut agent: Agent) {
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    agent.wait_exit(SECS);
}

/// An exec command that writes `new.txt` (the prompt) and appends to `a.txt`.
const WRITER: &str = "cat > new.txt; echo more >> a.txt; echo wrote";

#[test]
fn an_exec_agent_on_a_worktree_leaves_the_main_checkout_alone_and_diff_shows_its_files() {
    let env = Env::new();
    let repo = repo(&env);
    let agent = agent_in(&env, &repo, "coder", &["--worktree", "--exec", WRITER]);

    let wt = worktree_of(&env, "coder");
    let status = env.status("coder").unwrap();
    assert_eq!(status["worktree"]["branch"], "agent/coder");
    assert_eq!(status["worktree"]["base"], "main");
    // A predictable private place outside the checkout.
    let root = env.state.join("worktrees");
    assert!(wt.starts_with(&root), "{}", wt.display());
    assert!(!wt.starts_with(&repo));
    assert_eq!(
        fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        git(&wt, &["symbolic-ref", "--short", "HEAD"]),
        "agent/coder"
    );

    let (out, after) = env.run_hook(b"@coder hello from the task");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (head, body) = head_and_body(&after);
    assert!(
        head.starts_with("[@coder · task ") && head.ends_with(" · 2 files changed on agent/coder]"),
        "{head}"
    );
    assert_eq!(text(&body), "wrote\n");

    // The work is in the worktree, and only there.
    assert_eq!(
        fs::read_to_string(wt.join("new.txt")).unwrap(),
        "hello from the task"
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert!(!repo.join("new.txt").exists());
    assert_eq!(fs::read_to_string(repo.join("a.txt")).unwrap(), "one\n");

    assert_eq!(stat_files(&env, &repo, "coder"), ["a.txt", "new.txt"]);
    let diff = verb_ok(&env, &repo, &["diff", "coder"]);
    assert!(
        diff.contains("+more") && diff.contains("+hello from the task"),
        "{diff}"
    );
    assert!(!diff.contains('\x1b'), "no colour when not on a terminal");
    // On a terminal (a pty from util-linux `script`), the diff is in colour.
    assert!(
        crate::helper::claude::find_on_path("script").is_some(),
        "this test needs util-linux `script` for a pty"
    );
    let on_tty = output_with_timeout(
        env.cmd("script").current_dir(&repo).args([
            "-qec",
            &format!("{HOOK} diff coder"),
            "/dev/null",
        ]),
        SECS,
    );
    assert!(on_tty.status.success(), "{}", text(&on_tty.stderr));
    assert!(
        text(&on_tty.stdout).contains("\x1b[32mmore"),
        "colour on a terminal: {:?}",
        text(&on_tty.stdout)
    );
    // Uncommitted work is shown, and the agent's own index is left as it was.
    assert_eq!(git(&wt, &["diff", "--cached", "--name-only"]), "");

    let row = status_row(&env, "coder");
    assert_eq!(row["worktree"]["branch"], "agent/coder");
    assert_eq!(row["worktree"]["ahead"], 0);
    assert_eq!(row["worktree"]["behind"], 0);
    let table = verb_ok(&env, &repo, &["status"]);
    assert!(table.contains("agent/coder ↑0 ↓0 vs main"), "{table}");

    // A live agent's worktree is not removed.
    let refused = verb_fails(&env, &repo, &["forget", "coder", "--worktree"]);
    assert!(refused.contains("is running"), "{refused}");

    // merge: the uncommitted work is committed naming the agent and its task, and
    // brought into main.
    let task = env.done_files()[0]["task_id"].as_str().unwrap().to_owned();
    let merged = verb_ok(&env, &repo, &["merge", "coder"]);
    assert!(
        merged.contains("committed @coder's uncommitted changes"),
        "{merged}"
    );
    assert!(merged.contains("merged agent/coder into main"), "{merged}");
    assert!(merged.contains("2 files changed"), "{merged}");
    assert_eq!(
        fs::read_to_string(repo.join("new.txt")).unwrap(),
        "hello from the task"
    );
    assert_eq!(
        fs::read_to_string(repo.join("a.txt")).unwrap(),
        "one\nmore\n"
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    let log = git(&repo, &["log", "--format=%B", "-2", "main"]);
    assert!(
        log.contains("Merge agent/coder (@coder) into main"),
        "{log}"
    );
    let work = git(&wt, &["log", "--format=%B", "-1"]);
    assert!(
        work.contains("@coder: uncommitted work on agent/coder"),
        "{work}"
    );
    assert!(work.contains(&task), "the commit names the task: {work}");
    assert!(stat_files(&env, &repo, "coder").is_empty());
    let again = verb_ok(&env, &repo, &["merge", "coder"]);
    assert!(again.contains("nothing to merge"), "{again}");

    // Everything is merged: forget removes the worktree and the branch.
    stop(agent);
    let forgot = verb_ok(&env, &repo, &["forget", "coder", "--worktree"]);
    assert!(forgot.contains("removed worktree"), "{forgot}");
    assert!(!wt.exists());
    assert_eq!(git(&repo, &["branch", "--list", "agent/coder"]), "");
    assert!(env.status("coder").is_none(), "the agent's state is gone");
    let gone = verb_fails(&env, &repo, &["diff", "coder"]);
    assert!(gone.contains("has no worktree"), "{gone}");
}

#[test]
fn a_conflicting_merge_changes_nothing_and_lists_the_conflicting_files() {
    let env = Env::new();
    let repo = repo(&env);
    let _agent = agent_in(
        &env,
        &repo,
        "coder",
        &[
            "--worktree",
            "--exec",
            "echo agent > a.txt; echo agent > b.txt",
        ],
    );
    let wt = worktree_of(&env, "coder");
    let (out, _) = env.run_hook(b"@coder change a and b");
    assert_eq!(out.status.code(), Some(0));
    // Meanwhile main changes the same two files.
    fs::write(repo.join("a.txt"), "main\n").unwrap();
    fs::write(repo.join("b.txt"), "main\n").unwrap();
    commit_all(&repo, "main's change");
    let main_head = git(&repo, &["rev-parse", "HEAD"]);
    let wt_head = git(&wt, &["rev-parse", "HEAD"]);

    let err = verb_fails(&env, &repo, &["merge", "coder"]);
    assert!(
        err.contains("would conflict in 2 files: a.txt, b.txt"),
        "{err}"
    );
    assert!(err.contains("Nothing was changed"), "{err}");
    // Both sides exactly as they were: no merge in progress, no commit, no file touched.
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), main_head);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert!(!repo.join(".git/MERGE_HEAD").exists());
    assert_eq!(fs::read_to_string(repo.join("a.txt")).unwrap(), "main\n");
    assert_eq!(git(&wt, &["rev-parse", "HEAD"]), wt_head);
    assert_eq!(fs::read_to_string(wt.join("a.txt")).unwrap(), "agent\n");
    assert_eq!(
        git(&wt, &["status", "--porcelain"]),
        " M a.txt\n M b.txt",
        "the agent's work is still uncommitted"
    );

    // sync follows the same rule: the agent's branch conflicts with main.
    commit_all(&wt, "agent's change");
    let wt_head = git(&wt, &["rev-parse", "HEAD"]);
    let err = verb_fails(&env, &repo, &["sync", "coder"]);
    assert!(
        err.contains("would conflict in 2 files: a.txt, b.txt"),
        "{err}"
    );
    assert_eq!(git(&wt, &["rev-parse", "HEAD"]), wt_head);
    assert_eq!(git(&wt, &["status", "--porcelain"]), "");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), main_head);
}

#[test]
fn merge_refuses_a_dirty_main_checkout_only_where_the_merge_would_touch_it() {
    let env = Env::new();
    let repo = repo(&env);
    let _agent = agent_in(
        &env,
        &repo,
        "coder",
        &["--worktree", "--exec", "echo agent >> b.txt"],
    );
    let (out, _) = env.run_hook(b"@coder change b");
    assert_eq!(out.status.code(), Some(0));
    let wt = worktree_of(&env, "coder");

    fs::write(repo.join("b.txt"), "my own edit\n").unwrap();
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let err = verb_fails(&env, &repo, &["merge", "coder"]);
    assert!(
        err.contains("uncommitted changes in 1 file the merge would change: b.txt"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(repo.join("b.txt")).unwrap(),
        "my own edit\n"
    );
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        git(&wt, &["status", "--porcelain"]),
        " M b.txt",
        "nothing committed"
    );

    // An unrelated uncommitted file does not stand in the way, and stays as it was.
    fs::write(repo.join("b.txt"), "two\n").unwrap();
    fs::write(repo.join("notes.txt"), "mine\n").unwrap();
    let merged = verb_ok(&env, &repo, &["merge", "coder"]);
    assert!(merged.contains("1 file changed"), "{merged}");
    assert_eq!(
        fs::read_to_string(repo.join("b.txt")).unwrap(),
        "two\nagent\n"
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), "?? notes.txt");
}

#[test]
fn a_squash_merge_into_another_branch_is_one_commit_and_leaves_nothing_unmerged() {
    let env = Env::new();
    let repo = repo(&env);
    git(&repo, &["branch", "release"]);
    let agent = agent_in(
        &env,
        &repo,
        "coder",
        &["--worktree", "--exec", "echo x > x.txt"],
    );
    let wt = worktree_of(&env, "coder");
    let (out, _) = env.run_hook(b"@coder first");
    assert_eq!(out.status.code(), Some(0));
    commit_all(&wt, "first");
    fs::write(wt.join("y.txt"), "y\n").unwrap();

    let merged = verb_ok(
        &env,
        &repo,
        &["merge", "coder", "--squash", "--into", "release"],
    );
    assert!(
        merged.contains("squash-merged agent/coder into release"),
        "{merged}"
    );
    assert_eq!(git(&repo, &["rev-list", "--count", "main..release"]), "1");
    assert_eq!(
        git(&repo, &["show", "--format=", "--name-only", "release"]),
        "x.txt\ny.txt"
    );
    // The main checkout (on main) was not touched.
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert!(!repo.join("x.txt").exists());
    // The agent's diff is against main, its base, still.
    assert_eq!(stat_files(&env, &repo, "coder"), ["x.txt", "y.txt"]);

    stop(agent);
    // Its work is in release, not in main (its base): forget still refuses.
    let err = verb_fails(&env, &repo, &["forget", "coder", "--worktree"]);
    assert!(
        err.contains("commit(s) on agent/coder that main does not have"),
        "{err}"
    );
}

#[test]
fn sync_brings_the_bases_new_commits_into_the_agents_branch() {
    let env = Env::new();
    let repo = repo(&env);
    let _agent = agent_in(
        &env,
        &repo,
        "coder",
        &["--worktree", "--exec", "echo agent > c.txt"],
    );
    let wt = worktree_of(&env, "coder");
    let (out, _) = env.run_hook(b"@coder add c");
    assert_eq!(out.status.code(), Some(0));
    fs::write(repo.join("m.txt"), "from main\n").unwrap();
    commit_all(&repo, "main moves on");
    assert_eq!(status_row(&env, "coder")["worktree"]["behind"], 1);

    let synced = verb_ok(&env, &repo, &["sync", "coder"]);
    assert!(synced.contains("brought main into agent/coder"), "{synced}");
    assert!(synced.contains("1 file changed"), "{synced}");
    assert_eq!(fs::read_to_string(wt.join("m.txt")).unwrap(), "from main\n");
    // The agent's uncommitted work is untouched by the sync.
    assert_eq!(git(&wt, &["status", "--porcelain"]), "?? c.txt");
    let row = status_row(&env, "coder");
    assert_eq!(row["worktree"]["behind"], 0);
    assert_eq!(
        row["worktree"]["ahead"], 0,
        "a fast-forward: the agent had no commits"
    );
    let again = verb_ok(&env, &repo, &["sync", "coder"]);
    assert!(again.contains("up to date"), "{again}");
    assert_eq!(stat_files(&env, &repo, "coder"), ["c.txt"]);
}

#[test]
fn a_restarted_or_crashed_agent_gets_the_same_worktree_and_branch_back() {
    let env = Env::new();
    let repo = repo(&env);
    let args = ["--worktree", "--exec", "echo again >> log.txt; pwd"];
    let agent = agent_in(&env, &repo, "coder", &args);
    let wt = worktree_of(&env, "coder");
    let (_, after) = env.run_hook(b"@coder one");
    // The exec driver runs in the worktree.
    assert_eq!(
        text(&head_and_body(&after).1).trim(),
        fs::canonicalize(&wt).unwrap().display().to_string()
    );
    commit_all(&wt, "one");
    agent.signal(nix::sys::signal::Signal::SIGKILL);
    drop(agent);

    // The runtime state is lost as in a reboot: the worktree record is elsewhere.
    fs::remove_dir_all(env.state.join("agents/coder")).unwrap();
    let agent = agent_in(&env, &repo, "coder", &args);
    assert_eq!(worktree_of(&env, "coder"), wt);
    assert_eq!(
        git(&wt, &["symbolic-ref", "--short", "HEAD"]),
        "agent/coder"
    );
    let (_, after) = env.run_hook(b"@coder two");
    assert!(
        head_and_body(&after)
            .0
            .contains("1 file changed on agent/coder")
    );
    assert_eq!(
        fs::read_to_string(wt.join("log.txt")).unwrap(),
        "again\nagain\n"
    );
    drop(agent);

    // A worktree directory deleted by hand comes back from its branch, commits intact.
    git(
        &repo,
        &["worktree", "remove", "--force", &wt.display().to_string()],
    );
    let _agent = agent_in(&env, &repo, "coder", &args);
    assert_eq!(fs::read_to_string(wt.join("log.txt")).unwrap(), "again\n");
    assert_eq!(
        git(&wt, &["symbolic-ref", "--short", "HEAD"]),
        "agent/coder"
    );
}

#[test]
fn forget_refuses_while_work_would_be_lost_and_removes_it_otherwise() {
    let env = Env::new();
    let repo = repo(&env);
    let agent = agent_in(
        &env,
        &repo,
        "coder",
        &["--worktree", "--exec", "echo x > x.txt"],
    );
    let wt = worktree_of(&env, "coder");
    let (out, _) = env.run_hook(b"@coder write x");
    assert_eq!(out.status.code(), Some(0));
    stop(agent);

    let err = verb_fails(&env, &repo, &["forget", "coder", "--worktree"]);
    assert!(err.contains("would lose 1 uncommitted file(s)"), "{err}");
    assert!(err.contains("x.txt"), "{err}");
    assert!(wt.join("x.txt").exists());

    commit_all(&wt, "x");
    let err = verb_fails(&env, &repo, &["forget", "coder", "--worktree"]);
    assert!(
        err.contains("1 commit(s) on agent/coder that main does not have"),
        "{err}"
    );
    assert!(wt.exists());

    // Without --worktree the agent's state goes and its worktree stays.
    let kept = verb_ok(&env, &repo, &["forget", "coder"]);
    assert!(kept.contains("kept its worktree"), "{kept}");
    assert!(wt.join("x.txt").exists());
    assert!(env.status("coder").is_none());

    let forced = verb_ok(&env, &repo, &["forget", "coder", "--worktree", "--force"]);
    assert!(forced.contains("removed worktree"), "{forced}");
    assert!(!wt.exists());
    assert_eq!(git(&repo, &["branch", "--list", "agent/coder"]), "");

    // An agent that changed nothing is forgotten without --force.
    let agent = agent_in(&env, &repo, "idle", &["--worktree", "--exec", "true"]);
    let idle_wt = worktree_of(&env, "idle");
    stop(agent);
    verb_ok(&env, &repo, &["forget", "idle", "--worktree"]);
    assert!(!idle_wt.exists());
}

#[test]
fn bad_input_gets_a_clear_error() {
    let env = Env::new();
    let repo = repo(&env);

    let plain = env.dir.path().join("plain");
    fs::create_dir(&plain).unwrap();
    let err = wrap_fails(&env, &plain, &["coder", "--worktree", "--exec", "true"]);
    assert!(err.contains("is not inside a git repository"), "{err}");

    git(&repo, &["branch", "agent/taken"]);
    let err = wrap_fails(&env, &repo, &["taken", "--worktree", "--exec", "true"]);
    assert!(err.contains("branch agent/taken already exists"), "{err}");

    let err = wrap_fails(
        &env,
        &repo,
        &["coder", "--worktree", "--base", "nope", "--exec", "true"],
    );
    assert!(
        err.contains("--base nope: no such branch or commit"),
        "{err}"
    );

    let out = output_with_timeout(
        env.cmd(WRAP)
            .current_dir(&repo)
            .args(["coder", "--base", "main", "--exec", "true"]),
        SECS,
    );
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(
        text(&out.stderr).contains("--worktree"),
        "--base needs --worktree"
    );

    git(&repo, &["checkout", "-q", "--detach"]);
    let err = wrap_fails(&env, &repo, &["coder", "--worktree", "--exec", "true"]);
    assert!(err.contains("HEAD is detached"), "{err}");
    assert!(err.contains("--base"), "{err}");
    // With a base named, a detached HEAD is fine.
    let _agent = agent_in(
        &env,
        &repo,
        "coder",
        &["--worktree", "--base", "main", "--exec", "echo c > c.txt"],
    );
    let (out, _) = env.run_hook(b"@coder c");
    assert_eq!(out.status.code(), Some(0));
    let err = verb_fails(&env, &repo, &["merge", "coder"]);
    assert!(
        err.contains("detached HEAD") && err.contains("--into"),
        "{err}"
    );

    let err = verb_fails(&env, &repo, &["diff", "nobody"]);
    assert!(err.contains("agent @nobody has no worktree"), "{err}");
    let err = verb_fails(&env, &repo, &["forget", "nobody"]);
    assert!(err.contains("no agent @nobody"), "{err}");
    let err = verb_fails(&env, &repo, &["diff", "Bad/Name"]);
    assert!(err.contains("invalid agent name"), "{err}");
}

#[test]
fn without_worktree_an_agent_works_where_it_was_started() {
    let env = Env::new();
    let repo = repo(&env);
    let _agent = agent_in(&env, &repo, "plain", &["--exec", "echo x > x.txt; pwd"]);
    let (_, after) = env.run_hook(b"@plain go");
    let (head, body) = head_and_body(&after);
    assert!(!head.contains("changed"), "{head}");
    assert_eq!(
        text(&body).trim(),
        fs::canonicalize(&repo).unwrap().display().to_string()
    );
    assert!(repo.join("x.txt").exists());
    assert!(env.status("plain").unwrap().get("worktree").is_none());
    assert!(status_row(&env, "plain")["worktree"].is_null());
}

// The real Claude Code, hosted on a worktree.

mod claude {
    use super::*;
    use crate::helper::claude::{ClaudeSandbox, require_claude};
    use crate::helper::fake_api::{RecordedRequest, Reply, RequestKind};
    use crate::helper::tmux::{TmuxServer, require_tmux};

    const CLAUDE_WAIT: Duration = Duration::from_secs(60);

    struct Team {
        env: Env,
        sandbox: ClaudeSandbox,
        tmux: TmuxServer,
        claude: PathBuf,
        /// Each hosted agent's pane, for a failure to show.
        panes: Vec<(String, String)>,
    }

    impl Team {
        /// A sandboxed Claude Code whose project dir is a git repository, and a state dir
        /// whose worktrees it trusts.
        fn new(test: &str) -> Option<Team> {
            let claude = require_claude(test)?;
            require_tmux(test)?;
            let env = Env::new();
            let sandbox = ClaudeSandbox::new();
            let project = sandbox.project_dir().to_path_buf();
            git(&project, &["init", "-q", "-b", "main"]);
            git(&project, &["config", "user.name", "Test User"]);
            git(&project, &["config", "user.email", "test@example.invalid"]);
            fs::write(project.join("README"), "project\n").unwrap();
            commit_all(&project, "start");
            Some(Team {
                env,
                sandbox,
                tmux: TmuxServer::new(),
                claude,
                panes: Vec::new(),
            })
        }

        /// Makes agent `name`'s worktree (as an exec agent, stopped at once) and marks
        /// it trusted in Claude Code's config, so no trust dialog waits in the pane.
        fn prepare_worktree(&self, name: &str, extra: &[&str]) -> PathBuf {
            let mut args = vec!["--worktree"];
            args.extend(extra);
            args.extend(["--exec", "true"]);
            let agent = agent_in(&self.env, self.sandbox.project_dir(), name, &args);
            stop(agent);
            let wt = fs::canonicalize(worktree_of(&self.env, name)).unwrap();
            self.trust(&wt);
            wt
        }

        /// Marks `dir` trusted in Claude Code's config (docs/claude-code.md#trust-key).
        fn trust(&self, dir: &Path) {
            self.sandbox.home.update_config(|config| {
                config["projects"][dir.display().to_string()] = serde_json::json!({
                    "hasTrustDialogAccepted": true,
                    "hasCompletedProjectOnboarding": true,
                    "projectOnboardingSeenCount": 1,
                    "allowedTools": [],
                });
            });
        }

        /// Starts `agent-wrap NAME ARGS… --claude CLAUDE` in its own tmux session and
        /// waits until its Claude Code is ready.
        fn host(&mut self, name: &str, args: &[&str]) -> String {
            let mut vars = self.sandbox.env();
            vars.push((
                "CLAUDE_AGENTS_DIR".into(),
                self.env.state.display().to_string(),
            ));
            let trace = self.sandbox.path().join(format!("trace-{name}.log"));
            vars.push(("AGENT_WRAP_DEBUG".into(), trace.display().to_string()));
            let mut cmd = vec![WRAP.to_owned(), name.to_owned()];
            cmd.extend(args.iter().map(|a| a.to_string()));
            cmd.extend(["--claude".into(), self.claude.display().to_string()]);
            // The tool call writes a file: no permission prompt for it.
            cmd.extend([
                "--".into(),
                "--permission-mode".into(),
                "bypassPermissions".into(),
            ]);
            let project = self.sandbox.project_dir().to_path_buf();
            let pane = self.tmux.new_session(name, &project, &vars, &cmd);
            let (env, tmux) = (&self.env, &self.tmux);
            wait_until(
                CLAUDE_WAIT,
                &format!("@{name}'s Claude Code to start"),
                || {
                    env.status(name)
                        .filter(|s| s["status"] == "idle" && s["driver"] == "claude")
                        .map(|_| ())
                        .or_else(|| {
                            assert!(
                                !tmux.pane_dead(&pane),
                                "agent-wrap died:\n{}",
                                tmux.capture_history(&pane)
                            );
                            None
                        })
                },
            );
            self.panes.push((name.to_owned(), pane.clone()));
            pane
        }

        fn session_of(&self, name: &str) -> String {
            self.env.status(name).unwrap()["claude_session_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }

        fn ask(&self, name: &str, prompt: &str) -> (String, String) {
            let (mut hook, file) = self.env.spawn_hook(format!("@{name} {prompt}").as_bytes());
            let status =
                crate::helper::wait::wait_until_or(CLAUDE_WAIT, || hook.try_wait().unwrap());
            let Some(status) = status else {
                let _ = hook.kill();
                panic!(
                    "@{name} did not answer {prompt:?}; screens:\n{}",
                    self.screens()
                );
            };
            assert!(status.success());
            let (head, body) = head_and_body(&fs::read(file).unwrap());
            if !head.starts_with(&format!("[@{name} · task ")) {
                panic!("{head}\nscreens:\n{}", self.screens());
            }
            (head, text(&body))
        }

        /// Every agent's screen and host trace, for a failure to show.
        fn screens(&self) -> String {
            let screens: Vec<String> = self
                .panes
                .iter()
                .map(|(n, p)| {
                    let trace = self.sandbox.path().join(format!("trace-{n}.log"));
                    let trace = fs::read_to_string(trace).unwrap_or_default();
                    format!("@{n}:\n{}\ntrace:\n{trace}", self.tmux.capture(p))
                })
                .collect();
            screens.join("\n")
        }

        /// The prompt request that carried `prompt`.
        fn request_for(&self, prompt: &str) -> RecordedRequest {
            self.sandbox
                .api
                .requests()
                .into_iter()
                .find(|r| r.kind == RequestKind::Prompt && r.prompt == prompt)
                .unwrap_or_else(|| panic!("no request for {prompt:?}"))
        }
    }

    #[cfg_attr(
        missing_claude,
        ignore = "needs Claude Code and tmux: see README, Tests"
    )]
    #[test]
    fn a_hosted_claude_on_a_worktree_runs_there_and_its_bash_tool_writes_there() {
        let Some(mut team) =
            Team::new("a_hosted_claude_on_a_worktree_runs_there_and_its_bash_tool_writes_there")
        else {
            return;
        };
        let wt = team.prepare_worktree("coder", &[]);
        team.sandbox.api.set_reply(|prompt| {
            if prompt.contains("write the file") {
                Reply::BashToolUse {
                    command: "pwd > from-claude.txt && echo written".into(),
                }
            } else {
                Reply::Text(format!("FAKE-REPLY: {prompt}"))
            }
        });
        team.host("coder", &["--worktree"]);
        let (head, body) = team.ask("coder", "write the file");
        assert_eq!(body, "FAKE-TOOL-DONE: written");
        assert!(
            head.ends_with(" · 1 file changed on agent/coder]"),
            "{head}"
        );
        // Claude Code's working directory was the worktree: `pwd` wrote it, there.
        assert_eq!(
            fs::read_to_string(wt.join("from-claude.txt"))
                .unwrap()
                .trim(),
            wt.display().to_string()
        );
        let project = team.sandbox.project_dir();
        assert!(!project.join("from-claude.txt").exists());
        assert_eq!(git(project, &["status", "--porcelain"]), "");
        assert_eq!(stat_files(&team.env, project, "coder"), ["from-claude.txt"]);
    }

    #[cfg_attr(
        missing_claude,
        ignore = "needs Claude Code and tmux: see README, Tests"
    )]
    #[test]
    fn a_fork_starts_with_the_originals_conversation_and_they_part_ways() {
        let Some(mut team) =
            Team::new("a_fork_starts_with_the_originals_conversation_and_they_part_ways")
        else {
            return;
        };
        let orig_wt = team.prepare_worktree("orig", &[]);
        team.host("orig", &["--worktree"]);
        let (_, body) = team.ask("orig", "remember the word alpha");
        assert_eq!(body, "FAKE-REPLY: remember the word alpha");
        let orig_session = team.session_of("orig");

        // The original's uncommitted work goes with the fork, and stays in the original.
        fs::write(orig_wt.join("draft.txt"), "half done\n").unwrap();
        // Worktrees of one repository are siblings, named after their agents.
        let fork_wt = orig_wt.parent().unwrap().join("forky");
        team.trust(&fork_wt);
        team.host("forky", &["--fork", "orig", "--worktree"]);
        assert_eq!(
            fs::canonicalize(worktree_of(&team.env, "forky")).unwrap(),
            fork_wt
        );
        assert_eq!(
            fs::read_to_string(fork_wt.join("draft.txt")).unwrap(),
            "half done\n"
        );
        assert_eq!(git(&fork_wt, &["status", "--porcelain"]), "?? draft.txt");
        assert_eq!(git(&orig_wt, &["status", "--porcelain"]), "?? draft.txt");
        let fork_session = team.session_of("forky");
        assert_ne!(
            fork_session, orig_session,
            "the fork is a session of its own"
        );
        let (_, body) = team.ask("forky", "what was the word");
        assert_eq!(body, "FAKE-REPLY: what was the word");
        let first = team.request_for("what was the word");
        let carried = first.body["messages"].to_string();
        assert!(
            carried.contains("remember the word alpha"),
            "the fork's first request carries the original's turns: {carried}"
        );
        assert_eq!(first.session_header.as_deref(), Some(fork_session.as_str()));

        let (_, body) = team.ask("orig", "and now");
        assert_eq!(body, "FAKE-REPLY: and now");
        let next = team.request_for("and now");
        let orig_context = next.body["messages"].to_string();
        assert!(orig_context.contains("remember the word alpha"));
        assert!(
            !orig_context.contains("what was the word"),
            "the original does not see the fork's turn: {orig_context}"
        );
        assert_eq!(team.session_of("orig"), orig_session);
        assert_eq!(
            git(&fork_wt, &["symbolic-ref", "--short", "HEAD"]),
            "agent/forky"
        );
        let status = team.env.status("forky").unwrap();
        assert_eq!(status["worktree"]["base"], "agent/orig");
    }
}
