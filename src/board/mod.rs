//! The team board: a goal, tasks with priorities and dependencies, exactly-once claims,
//! results and discoveries, in one SQLite database per project (docs/board.md).
//!
//! Every verb is one function here, called alike by `claude-editor-hook board VERB`
//! (src/cli/board.rs), by the agent host when it drains a board ([`drain`]) and by the
//! chief's `@board` directive, so a verb has one name and one behaviour at every layer.
//!
//! - [`location`]: where a board lives (durable state, one per project) and its privacy.
//! - [`schema`]: the schema version, migrations and the checks made before any write.
//! - [`store`]: the [`Board`] handle and the verbs that change or read tasks.
//! - [`task`]: what a board holds: tasks, new tasks, notes.
//! - [`check`]: the input rules (names, ids, sizes, no dependency cycles).
//! - [`claim`]: the one-transaction claim of the best ready task.
//! - [`lease`]: leases, renewals and the reopening of claims whose worker is gone.
//! - [`report`]: derived status (`ready`, `blocked`), `status` and `report`.
//! - [`wait`]: `claim --wait`, woken by database writes, lease deadlines and host exits.
//! - [`drain`]: persistent agents taking board tasks when they are idle.
//! - [`import`]: `add --from tasks.json`.
//! - [`chief`]: the chief's `@board` and `@board add`.
//! - [`api`]: the verbs with JSON arguments, as the MCP tools and the web API call them.

pub mod api;
pub mod check;
pub mod chief;
pub mod claim;
pub mod drain;
pub mod import;
pub mod lease;
pub mod location;
pub mod report;
pub mod schema;
pub mod store;
pub mod task;
pub mod wait;

pub use claim::{ClaimRequest, Claimed, Holder};
pub use drain::Drainer;
pub use location::{BOARDS_DIR, BoardPath};
pub use report::{Report, StatusSummary, TaskView};
pub use store::{Board, NewTask, Status, Task};
pub use wait::{ClaimEnd, WaitEnd, claim_verb, claim_wait};

/// The largest result, body or goal the board stores, in bytes. A bigger one is refused
/// with a message saying so, and nothing is recorded: the board is for summaries that go
/// into other tasks' prompts, not for artefacts (put those in files and give their paths).
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// The longest lease: longer ones are cut to it, so that `now + lease` (in SQL, at each
/// renewal) never overflows.
pub const MAX_LEASE: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// The lease of a claim that is not held by a hosted agent, unless `--lease` says otherwise.
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The author of a note (`note`): the worker, else `$USER`, else `leader`.
pub fn note_author(worker: Option<&str>) -> String {
    worker
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "leader".into())
}
