//! Routing by role and `@any`, fan-out and pipelines, with real `agent-wrap` processes.

use std::fs;

use nix::sys::signal::Signal;

use crate::fixture::*;
use crate::helper::wait::wait_until;

#[test]
fn a_role_goes_to_an_idle_agent_with_it_and_any_to_any_live_one() {
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let busy_cmd = format!("cat '{}' >/dev/null; echo from-p1", gate.display());
    let _p1 = env.agent("p1", &["--role", "planning", "--exec", &busy_cmd]);
    let _p2 = env.agent("p2", &["--role", "planning", "--exec", "echo from-p2"]);
    let (mut first, _) = env.spawn_hook(b"@p1 hold on");
    env.wait_status("p1", "working", |_| true);

    // p1 is busy: the role goes to p2.
    let (_, after) = env.run_hook(b"@planning plan it");
    let (head, body) = head_and_body(&after);
    assert!(head.starts_with("[@p2 · task "), "{head}");
    assert_eq!(body, b"from-p2\n");
    let (_, after) = env.run_hook(b"@any whoever is free");
    assert!(text(&after).starts_with("[@p2 · task "), "{}", text(&after));

    drop(fs::File::create(&gate).unwrap());
    assert!(wait_child(&mut first, SECS, "the first task").success());
}

#[test]
fn unknown_and_offline_roles_are_explained_and_the_prompt_kept() {
    let env = Env::new();
    let mut agent = env.agent("coder", &["--role", "coding", "--demo"]);
    let (_, after) = env.run_hook(b"@testing run the tests");
    let (head, body) = head_and_body(&after);
    assert!(
        head.contains("unknown agent or role @testing (agents: coder; roles: coding)"),
        "{head}"
    );
    assert_eq!(body, b"@testing run the tests");
    agent.signal(Signal::SIGTERM);
    agent.wait_exit(SECS);
    let (_, after) = env.run_hook(b"@coding write it");
    assert!(
        text(&after).contains("no running agent has the role coding (offline: coder)"),
        "{}",
        text(&after)
    );
    let (_, after) = env.run_hook(b"@any anyone");
    assert!(
        text(&after).contains("@any: no agent is running"),
        "{}",
        text(&after)
    );
}

#[test]
fn a_fan_out_answers_in_the_order_asked_and_one_failure_hides_nothing() {
    let env = Env::new();
    let _good = env.agent("good", &["--exec", "cat"]);
    let _bad = env.agent("bad", &["--exec", "echo 'no way' >&2; exit 2"]);
    let _late = env.agent("late", &["--exec", "echo late answer"]);
    let (out, after) = env.run_hook(b"@good @bad @late review this");
    assert_eq!(out.status.code(), Some(0));
    let file = text(&after);
    assert!(
        file.starts_with("[fan-out to 3 agents · 2 ok, 1 not · "),
        "{file}"
    );
    let good = file.find("## @good · task ").expect("good section");
    let bad = file.find("## @bad · task ").expect("bad section");
    let late = file.find("## @late · task ").expect("late section");
    assert!(good < bad && bad < late, "sections out of order:\n{file}");
    assert!(
        file[good..bad].contains("· ok · ") && file[good..bad].contains("\nreview this\n"),
        "{file}"
    );
    assert!(
        file[bad..late].contains("(failed: the command exited with status 2: no way)"),
        "{file}"
    );
    assert!(
        file.ends_with("## your prompt\n@good @bad @late review this"),
        "{file}"
    );
}

#[test]
fn a_pipeline_passes_answers_on_and_stops_at_a_failing_step() {
    let env = Env::new();
    let _first = env.agent("first", &["--exec", "cat >/dev/null; echo FIRST-SAYS-HI"]);
    let _echo = env.agent("echo", &["--exec", "cat"]);
    let (_, after) = env.run_hook(b"@first > @echo build it");
    let file = text(&after);
    assert!(
        file.starts_with("[pipeline @first > @echo · 2 steps done · "),
        "{file}"
    );
    assert!(
        file.contains("build it\n\n--- answer of step 1 (@first) ---\nFIRST-SAYS-HI"),
        "step 2 did not get the prompt and step 1's answer:\n{file}"
    );

    let _bad = env.agent("bad", &["--exec", "echo broken >&2; exit 1"]);
    let _never = env.agent("never", &["--exec", "echo SHOULD-NOT-RUN"]);
    let (_, after) = env.run_hook(b"@first > @bad > @never go");
    let file = text(&after);
    assert!(
        file.starts_with("[pipeline @first > @bad > @never · failed at step 2 (@bad) · "),
        "{file}"
    );
    assert!(
        file.contains("## step 1 · @first · task ") && file.contains("FIRST-SAYS-HI"),
        "{file}"
    );
    assert!(
        file.contains("the command exited with status 1: broken"),
        "{file}"
    );
    assert!(file.contains("## step 3 · @never · not run"), "{file}");
    assert!(!file.contains("SHOULD-NOT-RUN"));
    assert!(
        file.ends_with("## your prompt\n@first > @bad > @never go"),
        "{file}"
    );
    assert_eq!(
        env.status("never").unwrap()["recent"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "@never ran"
    );
}

#[test]
fn sigterm_cancels_every_task_of_a_fan_out() {
    let env = Env::new();
    let _a = env.agent("a", &["--exec", "exec sleep 60"]);
    let _b = env.agent("b", &["--exec", "exec sleep 60"]);
    let (mut hook, file) = env.spawn_hook(b"@a @b wait for it");
    env.wait_status("a", "working", |_| true);
    env.wait_status("b", "working", |_| true);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hook.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(
        wait_child(&mut hook, SECS, "the coordinator").code(),
        Some(143)
    );
    let done = wait_until(SECS, "both tasks cancelled", || {
        let d = env.done_files();
        (d.len() == 2 && d.iter().all(|d| d["outcome"] == "cancelled")).then_some(d)
    });
    assert_eq!(done.len(), 2);
    assert_eq!(fs::read(file).unwrap(), b"@a @b wait for it");
    env.wait_status("a", "idle", |_| true);
    env.wait_status("b", "idle", |_| true);
}

#[test]
fn a_fan_out_that_names_one_agent_twice_through_a_role_is_refused() {
    let env = Env::new();
    let _p = env.agent("p1", &["--role", "planning", "--exec", "cat"]);
    let (_, after) = env.run_hook(b"@p1 @planning plan twice");
    let head = head_and_body(&after).0;
    assert!(
        head.contains("@planning resolves to @p1, which the fan-out already asks"),
        "{head}"
    );
    assert!(env.done_files().is_empty(), "nothing may be queued");
}

/// Queues a task for agent `name`, which this process is starting, on a coordinator
/// thread; returns the coordinator's sender and the thread.
fn delegate_to_starting(
    env: &Env,
    name: &str,
    prompt: &str,
) -> (
    std::sync::mpsc::Sender<ceh::coordinator::Event>,
    std::thread::JoinHandle<anyhow::Result<ceh::coordinator::Report>>,
) {
    let state = ceh::state::StateDir::open(&env.state).unwrap();
    let agent = ceh::state::AgentName::parse(name).unwrap();
    ceh::team::spawn::mark_starting(&agent);
    let coordinator = ceh::coordinator::Coordinator::new(state);
    let tx = coordinator.sender();
    let prompt = prompt.to_owned();
    let waiter = std::thread::spawn(move || coordinator.delegate(&agent, prompt, None, None));
    let inbox = env.state.join("agents").join(name).join("inbox");
    wait_until(SECS, "the task queued before the host is up", || {
        fs::read_dir(&inbox).ok()?.next().map(|_| ())
    });
    (tx, waiter)
}

#[test]
fn a_task_for_a_starting_agent_waits_in_the_loop_where_esc_cancels_it() {
    let env = Env::new();
    // Routing started the agent and went on at once: the wait for its host is the
    // coordinator's, in its loop, where the view's Esc arrives.
    let (tx, waiter) = delegate_to_starting(&env, "coding-2", "never mind");
    tx.send(ceh::coordinator::Event::Cancel("cancelled with Esc".into()))
        .unwrap();
    let report = waiter.join().unwrap().unwrap();
    assert_eq!(
        report.cancelled_by,
        Some(ceh::coordinator::delegate::Cancel::User)
    );
    assert_eq!(report.done.outcome, ceh::state::Outcome::Cancelled);
    assert_eq!(report.done.reason.as_deref(), Some("cancelled with Esc"));
    let inbox = env.state.join("agents/coding-2/inbox");
    assert_eq!(fs::read_dir(inbox).unwrap().count(), 0, "withdrawn");

    // A host that comes up takes the waiting task and answers it.
    let (_, waiter) = delegate_to_starting(&env, "coding-3", "plan the launch");
    let _agent = env.agent("coding-3", &["--demo"]);
    let report = waiter.join().unwrap().unwrap();
    assert_eq!(report.done.outcome, ceh::state::Outcome::Ok);
    let sum = ceh::agent::demo::checksum(b"plan the launch");
    let answer = report.answer.unwrap();
    assert!(
        answer.contains(&format!("DEMO-ANSWER {sum:016x}")),
        "{answer}"
    );
}
