//! The approvals hook: before each tool call runs, the agent asks a
//! [`ToolGate`]. The default allows everything (the sandbox is the
//! protection; approvals are a layer above it). A terminal prompt or an HTTP
//! approver implements the trait and may take as long as a person needs:
//! `check` is async.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// What the gate sees of a call: everything a reviewer needs to decide.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRequest {
    /// The task.
    pub task: String,
    /// The provider's call id.
    pub call_id: String,
    /// Tool name.
    pub tool: String,
    /// The arguments the model sent.
    pub input: serde_json::Value,
    /// The first command the call runs in the sandbox, in full.
    pub argv: Vec<String>,
    /// Its working directory inside the sandbox.
    pub cwd: PathBuf,
    /// For `write_file` / `edit_file`: the path written.
    pub writes: Option<String>,
    /// For `fetch_url`: the URL.
    pub url: Option<String>,
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run it.
    Allow,
    /// Do not run it; the reason goes back to the model.
    Deny(String),
}

/// A boxed future of a verdict (keeps the trait object-safe).
pub type VerdictFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// Decides whether a tool call may run.
pub trait ToolGate: Send + Sync {
    /// Decide on `req`. Called once per call, before anything runs.
    fn check<'a>(&'a self, req: &'a GateRequest) -> VerdictFuture<'a>;
}

/// Allows every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl ToolGate for AllowAll {
    fn check<'a>(&'a self, _req: &'a GateRequest) -> VerdictFuture<'a> {
        Box::pin(std::future::ready(Verdict::Allow))
    }
}
