//! Reviewed changes on the command line: holding a `run`'s changes, and
//! `clawcage diff | apply | discard TASK`. Wiring only; the logic is in
//! `clawcage_review`. Every decision is in the audit log before its effect.

use crate::audit::{self, RunRecord};
use anyhow::{bail, Context as _, Result};
use clawcage_policy::Policy;
use clawcage_review::approve::{Gate, TerminalPrompter, Verdict};
use clawcage_review::{ApplyError, ReviewDir, ReviewError};
use clawcage_store::audit::AuditLog;
use clawcage_store::Store;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Make the review directory of `task` (its overlay layers and the
/// workspace's baseline) before the sandbox starts.
pub fn hold(task: &str, policy: &Policy, workspace: &Path) -> Result<ReviewDir> {
    let paths = audit::state()?;
    let dir = clawcage_review::task_dir(&paths.dir, task)?;
    if dir.starts_with(workspace) {
        bail!(
            "the state directory {} is inside the workspace {}: reviewed changes cannot be held there",
            paths.dir.display(),
            workspace.display()
        );
    }
    let protect = clawcage_review::protect_for(policy, workspace);
    let mut held = ReviewDir::create(&dir, workspace, protect).context("review directory")?;
    held.set_write_approvals(&policy.approvals).context("review directory")?;
    Ok(held)
}

/// `[approvals] commands` for the command `run` is about to start: `None`
/// when it may run (no rule matched, or approved at the terminal), else the
/// line saying why not. The request and decision are stored and audited
/// before this returns (see `clawcage_review::approve`).
pub fn approve_run(record: &RunRecord, policy: &Policy, argv: &[String], cwd: &Path) -> Result<Option<String>> {
    if policy.approvals.commands.is_empty() {
        return Ok(None);
    }
    let store = Store::open(&audit::state()?.db)?;
    let gate = Gate::new(store, record.log(), record.task(), policy.approvals.clone(), Box::new(TerminalPrompter));
    Ok(match gate.check_command(argv, &cwd.display().to_string())? {
        Verdict::NotNeeded | Verdict::Approved { .. } => None,
        Verdict::Denied { reason, .. } => Some(reason),
    })
}

/// After the run: record the file-change summary and tell the user where
/// the changes are (on stderr: stdout is the command's).
pub fn report_held(record: &RunRecord, held: &ReviewDir) -> Result<()> {
    let changes = held.changes().context("reading the held changes")?;
    record.append("file_changes", clawcage_review::summary_json(&changes))?;
    let task = record.task();
    eprintln!("clawcage: {} held for review in task {task}", clawcage_review::diff::summary(&changes));
    if !changes.is_empty() {
        for c in changes.iter().take(20) {
            eprintln!("clawcage:   {}", change_line(c));
        }
        if changes.len() > 20 {
            eprintln!("clawcage:   ... and {} more", changes.len() - 20);
        }
        eprintln!("clawcage: see `clawcage diff {task}`, then `clawcage apply {task}` or `clawcage discard {task}`");
    }
    Ok(())
}

fn change_line(c: &clawcage_review::Change) -> String {
    let tag = match c {
        clawcage_review::Change::Added { .. } => "A",
        clawcage_review::Change::Modified { .. } => "M",
        clawcage_review::Change::Deleted { .. } => "D",
    };
    format!("{tag} {}", c.path().display())
}

/// A reviewed task, ready for diff/apply/discard.
struct Reviewed {
    task: String,
    dir: ReviewDir,
    log: Arc<AuditLog>,
    db: std::path::PathBuf,
}

fn open(task: &str) -> Result<Reviewed> {
    let paths = audit::state()?;
    let store = Store::open(&paths.db)?;
    let Some(t) = store.find_task(task)? else {
        bail!("no task {task:?} in {}", paths.db.display());
    };
    if !t.status.is_terminal() {
        bail!("task {task} is {}: its sandbox may still change the overlay; wait for it to end", t.status.as_str());
    }
    let root = clawcage_review::task_dir(&paths.dir, task)?;
    if !root.join("review.json").exists() {
        bail!("task {task} holds no reviewed changes (it ran with changes = \"direct\")");
    }
    let dir = ReviewDir::open(&root)?;
    let log = Arc::new(audit::open_log(&paths).context("audit log")?);
    Ok(Reviewed { task: task.to_string(), dir, log, db: paths.db.clone() })
}

impl Reviewed {
    fn record(&self, kind: &str, data: serde_json::Value) -> Result<()> {
        self.log.append(Some(&self.task), kind, data).map(|_| ()).context("audit log")
    }
}

/// Who decided, for the records.
fn decider() -> String {
    let uid = nix::unistd::getuid().as_raw();
    match std::env::var("USER") {
        Ok(u) if !u.is_empty() => format!("{u} (uid {uid})"),
        _ => format!("uid {uid}"),
    }
}

/// `clawcage diff TASK`: the summary line and the unified diff.
pub fn diff(task: &str) -> Result<ExitCode> {
    let r = open(task)?;
    print!("{}", r.dir.diff()?);
    Ok(ExitCode::SUCCESS)
}

/// `clawcage apply TASK`: exit 0 applied (protected paths refused are
/// listed), 1 refused because the workspace changed underneath, 126 when
/// an `[approvals] writes` rule matched and the approver refused.
pub fn apply(task: &str) -> Result<ExitCode> {
    let r = open(task)?;
    let changes = r.dir.changes()?;
    let workspace = r.dir.workspace().display().to_string();
    let approvals = r.dir.write_approvals();
    if !approvals.writes.is_empty() {
        let paths: Vec<String> = changes.iter().map(|c| c.path().display().to_string()).collect();
        let gate = Gate::new(Store::open(&r.db)?, r.log.clone(), task, approvals, Box::new(TerminalPrompter));
        if let Verdict::Denied { reason, .. } = gate.check_writes(&paths, &workspace)? {
            eprintln!("clawcage: apply refused: {reason}; nothing applied");
            return Ok(ExitCode::from(126));
        }
    }
    r.record(
        "changes_apply",
        json!({ "workspace": workspace, "by": decider(), "changes": clawcage_review::summary_json(&changes) }),
    )?;
    match r.dir.apply() {
        Ok(report) => {
            let refused: Vec<_> =
                report.refused.iter().map(|(p, why)| json!({ "path": p.display().to_string(), "why": why })).collect();
            r.record(
                "changes_applied",
                json!({ "applied": clawcage_review::summary_json(&report.applied), "refused": refused }),
            )?;
            println!("applied {} to {workspace}", clawcage_review::diff::summary(&report.applied));
            for (p, why) in &report.refused {
                eprintln!("clawcage: not applied: {}: {why}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ReviewError::Apply(ApplyError::Conflicts(paths))) => {
            let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            r.record("changes_apply_refused", json!({ "conflicts": list }))?;
            eprintln!(
                "clawcage: apply refused: {workspace} changed since task {task} started; nothing applied. Conflicting paths:"
            );
            for p in &list {
                eprintln!("  {p}");
            }
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            let _ = r.record("changes_apply_failed", json!({ "error": e.to_string() }));
            Err(e.into())
        }
    }
}

/// `clawcage discard TASK`: drop every held change.
pub fn discard(task: &str) -> Result<ExitCode> {
    let r = open(task)?;
    let changes = r.dir.changes()?;
    r.record("changes_discarded", json!({ "by": decider(), "changes": clawcage_review::summary_json(&changes) }))?;
    r.dir.discard()?;
    println!("discarded {}", clawcage_review::diff::summary(&changes));
    Ok(ExitCode::SUCCESS)
}
