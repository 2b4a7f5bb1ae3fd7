//! The integration test crate: one binary, with shared helpers in `helper/`.

mod fixture;
mod harness_smoke;
mod helper;
mod passthrough;
mod roundtrip;
