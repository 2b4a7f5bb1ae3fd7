//! The team board (`claude-editor-hook board …`): exactly-once claims under contention
//! and SIGKILLs, dependencies, leases, bad input, privacy and durability.
//!
//! The contention tests run real worker processes: this test binary re-executes itself
//! as `board::worker_process`, which claims and completes tasks through the library,
//! against one real SQLite database.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixture::*;
use crate::helper::wait::{output_with_timeout, wait_until};

const WORKER_ENV: &str = "BOARD_TEST_WORKER";

/// Runs `claude-editor-hook board --board <dir> ARGS…`.
fn board(env: &Env, dir: &Path, args: &[&str]) -> Output {
    output_with_timeout(
        env.cmd(HOOK)
            .arg("board")
            .arg("--board")
            .arg(dir)
            .args(args),
        Duration::from_secs(60),
    )
}

fn ok(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn json(out: Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

fn new_board(env: &Env, goal: &str) -> PathBuf {
    let dir = env.dir.path().join("board");
    ok(board(env, &dir, &["init", goal]));
    dir
}

fn tasks_by_id(env: &Env, dir: &Path) -> HashMap<String, Value> {
    let list = json(board(env, dir, &["list", "--json"]));
    list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_owned(), t.clone()))
        .collect()
}

/// Writes a tasks.json of `n` independent tasks (the seed's shape).
fn bulk(env: &Env, dir: &Path, n: usize) {
    let tasks: Vec<Value> = (0..n)
        .map(|i| serde_json::json!({"id": format!("k{i}"), "description": format!("task {i}"), "priority": 1 + (i % 5)}))
        .collect();
    let file = env.dir.path().join("tasks.json");
    fs::write(
        &file,
        serde_json::to_vec(&serde_json::json!({ "tasks": tasks })).unwrap(),
    )
    .unwrap();
    let out = ok(board(env, dir, &["add", "--from", file.to_str().unwrap()]));
    assert_eq!(out.lines().count(), n);
}

/// A small random number generator (xorshift), seeded per process.
fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed | 1;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n.max(1)
    }
}

/// One worker process of the contention tests (started by them; does nothing alone).
#[test]
#[ignore = "a worker process of the contention tests, which start it"]
fn worker_process() {
    use ceh::board::{Board, BoardPath, ClaimRequest, Holder, WaitEnd, claim_wait};
    let Ok(worker) = std::env::var(WORKER_ENV) else {
        return;
    };
    let dir = std::env::var("BOARD_TEST_DIR").unwrap();
    let work_ms: u64 = std::env::var("BOARD_TEST_WORK_MS")
        .unwrap()
        .parse()
        .unwrap();
    let mut board = Board::open(&BoardPath::resolve(Some(&dir)).unwrap()).unwrap();
    board.set_worker(Some(&worker)).unwrap();
    // Half the workers hold their claims by a lock, like hosted agents; half by a lease.
    let _lock;
    let holder = match std::env::var("BOARD_TEST_LOCK") {
        Ok(path) => {
            _lock = ceh::state::HostLock::acquire(Path::new(&path))
                .unwrap()
                .unwrap();
            Holder::Host {
                pid: std::process::id() as i32,
                lock: PathBuf::from(path),
            }
        }
        Err(_) => {
            let ms = std::env::var("BOARD_TEST_LEASE_MS")
                .unwrap()
                .parse()
                .unwrap();
            Holder::Lease(Duration::from_millis(ms))
        }
    };
    let req = ClaimRequest {
        worker: worker.clone(),
        roles: vec![],
        holder,
    };
    let mut random = rng(std::process::id() as u64 * 2_654_435_761);
    loop {
        let claimed = match board.claim(&req).unwrap() {
            Some(c) => c,
            None => match claim_wait(&mut board, &req, None).unwrap() {
                Some(WaitEnd::Claimed(c)) => *c,
                _ => break,
            },
        };
        if work_ms > 0 {
            std::thread::sleep(Duration::from_millis(random(work_ms + 1)));
        }
        match board.done(&claimed.task.id, &format!("done by {worker}")) {
            Ok(_) => println!("DONE {} {worker}", claimed.task.id),
            // A worker slower than its lease loses the claim; the board says so.
            Err(e) => {
                let e = format!("{e:#}");
                assert!(
                    e.contains("is already done") || e.contains(", not by "),
                    "{e}"
                );
                println!("LOST {} {worker}", claimed.task.id);
            }
        }
    }
}

fn spawn_worker(
    env: &Env,
    dir: &Path,
    name: &str,
    work_ms: u64,
    lease_ms: u64,
    lock: Option<&Path>,
) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "board::worker_process",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("CLAUDE_AGENTS_DIR", &env.state)
    .env(WORKER_ENV, name)
    .env("BOARD_TEST_DIR", dir)
    .env("BOARD_TEST_WORK_MS", work_ms.to_string())
    .env("BOARD_TEST_LEASE_MS", lease_ms.to_string())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(lock) = lock {
        cmd.env("BOARD_TEST_LOCK", lock);
    }
    cmd.spawn().unwrap()
}

/// The `DONE id worker` lines of finished or killed workers.
fn done_lines(children: Vec<Child>, deadline: Duration) -> Vec<(String, String)> {
    let start = Instant::now();
    let mut lines = Vec::new();
    for mut child in children {
        let left = deadline.saturating_sub(start.elapsed());
        let status = wait_until(left, "a worker to finish", || child.try_wait().unwrap());
        let out = child.wait_with_output().unwrap();
        let stdout = text(&out.stdout);
        assert!(
            status.success() || status.code().is_none(),
            "worker failed: {status}\n{stdout}\n{}",
            text(&out.stderr)
        );
        for l in stdout.lines() {
            // libtest prints `test board::worker_process ... ` before the first line.
            if let Some(rest) = l.find("DONE ").map(|at| &l[at + 5..]) {
                let (id, w) = rest.split_once(' ').unwrap();
                lines.push((id.to_owned(), w.to_owned()));
            }
        }
    }
    lines
}

#[test]
fn thirty_two_workers_claim_two_thousand_tasks_exactly_once() {
    let env = Env::new();
    let dir = new_board(&env, "contention");
    bulk(&env, &dir, 2000);
    let workers: Vec<Child> = (0..32)
        .map(|i| spawn_worker(&env, &dir, &format!("w{i}"), 0, 600_000, None))
        .collect();
    let lines = done_lines(workers, Duration::from_secs(240));
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (id, _) in &lines {
        *count.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "completed more than once: {twice:?}");
    assert_eq!(count.len(), 2000, "every task completed");
    let tasks = tasks_by_id(&env, &dir);
    for (id, t) in &tasks {
        assert_eq!(t["status"], "done", "{id}");
        assert_eq!(t["attempts"], 1, "{id} was claimed more than once: {t}");
        let by = format!("done by {}", t["worker"].as_str().unwrap());
        assert_eq!(t["result"], by.as_str(), "{id}");
    }
    let workers_used: std::collections::HashSet<_> = lines.iter().map(|(_, w)| w).collect();
    assert!(
        workers_used.len() > 1,
        "the claims were spread over workers"
    );
}

#[test]
fn sigkilled_claimers_lose_nothing_and_their_claims_come_back() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let env = Env::new();
    let dir = new_board(&env, "chaos");
    bulk(&env, &dir, 2000);
    let locks = env.dir.path().join("locks");
    fs::create_dir(&locks).unwrap();
    let mut random = rng(std::process::id() as u64);
    let mut spawned = 0;
    let spawn = |spawned: &mut usize| {
        *spawned += 1;
        let name = format!("w{spawned}");
        let lock = locks.join(&name);
        let by_lock = (*spawned).is_multiple_of(2);
        spawn_worker(
            &env,
            &dir,
            &name,
            4,
            1000,
            by_lock.then_some(lock.as_path()),
        )
    };
    let mut live: Vec<Child> = (0..32).map(|_| spawn(&mut spawned)).collect();
    let mut finished = Vec::new();
    let mut kills = 0;
    // Kill a random worker now and then, starting a fresh one in its place, while the
    // board is being worked (a random pause between kills is the chaos, not a wait).
    while kills < 24 {
        std::thread::sleep(Duration::from_millis(20 + random(60)));
        let i = random(live.len() as u64) as usize;
        let mut victim = live.swap_remove(i);
        if victim.try_wait().unwrap().is_some() {
            finished.push(victim);
            break; // the board is done: nothing left to kill
        }
        kill(Pid::from_raw(victim.id() as i32), Signal::SIGKILL).unwrap();
        kills += 1;
        finished.push(victim);
        live.push(spawn(&mut spawned));
    }
    finished.extend(live);
    let lines = done_lines(finished, Duration::from_secs(240));
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (id, _) in &lines {
        *count.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "completed more than once: {twice:?}");
    let tasks = tasks_by_id(&env, &dir);
    assert_eq!(tasks.len(), 2000);
    let not_done: Vec<_> = tasks.values().filter(|t| t["status"] != "done").collect();
    assert!(not_done.is_empty(), "lost tasks: {not_done:?}");
    let retried: Vec<_> = tasks
        .values()
        .filter(|t| t["attempts"].as_i64() > Some(1))
        .collect();
    assert!(
        kills == 0 || !retried.is_empty(),
        "{kills} workers were killed holding claims, yet no task was claimed twice"
    );
    for t in retried {
        let reason = t["reason"].as_str().unwrap_or("");
        assert!(
            reason.contains("lease of") || reason.contains("exited while it held"),
            "a reclaimed task says why its claim came back: {t}"
        );
    }
}

#[test]
fn of_eight_racing_claim_processes_exactly_one_wins() {
    let env = Env::new();
    let dir = new_board(&env, "race");
    ok(board(&env, &dir, &["add", "the only task"]));
    let racers: Vec<Child> = (0..8)
        .map(|i| {
            env.cmd(HOOK)
                .args([
                    "board",
                    "--board",
                    dir.to_str().unwrap(),
                    "claim",
                    &format!("r{i}"),
                    "--json",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = racers
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let winners: Vec<&Output> = outs.iter().filter(|o| o.status.code() == Some(0)).collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        outs.iter().map(|o| text(&o.stderr)).collect::<Vec<_>>()
    );
    let losers = outs.iter().filter(|o| o.status.code() == Some(4)).count();
    assert_eq!(losers, 7, "the others find it claimed (exit 4)");
    let claimed: Value = serde_json::from_slice(&winners[0].stdout).unwrap();
    assert_eq!(claimed["task"]["id"], "t1");
    assert_eq!(claimed["goal"], "race");
}

#[test]
fn a_diamond_and_a_chain_are_claimed_only_after_their_dependencies() {
    let env = Env::new();
    let dir = new_board(&env, "deps");
    // Diamond: t1 -> (t2, t3) -> t4. Chain: t5 -> t6 -> t7.
    for args in [
        vec!["add", "top", "-p", "2"],
        vec!["add", "left", "-d", "t1"],
        vec!["add", "right", "-d", "t1"],
        vec!["add", "bottom", "-d", "t2", "-d", "t3", "-p", "1"],
        vec!["add", "c1", "-p", "5"],
        vec!["add", "c2", "-d", "t5", "-p", "1"],
        vec!["add", "c3", "-d", "t6", "-p", "1"],
    ] {
        ok(board(&env, &dir, &args));
    }
    let mut order = Vec::new();
    let mut done_at: HashMap<String, usize> = HashMap::new();
    loop {
        let out = board(&env, &dir, &["claim", "solo", "--json"]);
        if out.status.code() == Some(3) {
            break;
        }
        let c = json(out);
        let id = c["task"]["id"].as_str().unwrap().to_owned();
        // Every dependency is done, and its result is handed over.
        for d in c["task"]["deps"].as_array().unwrap() {
            assert!(
                done_at.contains_key(d.as_str().unwrap()),
                "{id} before its dependency {d}"
            );
        }
        let results: Vec<&str> = c["deps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["result"].as_str().unwrap())
            .collect();
        for r in &results {
            assert!(r.starts_with("result of "), "{r}");
        }
        // Another worker cannot take anything that is not ready meanwhile.
        let other = board(&env, &dir, &["claim", "other", "--json"]);
        if other.status.code() == Some(0) {
            let o = json(other);
            let oid = o["task"]["id"].as_str().unwrap().to_owned();
            for d in o["task"]["deps"].as_array().unwrap() {
                assert!(
                    done_at.contains_key(d.as_str().unwrap()),
                    "{oid} before {d}"
                );
            }
            ok(board(&env, &dir, &["release", &oid, "--worker", "other"]));
        }
        ok(board(
            &env,
            &dir,
            &["done", &id, &format!("result of {id}"), "--worker", "solo"],
        ));
        done_at.insert(id.clone(), order.len());
        order.push(id);
    }
    assert_eq!(order.len(), 7, "{order:?}");
    // Priority decides among ready tasks: t1 (p2) before t5 (p5).
    assert_eq!(order[0], "t1");
    let report = json(board(&env, &dir, &["report", "--json"]));
    let ids: Vec<&str> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let pos = |id: &str| ids.iter().position(|i| *i == id).unwrap();
    assert!(
        pos("t1") < pos("t2")
            && pos("t3") < pos("t4")
            && pos("t5") < pos("t6")
            && pos("t6") < pos("t7")
    );
}

#[test]
fn a_failed_dependency_blocks_its_dependents_with_the_reason() {
    let env = Env::new();
    let dir = new_board(&env, "blocking");
    ok(board(&env, &dir, &["add", "build"]));
    ok(board(&env, &dir, &["add", "test", "-d", "t1"]));
    ok(board(&env, &dir, &["add", "ship", "-d", "t2"]));
    ok(board(&env, &dir, &["add", "docs"]));
    let c = json(board(&env, &dir, &["claim", "w", "--json"]));
    assert_eq!(c["task"]["id"], "t1");
    ok(board(
        &env,
        &dir,
        &["fail", "t1", "the compiler crashed", "--worker", "w"],
    ));
    let tasks = tasks_by_id(&env, &dir);
    for id in ["t2", "t3"] {
        assert_eq!(
            tasks[id]["blocked"], "blocked by t1 failed: the compiler crashed",
            "{id}: {}",
            tasks[id]
        );
    }
    let status = json(board(&env, &dir, &["status", "--json"]));
    assert_eq!(
        (status["blocked"].as_u64(), status["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(status["queue"], serde_json::json!(["t4"]));
    let report = json(board(&env, &dir, &["report", "--json"]));
    assert_eq!(
        report["failures"][0]["blocks"],
        serde_json::json!(["t2", "t3"])
    );
    // t4 is still claimable; after it, nothing can become ready: claim --wait exits 3.
    assert_eq!(
        json(board(&env, &dir, &["claim", "w", "--json"]))["task"]["id"],
        "t4"
    );
    ok(board(&env, &dir, &["done", "t4", "ok", "--worker", "w"]));
    let out = board(&env, &dir, &["claim", "w", "--wait"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("nothing left for w"),
        "{}",
        text(&out.stderr)
    );
    // A retry unblocks the dependents.
    ok(board(&env, &dir, &["retry", "t1"]));
    let tasks = tasks_by_id(&env, &dir);
    assert!(tasks["t2"]["blocked"].is_null());
    assert_eq!(tasks["t1"]["ready"], true);
}

#[test]
fn claim_wait_wakes_when_the_last_dependency_is_done() {
    let env = Env::new();
    let dir = new_board(&env, "wake");
    ok(board(&env, &dir, &["add", "first"]));
    ok(board(&env, &dir, &["add", "second", "-d", "t1"]));
    assert_eq!(
        json(board(&env, &dir, &["claim", "a", "--json"]))["task"]["id"],
        "t1"
    );
    let waiter = env
        .cmd(HOOK)
        .args([
            "board",
            "--board",
            dir.to_str().unwrap(),
            "claim",
            "b",
            "--wait",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The waiter is blocked (nothing is ready for it), then a `done` releases it.
    ok(board(
        &env,
        &dir,
        &["done", "t1", "made it", "--worker", "a"],
    ));
    let out = waiter.wait_with_output().unwrap();
    let c: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stderr)));
    assert_eq!(c["task"]["id"], "t2");
    assert_eq!(c["deps"][0]["result"], "made it");
}

#[test]
fn an_expired_lease_returns_the_task_and_a_renewal_keeps_it() {
    let env = Env::new();
    let dir = new_board(&env, "leases");
    ok(board(&env, &dir, &["add", "slow"]));
    ok(board(&env, &dir, &["add", "kept"]));
    // Expiry: a waiter gets the task once the lease ends, woken by its lease timer.
    let c = json(board(
        &env,
        &dir,
        &["claim", "sleepy", "--lease", "300ms", "--json"],
    ));
    assert_eq!(c["task"]["id"], "t1");
    let c = json(board(
        &env,
        &dir,
        &["claim", "keeper", "--lease", "1s", "--json"],
    ));
    assert_eq!(c["task"]["id"], "t2");
    let first_until = c["task"]["lease_until_us"].as_u64().unwrap();
    let waiter = env
        .cmd(HOOK)
        .args([
            "board",
            "--board",
            dir.to_str().unwrap(),
            "claim",
            "eager",
            "--wait",
            "--timeout",
            "60s",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Renewal: the keeper renews until its first lease would long have ended.
    let mut renewed_until = first_until;
    wait_until(
        Duration::from_secs(30),
        "the first lease to be long over",
        || {
            ok(board(&env, &dir, &["renew", "t2", "--worker", "keeper"]));
            let t = json(board(&env, &dir, &["show", "t2", "--json"]));
            assert_eq!(t["status"], "claimed", "a renewed claim holds: {t}");
            assert_eq!(t["worker"], "keeper");
            renewed_until = t["lease_until_us"].as_u64().unwrap();
            (ceh::time::now_us() > first_until + 500_000).then_some(())
        },
    );
    assert!(renewed_until > first_until);
    let out = waiter.wait_with_output().unwrap();
    let c: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stderr)));
    assert_eq!(
        c["task"]["id"], "t1",
        "the expired task came back, not the renewed one"
    );
    assert_eq!(c["task"]["attempts"], 2, "the lapsed attempt is counted");
    assert_eq!(c["task"]["reason"], "the lease of sleepy ran out");
    // The late worker can no longer finish what it lost.
    let late = board(&env, &dir, &["done", "t1", "late", "--worker", "sleepy"]);
    assert_eq!(late.status.code(), Some(1));
    assert!(
        text(&late.stderr).contains("claimed by eager, not by sleepy"),
        "{}",
        text(&late.stderr)
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_costs_only_itself() {
    let env = Env::new();
    let dir = new_board(&env, "bad input");
    ok(board(&env, &dir, &["add", "one"]));
    let err = |out: Output| {
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        text(&out.stderr)
    };
    // Unknown id.
    let e = err(board(&env, &dir, &["show", "t99"]));
    assert!(e.contains("no task \"t99\""), "{e}");
    let e = err(board(&env, &dir, &["add", "two", "-d", "t42"]));
    assert!(
        e.contains("depends on t42, which is not on the board"),
        "{e}"
    );
    // A cycle refuses the whole import.
    let cyclic = env.dir.path().join("cycle.json");
    fs::write(
        &cyclic,
        br#"[{"id":"a","title":"A","dependencies":["c"]},{"id":"b","title":"B","dependencies":["a"]},{"id":"c","title":"C","dependencies":["b"]}]"#,
    )
    .unwrap();
    let e = err(board(
        &env,
        &dir,
        &["add", "--from", cyclic.to_str().unwrap()],
    ));
    assert!(
        e.contains("refusing a dependency cycle: a -> c -> b -> a"),
        "{e}"
    );
    assert_eq!(
        tasks_by_id(&env, &dir).len(),
        1,
        "nothing of the cyclic import was added"
    );
    // A claim by the wrong worker.
    ok(board(&env, &dir, &["claim", "alice"]));
    let e = err(board(
        &env,
        &dir,
        &["done", "t1", "mine", "--worker", "bob"],
    ));
    assert!(e.contains("claimed by alice, not by bob"), "{e}");
    let e = err(board(&env, &dir, &["done", "t1", "mine"]));
    assert!(e.contains("pass --worker alice"), "{e}");
    // A huge result is refused and the claim stays.
    let huge = env.dir.path().join("huge.txt");
    fs::write(&huge, vec![b'x'; 2 << 20]).unwrap();
    let e = err(board(
        &env,
        &dir,
        &[
            "done",
            "t1",
            "--file",
            huge.to_str().unwrap(),
            "--worker",
            "alice",
        ],
    ));
    assert!(
        e.contains("over the board's 1048576-byte limit") && e.contains("nothing was recorded"),
        "{e}"
    );
    assert_eq!(tasks_by_id(&env, &dir)["t1"]["status"], "claimed");
    ok(board(
        &env,
        &dir,
        &["done", "t1", "small", "--worker", "alice"],
    ));
    let e = err(board(&env, &dir, &["done", "t1", "again"]));
    assert!(e.contains("already done"), "{e}");
    // A future schema version: refused, the file untouched.
    let db = dir.join("board.db");
    set_schema_version(&db, 99);
    let before = fs::read(&db).unwrap();
    let e = err(board(&env, &dir, &["list"]));
    assert!(
        e.contains("schema version 99") && e.contains(db.to_str().unwrap()),
        "{e}"
    );
    assert_eq!(fs::read(&db).unwrap(), before, "nothing was written");
    // A corrupt file: refused with the path, untouched, no WAL created.
    fs::write(&db, b"this is not a database, just text that landed here").unwrap();
    let _ = fs::remove_file(dir.join("board.db-wal"));
    let before = fs::read(&db).unwrap();
    for args in [&["list"][..], &["add", "x"], &["claim", "w"]] {
        let e = err(board(&env, &dir, args));
        assert!(
            e.contains("is not a board database") && e.contains(db.to_str().unwrap()),
            "{e}"
        );
    }
    assert_eq!(fs::read(&db).unwrap(), before);
    assert!(!dir.join("board.db-wal").exists());
    // Another program's SQLite file.
    let other = env.dir.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o700)).unwrap();
    let conn = rusqlite::Connection::open(other.join("board.db")).unwrap();
    conn.execute_batch("CREATE TABLE songs (title TEXT);")
        .unwrap();
    drop(conn);
    fs::set_permissions(other.join("board.db"), fs::Permissions::from_mode(0o600)).unwrap();
    let e = err(board(&env, &other, &["list"]));
    assert!(e.contains("another program"), "{e}");
}

/// Sets `PRAGMA user_version` of a board file, as a newer build would have.
fn set_schema_version(db: &Path, version: i32) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
}

#[test]
fn the_board_is_private_and_refuses_symlinks() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let dir = new_board(&env, "private");
    assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    assert_eq!(
        fs::metadata(dir.join("board.db")).unwrap().mode() & 0o777,
        0o600
    );
    let elsewhere = env.dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(dir.join("board.db"), elsewhere.join("board.db")).unwrap();
    let out = board(&env, &elsewhere, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("it is a symlink"),
        "{}",
        text(&out.stderr)
    );
    fs::set_permissions(dir.join("board.db"), fs::Permissions::from_mode(0o644)).unwrap();
    let out = board(&env, &dir, &["list"]);
    assert!(
        text(&out.stderr).contains("other users can access it"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn terminals_in_one_repository_share_a_durable_board_that_survives_the_runtime_dir() {
    let env = Env::new();
    let root = env.dir.path();
    let repo = root.join("repo");
    fs::create_dir_all(repo.join(".git")).unwrap();
    fs::create_dir_all(repo.join("src/ui")).unwrap();
    let runtime = root.join("run");
    fs::create_dir(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    let state_home = root.join("state-home");
    // No CLAUDE_AGENTS_DIR: the real defaults, with the runtime dir as tmpfs would be.
    let cmd = |cwd: &Path, args: &[&str]| {
        let mut c = Command::new(HOOK);
        c.arg("board")
            .args(args)
            .current_dir(cwd)
            .env_remove("CLAUDE_AGENTS_DIR")
            .env_remove("CLAUDE_EDITOR_HOOK_BOARD")
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_STATE_HOME", &state_home)
            .env("HOME", root);
        output_with_timeout(&mut c, SECS)
    };
    ok(cmd(&repo, &["init", "survive a reboot"]));
    ok(cmd(&repo.join("src/ui"), &["add", "from a subdirectory"]));
    let boards = state_home.join("claude-editor-hook/boards");
    let entries: Vec<_> = fs::read_dir(&boards).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "one board for the whole repository");
    assert!(
        entries[0]
            .file_name()
            .to_str()
            .unwrap()
            .starts_with("repo-")
    );
    ok(cmd(&repo, &["claim", "w"]));
    // "Reboot": the runtime dir is gone.
    fs::remove_dir_all(&runtime).unwrap();
    let status: Value =
        serde_json::from_str(&ok(cmd(&repo.join("src"), &["status", "--json"]))).unwrap();
    assert_eq!(status["total"], 1);
    assert_eq!(status["claimed"], 1);
    assert_eq!(status["goal"], "survive a reboot");
    // Outside the repository there is no board.
    let outside = root.join("elsewhere");
    fs::create_dir(&outside).unwrap();
    let out = cmd(&outside, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no board for"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_chief_reads_and_adds_with_at_board() {
    let env = Env::new();
    let dir = new_board(&env, "From the chief");
    ok(board(&env, &dir, &["add", "first"]));
    ok(board(&env, &dir, &["claim", "w"]));
    ok(board(
        &env,
        &dir,
        &["done", "t1", "first result", "--worker", "w"],
    ));
    let ctrl_g = |content: &[u8]| {
        let file = env.prompt_file(content);
        let out = output_with_timeout(
            env.cmd(HOOK)
                .env("CLAUDE_EDITOR_HOOK_BOARD", &dir)
                .arg(&file),
            SECS,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&fs::read(&file).unwrap())
    };
    let added = ctrl_g(b"@board add write the changelog\nwith every fix");
    assert_eq!(added, "[board] added t2: write the changelog\n");
    let shown = json(board(&env, &dir, &["show", "t2", "--json"]));
    assert_eq!(shown["body"], "with every fix");
    let news = ctrl_g(b"@board");
    assert!(
        news.starts_with("[board · From the chief] 1/2 done, 1 ready\n"),
        "{news}"
    );
    assert!(
        news.contains("## t1 first [done] by w") && news.contains("first result"),
        "{news}"
    );
    // The news is told once.
    let again = ctrl_g(b"@board\n");
    assert!(
        again.contains("No task finished since the last @board."),
        "{again}"
    );
    // `status` shows the board's progress.
    let out = output_with_timeout(
        env.cmd(HOOK)
            .env("CLAUDE_EDITOR_HOOK_BOARD", &dir)
            .arg("status"),
        SECS,
    );
    assert!(
        text(&out.stdout).contains("1/2 done, 1 ready"),
        "{}",
        text(&out.stdout)
    );
    // `board` is no agent's name.
    let out = output_with_timeout(env.cmd(WRAP).args(["board", "--demo"]), SECS);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is reserved"),
        "{}",
        text(&out.stderr)
    );
}
