//! The integration test crate: one binary, with shared helpers in `helper/`.

mod agent_window;
mod background;
mod board;
mod board_drain;
mod claude_facts;
mod doctor;
mod e2e_agent;
mod e2e_chief;
mod events;
mod faults;
mod fixture;
mod harness_smoke;
mod helper;
mod live_output;
mod mcp;
mod notify;
mod passthrough;
mod roundtrip;
mod routes;
mod run;
mod tokens;
mod top;
mod up;
mod verbs;
mod view;
mod worktree;
