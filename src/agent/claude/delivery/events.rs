//! How the delivery machine reads hook and probe events.

use super::super::message::{Event, ProbeReport, ProbeResult};
use super::{Answer, Delivery, ENTER_SETTLE, Effect, Phase, START_CHECK, Timer, Update};

impl Delivery {
    pub(super) fn on_event(&mut self, event: Event) {
        let working = matches!(self.phase, Phase::Working { .. });
        match event {
            Event::SessionStart { session_id, source } => {
                if let Some(id) = session_id {
                    self.session_id = id;
                }
                // A compaction ran, in the same session: ours is done (or it was Claude
                // Code's own, during a turn, which goes on).
                if source.as_deref() == Some("compact") && self.ready {
                    self.compacted();
                    return;
                }
                // Issue 15: Claude Code 2.1.332 fires a fork's SessionStart before its box
                // takes keys, and a Ctrl-G sent then is lost
                // (docs/claude-code.md#hook-session-start): a fork is ready once its
                // registry says idle, or at the StartCheck backstop at the latest.
                if source.as_deref() == Some("fork") && !self.ready && !self.registry_idle {
                    self.start_pending = true;
                    self.start(Timer::StartCheck, START_CHECK);
                    return;
                }
                self.become_ready();
            }
            Event::Probe(report) => self.on_probe(report),
            Event::UserPromptSubmit { prompt, prompt_id } => match &self.phase {
                // Compared without trailing whitespace, which the box may not keep.
                Phase::Submitted { text, nonce, .. } if text.trim_end() == prompt.trim_end() => {
                    let (nonce, text) = (*nonce, text.clone());
                    // The Stop of our turn carries this id (docs/claude-code.md#hook-stop).
                    self.our_prompt_id = prompt_id;
                    // Keys held back during the delivery go into the running turn.
                    let human_input = !self.held.is_empty();
                    self.streaming = true;
                    self.set_phase(Phase::Working { nonce, text });
                    self.report(Update::Acked { human_input });
                }
                Phase::Working { .. } => self.report(Update::HumanInput),
                // The human's own prompt. Our delivery, if one is under way, keeps its
                // phase: only our acknowledgement or a timeout ends it.
                _ => {
                    self.human_turn = true;
                    self.report(Update::HumanTurn);
                }
            },
            Event::Stop { .. } | Event::StopFailure { .. } if !working => {
                // The end of the human's turn (ours has not started): our delivery, if
                // any, goes on.
                self.human_turn = false;
                if self.phase == Phase::Idle {
                    self.report(Update::Idle);
                }
            }
            // A Stop names the prompt of its turn (`prompt_id`, as its UserPromptSubmit
            // did, docs/claude-code.md#hook-stop). One that is not our acknowledged
            // prompt's ends the human's turn, which they submitted just as we delivered:
            // Claude Code queued our prompt, and our turn comes next. Found by the suite
            // under load, where the human's UserPromptSubmit came 1.5 s late.
            Event::Stop {
                prompt_id: Some(id),
                ..
            }
            | Event::StopFailure {
                prompt_id: Some(id),
                ..
            } if self.our_prompt_id.as_ref().is_some_and(|ours| *ours != id) => {
                self.human_turn = false;
            }
            Event::Stop {
                last_assistant_message,
                transcript_path,
                ..
            } => {
                let prompt = match &self.phase {
                    Phase::Working { text, .. } => text.clone(),
                    _ => String::new(),
                };
                self.set_phase(Phase::Idle);
                self.report(Update::Answered(Answer {
                    last_message: last_assistant_message,
                    transcript: transcript_path,
                    prompt,
                }));
            }
            Event::StopFailure {
                last_assistant_message,
                ..
            } => {
                self.set_phase(Phase::Idle);
                self.report(Update::Failed(last_assistant_message));
            }
            Event::PermissionRequest { tool_name } => {
                self.report(Update::NeedsHuman(format!("permission for {tool_name}")));
            }
            Event::PostToolUse {} if working => self.report(Update::Resumed),
            // MessageDisplay hooks (one per finished paragraph while the turn streams,
            // docs/claude-code.md#message-display-per-paragraph) run as their own
            // processes and may land just after Stop: text streamed since our last
            // delivery belongs to that task.
            Event::MessageDisplay { delta } if self.streaming => self.output(delta),
            // Issue 14: what a tool is about to do, as a line of the task's output
            // (docs/claude-code.md#hook-pre-tool-use).
            Event::PreToolUse {
                tool_name,
                tool_input,
            } if working => {
                let line = format!("▸ running {}\n", tool_activity(&tool_name, &tool_input));
                let line = match self.output_at_line_start {
                    true => line,
                    false => format!("\n{line}"),
                };
                self.output(line);
            }
            Event::StatusLine {
                cost_usd: Some(usd),
            } => self.report(Update::Cost(usd)),
            Event::Notification {
                notification_type,
                message,
            } if notification_type == "permission_prompt" => {
                self.report(Update::NeedsHuman(message));
            }
            _ => {}
        }
    }

    /// Streamed text of our turn, for `output.log`.
    fn output(&mut self, text: String) {
        if !text.is_empty() {
            self.output_at_line_start = text.ends_with('\n');
        }
        self.report(Update::Output(text));
    }

    fn on_probe(&mut self, report: ProbeReport) {
        let ProbeReport {
            result, nonce, pid, ..
        } = report;
        match result {
            // Our Ctrl-G got through: no more retries for this delivery.
            ProbeResult::Started => {
                self.probe_started = nonce;
                return;
            }
            // The human's own Ctrl-G: no Ctrl-G of ours may go into their editor.
            ProbeResult::UserEditor => {
                if let Some(pid) = pid {
                    self.user_editor = true;
                    self.out.push(Effect::WatchUserEditor { pid });
                }
                return;
            }
            _ => {}
        }
        let Some(nonce) = nonce else { return };
        match &self.phase {
            Phase::Clearing { nonce: ours, .. } if *ours == nonce => {
                self.set_phase(Phase::Idle);
                self.report(Update::Idle);
            }
            // A probe that ran after its timeout still loaded our task: submit it ...
            Phase::Idle if self.timed_out == Some(nonce) && result == ProbeResult::Loaded => {
                self.timed_out = None;
                let text = self.last_text.clone();
                self.set_phase(Phase::Submitted {
                    nonce,
                    text,
                    enters: 0,
                });
                self.enter_after_probe_exits(pid, nonce);
                self.report(Update::Resumed);
            }
            // ... or found a human's draft: the task waits for it, as on time.
            Phase::Idle if self.timed_out == Some(nonce) && result == ProbeResult::Draft => {
                self.timed_out = None;
                self.set_phase(Phase::Returning { nonce });
                self.enter_after_probe_exits(pid, nonce);
                self.report(Update::Draft);
            }
            Phase::Probing {
                nonce: ours,
                text,
                compact,
            } if *ours == nonce => {
                let (text, compact) = (text.clone(), *compact);
                if result == ProbeResult::Loaded {
                    // Held keys wait for the acknowledgement: typed now, they would join
                    // the task.
                    self.set_phase(if compact {
                        Phase::Compacting {
                            started: false,
                            enters: 0,
                            idle_seen: self.registry_idle,
                        }
                    } else {
                        Phase::Submitted {
                            nonce,
                            text,
                            enters: 0,
                        }
                    });
                    self.enter_after_probe_exits(pid, nonce);
                } else {
                    self.set_phase(Phase::Returning { nonce });
                    self.enter_after_probe_exits(pid, nonce);
                    self.report(Update::Draft);
                }
            }
            _ => {}
        }
    }

    /// Enter for delivery `nonce` goes once the probe has exited and Claude Code has had
    /// a moment to load its file; a key typed while an editor runs arrives as a newline,
    /// not a submit (docs/claude-code.md#editor-keys-queued).
    fn enter_after_probe_exits(&mut self, pid: Option<i32>, nonce: u64) {
        match pid {
            Some(pid) => self.out.push(Effect::WatchProbeExit { pid, nonce }),
            None => self.start(Timer::Enter, ENTER_SETTLE),
        }
    }
}

/// One line saying what a tool call does: `Bash: cargo test`, `Read: src/lib.rs`; its
/// most telling input, cut to one short line.
pub(super) fn tool_activity(tool: &str, input: &serde_json::Value) -> String {
    let telling = [
        "command",
        "file_path",
        "path",
        "pattern",
        "url",
        "query",
        "description",
    ]
    .iter()
    .find_map(|key| input[*key].as_str())
    .or_else(|| input.as_object()?.values().find_map(|v| v.as_str()));
    let tool: String = tool.chars().filter(|c| !c.is_control()).take(60).collect();
    match telling {
        Some(what) => {
            let line = what.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let mut line: String = line.chars().filter(|c| !c.is_control()).collect();
            if let Some((at, _)) = line.char_indices().nth(120) {
                line.truncate(at);
                line.push('…');
            }
            format!("{tool}: {}", line.trim())
        }
        None => tool,
    }
}
