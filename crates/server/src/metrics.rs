//! `/metrics` in the Prometheus text exposition format (version 0.0.4).

use crate::state::State;
use axum::extract::State as AxState;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use clawcage_store::time;
use std::fmt::Write as _;
use std::sync::Arc;

/// Every task status, so each series exists even at zero.
const STATUSES: &[&str] = &["queued", "running", "succeeded", "failed", "cancelled"];

/// The metrics page.
pub async fn metrics(AxState(state): AxState<Arc<State>>) -> Response {
    let now = time::now_ms();
    let read = state
        .db
        .call(move |s| {
            s.expire_approvals(now)?;
            Ok((s.count_tasks_by_status()?, s.queue_depth(now)?, s.pending_approvals(None)?.len()))
        })
        .await;
    let (counts, (waiting, leased), pending) = match read {
        Ok(v) => v,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let mut out = String::new();
    let _ = writeln!(out, "# HELP clawcage_tasks Tasks in the store by status.\n# TYPE clawcage_tasks gauge");
    for st in STATUSES {
        let n = counts.iter().find(|(s, _)| s == st).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "clawcage_tasks{{status=\"{st}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP clawcage_queue_depth Queued tasks by state.\n# TYPE clawcage_queue_depth gauge");
    let _ = writeln!(out, "clawcage_queue_depth{{state=\"waiting\"}} {waiting}");
    let _ = writeln!(out, "clawcage_queue_depth{{state=\"leased\"}} {leased}");
    let _ = writeln!(
        out,
        "# HELP clawcage_running_sandboxes Tasks (each with its sandbox) running in this server.\n\
         # TYPE clawcage_running_sandboxes gauge\nclawcage_running_sandboxes {}",
        state.counters.running()
    );
    let _ = writeln!(
        out,
        "# HELP clawcage_approvals_pending Approval requests waiting for a person.\n\
         # TYPE clawcage_approvals_pending gauge\nclawcage_approvals_pending {pending}"
    );
    let _ = writeln!(
        out,
        "# HELP clawcage_http_requests_total HTTP requests answered.\n# TYPE clawcage_http_requests_total counter"
    );
    for ((method, status), n) in state.counters.http.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(out, "clawcage_http_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP clawcage_ignored_messages_total Chat messages from unknown senders, ignored.\n\
         # TYPE clawcage_ignored_messages_total counter"
    );
    for (channel, n) in state.counters.ignored.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(out, "clawcage_ignored_messages_total{{channel=\"{channel}\"}} {n}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
