//! clawcage agent runtime: the model loop on the host, every tool call in the
//! task's sandbox. See docs/ARCHITECTURE.md.
//!
//! - [`provider`]: Anthropic and OpenAI-compatible model APIs, streamed, with retries.
//! - [`config`]: the model config file (base URLs, key sources, default models).
//! - [`conversation`]: the provider-neutral conversation.
//! - [`tools`]: the tools, as commands run inside the sandbox.
//! - [`runner`]: the loop of one task; [`task`]: one `clawcage agent` run.
//! - [`gate`]: the approvals hook before each tool call.
//! - [`skills`], [`mcp`], [`extras`]: the task's skills and MCP servers' tools.
//! - [`host_tools`]: tools the runner of a task provides on the host (the server's schedule and memory).
//! - [`helper`]: the sandbox helper's server loop (`clawcage __sandbox-helper`).
//! - [`audit`]: the core's events as audit records.

pub mod audit;
pub mod config;
pub mod conversation;
pub mod extras;
pub mod gate;
pub mod helper;
pub mod host_tools;
pub mod mcp;
pub mod prompt;
pub mod provider;
pub mod runner;
pub mod skills;
pub mod task;
pub mod tools;

#[cfg(feature = "testing")]
pub mod testing;
