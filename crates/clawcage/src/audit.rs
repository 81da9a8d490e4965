//! The binary's side of the audit log: the [`EventSink`] adapter that turns
//! the core's events into audit records, and the records `clawcage run`
//! keeps (its task row, tool call and audit trail).

use anyhow::{Context as _, Result};
use clawcage_agent::runner::outcome_name;
pub use clawcage_approvals::shell_words;
use clawcage_policy::{Event, EventSink, Policy};
use clawcage_sandbox::Outcome;
use clawcage_store::audit::{AuditLog, SigningKey};
use clawcage_store::{NewTask, NewToolCall, StatePaths, Store, TaskKind, TaskStatus, ToolCallEnd};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub use clawcage_agent::audit::AuditSink;

/// The state directory's paths, from the environment, created if missing.
pub fn state() -> Result<StatePaths> {
    StatePaths::from_env().context("state directory")
}

/// Open the audit log of `paths`, with the signing key from the environment.
pub fn open_log(paths: &StatePaths) -> Result<AuditLog> {
    let key = SigningKey::from_env()?;
    Ok(AuditLog::open(paths, key)?)
}

/// SHA-256 of the effective policy's canonical TOML.
pub fn policy_hash(policy: &Policy) -> String {
    clawcage_store::sha256_hex(policy.to_toml().as_bytes())
}

/// What `clawcage run` records: a task row (kind `run`), one tool call for
/// the command, and the audit records sandbox_start, exec (before the
/// command starts), exec_end and sandbox_stop. sandbox_start and exec_end
/// describe what has already happened: they are after-records
/// ([`AuditLog::append_after`]), made durable together with the next
/// record (exec, sandbox_stop), so a run costs two syncs of the log, not
/// four. Every method that appends fails when the record cannot be
/// written; `run` then refuses.
pub struct RunRecord {
    /// Its log's connection to the store also holds the task's rows (one
    /// database open per run).
    sink: AuditSink,
    task: String,
    policy_hash: String,
    /// The tool call of the command, and when it started.
    call: Option<(u64, Instant)>,
}

impl RunRecord {
    /// Open the state directory and create the task, before any sandbox exists.
    pub fn begin(policy: &Policy, workspace: &Path, argv: &[String]) -> Result<RunRecord> {
        let paths = state()?;
        let key = SigningKey::from_env()?;
        let log = AuditLog::open_sharing(&paths.audit, Store::open(&paths.db)?, key).context("audit log")?;
        let log = Arc::new(log);
        let policy_hash = policy_hash(policy);
        let mut new = NewTask::new(TaskKind::Run, shell_words(argv));
        new.workspace = Some(workspace.display().to_string());
        new.policy_hash = Some(policy_hash.clone());
        new.status = TaskStatus::Running;
        let task = log.with_store(|s| s.create_task(&new))??.id;
        Ok(RunRecord { sink: AuditSink::new(log, Some(task.clone())), task, policy_hash, call: None })
    }

    /// Run `f` on the store (the audit log's connection).
    fn store<R>(&self, f: impl FnOnce(&Store) -> clawcage_store::Result<R>) -> Result<R> {
        Ok(self.sink.log().with_store(f)??)
    }

    /// A sink for the core's events (the egress proxy's), as records of this task.
    pub fn sink(&self) -> Arc<dyn EventSink> {
        Arc::new(AuditSink::new(self.sink.log().clone(), Some(self.task.clone())))
    }

    /// The task id (also the sandbox id in records).
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The audit log the task's records go to.
    pub fn log(&self) -> Arc<AuditLog> {
        self.sink.log().clone()
    }

    /// clawcage refused to run the command (an approval was denied): the
    /// task ends failed with `why`; the records are the gate's.
    pub fn refused(&self, why: &str) -> Result<()> {
        self.store(|s| s.set_task_status(&self.task, TaskStatus::Failed, Some(why))).map(drop)
    }

    /// Append a product-level record (`kind`, `data`) of this task.
    pub fn append(&self, kind: &str, data: Value) -> Result<()> {
        self.sink.log().append(Some(&self.task), kind, data).map(|_| ()).context("audit log")
    }

    /// The sandbox id in records: one sandbox per run task, named after it.
    fn sandbox(&self) -> String {
        self.task.clone()
    }

    fn record(&self, event: Event) -> Result<()> {
        self.sink.record(&event).context("audit log")
    }

    fn record_after(&self, event: Event) -> Result<()> {
        self.sink.record_after(&event).context("audit log")
    }

    /// The sandbox is set up (nothing runs in it yet): record it with the
    /// policy's hash and how limits are enforced (known only now). An
    /// after-record: durable with the next one, before anything runs.
    pub fn sandbox_started(&self, limits: &str) -> Result<()> {
        self.record_after(Event::SandboxStart {
            sandbox: self.sandbox(),
            policy_hash: self.policy_hash.clone(),
            backend: "ns".into(),
            limits: limits.into(),
        })
    }

    /// The command is about to start: its record first, then its tool call row.
    pub fn exec(&mut self, argv: &[String], cwd: &Path) -> Result<()> {
        let cwd = cwd.display().to_string();
        self.record(Event::Exec { sandbox: self.sandbox(), exec: 1, argv: argv.to_vec(), cwd: cwd.clone() })?;
        let input = json!({ "argv": argv, "cwd": cwd });
        let new = NewToolCall { call_id: None, tool: "exec", input: &input, argv: Some(argv) };
        let call = self.store(|s| s.start_tool_call(&self.task, &new))?;
        self.call = Some((call.seq, Instant::now()));
        Ok(())
    }

    /// The command ended: its record, its tool call and the task's status.
    pub fn exec_end(&mut self, outcome: &Outcome, (stdout, stderr): (u64, u64)) -> Result<()> {
        let (seq, started) = self.call.take().context("exec_end without exec")?;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let status = outcome.exit_code();
        self.record_after(Event::ExecEnd {
            sandbox: self.sandbox(),
            exec: 1,
            outcome: outcome_name(outcome).into(),
            status,
            duration_ms,
            stdout_bytes: stdout,
            stderr_bytes: stderr,
        })?;
        let end = ToolCallEnd {
            exit_status: Some(status),
            duration_ms,
            output_bytes: stdout.saturating_add(stderr),
            error: outcome.reason(),
        };
        let detail = outcome.reason().unwrap_or_else(|| format!("exit status {status}"));
        let st = if status == 0 { TaskStatus::Succeeded } else { TaskStatus::Failed };
        self.store(|s| {
            s.finish_tool_call(&self.task, seq, &end)?;
            s.set_task_status(&self.task, st, Some(&detail))
        })
        .map(drop)
    }

    /// Every process of the sandbox is gone. Durable (with exec_end) on return.
    pub fn sandbox_stopped(&self) -> Result<()> {
        self.record(Event::SandboxStop { sandbox: self.sandbox() })
    }

    /// clawcage itself failed at `stage`: mark the task failed and record
    /// why (best effort: `err` is what the user sees either way). Returns `err`.
    pub fn failed(&self, stage: &str, err: anyhow::Error) -> anyhow::Error {
        let why = format!("{err:#}");
        let _ = self.sink.append("run_failed", json!({ "stage": stage, "error": why }));
        let _ = self.store(|s| s.set_task_status(&self.task, TaskStatus::Failed, Some(&format!("{stage}: {why}"))));
        err
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clawcage_agent::audit::event_record;
    use clawcage_policy::event::{Decision, SecretAction};

    #[test]
    fn events_become_records_with_their_kind_lifted_out() {
        let e = Event::Network {
            sandbox: "s".into(),
            host: "example.com".into(),
            port: 443,
            decision: Decision::Deny,
            rule: None,
            reason: "not allowed".into(),
        };
        let (kind, data) = event_record(&e).unwrap();
        assert_eq!(kind, "network");
        assert_eq!(
            data,
            json!({"sandbox": "s", "host": "example.com", "port": 443, "decision": "deny", "rule": null, "reason": "not allowed"})
        );
        let (kind, data) = event_record(&Event::Secret {
            sandbox: "s".into(),
            name: "gh".into(),
            host: "h".into(),
            action: SecretAction::Blocked,
        })
        .unwrap();
        assert_eq!((kind.as_str(), &data["action"]), ("secret", &json!("blocked")));
    }

    #[test]
    fn shell_words_quote_what_a_shell_would_split() {
        let argv: Vec<String> = ["sh", "-c", "echo 'hi' > f", ""].iter().map(|s| s.to_string()).collect();
        assert_eq!(shell_words(&argv), "sh -c 'echo '\\''hi'\\'' > f' ''");
    }
}
