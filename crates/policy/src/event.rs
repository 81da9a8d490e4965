//! Decisions and effects the enforcement core reports, and the sink they go to.
//!
//! The sandbox and egress crates depend on this crate alone; they report what
//! they allow, deny and do through an [`EventSink`]. The product implements
//! the sink with its hash-chained audit log, so the core never imports the
//! product (DESIGN.md: arrows point down only).
//!
//! The contract of [`EventSink::record`]: it returns only once the event is
//! durable, and a caller that gets an error must not let the effect happen
//! (fail closed: an allow decision that cannot be recorded becomes a deny).

use serde::{Deserialize, Serialize};

/// A network decision of the egress proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The connection or request goes ahead.
    Allow,
    /// The connection or request is refused.
    Deny,
}

/// What happened to a secret in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretAction {
    /// The placeholder was replaced with the real value toward a bound host.
    Injected,
    /// The placeholder was seen toward a host the secret is not bound to; the
    /// request was blocked (an exfiltration attempt).
    Blocked,
}

/// One record for the audit log. Secret *values* never appear in an event;
/// secrets are named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A sandbox is about to start under a policy.
    SandboxStart {
        /// Sandbox id (unique per host and start).
        sandbox: String,
        /// SHA-256 (hex) of the effective policy.
        policy_hash: String,
        /// Backend (`ns`, `microvm`).
        backend: String,
        /// How limits are enforced (`cgroup v1`, `cgroup v2`, `rlimits`).
        limits: String,
    },
    /// A sandbox was stopped; every process in it is gone.
    SandboxStop {
        /// Sandbox id.
        sandbox: String,
    },
    /// A command is about to run in a sandbox.
    Exec {
        /// Sandbox id.
        sandbox: String,
        /// Command number within the sandbox.
        exec: u64,
        /// Program and arguments.
        argv: Vec<String>,
        /// Working directory inside the sandbox.
        cwd: String,
    },
    /// A command ended.
    ExecEnd {
        /// Sandbox id.
        sandbox: String,
        /// Command number within the sandbox.
        exec: u64,
        /// How it ended (`exited`, `signaled`, `timeout`, `memory`, `output`, `start_failed`).
        outcome: String,
        /// The exit status `clawcage run` would report.
        status: i32,
        /// Wall-clock duration in milliseconds.
        duration_ms: u64,
        /// Bytes written to stdout.
        stdout_bytes: u64,
        /// Bytes written to stderr.
        stderr_bytes: u64,
    },
    /// The egress proxy decided on a connection or request.
    Network {
        /// Sandbox id.
        sandbox: String,
        /// Normalised destination host (name or IP).
        host: String,
        /// Destination port.
        port: u16,
        /// Allowed or denied.
        decision: Decision,
        /// The policy rule that allowed it, when one did.
        rule: Option<String>,
        /// Why (one line).
        reason: String,
    },
    /// A connection through the proxy closed.
    NetworkEnd {
        /// Sandbox id.
        sandbox: String,
        /// Destination host.
        host: String,
        /// Destination port.
        port: u16,
        /// Bytes sent toward the destination.
        bytes_sent: u64,
        /// Bytes received from the destination.
        bytes_received: u64,
    },
    /// A secret was injected into, or blocked in, a request.
    Secret {
        /// Sandbox id.
        sandbox: String,
        /// The secret's name in the policy (`[secrets.NAME]`).
        name: String,
        /// The request's destination host.
        host: String,
        /// What happened.
        action: SecretAction,
    },
}

/// Why an event could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit: {0}")]
pub struct SinkError(pub String);

/// Where the core's events go. Implementations must be cheap to share
/// between threads.
pub trait EventSink: Send + Sync {
    /// Record `event` durably before returning. On `Err` the caller refuses
    /// the effect the event describes.
    fn record(&self, event: &Event) -> Result<(), SinkError>;
}

/// Events kept in memory, in order: for library users who keep their own
/// record, and for tests of the core.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: std::sync::Mutex<Vec<Event>>,
}

impl MemorySink {
    /// A copy of every event recorded so far.
    pub fn events(&self) -> Vec<Event> {
        match self.events.lock() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl EventSink for MemorySink {
    fn record(&self, event: &Event) -> Result<(), SinkError> {
        let mut v = self.events.lock().map_err(|_| SinkError("memory sink poisoned".into()))?;
        v.push(event.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_a_kind_tag_and_round_trip() {
        let e = Event::Network {
            sandbox: "s1".into(),
            host: "api.github.com".into(),
            port: 443,
            decision: Decision::Deny,
            rule: None,
            reason: "not in [network] allow".into(),
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.starts_with("{\"kind\":\"network\""), "{json}");
        assert!(json.contains("\"decision\":\"deny\""), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }

    #[test]
    fn memory_sink_keeps_order() {
        let sink = MemorySink::default();
        for n in 0..3 {
            sink.record(&Event::SandboxStop { sandbox: format!("s{n}") }).unwrap();
        }
        let names: Vec<String> = sink
            .events()
            .into_iter()
            .map(|e| match e {
                Event::SandboxStop { sandbox } => sandbox,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(names, ["s0", "s1", "s2"]);
    }
}
