//! Routes with more than one target: fan-out (all in parallel) and pipelines (one after
//! the other), built on [`Coordinator::delegate`].
//!
//! A fan-out runs one delegation per target, each on its own thread with its own
//! coordinator; the main coordinator's loop collects their ends and forwards Esc, Ctrl-C
//! and signals to all of them. A pipeline runs its steps on the main coordinator, so the
//! view follows the current step.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::delegate::{Cancel, Observer, Progress, Report};
use super::{Coordinator, Event};
use crate::signals::Signal;
use crate::state::{AgentName, Outcome};
use crate::time::human_us;

/// How one target of a route ended.
pub struct StepEnd {
    pub agent: AgentName,
    /// `Err` when the delegation could not even start (e.g. the agent is offline).
    pub report: Result<Report>,
}

impl StepEnd {
    /// The answer when the step succeeded.
    pub fn answer(&self) -> Option<&str> {
        let r = self.report.as_ref().ok()?;
        (r.done.outcome == Outcome::Ok).then(|| r.answer.as_deref().unwrap_or(""))
    }

    fn heading(&self) -> String {
        match &self.report {
            Ok(r) => format!(
                "@{} · task {} · {} · {}",
                self.agent,
                r.task,
                r.done.outcome,
                human_us(r.elapsed.as_micros() as u64)
            ),
            Err(_) => format!("@{} · not started", self.agent),
        }
    }

    fn body(&self) -> String {
        match (&self.report, self.answer()) {
            (_, Some(answer)) => answer.to_owned(),
            (Ok(r), None) => format!(
                "({}: {})",
                r.done.outcome,
                r.done.reason.as_deref().unwrap_or("no reason recorded")
            ),
            (Err(e), None) => format!("(failed: {e:#})"),
        }
    }
}

/// How a route ended: the steps that ran, and whether the user or a signal cancelled.
pub struct RouteEnd {
    pub steps: Vec<StepEnd>,
    pub cancelled_by: Option<Cancel>,
    pub elapsed: Duration,
}

/// Runs `prompt` on every agent at once and waits for all of them.
pub fn fan_out(
    c: &Coordinator,
    agents: &[AgentName],
    prompt: &str,
    timeout: Option<Duration>,
    mut view: Option<&mut super::view::View>,
) -> RouteEnd {
    let started = Instant::now();
    let mut children = Vec::new();
    for (i, agent) in agents.iter().enumerate() {
        let child = Coordinator::new(c.state().clone());
        children.push(child.sender());
        let (agent, prompt, tx) = (agent.clone(), prompt.to_owned(), c.sender());
        std::thread::spawn(move || {
            let report = child.delegate(&agent, prompt, timeout, None);
            let _ = tx.send(Event::Finished(i, Box::new(report)));
        });
    }
    let mut ends: Vec<Option<Result<Report>>> = agents.iter().map(|_| None).collect();
    let mut cancelled_by = None;
    while ends.iter().any(Option::is_none) {
        if let Some(v) = view.as_deref_mut() {
            v.draw_lines(&fan_out_lines(agents, &ends, started.elapsed()));
        }
        let refresh = view.as_ref().map(|_| Duration::from_millis(500));
        let forward = match c.next_event(refresh) {
            Some(Event::Finished(i, report)) => {
                ends[i] = Some(*report);
                None
            }
            Some(Event::Cancel(reason)) => {
                cancelled_by.get_or_insert(Cancel::User);
                Some(Event::Cancel(reason))
            }
            Some(Event::Signal(sig)) if sig != Signal::Resize => {
                cancelled_by.get_or_insert(Cancel::Signal(sig));
                Some(Event::Signal(sig))
            }
            _ => None,
        };
        if let Some(event) = forward {
            for child in &children {
                let _ = child.send(match &event {
                    Event::Cancel(r) => Event::Cancel(r.clone()),
                    Event::Signal(s) => Event::Signal(*s),
                    _ => continue,
                });
            }
        }
    }
    let steps = agents
        .iter()
        .zip(ends)
        .map(|(agent, end)| StepEnd {
            agent: agent.clone(),
            report: end.expect("every delegation reported"),
        })
        .collect();
    RouteEnd {
        steps,
        cancelled_by,
        elapsed: started.elapsed(),
    }
}

fn fan_out_lines(
    agents: &[AgentName],
    ends: &[Option<Result<Report>>],
    elapsed: Duration,
) -> Vec<String> {
    let secs = elapsed.as_secs();
    let mut lines = vec![format!(
        "claude-editor-hook → fan-out to {} agents  {}:{:02}",
        agents.len(),
        secs / 60,
        secs % 60
    )];
    for (agent, end) in agents.iter().zip(ends) {
        let state = match end {
            None => "working".to_owned(),
            Some(Ok(r)) => r.done.outcome.to_string(),
            Some(Err(_)) => "failed".to_owned(),
        };
        lines.push(format!("  @{agent:<16} {state}"));
    }
    lines.push(String::new());
    lines.push("Esc or Ctrl-C cancels them all and keeps your prompt".to_owned());
    lines
}

/// Shows a pipeline step in the view's title.
struct Step<'a> {
    view: &'a mut dyn Observer,
    label: String,
}

impl Observer for Step<'_> {
    fn update(&mut self, p: &Progress) {
        let mut p = p.clone();
        p.title = format!("[{}] {}", self.label, p.title);
        self.view.update(&p);
    }

    fn refresh(&self) -> Option<Duration> {
        self.view.refresh()
    }
}

/// Runs the steps in order. Each gets the prompt plus the previous step's answer; the
/// first step that does not succeed ends the pipeline.
pub fn pipeline(
    c: &Coordinator,
    agents: &[AgentName],
    prompt: &str,
    timeout: Option<Duration>,
    mut view: Option<&mut dyn Observer>,
) -> RouteEnd {
    let started = Instant::now();
    let mut steps: Vec<StepEnd> = Vec::new();
    for (k, agent) in agents.iter().enumerate() {
        let step_prompt = match steps.last().and_then(StepEnd::answer) {
            Some(previous) => format!(
                "{prompt}\n\n--- answer of step {k} (@{}) ---\n{previous}",
                steps[k - 1].agent
            ),
            None => prompt.to_owned(),
        };
        let mut step = view.as_deref_mut().map(|v| Step {
            view: v,
            label: format!("step {}/{}", k + 1, agents.len()),
        });
        let report = c.delegate(
            agent,
            step_prompt,
            timeout,
            step.as_mut().map(|s| s as &mut dyn Observer),
        );
        let cancelled_by = report.as_ref().ok().and_then(|r| r.cancelled_by.clone());
        steps.push(StepEnd {
            agent: agent.clone(),
            report,
        });
        if cancelled_by.is_some() {
            return RouteEnd {
                steps,
                cancelled_by,
                elapsed: started.elapsed(),
            };
        }
        if steps[k].answer().is_none() {
            break;
        }
    }
    RouteEnd {
        steps,
        cancelled_by: None,
        elapsed: started.elapsed(),
    }
}

/// The prompt file after a fan-out: one section per agent, in the order asked. When any
/// failed, what the user wrote is kept at the end.
pub fn fan_out_file(end: &RouteEnd, user_text: &[u8]) -> Vec<u8> {
    let failed = end.steps.iter().filter(|s| s.answer().is_none()).count();
    let mut out = format!(
        "[fan-out to {} agents · {} ok, {failed} not · {}]\n",
        end.steps.len(),
        end.steps.len() - failed,
        human_us(end.elapsed.as_micros() as u64)
    );
    for step in &end.steps {
        let body = step.body();
        out.push_str(&format!(
            "\n## {}\n{}\n",
            step.heading(),
            body.trim_end_matches('\n')
        ));
    }
    keep_user_text(out, failed > 0, user_text)
}

/// The prompt file after a pipeline: every step that ran, in order; a failure names its
/// step and keeps what the user wrote at the end.
pub fn pipeline_file(end: &RouteEnd, agents: &[AgentName], user_text: &[u8]) -> Vec<u8> {
    let route: Vec<String> = agents.iter().map(|a| format!("@{a}")).collect();
    let failed_at = end.steps.iter().position(|s| s.answer().is_none());
    let status = match failed_at {
        None => format!("{} steps done", agents.len()),
        Some(k) => format!("failed at step {} (@{})", k + 1, end.steps[k].agent),
    };
    let mut out = format!(
        "[pipeline {} · {status} · {}]\n",
        route.join(" > "),
        human_us(end.elapsed.as_micros() as u64)
    );
    for (k, step) in end.steps.iter().enumerate() {
        let body = step.body();
        out.push_str(&format!(
            "\n## step {} · {}\n{}\n",
            k + 1,
            step.heading(),
            body.trim_end_matches('\n')
        ));
    }
    for (k, agent) in agents.iter().enumerate().skip(end.steps.len()) {
        out.push_str(&format!("\n## step {} · @{agent} · not run\n", k + 1));
    }
    keep_user_text(out, failed_at.is_some(), user_text)
}

fn keep_user_text(mut out: String, keep: bool, user_text: &[u8]) -> Vec<u8> {
    let mut bytes = if keep {
        out.push_str("\n## your prompt\n");
        out.into_bytes()
    } else {
        return out.trim_end().to_owned().into_bytes();
    };
    bytes.extend_from_slice(user_text);
    bytes
}
