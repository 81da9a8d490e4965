//! clawcage agent runtime: the model loop on the host, every tool call in the
//! task's sandbox. See docs/ARCHITECTURE.md.
//!
//! - [`helper`]: the sandbox helper's server loop (`clawcage __sandbox-helper`).

pub mod helper;
