//! The approval gate: before a command runs (or a write lands, or an
//! unlisted host is reached), the `[approvals]` rules are checked; a match
//! waits for a person.
//!
//! The order is the contract: the request is stored (the store's
//! `approvals` table) and appended to the audit log *before* anyone is
//! asked; the [`Prompter`] asks; an unanswered request expires at the
//! policy's `timeout` and counts as denied; the decision is stored and
//! audited; only then does the caller let the effect happen or refuse it.
//! Any failure to record is a denial (fail closed).
//!
//! Prompters plug in the approver: [`TerminalPrompter`] asks on the
//! invoking user's terminal (`clawcage run`, interactive `agent`);
//! [`StorePrompter`] waits for someone else to decide the stored request
//! (the HTTP API, a chat channel, another process).

pub use clawcage_approvals::shell_words;
use clawcage_policy::approval::Approvals;
use clawcage_store::audit::AuditLog;
use clawcage_store::work::{ApprovalKind, ApprovalStatus};
use clawcage_store::{Store, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why the gate could not decide; callers treat it as a denial.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The approvals table could not be written or read.
    #[error("approval store: {0}")]
    Store(#[from] StoreError),
}

/// One request, as the approver sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The stored request's id.
    pub id: String,
    /// The task that asks.
    pub task: String,
    /// What for.
    pub kind: ApprovalKind,
    /// The whole thing, normalised, on one line: the full command, the
    /// host and port, or the paths.
    pub what: String,
    /// Where: the command's working directory, or the workspace.
    pub cwd: Option<String>,
    /// The rule that matched, as written (`None`: the command could not be
    /// read safely, so every rule applies).
    pub rule: Option<String>,
    /// One line saying why it needs approval.
    pub reason: String,
    /// How long the request waits.
    pub timeout: Duration,
}

/// What the approver said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Go ahead.
    Approve {
        /// Who approved.
        by: String,
    },
    /// Refused.
    Deny {
        /// Who refused.
        by: String,
        /// Why, if they said.
        reason: Option<String>,
    },
    /// Nobody answered before the deadline.
    NoAnswer,
    /// There is nobody to ask (no terminal, no approver): denied.
    Unavailable(String),
    /// Someone decided through the store (read the stored request).
    Stored,
}

/// Asks a person. `ask` blocks until an answer or `deadline`.
pub trait Prompter: Send + Sync {
    /// Ask about `request`; return [`Answer::NoAnswer`] at `deadline`.
    fn ask(&self, request: &Request, deadline: Instant) -> Answer;
}

/// The gate's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No rule matched: no request was made.
    NotNeeded,
    /// Approved: request `id`.
    Approved {
        /// The request.
        id: String,
        /// Who approved.
        by: String,
    },
    /// Denied or expired: request `id`, with one line for the user.
    Denied {
        /// The request.
        id: String,
        /// Why (names the rule, who denied or that it timed out).
        reason: String,
    },
}

impl Verdict {
    /// Whether the effect may happen.
    pub fn allowed(&self) -> bool {
        !matches!(self, Verdict::Denied { .. })
    }
}

/// The approval gate of one task.
pub struct Gate {
    store: Store,
    log: Arc<AuditLog>,
    task: String,
    approvals: Approvals,
    prompter: Box<dyn Prompter>,
}

impl Gate {
    /// A gate for `task` under `approvals`, recording in `store` and `log`,
    /// asking `prompter`.
    pub fn new(
        store: Store,
        log: Arc<AuditLog>,
        task: &str,
        approvals: Approvals,
        prompter: Box<dyn Prompter>,
    ) -> Gate {
        Gate { store, log, task: task.to_string(), approvals, prompter }
    }

    /// A command about to run: `argv` (parsed as a reviewer would, see
    /// [`clawcage_approvals::command_match`]) in `cwd`.
    pub fn check_command(&self, argv: &[String], cwd: &str) -> Result<Verdict, GateError> {
        let Some(m) = clawcage_approvals::command_match(&self.approvals, argv) else { return Ok(Verdict::NotNeeded) };
        let full = shell_words(argv);
        let what = if m.command == full { full.clone() } else { format!("{full}   (runs: {})", m.command) };
        let subject = json!({ "argv": argv, "cwd": cwd, "matched": m.command });
        self.decide(ApprovalKind::Command, subject, what, Some(cwd.to_string()), m.rule, m.reason)
    }

    /// File writes about to land in the workspace (`rel` paths), e.g. the
    /// changes of an apply or a file tool's write.
    pub fn check_writes(&self, rel: &[String], workspace: &str) -> Result<Verdict, GateError> {
        let hits: Vec<(&String, &str)> =
            rel.iter().filter_map(|p| clawcage_approvals::write_match(&self.approvals, p).map(|g| (p, g))).collect();
        let Some((_, first_rule)) = hits.first() else { return Ok(Verdict::NotNeeded) };
        let rule = first_rule.to_string();
        let paths: Vec<&String> = hits.iter().map(|(p, _)| *p).collect();
        let what = paths.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
        let reason = format!("writes to paths matching approval rule {rule:?}");
        let subject = json!({ "paths": paths, "workspace": workspace });
        self.decide(ApprovalKind::Write, subject, what, Some(workspace.to_string()), Some(rule), reason)
    }

    /// A first connection to a host `[network] allow` does not list, when
    /// `[approvals] network = "ask"`; otherwise denied without asking.
    pub fn check_network(&self, host: &str, port: u16) -> Result<Verdict, GateError> {
        use clawcage_policy::approval::NetworkApproval;
        if self.approvals.network != NetworkApproval::Ask {
            return Ok(Verdict::Denied {
                id: String::new(),
                reason: format!("{host}:{port} is not in [network] allow"),
            });
        }
        let subject = json!({ "host": host, "port": port });
        let reason = "not in [network] allow; [approvals] network = \"ask\"".to_string();
        self.decide(ApprovalKind::Network, subject, format!("{host}:{port}"), None, None, reason)
    }

    fn decide(
        &self,
        kind: ApprovalKind,
        subject: Value,
        what: String,
        cwd: Option<String>,
        rule: Option<String>,
        reason: String,
    ) -> Result<Verdict, GateError> {
        let timeout = self.approvals.timeout;
        let expires_ms = clawcage_store::time::now_ms().saturating_add(millis(timeout));
        let stored = self.store.request_approval(&self.task, kind, &subject, expires_ms)?;
        let request =
            Request { id: stored.id.clone(), task: self.task.clone(), kind, what, cwd, rule, reason, timeout };
        // On the record before anyone is asked; no record, no asking: denied.
        let asked = json!({
            "id": request.id, "kind": kind.as_str(), "subject": subject, "rule": request.rule,
            "reason": request.reason, "expires_ms": expires_ms,
        });
        if let Err(e) = self.log.append(Some(&self.task), "approval_request", asked) {
            let why = format!("the request could not be audited ({e})");
            let _ =
                self.store.decide_approval(&request.id, false, "clawcage", Some(&why), clawcage_store::time::now_ms());
            return Ok(Verdict::Denied { id: request.id, reason: why });
        }
        let answer = self.prompter.ask(&request, Instant::now() + timeout);
        let now = clawcage_store::time::now_ms();
        let closed = |r: Result<clawcage_store::work::Approval, StoreError>| match r {
            Ok(_) | Err(StoreError::ApprovalClosed { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        match &answer {
            Answer::Approve { by } => closed(self.store.decide_approval(&request.id, true, by, None, now))?,
            Answer::Deny { by, reason } => {
                closed(self.store.decide_approval(&request.id, false, by, reason.as_deref(), now))?
            }
            Answer::Unavailable(why) => {
                closed(self.store.decide_approval(&request.id, false, "clawcage", Some(why), now))?
            }
            Answer::NoAnswer | Answer::Stored => {
                self.store.expire_approvals(now.max(expires_ms))?;
            }
        }
        let row = self.store.approval(&request.id)?;
        let by = row.decided_by.clone().unwrap_or_else(|| "nobody".into());
        let decision = json!({
            "id": row.id, "decision": row.status.as_str(), "by": row.decided_by, "reason": row.reason,
        });
        if let Err(e) = self.log.append(Some(&self.task), "approval_decision", decision) {
            return Ok(Verdict::Denied { id: row.id, reason: format!("the decision could not be audited ({e})") });
        }
        let rule = request.rule.as_deref().map(|r| format!(" (rule {r:?})")).unwrap_or_default();
        Ok(match row.status {
            ApprovalStatus::Approved => Verdict::Approved { id: row.id, by },
            ApprovalStatus::Expired => Verdict::Denied {
                id: row.id,
                reason: format!("approval request timed out after {} s{rule}: denied", timeout.as_secs()),
            },
            _ => {
                let why = row.reason.map(|r| format!(": {r}")).unwrap_or_default();
                Verdict::Denied { id: row.id, reason: format!("denied by {by}{rule}{why}") }
            }
        })
    }
}

/// `[approvals] network = "ask"` for one task: the first connection to an
/// unlisted `host:port` asks through the [`Gate`]; the answer holds for the
/// rest of the task — an approval lets later connections there through, a
/// denial, a timeout or nobody to ask refuses them — so a client that
/// retries (pip does, five times) asks once. One question at a time: a
/// connection waits while another is being asked about, then sees its answer.
pub struct NetworkAsker {
    gate: std::sync::Mutex<Gate>,
    answers: std::sync::Mutex<std::collections::HashMap<(String, u16), Option<String>>>,
}

impl NetworkAsker {
    /// Ask through `gate`.
    pub fn new(gate: Gate) -> NetworkAsker {
        NetworkAsker { gate: std::sync::Mutex::new(gate), answers: Default::default() }
    }

    /// `Some(rule text for the record)` when a connection to `host:port`
    /// may go ahead, `None` when it is refused. Any failure to ask or to
    /// record is a refusal.
    pub fn ask(&self, host: &str, port: u16) -> Option<String> {
        let key = (host.to_string(), port);
        let Ok(gate) = self.gate.lock() else { return None };
        if let Some(earlier) = self.answers.lock().ok()?.get(&key) {
            return earlier.as_ref().map(|rule| format!("{rule}, earlier in this task"));
        }
        let answer = match gate.check_network(host, port) {
            Ok(Verdict::Approved { id, by }) => Some(format!("approved by {by} (request {id})")),
            Ok(Verdict::NotNeeded) | Ok(Verdict::Denied { .. }) => None,
            // Not decided (the store failed): ask again next time.
            Err(_) => return None,
        };
        self.answers.lock().ok()?.insert(key, answer.clone());
        answer
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Waits for a decision made by someone else on the stored request (the
/// HTTP API, a chat approver, `Store::decide_approval` from any process),
/// checking every `poll`.
pub struct StorePrompter {
    db: std::path::PathBuf,
    poll: Duration,
}

impl StorePrompter {
    /// Watch the store at `db`.
    pub fn new(db: &std::path::Path, poll: Duration) -> StorePrompter {
        StorePrompter { db: db.to_path_buf(), poll }
    }
}

impl Prompter for StorePrompter {
    fn ask(&self, request: &Request, deadline: Instant) -> Answer {
        let store = match Store::open(&self.db) {
            Ok(s) => s,
            Err(e) => return Answer::Unavailable(format!("approval store: {e}")),
        };
        loop {
            match store.approval(&request.id) {
                Ok(a) if a.status != ApprovalStatus::Pending => return Answer::Stored,
                Ok(_) => {}
                Err(e) => return Answer::Unavailable(format!("approval store: {e}")),
            }
            let now = Instant::now();
            if now >= deadline {
                return Answer::NoAnswer;
            }
            std::thread::sleep(self.poll.min(deadline - now));
        }
    }
}

pub use crate::tty::TerminalPrompter;
