//! The private state directory shared by coordinators and agent hosts.
//!
//! Every file format, writer and reader is described in `docs/protocol.md`; the types
//! here are the single source of truth for field names.

mod dir;
mod file;
mod inbox;
mod legacy;
mod lock;
mod name;
mod outbox;
mod retention;
mod status;
mod task;

pub(crate) use dir::ensure_private_dir;
pub use dir::{
    APP_DIR, STATE_DIR_ENV, StateDir, StateRoots, durable_home, is_probe_spare, probe_request_path,
    probe_spare_path, probe_taken_path,
};
pub use file::{
    Durability, MAX_FILE_BYTES, atomic_create, atomic_write, atomic_write_with, file_is_temp,
    read_json, read_optional, set_aside, set_aside_line, write_json,
};
pub use inbox::{InboxEntry, claim_next, enqueue, pending, withdraw};
pub use lock::{HostLock, lock_holder};
pub use name::{AgentName, RESERVED_NAMES};
pub use outbox::{CHIEF_ID_ENV, ChiefId, OutboxEntry, chief_id};
pub use retention::{Pruned, Retention, TASK_RETENTION, TASKS_KEPT, prune};
pub use status::{
    AgentInfo, AgentState, AgentStatus, AgentWorktree, RecentTask, Restarted, TaskRef, TmuxLocation,
};
pub use task::{
    AgentCommand, CancelRequest, Done, FinishedBy, Outcome, Requester, TaskChanges, TaskEnvelope,
    TaskId, TaskUsage, TokenUsage, title_of,
};

/// The format version written into every JSON state file. Readers refuse other versions
/// with a message naming the file, rather than misreading it.
pub const FORMAT_VERSION: u32 = 1;
