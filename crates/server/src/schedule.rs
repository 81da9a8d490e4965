//! The scheduler: cron expressions (UTC, 5 fields, or 6 with seconds) and
//! one-shot times per group, fired through the store's `fire_due` (each due
//! time exactly once, whichever process or restart looks: see
//! `clawcage_store::work`).
//!
//! # Missed runs
//! A schedule that was due while no server ran fires **once** when the
//! server comes back, for the oldest missed time; its next due time is then
//! the first one after *now*. So a daily job after a three-day outage runs
//! once, not three times. A one-shot whose time has passed fires once too.

use crate::config::Config;
use crate::state::{ServerError, State};
use chrono::{DateTime, TimeZone, Utc};
use clawcage_store::time;
use clawcage_store::work::{NewSchedule, Schedule, ScheduleKind};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// How often due schedules are looked for.
const TICK: Duration = Duration::from_secs(1);

/// What the API (and `clawcage schedule add`) accept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewScheduleRequest {
    /// The group its tasks run in.
    pub group: String,
    /// The prompt of its tasks.
    pub prompt: String,
    /// A cron expression (UTC); give this or `at`.
    #[serde(default)]
    pub cron: Option<String>,
    /// A one-shot time (RFC 3339); give this or `cron`.
    #[serde(default)]
    pub at: Option<String>,
}

/// Parse a cron expression (5 fields, or 6 with seconds).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    croner::Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("{expr:?} is not a cron expression: {e}"))
}

/// The first occurrence of `cron` strictly after `after_ms`.
pub fn next_after(cron: &croner::Cron, after_ms: i64) -> Option<i64> {
    let t: DateTime<Utc> = Utc.timestamp_millis_opt(after_ms).single()?;
    cron.find_next_occurrence(&t, false).ok().map(|d| d.timestamp_millis())
}

/// Check a request against the config; `Err((field, message))`.
pub fn validate(config: &Config, req: &NewScheduleRequest, now_ms: i64) -> Result<NewSchedule, (&'static str, String)> {
    if !config.groups.contains_key(&req.group) {
        return Err(("group", format!("no group {:?} in the config", req.group)));
    }
    validate_in_group(req, now_ms)
}

/// Check a request whose group is known to exist; `Err((field, message))`.
pub fn validate_in_group(req: &NewScheduleRequest, now_ms: i64) -> Result<NewSchedule, (&'static str, String)> {
    if req.prompt.trim().is_empty() || req.prompt.len() > 64 * 1024 {
        return Err(("prompt", "must be 1 to 65536 bytes".into()));
    }
    let (kind, spec, first) = match (&req.cron, &req.at) {
        (Some(c), None) => {
            let cron = parse_cron(c).map_err(|m| ("cron", m))?;
            let first = next_after(&cron, now_ms).ok_or(("cron", format!("{c:?} never fires")))?;
            (ScheduleKind::Cron, c.clone(), first)
        }
        (None, Some(at)) => {
            let t = DateTime::parse_from_rfc3339(at)
                .map_err(|e| ("at", format!("{at:?} is not an RFC 3339 time (e.g. 2027-01-31T09:00:00Z): {e}")))?;
            (ScheduleKind::Once, at.clone(), t.timestamp_millis())
        }
        (Some(_), Some(_)) => return Err(("at", "give cron or at, not both".into())),
        (None, None) => return Err(("cron", "missing: give cron or at".into())),
    };
    Ok(NewSchedule {
        group: Some(req.group.clone()),
        kind,
        spec,
        title: req.prompt.clone(),
        payload: json!({}),
        first_due_ms: first,
    })
}

/// A schedule as the API shows it.
pub fn to_json(s: &Schedule) -> Value {
    json!({
        "id": s.id, "group": s.group, "kind": s.kind.as_str(), "spec": s.spec, "prompt": s.title,
        "enabled": s.enabled, "next_due_ms": s.next_due_ms,
        "next_due": s.next_due_ms.map(time::rfc3339_secs), "created_ms": s.created_ms,
        "by": s.payload.get("by"),
    })
}

/// The next due time of `s` after firing `due_ms` at `now_ms`: the first
/// occurrence after both (missed windows collapse into the run just fired).
pub fn next_due(s: &Schedule, due_ms: i64, now_ms: i64) -> Option<i64> {
    let cron = parse_cron(&s.spec).ok()?;
    next_after(&cron, due_ms.max(now_ms))
}

/// Fire what is due at `now_ms` (each due time once); returns the tasks queued.
pub async fn fire(state: &Arc<State>, now_ms: i64) -> Result<Vec<String>, ServerError> {
    let fired = state.db.call(move |s| s.fire_due(now_ms, |sc, due| next_due(sc, due, now_ms))).await?;
    let mut tasks = Vec::new();
    for f in fired {
        // The firing is committed; its record follows (the task cannot have run yet).
        state
            .audit(
                Some(&f.task.id),
                "schedule_fired",
                json!({"schedule": f.schedule.id, "due_ms": f.due_ms, "group": f.schedule.group}),
            )
            .await?;
        state.hub.emit(&f.task.id, "status", "queued");
        tasks.push(f.task.id);
    }
    if !tasks.is_empty() {
        state.queued.notify_one();
    }
    Ok(tasks)
}

/// Fire due schedules every second until shutdown.
pub async fn run(state: Arc<State>) -> Result<(), ServerError> {
    let mut shutdown = state.shutdown.subscribe();
    loop {
        if let Err(e) = fire(&state, time::now_ms()).await {
            tracing::error!(error = %e, "firing schedules failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const MIN: i64 = 60_000;

    fn sched(spec: &str) -> Schedule {
        Schedule {
            id: "s".into(),
            group: None,
            kind: ScheduleKind::Cron,
            spec: spec.into(),
            title: "t".into(),
            payload: json!({}),
            enabled: true,
            next_due_ms: None,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn missed_windows_collapse_into_one_run() {
        let s = sched("*/5 * * * *");
        // Fired on time: the next window follows.
        assert_eq!(next_due(&s, 10 * MIN, 10 * MIN), Some(15 * MIN));
        // Fired an hour late for the 10:00 window: next is the first after now, not 10:05.
        assert_eq!(next_due(&s, 10 * MIN, 70 * MIN + 1), Some(75 * MIN));
        assert!(parse_cron("every day").is_err());
        assert_eq!(next_after(&parse_cron("0 0 1 1 *").unwrap(), 0), Some(365 * 24 * 60 * MIN));
    }
}

/// `clawcage schedule add`: validate against `config`, create, audit.
/// Errors name the field at fault (`--cron`, `--at`, `--group`, the prompt).
pub fn add_now(
    config: &Config,
    paths: &clawcage_store::StatePaths,
    req: &NewScheduleRequest,
) -> Result<Schedule, ScheduleCliError> {
    let new = validate(config, req, time::now_ms())
        .map_err(|(field, message)| ScheduleCliError::Invalid { field, message })?;
    paths.create()?;
    let store = clawcage_store::Store::open(&paths.db)?;
    let audit = clawcage_store::audit::AuditLog::open(paths, clawcage_store::audit::SigningKey::from_env()?)?;
    create_audited(&store, &audit, new, None, json!({"by": "cli"}))
}

/// Create a validated schedule and its `schedule_created` record (`by`:
/// who, merged into the record; `task`: the task that asked, for the
/// agent's tool). The API, `clawcage schedule add` and the agent's
/// `schedule` tool all come through here. If the record cannot be made durable the
/// schedule is deleted again: none fires without its record.
pub fn create_audited(
    store: &clawcage_store::Store,
    audit: &clawcage_store::audit::AuditLog,
    mut new: NewSchedule,
    task: Option<&str>,
    by: Value,
) -> Result<Schedule, ScheduleCliError> {
    new.payload = by.clone();
    let s = store.create_schedule(&new)?;
    let mut data = json!({"schedule": s.id, "spec": s.spec, "kind": s.kind.as_str(), "group": s.group});
    if let (Some(d), Some(b)) = (data.as_object_mut(), by.as_object()) {
        d.extend(b.clone());
    }
    if let Err(e) = audit.append(task, "schedule_created", data) {
        let _ = store.delete_schedule(&s.id);
        return Err(e.into());
    }
    Ok(s)
}

/// `clawcage schedule rm ID`: delete, audit.
pub fn remove_now(paths: &clawcage_store::StatePaths, id: &str) -> Result<(), ScheduleCliError> {
    let store = clawcage_store::Store::open(&paths.db)?;
    let audit = clawcage_store::audit::AuditLog::open(paths, clawcage_store::audit::SigningKey::from_env()?)?;
    store.schedule(id)?;
    audit.append(None, "schedule_deleted", json!({"schedule": id, "by": "cli"}))?;
    store.delete_schedule(id)?;
    Ok(())
}

/// Why `clawcage schedule` failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleCliError {
    /// Bad input.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (`cron`, `at`, `group`, `prompt`).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] clawcage_store::StoreError),
    /// The audit log refused the record.
    #[error("audit log: {0}")]
    Audit(#[from] clawcage_store::audit::AuditError),
}
