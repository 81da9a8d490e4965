//! The HTTP API (and the routes of the web UI). Every `/api/*` route and
//! `/metrics` need `Authorization: Bearer <token>` (compared in constant
//! time); `/healthz`, `/openapi.json` and the UI's static files do not.
//! Errors are JSON: `{"error": "...", "field": "..."}` with a 4xx status
//! for bad input, naming the field at fault.

use crate::hub::TaskEvent;
use crate::schedule;
use crate::state::{ServerError, State};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clawcage_store::audit::Record;
use clawcage_store::{time, NewTask, StoreError, TaskFilter, TaskKind, TaskStatus};
use futures_util::stream::{self, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Longest prompt accepted.
const MAX_PROMPT: usize = 64 * 1024;
/// Longest request body accepted.
const MAX_BODY: usize = 256 * 1024;
/// Most audit records one request returns.
const MAX_AUDIT: usize = 1000;

type Shared = Arc<State>;

/// An error answer: status, message, and the field at fault.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), field: None }
    }

    fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into(), field: Some(field.to_string()) }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self.field {
            Some(f) => json!({"error": self.message, "field": f}),
            None => json!({"error": self.message}),
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> ApiError {
        match e {
            ServerError::Store(StoreError::UnknownTask(id)) => {
                ApiError::new(StatusCode::NOT_FOUND, format!("no task {id:?}"))
            }
            ServerError::Store(StoreError::Unknown { what, id }) => {
                ApiError::new(StatusCode::NOT_FOUND, format!("no {what} {id:?}"))
            }
            ServerError::Store(e @ StoreError::ApprovalClosed { .. }) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            e => {
                tracing::error!(error = %e, "request failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Parse a JSON body; errors name the field.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        ApiError::field(&field, e.into_inner().to_string())
    })
}

/// The router: API, UI, health, metrics, OpenAPI.
pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/api/tasks", get(list_tasks).post(create_task))
        .route("/api/tasks/{id}", get(get_task))
        .route("/api/tasks/{id}/events", get(task_events))
        .route("/api/tasks/{id}/cancel", post(cancel_task))
        .route("/api/tasks/{id}/diff", get(task_diff))
        .route("/api/tasks/{id}/apply", post(task_apply))
        .route("/api/tasks/{id}/discard", post(task_discard))
        .route("/api/approvals", get(list_approvals))
        .route("/api/approvals/{id}/approve", post(approve))
        .route("/api/approvals/{id}/deny", post(deny))
        .route("/api/audit", get(audit_records))
        .route("/api/audit/verify", get(audit_verify))
        .route("/api/schedules", get(list_schedules).post(create_schedule))
        .route("/api/schedules/{id}", get(get_schedule).delete(delete_schedule).patch(patch_schedule))
        .route("/api/groups", get(list_groups))
        .route("/metrics", get(crate::metrics::metrics))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), auth));
    Router::new()
        .merge(api)
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], crate::openapi::DOC) }))
        .merge(crate::ui::routes())
        .merge(crate::channels::slack::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), count_and_harden))
        .with_state(state)
}

/// Bearer token check, in constant time.
async fn auth(AxState(state): AxState<Shared>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let want = state.config.server.token.as_bytes();
    let ok: bool = (given.len() == want.len()) & bool::from(given.as_bytes().ct_eq(want));
    if !ok {
        let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    next.run(req).await
}

/// Count requests for /metrics; set security headers on every answer.
async fn count_and_harden(AxState(state): AxState<Shared>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let mut resp = next.run(req).await;
    state.counters.http_request(&method, resp.status().as_u16());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

// ---- tasks -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTask {
    group: String,
    prompt: String,
    #[serde(default)]
    conversation: Option<String>,
}

async fn create_task(AxState(state): AxState<Shared>, bytes: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: CreateTask = body(&bytes)?;
    let conversation = match &req.conversation {
        None => None,
        Some(c) if !c.is_empty() && c.len() <= 200 && !c.chars().any(char::is_control) => Some(format!("api:{c}")),
        Some(_) => return Err(ApiError::field("conversation", "1 to 200 characters, no control characters")),
    };
    let task = queue_task(&state, &req.group, &req.prompt, conversation, "api").await?;
    Ok((StatusCode::CREATED, Json(json!(task))))
}

/// Validate, record and queue a task in `group` for `by` (also used by the
/// channels). The audit record comes first: no record, no task.
pub async fn queue_task(
    state: &Shared,
    group: &str,
    prompt: &str,
    conversation: Option<String>,
    by: &str,
) -> ApiResult<clawcage_store::Task> {
    let Some(g) = state.config.groups.get(group) else {
        let known: Vec<&String> = state.config.groups.keys().collect();
        return Err(ApiError::field("group", format!("no group {group:?} (configured: {known:?})")));
    };
    if prompt.trim().is_empty() || prompt.len() > MAX_PROMPT {
        return Err(ApiError::field("prompt", format!("must be 1 to {MAX_PROMPT} bytes")));
    }
    let mut new = NewTask::new(TaskKind::Agent, prompt);
    new.group = Some(g.name.clone());
    new.workspace = Some(g.workspace.display().to_string());
    new.model = g.model.clone();
    let conv = conversation.clone();
    let task = state.db.call(move |s| s.create_queued_task(&new, conv.as_deref(), 0)).await?;
    state
        .audit(Some(&task.id), "task_queued", json!({"group": group, "by": by, "conversation": conversation}))
        .await
        .map_err(ApiError::from)?;
    state.hub.emit(&task.id, "status", "queued");
    state.queued.notify_one();
    Ok(task)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskQuery {
    status: Option<String>,
    group: Option<String>,
    limit: Option<u32>,
}

async fn list_tasks(AxState(state): AxState<Shared>, q: Query<TaskQuery>) -> ApiResult<Json<Value>> {
    let status = match &q.status {
        None => None,
        Some(s) => Some(s.parse::<TaskStatus>().map_err(|_| {
            ApiError::field("status", format!("{s:?}: expected queued, running, succeeded, failed or cancelled"))
        })?),
    };
    let filter =
        TaskFilter { status, kind: None, group: q.group.clone(), limit: Some(q.limit.unwrap_or(100).min(1000)) };
    let tasks = state.db.call(move |s| s.list_tasks(&filter)).await?;
    Ok(Json(json!(tasks)))
}

async fn get_task(AxState(state): AxState<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let t = id.clone();
    let (task, messages, calls, approvals) = state
        .db
        .call(move |s| {
            let task = s.task(&t)?;
            Ok((task, s.messages(&t)?, s.tool_calls(&t)?, s.pending_approvals(Some(&t))?))
        })
        .await?;
    Ok(Json(json!({
        "task": task,
        "messages": messages,
        "tool_calls": calls,
        "pending_approvals": approvals.iter().map(approval_json).collect::<Vec<_>>(),
        "review": review_dir(&state, &id).join("review.json").exists(),
    })))
}

/// The task's live output as Server-Sent Events: the backlog, then live
/// events, ending with an `end` event. Each event's data is JSON
/// `{seq, kind, text}`.
async fn task_events(
    AxState(state): AxState<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let t = id.clone();
    let task = state.db.call(move |s| s.task(&t)).await?;
    let sub = state.hub.subscribe(&id);
    let mut backlog = sub.backlog;
    let seen_end = backlog.iter().any(|e| e.kind == "end");
    if task.status.is_terminal() && !seen_end {
        // Ended before this process saw it (a restart): its status is all there is live.
        let next = backlog.last().map_or(1, |e| e.seq + 1);
        backlog.push(TaskEvent { seq: next, kind: "end".into(), text: task.status.as_str().into() });
    }
    let last = backlog.last().map_or(0, |e| e.seq);
    let done = backlog.iter().any(|e| e.kind == "end");
    let first = stream::iter(backlog.into_iter().map(sse_event));
    let live = stream::unfold((sub.live, last, done), |(mut rx, last, done)| async move {
        if done {
            return None;
        }
        loop {
            match rx.recv().await {
                Ok(ev) if ev.seq <= last => continue,
                Ok(ev) => {
                    let end = ev.kind == "end";
                    let seq = ev.seq;
                    return Some((sse_event(ev), (rx, seq, end)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let note = TaskEvent { seq: last, kind: "note".into(), text: format!("{n} events skipped") };
                    return Some((sse_event(note), (rx, last, false)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(first.chain(live)).keep_alive(KeepAlive::default()))
}

fn sse_event(ev: TaskEvent) -> Result<Event, Infallible> {
    let data = serde_json::to_string(&ev).unwrap_or_default();
    Ok(Event::default().event(ev.kind.clone()).id(ev.seq.to_string()).data(data))
}

async fn cancel_task(AxState(state): AxState<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let t = id.clone();
    let task = state.db.call(move |s| s.task(&t)).await?;
    if task.status.is_terminal() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("task {id} already {}", task.status.as_str())));
    }
    state.audit(Some(&id), "task_cancel_requested", json!({"by": "api"})).await?;
    let running = state.cancels.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned();
    if let Some(tx) = running {
        let _ = tx.send(true);
        return Ok(Json(json!({"cancelling": id})));
    }
    let t = id.clone();
    if state.db.call(move |s| s.cancel_waiting(&t, "cancelled before it started", time::now_ms())).await? {
        state.hub.end(&id, "cancelled");
        return Ok(Json(json!({"cancelled": id})));
    }
    Err(ApiError::new(StatusCode::CONFLICT, format!("task {id} is running in another process")))
}

// ---- review ----------------------------------------------------------

fn review_dir(state: &State, id: &str) -> std::path::PathBuf {
    clawcage_review::task_dir(&state.paths.dir, id).unwrap_or_else(|_| state.paths.dir.join("tasks").join("-"))
}

fn review_err(e: clawcage_review::ReviewError) -> ApiError {
    match e {
        clawcage_review::ReviewError::Apply(e) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Open the review directory of finished task `id` (404 without one, 409
/// while it runs: its sandbox still has the overlay mounted).
async fn open_review(state: &Shared, id: &str) -> ApiResult<clawcage_review::ReviewDir> {
    let dir = clawcage_review::task_dir(&state.paths.dir, id)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("no task {id:?}")))?;
    let t = id.to_string();
    let task = state.db.call(move |s| s.task(&t)).await?;
    if !task.status.is_terminal() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("task {id} is still {}", task.status.as_str())));
    }
    if !dir.exists() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("task {id} has no reviewed changes")));
    }
    blocking(move || clawcage_review::ReviewDir::open(&dir).map_err(review_err)).await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn task_diff(AxState(state): AxState<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let r = open_review(&state, &id).await?;
    let diff = blocking(move || r.diff().map_err(review_err)).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], diff).into_response())
}

/// Apply a finished task's changes, as `clawcage apply` does: `[approvals]
/// writes` rules ask an approver first (answered through the approvals API
/// or a chat; the request waits), every step is on the audit record, and a
/// workspace that changed underneath refuses the whole apply (409).
async fn task_apply(AxState(state): AxState<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let r = open_review(&state, &id).await?;
    let r = Arc::new(r);
    let rr = Arc::clone(&r);
    let changes = blocking(move || rr.changes().map_err(review_err)).await?;
    let workspace = r.workspace().display().to_string();
    let approvals = r.write_approvals();
    if !approvals.writes.is_empty() {
        let paths: Vec<String> = changes.iter().map(|c| c.path().display().to_string()).collect();
        let (db, log, task, ws) = (state.paths.db.clone(), Arc::clone(&state.audit), id.clone(), workspace.clone());
        let verdict = blocking(move || {
            let store = clawcage_store::Store::open(&db).map_err(|e| ApiError::from(ServerError::from(e)))?;
            let prompter = clawcage_review::approve::StorePrompter::new(&db, std::time::Duration::from_millis(200));
            let gate = clawcage_review::approve::Gate::new(store, log, &task, approvals, Box::new(prompter));
            gate.check_writes(&paths, &ws).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        })
        .await?;
        if let clawcage_review::approve::Verdict::Denied { reason, .. } = verdict {
            return Err(ApiError::new(StatusCode::FORBIDDEN, format!("apply refused: {reason}; nothing applied")));
        }
    }
    let summary = clawcage_review::summary_json(&changes);
    state.audit(Some(&id), "changes_apply", json!({"workspace": workspace, "by": "api", "changes": summary})).await?;
    let rr = Arc::clone(&r);
    match blocking(move || Ok(rr.apply())).await? {
        Ok(report) => {
            let applied: Vec<String> = report.applied.iter().map(|c| c.path().display().to_string()).collect();
            let refused: Vec<Value> =
                report.refused.iter().map(|(p, why)| json!({"path": p.display().to_string(), "why": why})).collect();
            let data = json!({"applied": clawcage_review::summary_json(&report.applied), "refused": refused});
            state.audit(Some(&id), "changes_applied", data).await?;
            Ok(Json(json!({"applied": applied, "refused": refused})))
        }
        Err(clawcage_review::ReviewError::Apply(clawcage_review::ApplyError::Conflicts(paths))) => {
            let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            state.audit(Some(&id), "changes_apply_refused", json!({"conflicts": list})).await?;
            Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "the workspace changed since the task started; nothing applied. Conflicting paths: {}",
                    list.join(", ")
                ),
            ))
        }
        Err(e) => {
            let _ = state.audit(Some(&id), "changes_apply_failed", json!({"error": e.to_string()})).await;
            Err(review_err(e))
        }
    }
}

async fn task_discard(AxState(state): AxState<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let r = Arc::new(open_review(&state, &id).await?);
    let rr = Arc::clone(&r);
    let changes = blocking(move || rr.changes().map_err(review_err)).await?;
    let data = json!({"by": "api", "changes": clawcage_review::summary_json(&changes)});
    state.audit(Some(&id), "changes_discarded", data).await?;
    blocking(move || r.discard().map_err(review_err)).await?;
    Ok(Json(json!({"discarded": id})))
}

// ---- approvals ---------------------------------------------------------

fn approval_json(a: &clawcage_store::work::Approval) -> Value {
    json!({
        "id": a.id, "task_id": a.task_id, "kind": a.kind.as_str(), "subject": a.subject,
        "status": a.status.as_str(), "requested_ms": a.requested_ms, "expires_ms": a.expires_ms,
        "decided_ms": a.decided_ms, "decided_by": a.decided_by, "reason": a.reason,
    })
}

async fn list_approvals(AxState(state): AxState<Shared>) -> ApiResult<Json<Value>> {
    let list = state
        .db
        .call(|s| {
            s.expire_approvals(time::now_ms())?;
            s.pending_approvals(None)
        })
        .await?;
    Ok(Json(Value::Array(list.iter().map(approval_json).collect())))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    #[serde(default)]
    reason: Option<String>,
}

async fn approve(AxState(state): AxState<Shared>, Path(id): Path<String>, bytes: Bytes) -> ApiResult<Json<Value>> {
    decide(&state, &id, true, "api", &bytes).await
}

async fn deny(AxState(state): AxState<Shared>, Path(id): Path<String>, bytes: Bytes) -> ApiResult<Json<Value>> {
    decide(&state, &id, false, "api", &bytes).await
}

async fn decide(state: &Shared, id: &str, yes: bool, by: &str, bytes: &Bytes) -> ApiResult<Json<Value>> {
    let d: Decision = if bytes.is_empty() { Decision::default() } else { body(bytes)? };
    if d.reason.as_ref().is_some_and(|r| r.len() > 1000) {
        return Err(ApiError::field("reason", "at most 1000 bytes"));
    }
    let a = decide_approval(state, id, yes, by, d.reason).await?;
    Ok(Json(approval_json(&a)))
}

/// Decide approval `id` for `by` (the API, or a chat approver), audited.
/// The decision is recorded in the audit log before the store, so the
/// waiting gate never acts on an unrecorded decision.
pub async fn decide_approval(
    state: &Shared,
    id: &str,
    yes: bool,
    by: &str,
    reason: Option<String>,
) -> Result<clawcage_store::work::Approval, ServerError> {
    let i = id.to_string();
    let pending = state.db.call(move |s| s.approval(&i)).await?;
    let decision = if yes { "approved" } else { "denied" };
    state
        .audit(
            Some(&pending.task_id),
            "approval_decision",
            json!({"approval": id, "decision": decision, "by": by, "reason": reason.clone().unwrap_or_default()}),
        )
        .await?;
    let (i, b) = (id.to_string(), by.to_string());
    let a = state.db.call(move |s| s.decide_approval(&i, yes, &b, reason.as_deref(), time::now_ms())).await?;
    state.hub.emit(&a.task_id, "note", &format!("approval {id} {decision} by {by}"));
    Ok(a)
}

// ---- audit ---------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    task: Option<String>,
    limit: Option<usize>,
}

fn record_json(r: &Record) -> Value {
    json!({"seq": r.seq, "ts": r.ts, "task": r.task, "kind": r.kind, "data": r.data, "hash": r.hash})
}

async fn audit_records(AxState(state): AxState<Shared>, q: Query<AuditQuery>) -> ApiResult<Json<Value>> {
    let path = state.paths.audit.clone();
    let limit = q.limit.unwrap_or(200).min(MAX_AUDIT);
    let task = q.task.clone();
    let records = tokio::task::spawn_blocking(move || {
        let mut out = std::collections::VecDeque::new();
        let res = clawcage_store::audit::for_each_line(&path, |_, line| {
            if let Ok(r) = Record::parse_line(line) {
                if task.is_none() || r.task == task {
                    out.push_back(record_json(&r));
                    if out.len() > limit {
                        out.pop_front();
                    }
                }
            }
            Ok(())
        });
        res.map(|()| out)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::from(ServerError::from(e)))?;
    Ok(Json(Value::Array(records.into_iter().collect())))
}

async fn audit_verify(AxState(state): AxState<Shared>) -> ApiResult<Json<Value>> {
    let (log, key) = (state.paths.audit.clone(), state.audit_key.clone());
    let rep = state.db.call(move |s| Ok(clawcage_store::audit::verify(&log, s, key.as_ref()))).await?;
    let rep = rep.map_err(|e| ApiError::from(ServerError::from(e)))?;
    Ok(Json(json!({
        "ok": rep.ok(),
        "records": rep.lines,
        "last_seq": rep.last.as_ref().map(|(s, _)| *s),
        "signed": rep.signed,
        "notes": rep.notes,
        "problem": rep.problem.as_ref().map(|p| p.to_string()),
    })))
}

// ---- schedules -----------------------------------------------------------

async fn list_schedules(AxState(state): AxState<Shared>) -> ApiResult<Json<Value>> {
    let list = state.db.call(|s| s.list_schedules()).await?;
    Ok(Json(Value::Array(list.iter().map(schedule::to_json).collect())))
}

async fn get_schedule(AxState(state): AxState<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let s = state.db.call(move |s| s.schedule(&id)).await?;
    Ok(Json(schedule::to_json(&s)))
}

async fn create_schedule(AxState(state): AxState<Shared>, bytes: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: schedule::NewScheduleRequest = body(&bytes)?;
    let new = schedule::validate(&state.config, &req, time::now_ms()).map_err(|(f, m)| ApiError::field(f, m))?;
    let audit = Arc::clone(&state.audit);
    let created =
        state.db.call(move |s| Ok(schedule::create_audited(s, &audit, new, None, json!({"by": "api"})))).await?;
    let s = created.map_err(|e| match e {
        schedule::ScheduleCliError::Store(e) => ApiError::from(ServerError::Store(e)),
        schedule::ScheduleCliError::Audit(e) => ApiError::from(ServerError::Audit(e)),
        e => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
    })?;
    Ok((StatusCode::CREATED, Json(schedule::to_json(&s))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchSchedule {
    enabled: bool,
}

async fn patch_schedule(
    AxState(state): AxState<Shared>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let p: PatchSchedule = body(&bytes)?;
    let s = state.db.call(move |s| s.set_schedule_enabled(&id, p.enabled)).await?;
    state.audit(None, "schedule_changed", json!({"schedule": s.id, "enabled": s.enabled, "by": "api"})).await?;
    Ok(Json(schedule::to_json(&s)))
}

async fn delete_schedule(AxState(state): AxState<Shared>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let i = id.clone();
    state.db.call(move |s| s.delete_schedule(&i)).await?;
    state.audit(None, "schedule_deleted", json!({"schedule": id, "by": "api"})).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_groups(AxState(state): AxState<Shared>) -> Json<Value> {
    let groups: Vec<Value> = state
        .config
        .groups
        .values()
        .map(|g| json!({"name": g.name, "workspace": g.workspace.display().to_string(), "model": g.model}))
        .collect();
    Json(Value::Array(groups))
}
