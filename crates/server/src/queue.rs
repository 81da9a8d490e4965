//! The queue worker: claims queued tasks from the store (a lease per task,
//! renewed while it runs), at most `concurrency` at once and one per
//! conversation (the store's rule), and runs them through the
//! [`TaskRunner`](crate::runner::TaskRunner).
//!
//! # Restart rule
//! A task whose lease holder died (a crash, kill -9, power loss) is claimed
//! again with `attempts > 1`. It may have had effects already (tool calls in
//! its sandbox, messages sent), so it is **not run again**: it is marked
//! `failed` ("interrupted"), audited, and its conversation told. It is never
//! lost (it stays in the store with its messages) and never double-run.
//! At start-up the leases of dead holders on this machine (a holder is
//! `serve:<boot id>:<pid>:<start time>`) are broken at once instead of
//! waiting for them to expire.
//!
//! # Shutdown
//! On shutdown the worker claims nothing more, cancels the running tasks
//! (the runner stops their sandboxes), records each as `cancelled`, and
//! dequeues it: the queue holds only tasks that never started.

use crate::runner::{Cancel, Events, Job, Outcome};
use crate::state::{Reply, ServerError, State};
use clawcage_store::work::Claim;
use clawcage_store::{time, TaskStatus};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// How long a claim holds a task without renewal.
pub const LEASE_MS: i64 = 30_000;
/// How often a running task's lease is renewed.
const RENEW_EVERY: Duration = Duration::from_millis(LEASE_MS as u64 / 3);
/// How often the queue is looked at when nothing woke it.
const POLL: Duration = Duration::from_millis(500);

/// This process as a lease holder: `serve:<boot id>:<pid>:<start time>`.
pub fn lease_owner() -> String {
    let pid = std::process::id();
    format!("serve:{}:{pid}:{}", boot_id(), start_time(pid).unwrap_or_default())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past its last ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// Whether the lease holder `owner` is certainly dead: a `serve` holder of
/// another boot, or of this boot whose process is gone (or is another
/// process now). Holders of other kinds are never judged dead.
pub fn holder_is_dead(owner: &str) -> bool {
    let mut parts = owner.splitn(4, ':');
    let (Some("serve"), Some(boot), Some(pid), Some(start)) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if boot != boot_id() {
        return true;
    }
    match pid.parse::<u32>() {
        Ok(pid) => start_time(pid).as_deref() != Some(start),
        Err(_) => false,
    }
}

/// Break the leases of dead holders (module docs); returns how many.
pub async fn break_dead_leases(state: &State) -> Result<usize, ServerError> {
    let leases = state.db.call(|s| s.leases()).await?;
    let mut n = 0;
    for l in leases.into_iter().filter(|l| holder_is_dead(&l.owner)) {
        let (task, owner) = (l.task_id.clone(), l.owner.clone());
        if state.db.call(move |s| s.break_lease(&task, &owner)).await? {
            tracing::warn!(task = %l.task_id, holder = %l.owner, "lease of a dead server broken");
            n += 1;
        }
    }
    Ok(n)
}

/// Run the queue until shutdown (module docs).
pub async fn run(state: Arc<State>) -> Result<(), ServerError> {
    let owner = lease_owner();
    break_dead_leases(&state).await?;
    let slots = Arc::new(Semaphore::new(state.config.server.concurrency));
    let mut shutdown = state.shutdown.subscribe();
    let mut running = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
            Some(_) = running.join_next(), if !running.is_empty() => continue,
        };
        let o = owner.clone();
        match state.db.call(move |s| s.claim_next(&o, time::now_ms(), LEASE_MS)).await {
            Ok(Some(claim)) => {
                let (st, o) = (Arc::clone(&state), owner.clone());
                running.spawn(async move {
                    let _permit = permit;
                    let id = claim.task.id.clone();
                    if let Err(e) = handle(&st, claim, &o).await {
                        tracing::error!(task = %id, error = %e, "task handling failed");
                    }
                });
            }
            Ok(None) => {
                drop(permit);
                tokio::select! {
                    _ = state.queued.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                drop(permit);
                tracing::error!(error = %e, "claiming a task failed");
                tokio::time::sleep(POLL).await;
            }
        }
    }
    // Shutdown: stop what runs, wait for each to be recorded.
    for tx in state.cancels.lock().unwrap_or_else(|p| p.into_inner()).values() {
        let _ = tx.send(true);
    }
    while running.join_next().await.is_some() {}
    Ok(())
}

async fn handle(state: &Arc<State>, claim: Claim, owner: &str) -> Result<(), ServerError> {
    let task = claim.task.clone();
    let id = task.id.clone();
    if claim.attempts > 1 {
        let detail = format!(
            "interrupted: the server stopped while this task ran (claim {}); not run again, to avoid repeating its effects",
            claim.attempts
        );
        state.audit(Some(&id), "task_interrupted", json!({"attempts": claim.attempts})).await?;
        return finish(state, &claim, owner, Outcome { status: TaskStatus::Failed, detail: Some(detail), reply: None })
            .await;
    }
    let group = task.group.as_deref().and_then(|g| state.config.groups.get(g)).cloned();
    let Some(group) = group else {
        let detail = format!("no group {:?} in the config", task.group.as_deref().unwrap_or(""));
        return finish(state, &claim, owner, Outcome { status: TaskStatus::Failed, detail: Some(detail), reply: None })
            .await;
    };
    // No record, no run.
    let started = json!({"group": group.name, "conversation": claim.conversation, "policy": group.policy_file.display().to_string()});
    if let Err(e) = state.audit(Some(&id), "task_start", started).await {
        let detail = format!("not started: {e}");
        return finish(state, &claim, owner, Outcome { status: TaskStatus::Failed, detail: Some(detail), reply: None })
            .await;
    }
    let (cancel_tx, cancel_rx) = watch::channel(false);
    state.cancels.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), cancel_tx.clone());
    if *state.shutdown.borrow() {
        let _ = cancel_tx.send(true);
    }
    state.hub.emit(&id, "status", "running");
    let job = Job {
        prompt: task.title.clone(),
        task,
        group: Arc::new(group),
        conversation: claim.conversation.clone(),
        state_dir: state.paths.dir.clone(),
    };
    state.counters.running.fetch_add(1, Ordering::Relaxed);
    let mut run = state.runner.run(job, Events::new(Arc::clone(&state.hub), &id), Cancel::new(cancel_rx));
    let mut renew = tokio::time::interval(RENEW_EVERY);
    renew.tick().await;
    let mut lost = false;
    let outcome = loop {
        tokio::select! {
            o = &mut run => break o,
            _ = renew.tick(), if !lost => {
                let (t, o) = (id.clone(), owner.to_string());
                match state.db.call(move |s| s.renew_lease(&t, &o, time::now_ms(), LEASE_MS)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Someone else holds it now: stop, so it never runs twice at once.
                        tracing::error!(task = %id, "lease lost; cancelling");
                        lost = true;
                        let _ = cancel_tx.send(true);
                    }
                    Err(e) => tracing::warn!(task = %id, error = %e, "lease renewal failed"),
                }
            }
        }
    };
    state.counters.running.fetch_sub(1, Ordering::Relaxed);
    state.cancels.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    let outcome = if *state.shutdown.borrow() && outcome.status == TaskStatus::Cancelled {
        Outcome { detail: Some(outcome.detail.unwrap_or_else(|| "cancelled: the server shut down".into())), ..outcome }
    } else {
        outcome
    };
    finish(state, &claim, owner, outcome).await
}

/// Record the outcome, leave the queue, end the live stream, reply.
async fn finish(state: &Arc<State>, claim: &Claim, owner: &str, outcome: Outcome) -> Result<(), ServerError> {
    let id = claim.task.id.clone();
    let status = if outcome.status.is_terminal() { outcome.status } else { TaskStatus::Failed };
    let detail = outcome.detail.clone();
    state
        .audit(Some(&id), "task_end", json!({"status": status.as_str(), "detail": detail.clone().unwrap_or_default()}))
        .await?;
    let (t, o, d) = (id.clone(), owner.to_string(), detail.clone());
    if !state.db.call(move |s| s.finish_claimed(&t, &o, status, d.as_deref())).await? {
        // The lease went to another holder meanwhile; its outcome is theirs to record.
        tracing::error!(task = %id, "finished without holding the lease; outcome not recorded");
    }
    if let Some(d) = &detail {
        state.hub.emit(&id, "note", d);
    }
    state.hub.end(&id, status.as_str());
    if let Some(conversation) = &claim.conversation {
        let text = match (&outcome.reply, status) {
            (Some(r), _) => r.clone(),
            (None, TaskStatus::Succeeded) => format!("task {id} done"),
            (None, s) => format!("task {id} {}: {}", s.as_str(), detail.unwrap_or_default()),
        };
        let _ = state.replies.send(Reply { conversation: conversation.clone(), task: id, text, last: true });
    }
    Ok(())
}
