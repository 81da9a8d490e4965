//! clawcage agent runtime: the model loop on the host, every tool call in the
//! task's sandbox. See docs/ARCHITECTURE.md.
//!
//! - [`provider`]: Anthropic and OpenAI-compatible model APIs, streamed, with retries.
//! - [`conversation`]: the provider-neutral conversation.
//! - [`helper`]: the sandbox helper's server loop (`clawcage __sandbox-helper`).

pub mod conversation;
pub mod helper;
pub mod provider;
#[cfg(feature = "testing")]
pub mod testing;
