//! The scheduler: which worker runs which task, when, and what an attempt's end means.
//!
//! A pure state machine: [`Scheduler::step`] takes the time and one [`Input`] and returns
//! the [`Effect`]s for the shell (src/run/runner.rs) to carry out: start a worker on a
//! task, kill a worker, record an attempt's end on the board, report a blocked task, end
//! the run. It never touches a process, a file or the clock, so every rule below is
//! unit-tested here.
//!
//! - A task is ready when every dependency is done; ready tasks go to idle workers by
//!   priority (1 first), then in the order they were added, as the board's own `claim`.
//! - An attempt that fails (or outlives the per-task timeout, and is killed) is retried
//!   while the task has failed at most `retries` times; then the task fails, and every
//!   open task that depends on it, directly or not, is blocked with the reason.
//! - Cancelling kills every running worker and starts nothing new; each task in flight
//!   goes back to open (or is done, if its worker finished first).
//! - The run ends when no worker is busy and nothing more can start.

use std::collections::{BTreeSet, HashMap};

/// One task as the scheduler sees it.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    pub id: String,
    pub priority: i64,
    pub deps: Vec<String>,
    /// Where the task stands when the scheduler starts (a resumed run has done tasks).
    pub done: bool,
    /// Claims so far (the board's `attempts`), so attempt numbers continue.
    pub attempts: u32,
    /// Failed attempts so far in this run (a resumed run keeps counting).
    pub failures: u32,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Look at the clock: timeouts.
    Tick,
    /// Worker `worker`'s attempt ended.
    Ended { worker: usize, outcome: Outcome },
    /// Ctrl-C (or SIGTERM, SIGHUP): stop everything, give the tasks in flight back.
    Cancel,
}

/// How an attempt ended, as its worker reported it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The task's result.
    Success(String),
    /// Why it failed, one line.
    Failure(String),
}

/// How an attempt ends on the board.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    /// Done, with its result.
    Done(String),
    /// Failed, and back to open for another attempt.
    Retry(String),
    /// Failed for good: its dependents are blocked.
    Failed(String),
    /// Back to open without a verdict (the run was cancelled).
    GiveBack(String),
}

/// How the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every task is done.
    AllDone,
    /// Some task failed or is blocked.
    Failures,
    /// Cancelled.
    Cancelled,
}

impl Exit {
    /// The process's exit status: 0, 1 or 130 (128 + SIGINT).
    pub fn code(self) -> i32 {
        match self {
            Exit::AllDone => 0,
            Exit::Failures => 1,
            Exit::Cancelled => 130,
        }
    }
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Claim `task` for `worker` on the board and start the worker on it.
    Start {
        worker: usize,
        task: String,
        attempt: u32,
    },
    /// Kill the worker's process group (its attempt's end follows as an input).
    Kill { worker: usize },
    /// Record the end of `worker`'s attempt at `task`.
    Finish {
        worker: usize,
        task: String,
        attempt: u32,
        end: End,
    },
    /// `task` can no longer run: a task it depends on failed.
    Blocked { task: String, reason: String },
    /// The run is over.
    Exit(Exit),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskState {
    Open,
    Running,
    Done,
    Failed,
    Blocked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Timeout,
    Cancel,
}

#[derive(Clone, Debug)]
struct Busy {
    task: usize,
    attempt: u32,
    deadline_ms: u64,
    stopping: Option<Stop>,
}

struct Node {
    spec: TaskSpec,
    state: TaskState,
    /// Dependencies not done yet.
    unmet: usize,
    dependents: Vec<usize>,
    seq: usize,
}

/// The scheduler's state.
pub struct Scheduler {
    nodes: Vec<Node>,
    /// Ready tasks by (priority, order added).
    ready: BTreeSet<(i64, usize)>,
    workers: Vec<Option<Busy>>,
    retries: u32,
    timeout_ms: u64,
    cancelling: bool,
    exited: bool,
}

impl Scheduler {
    /// A scheduler for `tasks` (dependencies refer to ids in `tasks`; unknown ones are
    /// treated as unmet forever, which a validated plan never has) with `workers`
    /// workers, retrying a task up to `retries` times, each attempt limited to
    /// `timeout_ms`.
    pub fn new(tasks: Vec<TaskSpec>, workers: usize, retries: u32, timeout_ms: u64) -> Self {
        let index: HashMap<&str, usize> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect();
        let mut dependents = vec![Vec::new(); tasks.len()];
        let mut unmet = vec![0; tasks.len()];
        for (i, t) in tasks.iter().enumerate() {
            for d in &t.deps {
                match index.get(d.as_str()) {
                    Some(&j) => {
                        dependents[j].push(i);
                        if !tasks[j].done {
                            unmet[i] += 1;
                        }
                    }
                    None => unmet[i] += 1,
                }
            }
        }
        let nodes: Vec<Node> = tasks
            .into_iter()
            .zip(dependents)
            .zip(unmet)
            .enumerate()
            .map(|(seq, ((spec, dependents), unmet))| Node {
                state: if spec.done {
                    TaskState::Done
                } else {
                    TaskState::Open
                },
                spec,
                unmet,
                dependents,
                seq,
            })
            .collect();
        let ready = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.state == TaskState::Open && n.unmet == 0)
            .map(|(i, n)| (n.spec.priority, i))
            .collect();
        Self {
            nodes,
            ready,
            workers: vec![None; workers],
            retries,
            timeout_ms,
            cancelling: false,
            exited: false,
        }
    }

    /// The earliest time a [`Input::Tick`] has something to do (a timeout), if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.workers
            .iter()
            .flatten()
            .filter(|b| b.stopping.is_none())
            .map(|b| b.deadline_ms)
            .min()
    }

    /// How many workers are running a task.
    pub fn busy(&self) -> usize {
        self.workers.iter().flatten().count()
    }

    /// The task worker `worker` is running, if any.
    pub fn task_of(&self, worker: usize) -> Option<&str> {
        self.workers
            .get(worker)?
            .as_ref()
            .map(|b| self.nodes[b.task].spec.id.as_str())
    }

    /// Handles `input` at time `now_ms` (any monotonic clock, in milliseconds) and
    /// returns what to do. The first call should be a [`Input::Tick`], which starts the
    /// first tasks.
    pub fn step(&mut self, now_ms: u64, input: Input) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.exited {
            return fx;
        }
        match input {
            Input::Tick => {
                for w in 0..self.workers.len() {
                    if let Some(b) = &mut self.workers[w]
                        && b.stopping.is_none()
                        && now_ms >= b.deadline_ms
                    {
                        b.stopping = Some(Stop::Timeout);
                        fx.push(Effect::Kill { worker: w });
                    }
                }
            }
            Input::Cancel => {
                if !self.cancelling {
                    self.cancelling = true;
                    for (w, b) in self.workers.iter_mut().enumerate() {
                        if let Some(b) = b {
                            // A timed-out worker is being killed already.
                            if b.stopping.is_none() {
                                fx.push(Effect::Kill { worker: w });
                            }
                            b.stopping = Some(Stop::Cancel);
                        }
                    }
                }
            }
            Input::Ended { worker, outcome } => {
                if let Some(busy) = self.workers.get_mut(worker).and_then(Option::take) {
                    self.end(worker, busy, outcome, &mut fx);
                }
            }
        }
        self.assign(now_ms, &mut fx);
        if self.busy() == 0 && (self.cancelling || self.ready.is_empty()) {
            let exit = if self.cancelling {
                Exit::Cancelled
            } else if self.nodes.iter().all(|n| n.state == TaskState::Done) {
                Exit::AllDone
            } else {
                Exit::Failures
            };
            self.exited = true;
            fx.push(Effect::Exit(exit));
        }
        fx
    }

    fn end(&mut self, worker: usize, busy: Busy, outcome: Outcome, fx: &mut Vec<Effect>) {
        let i = busy.task;
        let task = self.nodes[i].spec.id.clone();
        let attempt = busy.attempt;
        let finish = |end| Effect::Finish {
            worker,
            task: task.clone(),
            attempt,
            end,
        };
        let failure = match (busy.stopping, outcome) {
            // Finished before the kill landed: the work is done, keep it.
            (Some(Stop::Cancel) | None, Outcome::Success(result)) => {
                self.nodes[i].state = TaskState::Done;
                fx.push(finish(End::Done(result)));
                for j in self.nodes[i].dependents.clone() {
                    let n = &mut self.nodes[j];
                    n.unmet -= 1;
                    if n.unmet == 0 && n.state == TaskState::Open {
                        self.ready.insert((n.spec.priority, n.seq));
                    }
                }
                return;
            }
            (Some(Stop::Cancel), Outcome::Failure(_)) => {
                self.nodes[i].state = TaskState::Open;
                self.ready.insert((self.nodes[i].spec.priority, i));
                fx.push(finish(End::GiveBack("the run was cancelled".into())));
                return;
            }
            (Some(Stop::Timeout), _) => {
                format!("timed out after {}", human_ms(self.timeout_ms))
            }
            (None, Outcome::Failure(why)) => why,
        };
        let n = &mut self.nodes[i];
        n.spec.failures += 1;
        if n.spec.failures <= self.retries && !self.cancelling {
            n.state = TaskState::Open;
            self.ready.insert((n.spec.priority, i));
            fx.push(finish(End::Retry(failure)));
            return;
        }
        n.state = TaskState::Failed;
        fx.push(finish(End::Failed(failure.clone())));
        // Everything below it that has not run can no longer run.
        let root = format!("blocked by {task} failed: {}", first_line(&failure));
        let mut stack = self.nodes[i].dependents.clone();
        while let Some(j) = stack.pop() {
            if self.nodes[j].state != TaskState::Open {
                continue;
            }
            self.nodes[j].state = TaskState::Blocked;
            self.ready.remove(&(self.nodes[j].spec.priority, j));
            fx.push(Effect::Blocked {
                task: self.nodes[j].spec.id.clone(),
                reason: root.clone(),
            });
            stack.extend(self.nodes[j].dependents.iter().copied());
        }
    }

    fn assign(&mut self, now_ms: u64, fx: &mut Vec<Effect>) {
        if self.cancelling {
            return;
        }
        for w in 0..self.workers.len() {
            if self.workers[w].is_some() {
                continue;
            }
            let Some((p, i)) = self.ready.pop_first() else {
                return;
            };
            debug_assert_eq!(p, self.nodes[i].spec.priority);
            let n = &mut self.nodes[i];
            n.state = TaskState::Running;
            n.spec.attempts += 1;
            self.workers[w] = Some(Busy {
                task: i,
                attempt: n.spec.attempts,
                deadline_ms: now_ms.saturating_add(self.timeout_ms),
                stopping: None,
            });
            fx.push(Effect::Start {
                worker: w,
                task: n.spec.id.clone(),
                attempt: n.spec.attempts,
            });
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// `30m`, `90s`, `1500ms`, `2h`: a timeout as the user wrote it, roughly.
pub fn human_ms(ms: u64) -> String {
    match ms {
        ms if ms % 3_600_000 == 0 && ms > 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 && ms > 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 && ms > 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, deps: &[&str]) -> TaskSpec {
        TaskSpec {
            id: id.into(),
            priority: 3,
            deps: deps.iter().map(|d| d.to_string()).collect(),
            done: false,
            attempts: 0,
            failures: 0,
        }
    }

    fn starts(fx: &[Effect]) -> Vec<(usize, &str)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Start { worker, task, .. } => Some((*worker, task.as_str())),
                _ => None,
            })
            .collect()
    }

    fn ok(worker: usize) -> Input {
        Input::Ended {
            worker,
            outcome: Outcome::Success("ok".into()),
        }
    }

    fn fail(worker: usize) -> Input {
        Input::Ended {
            worker,
            outcome: Outcome::Failure("boom".into()),
        }
    }

    #[test]
    fn dependencies_wait_and_parallelism_fills_the_workers() {
        let tasks = vec![
            spec("a", &[]),
            spec("b", &[]),
            spec("c", &["a", "b"]),
            spec("d", &[]),
        ];
        let mut s = Scheduler::new(tasks, 2, 0, 1000);
        let fx = s.step(0, Input::Tick);
        assert_eq!(starts(&fx), [(0, "a"), (1, "b")]);
        let fx = s.step(1, ok(0));
        // c still waits for b; d takes the free worker.
        assert_eq!(starts(&fx), [(0, "d")]);
        let fx = s.step(2, ok(1));
        assert_eq!(starts(&fx), [(1, "c")]);
        assert!(starts(&s.step(3, ok(0))).is_empty());
        let fx = s.step(4, ok(1));
        assert_eq!(fx.last(), Some(&Effect::Exit(Exit::AllDone)));
    }

    #[test]
    fn priority_then_order_added() {
        let mut tasks = vec![spec("low", &[]), spec("high", &[]), spec("mid", &[])];
        tasks[0].priority = 5;
        tasks[1].priority = 1;
        let mut s = Scheduler::new(tasks, 1, 0, 1000);
        assert_eq!(starts(&s.step(0, Input::Tick)), [(0, "high")]);
        assert_eq!(starts(&s.step(0, ok(0))), [(0, "mid")]);
        assert_eq!(starts(&s.step(0, ok(0))), [(0, "low")]);
    }

    #[test]
    fn a_failure_is_retried_then_blocks_its_dependents_and_the_rest_goes_on() {
        let tasks = vec![
            spec("a", &[]),
            spec("b", &["a"]),
            spec("c", &["b"]),
            spec("d", &[]),
        ];
        let mut s = Scheduler::new(tasks, 1, 1, 1000);
        assert_eq!(starts(&s.step(0, Input::Tick)), [(0, "a")]);
        let fx = s.step(1, fail(0));
        assert!(
            matches!(&fx[0], Effect::Finish { end: End::Retry(r), attempt: 1, .. } if r == "boom")
        );
        assert!(matches!(&fx[1], Effect::Start { task, attempt: 2, .. } if task == "a"));
        let fx = s.step(2, fail(0));
        assert!(matches!(
            &fx[0],
            Effect::Finish {
                end: End::Failed(_),
                attempt: 2,
                ..
            }
        ));
        let blocked: Vec<_> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Blocked { task, reason } => Some((task.as_str(), reason.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            blocked,
            [
                ("b", "blocked by a failed: boom"),
                ("c", "blocked by a failed: boom")
            ]
        );
        assert_eq!(starts(&fx), [(0, "d")]);
        let fx = s.step(3, ok(0));
        assert_eq!(fx.last(), Some(&Effect::Exit(Exit::Failures)));
    }

    #[test]
    fn a_timeout_kills_and_counts_as_a_failure() {
        let mut s = Scheduler::new(vec![spec("a", &[])], 1, 1, 100);
        s.step(0, Input::Tick);
        assert_eq!(s.next_deadline(), Some(100));
        assert!(s.step(99, Input::Tick).is_empty());
        assert_eq!(s.step(100, Input::Tick), [Effect::Kill { worker: 0 }]);
        assert_eq!(s.next_deadline(), None, "a killed worker has no deadline");
        // Whatever the killed process reported, the attempt timed out.
        let fx = s.step(101, ok(0));
        assert!(
            matches!(&fx[0], Effect::Finish { end: End::Retry(r), .. } if r == "timed out after 100ms")
        );
        assert!(matches!(&fx[1], Effect::Start { attempt: 2, .. }));
        assert_eq!(s.next_deadline(), Some(201));
        let fx = s.step(150, ok(0));
        assert!(matches!(
            &fx[0],
            Effect::Finish {
                end: End::Done(_),
                ..
            }
        ));
        assert_eq!(fx.last(), Some(&Effect::Exit(Exit::AllDone)));
    }

    #[test]
    fn cancel_kills_everything_and_gives_the_tasks_back() {
        let tasks = vec![spec("a", &[]), spec("b", &[]), spec("c", &[])];
        let mut s = Scheduler::new(tasks, 2, 1, 1000);
        s.step(0, Input::Tick);
        let fx = s.step(1, Input::Cancel);
        assert_eq!(fx, [Effect::Kill { worker: 0 }, Effect::Kill { worker: 1 }]);
        assert!(
            s.step(1, Input::Cancel).is_empty(),
            "a second Ctrl-C adds nothing"
        );
        let fx = s.step(2, fail(0));
        assert!(
            matches!(&fx[0], Effect::Finish { end: End::GiveBack(_), task, .. } if task == "a")
        );
        assert_eq!(fx.len(), 1, "nothing new starts: {fx:?}");
        // b finished before its kill landed: its work is kept.
        let fx = s.step(3, ok(1));
        assert!(matches!(&fx[0], Effect::Finish { end: End::Done(_), task, .. } if task == "b"));
        assert_eq!(fx.last(), Some(&Effect::Exit(Exit::Cancelled)));
    }

    #[test]
    fn a_resumed_run_skips_done_tasks_and_continues_attempt_numbers() {
        let mut tasks = vec![spec("a", &[]), spec("b", &["a"])];
        tasks[0].done = true;
        tasks[0].attempts = 1;
        tasks[1].attempts = 1;
        let mut s = Scheduler::new(tasks, 2, 1, 1000);
        let fx = s.step(0, Input::Tick);
        assert_eq!(
            fx,
            [Effect::Start {
                worker: 0,
                task: "b".into(),
                attempt: 2
            }]
        );
    }

    #[test]
    fn nothing_to_do_exits_at_once() {
        let mut tasks = vec![spec("a", &[])];
        tasks[0].done = true;
        let mut s = Scheduler::new(tasks, 3, 1, 1000);
        assert_eq!(s.step(0, Input::Tick), [Effect::Exit(Exit::AllDone)]);
        assert!(
            s.step(1, Input::Tick).is_empty(),
            "an ended run stays ended"
        );
    }
}
