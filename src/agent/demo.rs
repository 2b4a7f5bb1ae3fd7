//! The built-in demo agent: deterministic, offline, and quick.
//!
//! It streams a few lines, the last of which carries a checksum of the whole prompt, so
//! a test can tell that every byte arrived.

use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use super::output::OutputSink;
use super::run::{Context, Driver, Report, RunEnd, RunHandle, RunStatus};
use anyhow::Result;

use crate::state::TaskEnvelope;

/// FNV-1a, 64 bits: a stable checksum with no dependency.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The lines the demo agent answers `task` with.
pub fn answer_lines(task: &TaskEnvelope) -> Vec<String> {
    let prompt = task.prompt.as_bytes();
    vec![
        format!("demo agent @{} is working on: {}", task.agent, task.title),
        format!(
            "read {} bytes in {} line(s)",
            prompt.len(),
            task.prompt.lines().count()
        ),
        format!("DEMO-ANSWER {:016x} {}", checksum(prompt), task.title),
    ]
}

/// The `demo` driver: `delay` between streamed lines.
pub struct Demo {
    pub delay: Duration,
    run: Option<RunHandle>,
}

impl Demo {
    pub fn new(delay: Duration) -> Self {
        Self { delay, run: None }
    }
}

impl Driver for Demo {
    type Event = RunEnd;

    fn name(&self) -> &'static str {
        "demo"
    }

    fn start(
        &mut self,
        task: &TaskEnvelope,
        sink: OutputSink,
        tx: &Sender<RunEnd>,
    ) -> Result<Vec<Report>> {
        self.run = Some(start(self.delay, task, sink, tx.clone()));
        Ok(Vec::new())
    }

    fn stop(&mut self) -> Vec<Report> {
        if let Some(run) = &self.run {
            run.stop();
        }
        Vec::new()
    }

    fn kill(&mut self) {
        if let Some(run) = &self.run {
            run.kill();
        }
    }

    fn on_event(&mut self, end: RunEnd, _cx: &Context<'_>) -> Vec<Report> {
        self.run = None;
        vec![Report::Ended(end)]
    }
}

fn start(
    delay: Duration,
    task: &TaskEnvelope,
    mut sink: OutputSink,
    tx: Sender<RunEnd>,
) -> RunHandle {
    let (stop_tx, stop_rx) = channel::<()>();
    let lines = answer_lines(task);
    std::thread::spawn(move || {
        let mut answer = Vec::new();
        let mut status = RunStatus::Exited(0);
        for (i, line) in lines.iter().enumerate() {
            // Waiting on the stop channel both paces the stream and makes it stoppable.
            let stopped = if i > 0 && !delay.is_zero() {
                stop_rx.recv_timeout(delay).is_ok()
            } else {
                stop_rx.try_recv().is_ok()
            };
            if stopped {
                status = RunStatus::Stopped;
                break;
            }
            let text = format!("{line}\n");
            sink.write(text.as_bytes());
            answer.extend_from_slice(text.as_bytes());
        }
        let _ = tx.send(RunEnd {
            status,
            answer,
            ..RunEnd::default()
        });
    });
    RunHandle::Thread { stop: stop_tx }
}
