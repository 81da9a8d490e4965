//! The product's side of the audit log: the [`EventSink`] adapter that
//! turns the core's events into audit records. `clawcage run` and the agent
//! both use it.

use clawcage_policy::{Event, EventSink, SinkError};
use clawcage_store::audit::AuditLog;
use serde_json::Value;
use std::sync::Arc;

/// Sends the core's events to the audit log, as records of one task.
/// `record` returns once the record is durable; `Err` means the caller
/// must refuse the effect.
#[derive(Clone)]
pub struct AuditSink {
    log: Arc<AuditLog>,
    task: Option<String>,
}

impl AuditSink {
    /// A sink appending to `log`, tagging records with `task`.
    pub fn new(log: Arc<AuditLog>, task: Option<String>) -> AuditSink {
        AuditSink { log, task }
    }

    /// The log.
    pub fn log(&self) -> &Arc<AuditLog> {
        &self.log
    }

    /// Append a product-level record (`kind`, `data`) for this task.
    pub fn append(&self, kind: &str, data: Value) -> Result<(), SinkError> {
        self.log.append(self.task.as_deref(), kind, data).map(|_| ()).map_err(|e| SinkError(e.to_string()))
    }

    /// Record `event`, which describes an effect that has *already
    /// happened* (a sandbox set up, a command ended): written at once, made
    /// durable with the next [`record`](EventSink::record) or when the log
    /// is flushed or dropped (group commit, see
    /// [`AuditLog::append_after`]). Never for an event that must be on disk
    /// before its effect.
    pub fn record_after(&self, event: &Event) -> Result<(), SinkError> {
        let (kind, data) = event_record(event)?;
        self.log.append_after(self.task.as_deref(), &kind, data).map(|_| ()).map_err(|e| SinkError(e.to_string()))
    }
}

/// An event as an audit record's `(kind, data)`: its serde form, with the
/// `kind` tag lifted out.
pub fn event_record(event: &Event) -> Result<(String, Value), SinkError> {
    let mut v = serde_json::to_value(event).map_err(|e| SinkError(format!("event to JSON: {e}")))?;
    let kind = match v.as_object_mut().and_then(|m| m.remove("kind")) {
        Some(Value::String(k)) => k,
        _ => return Err(SinkError("event without a kind tag".into())),
    };
    Ok((kind, v))
}

impl EventSink for AuditSink {
    fn record(&self, event: &Event) -> Result<(), SinkError> {
        let (kind, data) = event_record(event)?;
        self.append(&kind, data)
    }
}
