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

/// The policy's `[approvals]` rules behind the gate: a `bash` (or any)
/// command matching `commands`, or a file tool writing a path matching
/// `writes`, waits for the approver through `clawcage_review::approve::Gate`
/// (request stored and audited first, unanswered = denied at the timeout,
/// decision audited before the call runs). Anything that fails to record
/// is a denial.
pub struct ApprovalsGate {
    db: PathBuf,
    log: std::sync::Arc<clawcage_store::audit::AuditLog>,
    approvals: clawcage_policy::approval::Approvals,
    workspace: PathBuf,
    prompter: std::sync::Arc<dyn clawcage_review::approve::Prompter>,
}

impl ApprovalsGate {
    /// A gate recording in the store at `db` and in `log`, asking `prompter`.
    pub fn new(
        db: PathBuf,
        log: std::sync::Arc<clawcage_store::audit::AuditLog>,
        approvals: clawcage_policy::approval::Approvals,
        workspace: PathBuf,
        prompter: std::sync::Arc<dyn clawcage_review::approve::Prompter>,
    ) -> ApprovalsGate {
        ApprovalsGate { db, log, approvals, workspace, prompter }
    }

    fn decide(&self, req: &GateRequest) -> Result<Verdict, String> {
        use clawcage_review::approve::Gate;
        let store = clawcage_store::Store::open(&self.db).map_err(|e| e.to_string())?;
        let prompter = Box::new(Shared(self.prompter.clone()));
        let gate = Gate::new(store, self.log.clone(), &req.task, self.approvals.clone(), prompter);
        let v = gate.check_command(&req.argv, &req.cwd.display().to_string()).map_err(|e| e.to_string())?;
        if let clawcage_review::approve::Verdict::Denied { reason, .. } = v {
            return Ok(Verdict::Deny(reason));
        }
        if let Some(path) = &req.writes {
            let rel = std::path::Path::new(path);
            let rel = rel.strip_prefix(&self.workspace).unwrap_or(rel);
            let rel = rel.strip_prefix("./").unwrap_or(rel).display().to_string();
            let ws = self.workspace.display().to_string();
            if let clawcage_review::approve::Verdict::Denied { reason, .. } =
                gate.check_writes(&[rel], &ws).map_err(|e| e.to_string())?
            {
                return Ok(Verdict::Deny(reason));
            }
        }
        Ok(Verdict::Allow)
    }
}

struct Shared(std::sync::Arc<dyn clawcage_review::approve::Prompter>);

impl clawcage_review::approve::Prompter for Shared {
    fn ask(
        &self,
        request: &clawcage_review::approve::Request,
        deadline: std::time::Instant,
    ) -> clawcage_review::approve::Answer {
        self.0.ask(request, deadline)
    }
}

impl ToolGate for ApprovalsGate {
    fn check<'a>(&'a self, req: &'a GateRequest) -> VerdictFuture<'a> {
        Box::pin(async move {
            // The prompt blocks (a person at a terminal): off the runtime's threads.
            let me = ApprovalsGate {
                db: self.db.clone(),
                log: self.log.clone(),
                approvals: self.approvals.clone(),
                workspace: self.workspace.clone(),
                prompter: self.prompter.clone(),
            };
            let req = req.clone();
            match tokio::task::spawn_blocking(move || me.decide(&req)).await {
                Ok(Ok(v)) => v,
                Ok(Err(why)) => Verdict::Deny(format!("the approval could not be recorded: {why}")),
                Err(e) => Verdict::Deny(format!("approval: {e}")),
            }
        })
    }
}
