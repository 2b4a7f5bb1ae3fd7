//! The delivery machine fed input sequences, effects asserted: every scenario the
//! end-to-end tests stage with a real Claude Code, and the races they cannot stage.

use super::*;
use crate::agent::claude::keys::{escape_leading_slash, is_terminal_reply};
use crate::agent::claude::message::{Event, ProbeReport, ProbeResult};

const PROBE_PID: i32 = 4242;

fn probe(result: ProbeResult, nonce: u64) -> Input {
    Input::Event(Event::Probe(ProbeReport {
        result,
        nonce: Some(nonce),
        pid: Some(PROBE_PID),
        box_bytes: None,
    }))
}

fn submit(prompt: &str) -> Input {
    Input::Event(Event::UserPromptSubmit {
        prompt: prompt.into(),
        prompt_id: None,
    })
}

fn stop(message: &str) -> Input {
    Input::Event(Event::Stop {
        last_assistant_message: message.into(),
        transcript_path: None,
        prompt_id: None,
    })
}

/// A SessionStart of `source` (`startup`, `fork`, ...).
fn session_start(session_id: Option<&str>, source: &str) -> Input {
    Input::Event(Event::SessionStart {
        session_id: session_id.map(str::to_owned),
        source: Some(source.into()),
    })
}

fn key(bytes: &[u8]) -> Input {
    Input::Key(bytes.to_vec())
}

fn writes(effects: &[Effect]) -> Vec<Vec<u8>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Write(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

fn reports(effects: &[Effect]) -> Vec<Update> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Report(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

fn starts(effects: &[Effect], timer: Timer) -> Option<Duration> {
    effects.iter().find_map(|e| match e {
        Effect::StartTimer(t, after) if *t == timer => Some(*after),
        _ => None,
    })
}

fn probe_request(effects: &[Effect]) -> Option<ProbeRequest> {
    effects.iter().find_map(|e| match e {
        Effect::WriteProbe(r) => Some(r.clone()),
        _ => None,
    })
}

/// A machine whose Claude Code has started (SessionStart came).
fn ready() -> Delivery {
    let (mut d, first) = Delivery::new("s1", None, 0);
    assert_eq!(starts(&first, Timer::StartCheck), Some(START_CHECK));
    let out = d.step(session_start(Some("s2"), "startup"));
    assert_eq!(
        reports(&out),
        vec![Update::Ready {
            session_id: "s2".into()
        }]
    );
    assert!(d.can_load());
    d
}

/// Loads `task` and lets its probe load the box; returns the nonce. Enter is next.
fn loaded(d: &mut Delivery, task: &str) -> u64 {
    let out = d.step(Input::Load(task.into()));
    let request = probe_request(&out).expect("a probe request");
    d.step(probe(ProbeResult::Started, request.nonce));
    let out = d.step(probe(ProbeResult::Loaded, request.nonce));
    assert_eq!(
        out,
        vec![
            Effect::CancelTimer(Timer::Probe),
            Effect::WatchProbeExit {
                pid: PROBE_PID,
                nonce: request.nonce
            }
        ]
    );
    request.nonce
}

/// Takes `task` through the probe and Enter to its acknowledgement.
fn working(d: &mut Delivery, task: &str) -> u64 {
    let nonce = loaded(d, task);
    let out = d.step(Input::ProbeExited { nonce });
    assert_eq!(starts(&out, Timer::Enter), Some(ENTER_SETTLE));
    let out = d.step(Input::Timer(Timer::Enter));
    assert_eq!(writes(&out), vec![b"\r".to_vec()]);
    assert_eq!(starts(&out, Timer::Enter), Some(ACK_TIMEOUT));
    let out = d.step(submit(&escape_leading_slash(task)));
    assert_eq!(reports(&out), vec![Update::Acked { human_input: false }]);
    nonce
}

#[test]
fn a_load_writes_the_request_then_presses_ctrl_g_and_waits_for_the_probe() {
    let mut d = ready();
    let out = d.step(Input::Load("plan the launch".into()));
    let request = probe_request(&out).unwrap();
    assert_eq!(request.action, ProbeAction::Load);
    assert_eq!(request.text, "plan the launch");
    let at = |want: &Effect| out.iter().position(|e| e == want).unwrap();
    assert!(at(&Effect::WriteProbe(request.clone())) < at(&Effect::Write(b"\x07".to_vec())));
    assert_eq!(starts(&out, Timer::Probe), Some(PROBE_TIMEOUT));
    assert!(!d.can_load());
}

#[test]
fn a_task_is_answered_end_to_end() {
    let mut d = ready();
    working(&mut d, "plan the launch");
    let out = d.step(Input::Event(Event::Stop {
        last_assistant_message: "the plan".into(),
        transcript_path: Some("/t.jsonl".into()),
        prompt_id: None,
    }));
    assert_eq!(
        reports(&out),
        vec![Update::Answered(Answer {
            last_message: "the plan".into(),
            transcript: Some("/t.jsonl".into()),
            prompt: "plan the launch".into(),
        })]
    );
    assert!(d.can_load());
}

#[test]
fn enter_waits_for_the_probe_to_exit() {
    let mut d = ready();
    let nonce = loaded(&mut d, "x");
    // No Enter while the probe (Claude Code's editor) still runs: it would be a newline.
    let out = d.step(Input::Timer(Timer::Enter));
    assert!(writes(&out).is_empty());
    let out = d.step(Input::ProbeExited { nonce });
    assert!(writes(&out).is_empty());
    assert_eq!(starts(&out, Timer::Enter), Some(ENTER_SETTLE));
}

#[test]
fn a_report_without_a_pid_gets_enter_after_the_settle_time() {
    let mut d = ready();
    let out = d.step(Input::Load("x".into()));
    let nonce = probe_request(&out).unwrap().nonce;
    let out = d.step(Input::Event(Event::Probe(ProbeReport {
        result: ProbeResult::Loaded,
        nonce: Some(nonce),
        pid: None,
        box_bytes: None,
    })));
    assert_eq!(starts(&out, Timer::Enter), Some(ENTER_SETTLE));
}

#[test]
fn the_exit_of_an_older_probe_presses_no_enter() {
    let mut d = ready();
    let nonce = loaded(&mut d, "x");
    let out = d.step(Input::ProbeExited { nonce: nonce - 1 });
    assert!(out.is_empty());
}

#[test]
fn enter_is_pressed_three_times_then_late_acknowledgements_are_awaited_then_it_gives_up() {
    let mut d = ready();
    let nonce = loaded(&mut d, "x");
    d.step(Input::ProbeExited { nonce });
    let mut enters = 0;
    for _ in 0..MAX_ENTERS + LATE_ACK_WAITS {
        let out = d.step(Input::Timer(Timer::Enter));
        enters += writes(&out).len();
        assert_eq!(starts(&out, Timer::Enter), Some(ACK_TIMEOUT));
        assert!(reports(&out).is_empty());
    }
    assert_eq!(enters, MAX_ENTERS as usize);
    let out = d.step(Input::Timer(Timer::Enter));
    assert_eq!(
        reports(&out),
        vec![Update::Undeliverable(
            "Claude Code did not take the task after Enter".into()
        )]
    );
    assert!(d.can_load());
}

#[test]
fn an_acknowledgement_after_its_timeout_is_still_taken() {
    let mut d = ready();
    let nonce = loaded(&mut d, "x");
    d.step(Input::ProbeExited { nonce });
    // All Enters sent and several timeouts passed: the hook was only slow (under load).
    for _ in 0..MAX_ENTERS + 5 {
        d.step(Input::Timer(Timer::Enter));
    }
    let out = d.step(submit("x"));
    assert_eq!(reports(&out), vec![Update::Acked { human_input: false }]);
    assert!(out.contains(&Effect::CancelTimer(Timer::Enter)));
}

#[test]
fn an_acknowledgement_compares_without_trailing_whitespace() {
    let mut d = ready();
    let nonce = loaded(&mut d, "x\n\n");
    d.step(Input::ProbeExited { nonce });
    d.step(Input::Timer(Timer::Enter));
    let out = d.step(submit("x"));
    assert_eq!(reports(&out), vec![Update::Acked { human_input: false }]);
}

#[test]
fn a_leading_slash_gets_one_backslash_and_nothing_else_is_escaped() {
    let mut d = ready();
    let out = d.step(Input::Load("  /clear the cache".into()));
    assert_eq!(probe_request(&out).unwrap().text, "  \\/clear the cache");
    let mut d = ready();
    let out = d.step(Input::Load("!ls #x @y".into()));
    assert_eq!(probe_request(&out).unwrap().text, "!ls #x @y");
}

#[test]
fn only_a_leading_slash_is_escaped_and_with_one_backslash() {
    assert_eq!(escape_leading_slash("/compact now"), "\\/compact now");
    assert_eq!(escape_leading_slash("/"), "\\/");
    assert_eq!(escape_leading_slash("  \n/clear x"), "  \n\\/clear x");
    assert_eq!(escape_leading_slash("\u{feff}/x"), "\u{feff}\\/x");
    for untouched in [
        "!ls", "#note", "&bg", "?", "@file x", "x /y", "#x\n/y", "", "  ",
    ] {
        assert_eq!(escape_leading_slash(untouched), untouched);
    }
}

#[test]
fn a_task_whose_text_is_slash_compact_is_an_ordinary_prompt() {
    let mut d = ready();
    let nonce = loaded(&mut d, "/compact");
    d.step(Input::ProbeExited { nonce });
    d.step(Input::Timer(Timer::Enter));
    // Acknowledged by UserPromptSubmit like any prompt, not by the registry.
    d.step(Input::Registry { idle: true });
    let out = d.step(Input::Registry { idle: false });
    assert!(reports(&out).is_empty());
    let out = d.step(submit("\\/compact"));
    assert_eq!(reports(&out), vec![Update::Acked { human_input: false }]);
}

/// Starts the agent command `/compact` up to its first Enter; the registry was `busy`
/// from the turn before when it was loaded.
fn compact_entered(d: &mut Delivery) {
    d.step(Input::Registry { idle: false });
    let out = d.step(Input::Compact("  ".into()));
    let request = probe_request(&out).unwrap();
    assert_eq!(request.text, "/compact");
    d.step(probe(ProbeResult::Loaded, request.nonce));
    d.step(Input::ProbeExited {
        nonce: request.nonce,
    });
    let out = d.step(Input::Timer(Timer::Enter));
    assert_eq!(writes(&out), vec![b"\r".to_vec()]);
}

#[test]
fn the_compact_command_starts_when_the_registry_turns_busy_and_ends_at_its_session_start() {
    let mut d = ready();
    compact_entered(&mut d);
    // The busy of the turn before is no start; busy after an idle is.
    let out = d.step(Input::Registry { idle: false });
    assert!(reports(&out).is_empty(), "{out:?}");
    d.step(Input::Registry { idle: true });
    let out = d.step(Input::Registry { idle: false });
    assert_eq!(reports(&out), vec![Update::Acked { human_input: false }]);
    assert!(out.contains(&Effect::CancelTimer(Timer::Enter)), "{out:?}");
    let out = d.step(session_start(Some("s2"), "compact"));
    let [Update::Answered(answer)] = &reports(&out)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(answer.last_message, "Compacted the conversation.");
    assert!(d.can_load());
}

#[test]
fn a_compaction_the_registry_never_showed_starting_is_taken_as_running_while_busy() {
    let mut d = ready();
    compact_entered(&mut d);
    // Its idle and busy were read as one change: busy all along, until Enter gives up.
    let mut out = Vec::new();
    for _ in 0..MAX_ENTERS + LATE_ACK_WAITS {
        out = d.step(Input::Timer(Timer::Enter));
    }
    assert_eq!(reports(&out), vec![Update::Acked { human_input: false }]);
    let out = d.step(session_start(Some("s2"), "compact"));
    assert!(
        matches!(&reports(&out)[..], [Update::Answered(_)]),
        "{out:?}"
    );
}

#[test]
fn a_compaction_that_never_starts_fails_like_any_task_after_enter() {
    let mut d = ready();
    compact_entered(&mut d);
    d.step(Input::Registry { idle: true });
    let mut out = Vec::new();
    for _ in 0..MAX_ENTERS + LATE_ACK_WAITS {
        out = d.step(Input::Timer(Timer::Enter));
    }
    assert_eq!(
        reports(&out),
        vec![Update::Undeliverable(
            "Claude Code did not take the task after Enter".into()
        )]
    );
}

#[test]
fn claude_codes_own_compaction_during_our_turn_leaves_the_turn_running() {
    let mut d = ready();
    working(&mut d, "a long task");
    let out = d.step(session_start(Some("s2"), "compact"));
    assert!(reports(&out).is_empty(), "{out:?}");
    assert_eq!(d.working_prompt(), Some("a long task"));
}

#[test]
fn compact_instructions_follow_the_command() {
    let mut d = ready();
    let out = d.step(Input::Compact("keep the plan".into()));
    assert_eq!(probe_request(&out).unwrap().text, "/compact keep the plan");
}

#[test]
fn a_compaction_that_stops_without_finishing_fails() {
    let mut d = ready();
    compact_entered(&mut d);
    d.step(Input::Registry { idle: true });
    d.step(Input::Registry { idle: false });
    let out = d.step(Input::Registry { idle: true });
    assert_eq!(starts(&out, Timer::IdleCheck), Some(STOP_GRACE_AFTER_IDLE));
    let out = d.step(Input::Timer(Timer::IdleCheck));
    assert_eq!(
        reports(&out),
        vec![Update::Failed(
            "Claude Code stopped without finishing the compaction".into()
        )]
    );
}

#[test]
fn an_api_error_fails_our_turn_with_its_text() {
    let mut d = ready();
    working(&mut d, "x");
    let out = d.step(Input::Event(Event::StopFailure {
        last_assistant_message: "API Error: 500".into(),
        prompt_id: None,
    }));
    assert_eq!(reports(&out), vec![Update::Failed("API Error: 500".into())]);
    assert!(d.can_load());
}

#[test]
fn a_draft_holds_the_task_and_leaves_the_box_alone() {
    let mut d = ready();
    let out = d.step(Input::Load("x".into()));
    let nonce = probe_request(&out).unwrap().nonce;
    let out = d.step(probe(ProbeResult::Draft, nonce));
    assert_eq!(reports(&out), vec![Update::Draft]);
    // Until the probe has exited Claude Code is in its editor: the human's keys wait.
    let out = d.step(key(b"y"));
    assert!(writes(&out).is_empty());
    d.step(Input::ProbeExited { nonce });
    let out = d.step(Input::Timer(Timer::Enter));
    // No Enter: the draft is the human's. Their keys go on.
    assert_eq!(writes(&out), vec![b"y".to_vec()]);
    assert!(d.can_load());
}

#[test]
fn enter_typed_while_the_probe_runs_is_held_until_the_acknowledgement() {
    let mut d = ready();
    let out = d.step(Input::Load("x".into()));
    let nonce = probe_request(&out).unwrap().nonce;
    let out = d.step(key(b"\r"));
    assert!(
        writes(&out).is_empty(),
        "the Enter would submit a half-loaded box"
    );
    d.step(probe(ProbeResult::Loaded, nonce));
    d.step(Input::ProbeExited { nonce });
    let out = d.step(Input::Timer(Timer::Enter));
    assert_eq!(writes(&out), vec![b"\r".to_vec()], "only our own Enter");
    let out = d.step(submit("x"));
    assert_eq!(
        writes(&out),
        vec![b"\r".to_vec()],
        "the human's, into the turn"
    );
    assert_eq!(reports(&out), vec![Update::Acked { human_input: true }]);
}

#[test]
fn two_escapes_in_one_read_go_out_as_two_keys() {
    let mut d = ready();
    let out = d.step(Input::Load("x".into()));
    let nonce = probe_request(&out).unwrap().nonce;
    d.step(key(b"\x1b\x1b"));
    d.step(probe(ProbeResult::Draft, nonce));
    d.step(Input::ProbeExited { nonce });
    let out = d.step(Input::Timer(Timer::Enter));
    assert_eq!(writes(&out), vec![b"\x1b".to_vec()]);
    assert_eq!(starts(&out, Timer::KeyGap), Some(KEY_GAP));
    let out = d.step(Input::Timer(Timer::KeyGap));
    assert_eq!(writes(&out), vec![b"\x1b".to_vec()]);
}

#[test]
fn held_keys_go_out_in_order_with_a_gap_before_each_escape() {
    let mut d = ready();
    let out = d.step(Input::Load("x".into()));
    let nonce = probe_request(&out).unwrap().nonce;
    for k in [&b"a"[..], b"b", b"\x1b[A", b"c"] {
        d.step(key(k));
    }
    d.step(probe(ProbeResult::Draft, nonce));
    d.step(Input::ProbeExited { nonce });
    let out = d.step(Input::Timer(Timer::Enter));
    assert_eq!(writes(&out), vec![b"a".to_vec(), b"b".to_vec()]);
    // Keys typed meanwhile queue behind the held ones, and the box is not free yet.
    let out = d.step(key(b"d"));
    assert!(writes(&out).is_empty());
    assert!(!d.can_load());
    // A turn ending during the gap does not let the Escape go early.
    let out = d.step(stop(""));
    assert!(writes(&out).is_empty());
    let out = d.step(Input::Timer(Timer::KeyGap));
    assert_eq!(
        writes(&out),
        vec![b"\x1b[A".to_vec(), b"c".to_vec(), b"d".to_vec()]
    );
    assert!(d.can_load());
}

#[test]
fn terminal_replies_pass_at_once_even_while_the_box_is_ours() {
    let mut d = ready();
    d.step(Input::Load("x".into()));
    let out = d.step(key(b"\x1b[?1;2c"));
    assert_eq!(writes(&out), vec![b"\x1b[?1;2c".to_vec()]);
    let out = d.step(key(b"\x1b[I"));
    assert_eq!(writes(&out), vec![b"\x1b[I".to_vec()]);
}

#[test]
fn terminal_replies_are_not_keys() {
    for reply in [
        &b"\x1bP>|tmux 3.3a\x1b\\"[..],
        b"\x1b[?1;2c",
        b"\x1b[>0;10;1c",
        b"\x1b[I",
        b"\x1b[O",
    ] {
        assert!(is_terminal_reply(reply), "{reply:?}");
    }
    for key in [&b"a"[..], b"\x1b", b"\x1b[A", b"\r", b"\x03"] {
        assert!(!is_terminal_reply(key), "{key:?}");
    }
}

#[test]
fn keys_into_our_turn_mark_it_and_escape_interrupts_it() {
    let mut d = ready();
    working(&mut d, "x");
    let out = d.step(key(b"more"));
    assert_eq!(writes(&out), vec![b"more".to_vec()]);
    assert_eq!(reports(&out), vec![Update::HumanInput]);
    // An arrow key starts with Escape but is not one.
    let out = d.step(key(b"\x1b[A"));
    assert_eq!(reports(&out), vec![Update::HumanInput]);
    let out = d.step(key(b"\x1b"));
    assert_eq!(writes(&out), vec![b"\x1b".to_vec()]);
    assert_eq!(reports(&out), vec![Update::HumanInterrupted]);
    assert_eq!(starts(&out, Timer::Clear), Some(INTERRUPT_SETTLE));
}

#[test]
fn two_escapes_in_one_read_into_our_turn_are_input_and_the_registry_decides() {
    let mut d = ready();
    working(&mut d, "x");
    let out = d.step(key(b"\x1b\x1b"));
    assert_eq!(writes(&out), vec![b"\x1b\x1b".to_vec()]);
    assert_eq!(reports(&out), vec![Update::HumanInput]);
}

#[test]
fn after_an_interrupt_our_task_is_cleared_from_the_box() {
    let mut d = ready();
    working(&mut d, "/x");
    d.step(key(b"\x1b"));
    let out = d.step(Input::Timer(Timer::Clear));
    let request = probe_request(&out).unwrap();
    assert_eq!(request.action, ProbeAction::Clear);
    assert_eq!(request.text, "\\/x");
    assert_eq!(writes(&out), vec![b"\x07".to_vec()]);
    assert!(!d.can_load());
    let out = d.step(probe(ProbeResult::Cleared, request.nonce));
    assert_eq!(reports(&out), vec![Update::Idle]);
    assert!(d.can_load());
}

#[test]
fn the_hosts_interrupt_presses_escape_and_clears_the_task_in_any_phase() {
    let mut d = ready();
    d.step(Input::Load("being loaded".into()));
    let out = d.step(Input::Interrupt);
    assert_eq!(writes(&out), vec![b"\x1b".to_vec()]);
    assert!(out.contains(&Effect::CancelTimer(Timer::Probe)));
    let out = d.step(Input::Timer(Timer::Clear));
    assert_eq!(probe_request(&out).unwrap().text, "being loaded");
}

#[test]
fn a_clear_whose_probe_never_runs_frees_the_box_and_releases_held_keys() {
    let mut d = ready();
    working(&mut d, "x");
    d.step(Input::Interrupt);
    d.step(Input::Timer(Timer::Clear));
    let out = d.step(key(b"k"));
    assert!(writes(&out).is_empty());
    let out = d.step(Input::Timer(Timer::Probe));
    assert!(out.contains(&Effect::RemoveProbe));
    assert_eq!(reports(&out), vec![Update::Idle]);
    assert_eq!(writes(&out), vec![b"k".to_vec()]);
    assert!(d.can_load());
}

#[test]
fn a_probe_timeout_holds_the_task_and_ctrl_g_repeats_with_spare_tokens() {
    let mut d = ready();
    let out = d.step(Input::Load("x".into()));
    let nonce = probe_request(&out).unwrap().nonce;
    let out = d.step(Input::Timer(Timer::Probe));
    assert_eq!(reports(&out), vec![Update::DialogOpen]);
    let spare = out
        .iter()
        .position(|e| *e == Effect::AddSpare(nonce))
        .unwrap();
    let ctrl_g = out
        .iter()
        .position(|e| *e == Effect::Write(b"\x07".to_vec()))
        .unwrap();
    assert!(
        spare < ctrl_g,
        "the token is there before the probe can run"
    );
    assert_eq!(starts(&out, Timer::ProbeRetry), Some(PROBE_RETRY));
    let out = d.step(Input::Timer(Timer::ProbeRetry));
    assert!(out.contains(&Effect::AddSpare(nonce)));
    assert_eq!(writes(&out), vec![b"\x07".to_vec()]);
    // The probe took the request: no more Ctrl-G.
    d.step(probe(ProbeResult::Started, nonce));
    let out = d.step(Input::Timer(Timer::ProbeRetry));
    assert!(out.is_empty());
}

#[test]
fn a_probe_that_answers_after_its_timeout_still_loads_the_task() {
    let mut d = ready();
    let out = d.step(Input::Load("x".into()));
    let nonce = probe_request(&out).unwrap().nonce;
    d.step(Input::Timer(Timer::Probe));
    let out = d.step(probe(ProbeResult::Loaded, nonce));
    assert_eq!(reports(&out), vec![Update::Resumed]);
    assert!(out.contains(&Effect::CancelTimer(Timer::ProbeRetry)));
    d.step(Input::ProbeExited { nonce });
    let out = d.step(Input::Timer(Timer::Enter));
    assert_eq!(writes(&out), vec![b"\r".to_vec()]);
    let out = d.step(submit("x"));
    assert_eq!(reports(&out), vec![Update::Acked { human_input: false }]);
}

#[test]
fn a_late_draft_after_the_timeout_holds_the_task_as_on_time() {
    let mut d = ready();
    let out = d.step(Input::Load("x".into()));
    let nonce = probe_request(&out).unwrap().nonce;
    d.step(Input::Timer(Timer::Probe));
    let out = d.step(probe(ProbeResult::Draft, nonce));
    assert_eq!(reports(&out), vec![Update::Draft]);
    assert!(!d.can_load());
}

#[test]
fn a_new_delivery_or_an_interrupt_ends_the_ctrl_g_repeats() {
    let mut d = ready();
    let out = d.step(Input::Load("x".into()));
    let old = probe_request(&out).unwrap().nonce;
    d.step(Input::Timer(Timer::Probe));
    let out = d.step(Input::Load("y".into()));
    assert!(out.contains(&Effect::CancelTimer(Timer::ProbeRetry)));
    // A late answer to the old request no longer counts.
    let out = d.step(probe(ProbeResult::Loaded, old));
    assert!(out.is_empty());

    let mut d = ready();
    d.step(Input::Load("x".into()));
    d.step(Input::Timer(Timer::Probe));
    let out = d.step(Input::Interrupt);
    assert!(out.contains(&Effect::CancelTimer(Timer::ProbeRetry)));
}

#[test]
fn a_probe_report_for_an_older_nonce_is_ignored() {
    let mut d = ready();
    let out = d.step(Input::Load("x".into()));
    let nonce = probe_request(&out).unwrap().nonce;
    for result in [
        ProbeResult::Loaded,
        ProbeResult::Draft,
        ProbeResult::Cleared,
    ] {
        assert!(d.step(probe(result, nonce - 1)).is_empty());
    }
    assert!(d.step(probe(ProbeResult::Loaded, nonce)).len() > 1);
}

#[test]
fn no_ctrl_g_goes_into_the_humans_own_editor() {
    let mut d = ready();
    let out = d.step(Input::Event(Event::Probe(ProbeReport {
        result: ProbeResult::UserEditor,
        nonce: None,
        pid: Some(77),
        box_bytes: None,
    })));
    assert_eq!(out, vec![Effect::WatchUserEditor { pid: 77 }]);
    assert!(!d.can_load());
    let out = d.step(Input::UserEditorClosed);
    assert_eq!(reports(&out), vec![Update::Idle]);
    assert!(d.can_load());

    // A held delivery's repeats skip the Ctrl-G while the human's editor runs.
    d.step(Input::Load("x".into()));
    d.step(Input::Event(Event::Probe(ProbeReport {
        result: ProbeResult::UserEditor,
        nonce: None,
        pid: Some(78),
        box_bytes: None,
    })));
    let out = d.step(Input::Timer(Timer::Probe));
    assert!(writes(&out).is_empty());
    assert_eq!(starts(&out, Timer::ProbeRetry), Some(PROBE_RETRY));
}

#[test]
fn a_stop_that_is_not_for_our_turn_ends_only_the_humans_turn() {
    let mut d = ready();
    // The human's own prompt runs.
    let out = d.step(submit("my own question"));
    assert_eq!(reports(&out), vec![Update::HumanTurn]);
    assert!(!d.can_load());
    let out = d.step(stop("my answer"));
    assert_eq!(reports(&out), vec![Update::Idle]);
    assert!(d.can_load());
    // A Stop of an older turn arriving while our delivery is under way changes nothing.
    let nonce = loaded(&mut d, "x");
    let out = d.step(stop("old"));
    assert!(reports(&out).is_empty());
    d.step(Input::ProbeExited { nonce });
    d.step(Input::Timer(Timer::Enter));
    let out = d.step(submit("x"));
    assert_eq!(reports(&out), vec![Update::Acked { human_input: false }]);
}

#[test]
fn a_stop_of_another_prompt_during_our_turn_ends_only_the_humans_turn() {
    // The human submitted a draft just as we delivered: Claude Code queued our prompt,
    // and the human's turn ends while ours is acknowledged (their hooks came late).
    let mut d = ready();
    let nonce = loaded(&mut d, "ours");
    d.step(Input::ProbeExited { nonce });
    d.step(Input::Timer(Timer::Enter));
    let out = d.step(Input::Event(Event::UserPromptSubmit {
        prompt: "ours".into(),
        prompt_id: Some("p-ours".into()),
    }));
    assert_eq!(reports(&out), vec![Update::Acked { human_input: false }]);
    let out = d.step(Input::Event(Event::UserPromptSubmit {
        prompt: "theirs".into(),
        prompt_id: Some("p-theirs".into()),
    }));
    assert_eq!(reports(&out), vec![Update::HumanInput]);
    let stop_of = |id: &str, message: &str| {
        Input::Event(Event::Stop {
            last_assistant_message: message.into(),
            transcript_path: None,
            prompt_id: Some(id.into()),
        })
    };
    // Their Stop, and a StopFailure of theirs: our turn goes on.
    let out = d.step(stop_of("p-theirs", "their answer"));
    assert!(out.is_empty(), "{out:?}");
    let out = d.step(Input::Event(Event::StopFailure {
        last_assistant_message: "API Error".into(),
        prompt_id: Some("p-theirs".into()),
    }));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(d.working_prompt(), Some("ours"));
    // Ours ends it.
    let out = d.step(stop_of("p-ours", "our answer"));
    assert_eq!(
        reports(&out),
        vec![Update::Answered(Answer {
            last_message: "our answer".into(),
            transcript: None,
            prompt: "ours".into(),
        })]
    );
    // The next delivery forgets the old prompt id: acknowledged without one, any Stop
    // ends it.
    working(&mut d, "next");
    let out = d.step(stop_of("p-theirs", "next answer"));
    assert!(matches!(reports(&out)[..], [Update::Answered(_)]));
}

#[test]
fn a_stop_is_ours_when_either_side_has_no_prompt_id() {
    let mut d = ready();
    working(&mut d, "x");
    // Our acknowledgement had no id (an older Claude Code): any Stop is ours.
    let out = d.step(Input::Event(Event::Stop {
        last_assistant_message: "done".into(),
        transcript_path: None,
        prompt_id: Some("p".into()),
    }));
    assert!(matches!(reports(&out)[..], [Update::Answered(_)]));
}

#[test]
fn the_humans_prompt_during_our_delivery_does_not_end_it() {
    let mut d = ready();
    let nonce = loaded(&mut d, "ours");
    let out = d.step(submit("theirs"));
    assert_eq!(reports(&out), vec![Update::HumanTurn]);
    d.step(Input::ProbeExited { nonce });
    d.step(Input::Timer(Timer::Enter));
    let out = d.step(submit("ours"));
    assert_eq!(reports(&out), vec![Update::Acked { human_input: false }]);
}

#[test]
fn an_idle_registry_without_stop_is_an_interrupt_of_our_turn() {
    let mut d = ready();
    working(&mut d, "x");
    let out = d.step(Input::Registry { idle: true });
    assert_eq!(starts(&out, Timer::IdleCheck), Some(STOP_GRACE_AFTER_IDLE));
    // More idle readings do not postpone the check.
    let out = d.step(Input::Registry { idle: true });
    assert!(out.is_empty());
    let out = d.step(Input::Timer(Timer::IdleCheck));
    assert_eq!(reports(&out), vec![Update::HumanInterrupted]);
    assert_eq!(starts(&out, Timer::Clear), Some(Duration::ZERO));
}

#[test]
fn a_turn_the_transcript_shows_ended_waits_for_its_late_stop() {
    let mut d = ready();
    let out = d.step(Input::Load("x".into()));
    assert!(
        out.contains(&Effect::MarkTranscript),
        "the delivery marks where it begins in the transcript"
    );
    d.step(Input::LoadFailed);
    working(&mut d, "x");
    d.step(Input::Registry { idle: true });
    let read = |ended: bool| Input::Transcript {
        path: "/t.jsonl".into(),
        turn_ended: ended,
    };
    // The transcript shows the turn ended: the Stop hook is only late, and the check
    // comes again instead of calling the turn interrupted.
    for _ in 1..LATE_STOP_CHECKS {
        d.step(read(true));
        let out = d.step(Input::Timer(Timer::IdleCheck));
        assert_eq!(
            out,
            vec![Effect::StartTimer(Timer::IdleCheck, STOP_GRACE_AFTER_IDLE)]
        );
    }
    // The late Stop came: it answers as always.
    let out = d.step(stop("the answer"));
    assert!(matches!(reports(&out)[..], [Update::Answered(_)]));

    // Without a Stop, after LATE_STOP_CHECKS rounds the transcript's answer is taken.
    working(&mut d, "y");
    d.step(Input::Registry { idle: true });
    for _ in 1..LATE_STOP_CHECKS {
        d.step(read(true));
        d.step(Input::Timer(Timer::IdleCheck));
    }
    d.step(read(true));
    let out = d.step(Input::Timer(Timer::IdleCheck));
    assert_eq!(
        reports(&out),
        vec![Update::Answered(Answer {
            last_message: String::new(),
            transcript: Some("/t.jsonl".into()),
            prompt: "y".into(),
        })]
    );
    assert!(d.can_load());

    // The rounds start again with each delivery, and a transcript that shows no end
    // means interrupted, as without one.
    working(&mut d, "z");
    d.step(Input::Registry { idle: true });
    d.step(read(true));
    let out = d.step(Input::Timer(Timer::IdleCheck));
    assert_eq!(starts(&out, Timer::IdleCheck), Some(STOP_GRACE_AFTER_IDLE));
    d.step(read(false));
    let out = d.step(Input::Timer(Timer::IdleCheck));
    assert_eq!(reports(&out), vec![Update::HumanInterrupted]);
}

#[test]
fn a_transcript_reading_counts_only_for_the_check_it_came_with() {
    let mut d = ready();
    working(&mut d, "x");
    d.step(Input::Transcript {
        path: "/t.jsonl".into(),
        turn_ended: true,
    });
    d.step(Input::Registry { idle: true });
    let out = d.step(Input::Timer(Timer::IdleCheck));
    assert_eq!(starts(&out, Timer::IdleCheck), Some(STOP_GRACE_AFTER_IDLE));
    // The next round has no reading: interrupted.
    let out = d.step(Input::Timer(Timer::IdleCheck));
    assert_eq!(reports(&out), vec![Update::HumanInterrupted]);
}

#[test]
fn an_idle_registry_that_turned_busy_again_is_no_interrupt() {
    let mut d = ready();
    working(&mut d, "x");
    d.step(Input::Registry { idle: true });
    d.step(Input::Registry { idle: false });
    let out = d.step(Input::Timer(Timer::IdleCheck));
    assert!(out.is_empty());
}

#[test]
fn an_idle_check_of_a_finished_turn_never_interrupts_the_next() {
    let mut d = ready();
    working(&mut d, "one");
    d.step(Input::Registry { idle: true });
    let out = d.step(stop("done"));
    assert!(out.contains(&Effect::CancelTimer(Timer::IdleCheck)));
    working(&mut d, "two");
    // The old timer was cancelled; had it fired anyway, it is ignored.
    let out = d.step(Input::Timer(Timer::IdleCheck));
    assert!(out.is_empty());
}

#[test]
fn an_interrupted_human_turn_frees_the_agent_through_the_registry() {
    let mut d = ready();
    d.step(submit("mine"));
    let out = d.step(Input::Registry { idle: true });
    assert_eq!(
        starts(&out, Timer::HumanIdleCheck),
        Some(STOP_GRACE_AFTER_IDLE)
    );
    let out = d.step(Input::Timer(Timer::HumanIdleCheck));
    assert_eq!(reports(&out), vec![Update::Idle]);
    assert!(d.can_load());
}

#[test]
fn streamed_text_is_ours_from_the_acknowledgement_until_the_next_delivery() {
    let mut d = ready();
    let display = |t: &str| Input::Event(Event::MessageDisplay { delta: t.into() });
    assert!(d.step(display("before")).is_empty());
    working(&mut d, "x");
    let out = d.step(display("part"));
    assert_eq!(reports(&out), vec![Update::Output("part".into())]);
    d.step(stop("done"));
    // A MessageDisplay hook can land just after Stop.
    let out = d.step(display("late"));
    assert_eq!(reports(&out), vec![Update::Output("late".into())]);
    d.step(Input::Load("y".into()));
    assert!(d.step(display("not yet")).is_empty());
}

#[test]
fn a_tool_about_to_run_is_a_line_of_the_output_of_its_own() {
    let mut d = ready();
    let pre = |tool: &str, input: serde_json::Value| {
        Input::Event(Event::PreToolUse {
            tool_name: tool.into(),
            tool_input: input,
        })
    };
    assert!(d.step(pre("Bash", serde_json::json!({}))).is_empty());
    working(&mut d, "x");
    let out = d.step(pre(
        "Bash",
        serde_json::json!({"command": "cargo test\nmore"}),
    ));
    assert_eq!(
        reports(&out),
        vec![Update::Output("▸ running Bash: cargo test\n".into())]
    );
    d.step(Input::Event(Event::MessageDisplay {
        delta: "no newline".into(),
    }));
    let out = d.step(pre("Read", serde_json::json!({"file_path": "/a/b.rs"})));
    assert_eq!(
        reports(&out),
        vec![Update::Output("\n▸ running Read: /a/b.rs\n".into())]
    );
    let long = "x".repeat(300);
    let out = d.step(pre("Other", serde_json::json!({"thing": long})));
    let Update::Output(line) = &reports(&out)[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        line.chars().count(),
        "▸ running Other: ".len() - 2 + 121 + 1
    );
}

#[test]
fn a_permission_prompt_needs_the_human_and_a_tool_result_resumes() {
    let mut d = ready();
    working(&mut d, "x");
    let out = d.step(Input::Event(Event::PermissionRequest {
        tool_name: "Bash".into(),
    }));
    assert_eq!(
        reports(&out),
        vec![Update::NeedsHuman("permission for Bash".into())]
    );
    let out = d.step(Input::Event(Event::Notification {
        notification_type: "permission_prompt".into(),
        message: "allow?".into(),
    }));
    assert_eq!(reports(&out), vec![Update::NeedsHuman("allow?".into())]);
    let out = d.step(Input::Event(Event::PostToolUse {}));
    assert_eq!(reports(&out), vec![Update::Resumed]);
}

#[test]
fn a_late_session_start_means_a_dialog_and_an_early_one_does_not() {
    let (mut d, _) = Delivery::new("s", None, 0);
    let out = d.step(Input::Timer(Timer::StartCheck));
    assert_eq!(reports(&out), vec![Update::DialogOpen]);
    let (mut d, _) = Delivery::new("s", None, 0);
    d.step(session_start(None, "startup"));
    assert_eq!(d.session_id(), "s");
    assert!(reports(&d.step(Input::Timer(Timer::StartCheck))).is_empty());
}

#[test]
fn a_fork_is_ready_once_its_registry_says_idle() {
    let (mut d, _) = Delivery::new("copy", None, 0);
    // Claude Code 2.1.332 fires a fork's SessionStart before its box takes keys.
    let out = d.step(session_start(Some("copy"), "fork"));
    assert!(reports(&out).is_empty());
    assert_eq!(starts(&out, Timer::StartCheck), Some(START_CHECK));
    assert!(!d.ready() && !d.can_load());
    assert!(reports(&d.step(Input::Registry { idle: false })).is_empty());
    let out = d.step(Input::Registry { idle: true });
    assert_eq!(
        reports(&out),
        vec![Update::Ready {
            session_id: "copy".into()
        }]
    );
    assert!(d.can_load());
    // Its backstop was cancelled; had it fired anyway, nothing happens.
    assert!(out.contains(&Effect::CancelTimer(Timer::StartCheck)));
    assert!(d.step(Input::Timer(Timer::StartCheck)).is_empty());
}

#[test]
fn a_fork_whose_registry_never_says_idle_is_ready_at_the_start_check() {
    let (mut d, _) = Delivery::new("copy", None, 0);
    d.step(session_start(None, "fork"));
    let out = d.step(Input::Timer(Timer::StartCheck));
    assert_eq!(
        reports(&out),
        vec![Update::Ready {
            session_id: "copy".into()
        }],
        "ready, not a dialog"
    );
    // A fork whose registry said idle before its SessionStart is ready at once.
    let (mut d, _) = Delivery::new("copy", None, 0);
    d.step(Input::Registry { idle: true });
    let out = d.step(session_start(None, "fork"));
    assert!(matches!(reports(&out)[..], [Update::Ready { .. }]));
}

#[test]
fn nothing_is_loaded_before_session_start() {
    let (d, _) = Delivery::new("s", None, 0);
    assert!(!d.can_load() && !d.ready());
}

#[test]
fn a_prompt_restored_by_a_resume_is_cleared_once_ready() {
    let (mut d, _) = Delivery::new("s", Some("/old task".into()), 9);
    let out = d.step(session_start(None, "resume"));
    assert_eq!(
        reports(&out),
        vec![Update::Ready {
            session_id: "s".into()
        }]
    );
    assert_eq!(starts(&out, Timer::Clear), Some(INTERRUPT_SETTLE));
    assert!(!d.can_load());
    let out = d.step(Input::Timer(Timer::Clear));
    let request = probe_request(&out).unwrap();
    assert_eq!(request.action, ProbeAction::Clear);
    assert_eq!(request.text, "\\/old task", "as it was delivered");
    assert!(request.nonce > 9, "nonces go on from the previous process");
    let out = d.step(probe(ProbeResult::Kept, request.nonce));
    assert_eq!(reports(&out), vec![Update::Idle]);
    assert!(d.can_load());
}

#[test]
fn a_timer_that_was_cancelled_is_ignored_if_it_fires() {
    let mut d = ready();
    d.step(Input::Load("x".into()));
    let out = d.step(Input::Interrupt);
    assert!(out.contains(&Effect::CancelTimer(Timer::Probe)));
    assert!(d.step(Input::Timer(Timer::Probe)).is_empty());
}

#[test]
fn a_failed_probe_request_leaves_the_box_free() {
    let mut d = ready();
    d.step(Input::Load("x".into()));
    let out = d.step(Input::LoadFailed);
    assert!(out.contains(&Effect::CancelTimer(Timer::Probe)));
    assert!(d.can_load());
}

/// Builds a machine in each phase, by name.
fn in_phase(phase: &str) -> Delivery {
    let mut d = ready();
    match phase {
        "starting" => return Delivery::new("s", None, 0).0,
        "idle" => {}
        "probing" => {
            d.step(Input::Load("x".into()));
        }
        "held by a dialog" => {
            d.step(Input::Load("x".into()));
            d.step(Input::Timer(Timer::Probe));
        }
        "submitted" => {
            let nonce = loaded(&mut d, "x");
            d.step(Input::ProbeExited { nonce });
            d.step(Input::Timer(Timer::Enter));
        }
        "working" => {
            working(&mut d, "x");
        }
        "returning" => {
            let out = d.step(Input::Load("x".into()));
            let nonce = probe_request(&out).unwrap().nonce;
            d.step(probe(ProbeResult::Draft, nonce));
        }
        "clearing" => {
            working(&mut d, "x");
            d.step(Input::Interrupt);
        }
        "compacting" => {
            let out = d.step(Input::Compact(String::new()));
            let nonce = probe_request(&out).unwrap().nonce;
            d.step(probe(ProbeResult::Loaded, nonce));
        }
        "compacting, started" => {
            compact_entered(&mut d);
            d.step(Input::Registry { idle: true });
            d.step(Input::Registry { idle: false });
        }
        "human turn" => {
            d.step(submit("mine"));
        }
        other => panic!("no phase {other}"),
    }
    d
}

const PHASES: [&str; 11] = [
    "starting",
    "idle",
    "probing",
    "held by a dialog",
    "submitted",
    "working",
    "returning",
    "clearing",
    "compacting",
    "compacting, started",
    "human turn",
];

#[test]
fn a_human_key_in_every_phase_is_forwarded_or_held_never_lost() {
    // Held while the box is ours: from the probe request until the acknowledgement.
    let held = [
        "probing",
        "submitted",
        "returning",
        "clearing",
        "compacting",
    ];
    for phase in PHASES {
        let mut d = in_phase(phase);
        let out = d.step(key(b"k"));
        if held.contains(&phase) {
            assert!(writes(&out).is_empty(), "{phase}: {out:?}");
            assert!(!d.can_load(), "{phase}");
        } else {
            assert_eq!(writes(&out), vec![b"k".to_vec()], "{phase}");
        }
        let marked = reports(&out).contains(&Update::HumanInput);
        assert_eq!(marked, phase == "working", "{phase}: {out:?}");
    }
}

#[test]
fn a_held_key_in_every_holding_phase_comes_out_once_the_box_is_free() {
    for phase in [
        "probing",
        "submitted",
        "returning",
        "clearing",
        "compacting",
    ] {
        let mut d = in_phase(phase);
        d.step(key(b"k"));
        // Each phase's own way out, without the human's help.
        let out: Vec<Effect> = match phase {
            "probing" => d.step(Input::Timer(Timer::Probe)),
            "submitted" => d.step(submit("x")),
            "returning" => {
                d.step(Input::Timer(Timer::Enter));
                d.step(Input::ProbeExited {
                    nonce: d.last_nonce(),
                });
                d.step(Input::Timer(Timer::Enter))
            }
            "clearing" => {
                d.step(Input::Timer(Timer::Clear));
                d.step(probe(ProbeResult::Cleared, d.last_nonce()))
            }
            "compacting" => {
                d.step(Input::ProbeExited {
                    nonce: d.last_nonce(),
                });
                d.step(Input::Timer(Timer::Enter));
                d.step(Input::Registry { idle: true });
                d.step(Input::Registry { idle: false })
            }
            _ => unreachable!(),
        };
        assert!(writes(&out).contains(&b"k".to_vec()), "{phase}: {out:?}");
    }
}

#[test]
fn claude_code_exiting_in_every_phase_ends_every_timer_and_every_reaction() {
    for phase in PHASES {
        let mut d = in_phase(phase);
        let out = d.step(Input::Exited);
        assert!(
            out.iter().all(|e| matches!(e, Effect::CancelTimer(_))),
            "{phase}: {out:?}"
        );
        assert!(!d.can_load(), "{phase}");
        for input in [
            key(b"k"),
            stop("x"),
            submit("x"),
            Input::Timer(Timer::Enter),
            Input::Timer(Timer::Probe),
            Input::Registry { idle: true },
            Input::Load("y".into()),
        ] {
            assert!(d.step(input.clone()).is_empty(), "{phase}: {input:?}");
        }
    }
}

#[test]
fn every_phase_with_a_busy_box_refuses_a_new_task() {
    // A delivery held by a dialog leaves the box free: the host keeps that task and
    // loads it again, but would not start another.
    for phase in PHASES {
        let free = phase == "idle" || phase == "held by a dialog";
        assert_eq!(in_phase(phase).can_load(), free, "{phase}");
    }
}
