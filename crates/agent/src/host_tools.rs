//! Tools that act on the host rather than in the task's sandbox: the
//! server's `schedule` and `memory` tools. Whoever runs the task (the
//! server) provides them; each decides what a call may do and audits it.
//! They never run commands, so the approvals gate does not see them; a call
//! is recorded as a tool call like any other.

use crate::conversation::ToolSpec;
use serde_json::Value;

/// A set of host tools.
pub trait HostTools: Send + Sync {
    /// The tools offered to the model.
    fn specs(&self) -> Vec<ToolSpec>;

    /// Whether a call named `name` is answered here. This may name tools
    /// that are not offered, so a call to one is refused with its reason
    /// rather than as an unknown tool.
    fn handles(&self, name: &str) -> bool;

    /// Run a call of task `task`: `Ok(result)` or `Err(why)`, both for the
    /// model. Refusals are `Err`.
    fn call(&self, task: &str, name: &str, input: &Value) -> Result<String, String>;
}
