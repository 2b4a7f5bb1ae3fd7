//! `claude-editor-hook FILE`: the whole editor-mode flow and its exit codes.
//!
//! Exit status is how we talk to Claude Code (docs/claude-code.md#editor-exit-zero-loads, #editor-exit-nonzero-keeps): 0 makes it
//! load FILE into the prompt box, anything else makes it keep the original prompt. So:
//! success and failures the user must read exit 0 with FILE rewritten; a cancel by the
//! user or a signal exits non-zero and leaves the original prompt untouched.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::delegate::{Cancel, Detached, Observer, Report};
use super::view::View;
use super::{Coordinator, Event};
use super::{multi, passthrough, prompt_file, results, route, submit};
use crate::directive::{self, BoardAsk, Directive, Route};
use crate::signals::Signal;
use crate::state::{AgentName, MAX_FILE_BYTES, Outcome, StateDir, chief_id};

/// Exit status when the user cancelled (Esc, or Ctrl-C): 0 with the file untouched,
/// which leaves Claude Code's prompt box exactly as it was and shows no "quit
/// unexpectedly" notice, as a non-zero exit would (docs/claude-code.md#editor-exit-notices,
/// #editor-exit-zero-loads). The task itself is recorded as cancelled.
pub const EXIT_CANCELLED: i32 = 0;

/// Options of editor mode.
#[derive(Clone, Debug, Default)]
pub struct EditorOptions {
    /// Give up (and cancel the task) after this long.
    pub timeout: Option<Duration>,
    /// Draw nothing while waiting. On a terminal, Esc and Ctrl-C still cancel.
    pub no_view: bool,
    /// Submit a delivered answer to the chief without a keypress.
    pub submit: bool,
}

/// Runs editor mode on `file` and returns the process exit status.
pub fn run_editor_mode(file: &Path, opts: &EditorOptions) -> Result<i32> {
    let content =
        std::fs::read(file).with_context(|| format!("failed to read {}", file.display()))?;
    let parsed = directive::parse(&content);
    let fail = |reason: &str| -> Result<i32> {
        eprintln!("claude-editor-hook: {reason}");
        prompt_file::write(file, &prompt_file::failure(reason, parsed.user_text))?;
        Ok(0)
    };
    let (route, prompt, background) = match parsed.directive {
        Directive::Edit => {
            if let Some(hint) = case_hint(&content) {
                return fail(&hint);
            }
            match passthrough::exec_editor(file)? {}
        }
        Directive::Invalid(why) => return fail(&why),
        Directive::EmptyPrompt { route } => {
            let targets: Vec<String> = route.targets().iter().map(|t| format!("@{t}")).collect();
            return fail(&format!(
                "nothing to send: write the task after {}",
                targets.join(" ")
            ));
        }
        Directive::Results => {
            let state = match StateDir::from_env() {
                Ok(s) => s,
                Err(e) => return fail(&format!("{e:#}")),
            };
            let chief = chief_id();
            let pending = match results::ready(&state, &chief) {
                Ok(p) => p,
                Err(e) => return fail(&format!("{e:#}")),
            };
            let ready = match results::take(&state, &chief, pending.ready) {
                Ok(r) => r,
                Err(e) => return fail(&format!("{e:#}")),
            };
            if ready.is_empty() && pending.set_aside.is_empty() {
                return fail(&format!(
                    "no background results yet ({} still running)",
                    pending.running
                ));
            }
            let text = results::text(&ready, pending.running, &pending.set_aside);
            prompt_file::write(file, text.as_bytes())?;
            return Ok(0);
        }
        Directive::Board(ask) => {
            // The project's board (or $CLAUDE_EDITOR_HOOK_BOARD): see docs/board.md.
            let spec = std::env::var("CLAUDE_EDITOR_HOOK_BOARD").ok();
            let text = crate::board::BoardPath::resolve(spec.as_deref())
                .and_then(|path| crate::board::Board::open(&path))
                .and_then(|mut board| match ask {
                    BoardAsk::Status => crate::board::chief::news(&mut board, chief_id().as_str()),
                    BoardAsk::Add(title) => {
                        crate::board::chief::add(&mut board, &String::from_utf8_lossy(title))
                    }
                });
            return match text {
                Ok(text) => {
                    prompt_file::write(file, text.as_bytes())?;
                    Ok(0)
                }
                Err(e) => fail(&format!("{e:#}")),
            };
        }
        Directive::Delegate {
            route,
            prompt,
            background,
        } => (route, prompt, background),
    };
    if prompt.len() as u64 > MAX_FILE_BYTES {
        return fail(&format!(
            "the prompt is {} bytes, over the {MAX_FILE_BYTES}-byte limit; nothing was sent",
            prompt.len()
        ));
    }
    let Ok(prompt) = String::from_utf8(prompt.to_vec()) else {
        return fail("the prompt is not UTF-8 text; nothing was sent");
    };
    let state = match StateDir::from_env() {
        Ok(s) => s,
        Err(e) => return fail(&format!("{e:#}")),
    };
    // Roles and `@any` become agents now, before anything is queued.
    let mut agents = Vec::new();
    for target in route.targets() {
        match route::resolve(&state, target) {
            Ok(agent) if matches!(route, Route::FanOut(_)) && agents.contains(&agent) => {
                return fail(&format!(
                    "@{target} resolves to @{agent}, which the fan-out already asks; name distinct agents"
                ));
            }
            Ok(agent) => agents.push(agent),
            Err(e) => return fail(&format!("{e:#}")),
        }
    }

    let coordinator = Coordinator::new(state);
    if background {
        // `@NAME&`: queue it, hand the chief a ticket, and go; the answer waits in the
        // chief's outbox for `@results` or the chief-side hooks.
        let task = match coordinator.submit_background(&agents[0], prompt, &chief_id()) {
            Ok(t) => t,
            Err(e) => return fail(&format!("{e:#}")),
        };
        prompt_file::write(file, ticket(&task.agent, &task.id).as_bytes())?;
        return Ok(0);
    }
    crate::signals::forward(coordinator.sender(), Event::Signal)?;
    // If the chief dies while we wait, nobody will read the answer: cancel. A parent pid
    // of 1 means it died before we looked (we were re-parented to init).
    let chief = nix::unistd::getppid().as_raw();
    let chief_gone = move || Event::Cancel(format!("the chief (pid {chief}) exited"));
    if chief == 1 {
        let _ = coordinator.sender().send(chief_gone());
    }
    let _chief_watch = crate::process::notify_exit(chief, coordinator.sender(), chief_gone)?;
    let on_terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let mut view = if on_terminal {
        Some(View::start(coordinator.sender())?)
    } else {
        None
    };
    if let (Route::Single(_), Some(v)) = (&route, view.as_mut()) {
        v.set_detachable(true);
    }
    let drawing = view.as_mut().filter(|_| !opts.no_view);

    let (content, cancelled_by, failed) = match route {
        Route::Single(_) => {
            coordinator.allow_detach();
            let observer = drawing.map(|v| v as &mut dyn Observer);
            let result = coordinator.delegate(&agents[0], prompt, opts.timeout, observer);
            drop(view);
            let report = match result {
                Ok(r) => r,
                Err(e) => {
                    if let Some(Detached(id)) = e.downcast_ref::<Detached>() {
                        prompt_file::write(file, ticket(&agents[0], id).as_bytes())?;
                        return Ok(0);
                    }
                    return fail(&format!("{e:#}"));
                }
            };
            let cancelled_by = report.cancelled_by.clone();
            let failed = report.done.outcome != Outcome::Ok;
            (
                single_file(&agents[0], report, parsed.user_text),
                cancelled_by,
                failed,
            )
        }
        Route::FanOut(_) => {
            let end = multi::fan_out(&coordinator, &agents, &prompt, opts.timeout, drawing);
            drop(view);
            let failed = end.steps.iter().any(|s| s.answer().is_none());
            (
                multi::fan_out_file(&end, parsed.user_text),
                end.cancelled_by,
                failed,
            )
        }
        Route::Pipeline(_) => {
            let observer = drawing.map(|v| v as &mut dyn Observer);
            let end = multi::pipeline(&coordinator, &agents, &prompt, opts.timeout, observer);
            drop(view);
            let failed =
                end.steps.len() < agents.len() || end.steps.iter().any(|s| s.answer().is_none());
            (
                multi::pipeline_file(&end, &agents, parsed.user_text),
                end.cancelled_by,
                failed,
            )
        }
    };
    match cancelled_by {
        Some(Cancel::User | Cancel::Signal(Signal::Interrupt)) => return Ok(EXIT_CANCELLED),
        // A termination from outside (SIGTERM, SIGHUP) says so in the exit status.
        Some(Cancel::Signal(sig)) => return Ok(sig.exit_code()),
        Some(Cancel::Timeout) | None => {}
    }
    prompt_file::write(file, &content)?;
    // A failure (a reason above the user's prompt, or a route with a failed step) is for
    // the human to read, never to send on its own.
    if opts.submit
        && !failed
        && let Err(e) = submit::submit_after_exit()
    {
        // The answer is in the box already; only the Enter is missing.
        eprintln!("claude-editor-hook: could not submit the answer: {e:#}");
    }
    Ok(0)
}

/// `@Planning …` is no directive (names are lower-case), but when `@planning` names an
/// agent, a role or `any`, the user surely meant it: a hint in the prompt box beats an
/// editor opening out of the blue. Anything else (`@Override`, `@src/…`) edits as usual.
fn case_hint(content: &[u8]) -> Option<String> {
    let rest = content.strip_prefix(b"@")?;
    let word_len = rest
        .iter()
        .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-'))
        .unwrap_or(rest.len());
    let word = std::str::from_utf8(&rest[..word_len]).ok()?;
    if !word.bytes().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let lower = AgentName::parse(&word.to_ascii_lowercase()).ok()?;
    let known = AgentName::is_reserved(lower.as_str()) || {
        let state = StateDir::from_env().ok()?;
        route::resolve(&state, &lower).is_ok()
    };
    known.then(|| {
        format!("agent names are lower-case: write @{lower}, not @{word}; nothing was sent")
    })
}

/// The line a background task leaves in the prompt box.
fn ticket(agent: &AgentName, id: &crate::state::TaskId) -> String {
    format!(
        "[@{agent} · task {id} · in the background] `@results` brings its answer when it is done"
    )
}

/// The prompt file after a single delegation: the answer, or the reason above what the
/// user wrote.
fn single_file(agent: &AgentName, report: Report, user_text: &[u8]) -> Vec<u8> {
    let elapsed_us = report.elapsed.as_micros() as u64;
    match (report.done.outcome, report.answer) {
        (Outcome::Ok, Some(answer)) => prompt_file::answer(
            agent,
            &report.task,
            elapsed_us,
            &report.done,
            &answer,
            report.invalid_bytes,
        ),
        (outcome, _) => {
            let why = report
                .done
                .reason
                .as_deref()
                .unwrap_or("no reason recorded");
            let reason = format!("@{agent} {outcome} (task {}): {why}", report.task);
            eprintln!("claude-editor-hook: {reason}");
            prompt_file::failure(&reason, user_text)
        }
    }
}
