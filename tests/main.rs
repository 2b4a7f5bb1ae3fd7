//! The integration test crate: one binary, with shared helpers in `helper/`.

mod harness_smoke;
mod helper;
