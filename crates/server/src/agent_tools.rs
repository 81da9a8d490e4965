//! The host tools a served group's agent gets (`clawcage_agent::host_tools`):
//!
//! - `schedule` — add, list and remove schedules of the agent's own group
//!   (cron or one-shot, with a prompt). Offered only when the group sets
//!   `agent_schedules = N` in the server config: the agent may then keep up
//!   to N schedules of its own making there, none firing more often than
//!   once a minute, and may remove only those. Without the key the tool is
//!   not offered and a call is refused. Schedules are created through the
//!   same path as `clawcage schedule add` (`schedule::create_audited`) and
//!   audited with the task that asked.
//! - `memory` — read, replace or append to the group's memory file (the
//!   group's `memory` key; it is also put into every task's system
//!   prompt). Writes are limited to [`MAX_MEMORY`] bytes, recorded
//!   (`memory_updated`, with the new content's SHA-256) before they take
//!   effect, and atomic: a temporary file beside it, fsynced, renamed over
//!   it, the directory fsynced. A later task of the group sees the new text.

use crate::config::Group;
use crate::schedule::{self, NewScheduleRequest};
use clawcage_agent::conversation::ToolSpec;
use clawcage_agent::host_tools::HostTools;
use clawcage_store::audit::AuditLog;
use clawcage_store::Store;
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Largest memory file the agent may write (and that is read into a prompt).
pub const MAX_MEMORY: usize = 64 * 1024;
/// Shortest time between two runs of a schedule the agent makes.
const MIN_AGENT_INTERVAL_MS: i64 = 60_000;

/// The host tools of one task of a group.
pub struct GroupTools {
    group: Arc<Group>,
    store: Mutex<Store>,
    audit: Arc<AuditLog>,
}

impl GroupTools {
    /// The tools for a task of `group`, with its own store connection.
    pub fn new(group: Arc<Group>, store: Store, audit: Arc<AuditLog>) -> GroupTools {
        GroupTools { group, store: Mutex::new(store), audit }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn schedule(&self, task: &str, input: &Value) -> Result<String, String> {
        let Some(max) = self.group.agent_schedules else {
            let _ = self.audit.append(
                Some(task),
                "tool_refused",
                json!({"tool": "schedule", "group": self.group.name, "why": "agent_schedules is not set"}),
            );
            return Err(format!(
                "scheduling is not allowed for group {:?} (the server config's groups.{}.agent_schedules is not set)",
                self.group.name, self.group.name
            ));
        };
        let mine = |s: &clawcage_store::work::Schedule| {
            s.group.as_deref() == Some(self.group.name.as_str()) && s.payload.get("by") == Some(&json!("agent"))
        };
        let store = self.store();
        let list = store.list_schedules().map_err(|e| format!("store: {e}"))?;
        match str_field(input, "action")?.as_str() {
            "list" => {
                let own: Vec<Value> = list.iter().filter(|s| mine(s)).map(schedule::to_json).collect();
                Ok(format!("{} of at most {max} schedules:\n{}", own.len(), Value::Array(own)))
            }
            "add" => {
                let n = list.iter().filter(|s| mine(s)).count();
                if n >= max as usize {
                    return Err(format!(
                        "group {:?} has {n} schedules made by its agent, the most allowed (agent_schedules = {max}); remove one first",
                        self.group.name
                    ));
                }
                let req = NewScheduleRequest {
                    group: self.group.name.clone(),
                    prompt: str_field(input, "prompt")?,
                    cron: opt_str(input, "cron")?,
                    at: opt_str(input, "at")?,
                };
                let now = clawcage_store::time::now_ms();
                let new = schedule::validate_in_group(&req, now).map_err(|(f, m)| format!("field {f:?}: {m}"))?;
                if let Some(c) = &req.cron {
                    let cron = schedule::parse_cron(c).map_err(|m| format!("field \"cron\": {m}"))?;
                    let second = schedule::next_after(&cron, new.first_due_ms);
                    if second.is_some_and(|t| t - new.first_due_ms < MIN_AGENT_INTERVAL_MS) {
                        return Err(format!("field \"cron\": {c:?} fires more often than once a minute"));
                    }
                }
                let by = json!({"by": "agent", "task": task});
                let s =
                    schedule::create_audited(&store, &self.audit, new, Some(task), by).map_err(|e| e.to_string())?;
                Ok(format!("schedule {} created: {}", s.id, schedule::to_json(&s)))
            }
            "remove" => {
                let id = str_field(input, "id")?;
                let Some(s) = list.iter().find(|s| s.id == id) else { return Err(format!("no schedule {id:?}")) };
                if !mine(s) {
                    return Err(format!("schedule {id} was not made by this group's agent: it may not remove it"));
                }
                self.audit
                    .append(Some(task), "schedule_deleted", json!({"schedule": id, "by": "agent", "task": task}))
                    .map_err(|e| format!("audit log: {e}"))?;
                store.delete_schedule(&id).map_err(|e| format!("store: {e}"))?;
                Ok(format!("schedule {id} removed"))
            }
            other => Err(format!("field \"action\": {other:?} is not add, list or remove")),
        }
    }

    fn memory(&self, task: &str, input: &Value) -> Result<String, String> {
        let Some(path) = &self.group.memory else {
            return Err(format!(
                "group {:?} has no memory file (the server config's groups.{}.memory)",
                self.group.name, self.group.name
            ));
        };
        // One writer at a time per server (appends read, then write).
        static WRITING: Mutex<()> = Mutex::new(());
        let _one = WRITING.lock().unwrap_or_else(|p| p.into_inner());
        let action = str_field(input, "action")?;
        let new = match action.as_str() {
            "read" => {
                let current = read_memory(path)?;
                return Ok(if current.is_empty() { "(the memory is empty)".into() } else { current });
            }
            "replace" => str_field(input, "text")?,
            "append" => {
                let text = str_field(input, "text")?;
                let current = read_memory(path)?;
                let sep = if current.is_empty() || current.ends_with('\n') { "" } else { "\n" };
                format!("{current}{sep}{text}")
            }
            other => return Err(format!("field \"action\": {other:?} is not read, replace or append")),
        };
        if new.len() > MAX_MEMORY {
            return Err(format!(
                "the memory would be {} bytes, more than the {MAX_MEMORY} allowed: replace it with a shorter summary",
                new.len()
            ));
        }
        let record = json!({
            "group": self.group.name, "file": path.display().to_string(), "action": action,
            "bytes": new.len(), "sha256": clawcage_store::sha256_hex(new.as_bytes()),
        });
        write_atomic(path, new.as_bytes(), || {
            self.audit.append(Some(task), "memory_updated", record).map(|_| ()).map_err(|e| format!("audit log: {e}"))
        })?;
        Ok(format!("memory updated ({} bytes)", new.len()))
    }
}

impl HostTools for GroupTools {
    fn specs(&self) -> Vec<ToolSpec> {
        let mut out = Vec::new();
        if self.group.memory.is_some() {
            out.push(ToolSpec {
                name: "memory".into(),
                description: "The group's memory: notes kept between tasks (they are in your system prompt). \
                              action read | replace (text: the whole new memory) | append (text: added at the end). \
                              At most 65536 bytes."
                    .into(),
                input_schema: json!({"type": "object", "properties": {
                    "action": {"type": "string", "enum": ["read", "replace", "append"]},
                    "text": {"type": "string"}
                }, "required": ["action"]}),
            });
        }
        if self.group.agent_schedules.is_some() {
            out.push(ToolSpec {
                name: "schedule".into(),
                description: "Schedule tasks of this group: action add (prompt, and cron — 5 fields, UTC — or at — an \
                              RFC 3339 time), list, or remove (id). Only schedules made by this group's agent are \
                              listed or removable; none may run more often than once a minute."
                    .into(),
                input_schema: json!({"type": "object", "properties": {
                    "action": {"type": "string", "enum": ["add", "list", "remove"]},
                    "prompt": {"type": "string", "description": "What the scheduled task is asked."},
                    "cron": {"type": "string", "description": "e.g. 0 9 * * 1-5"},
                    "at": {"type": "string", "description": "e.g. 2027-01-31T09:00:00Z"},
                    "id": {"type": "string"}
                }, "required": ["action"]}),
            });
        }
        out
    }

    fn handles(&self, name: &str) -> bool {
        matches!(name, "schedule" | "memory")
    }

    fn call(&self, task: &str, name: &str, input: &Value) -> Result<String, String> {
        if !input.is_object() {
            return Err("arguments must be a JSON object".into());
        }
        match name {
            "schedule" => self.schedule(task, input),
            "memory" => self.memory(task, input),
            other => Err(format!("unknown host tool {other:?}")),
        }
    }
}

fn str_field(input: &Value, k: &str) -> Result<String, String> {
    match input.get(k) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("field {k:?} must be a string, got {other}")),
        None => Err(format!("missing required field {k:?}")),
    }
}

fn opt_str(input: &Value, k: &str) -> Result<Option<String>, String> {
    match input.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => str_field(input, k).map(Some),
    }
}

/// The memory file's text (missing: empty; larger than [`MAX_MEMORY`]: an error).
pub fn read_memory(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    match std::fs::File::open(path) {
        Ok(f) => {
            f.take(MAX_MEMORY as u64 + 1)
                .read_to_string(&mut text)
                .map_err(|e| format!("memory file {}: {e}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(format!("memory file {}: {e}", path.display())),
    }
    if text.len() > MAX_MEMORY {
        return Err(format!("memory file {} is larger than {MAX_MEMORY} bytes", path.display()));
    }
    Ok(text)
}

/// Replace `path` with `bytes` atomically: a temporary file in the same
/// directory (mode 0600, or the old file's mode), fsynced; then `commit`
/// (the audit record — if it fails nothing changes); then the rename and an
/// fsync of the directory.
fn write_atomic(path: &Path, bytes: &[u8], commit: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |what: &str, e: std::io::Error| format!("memory file {}: {what}: {e}", path.display());
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.clawcage-{}.tmp", std::process::id()));
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o600);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err("write", e));
    }
    if let Err(e) = commit() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err("rename", e));
    }
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| err("sync directory", e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_memory_write_is_atomic_and_nothing_changes_when_the_record_fails() {
        let dir = std::env::temp_dir().join(format!("clawcage-memory-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("MEMORY.md");
        write_atomic(&path, b"one\n", || Ok(())).unwrap();
        assert_eq!(read_memory(&path).unwrap(), "one\n");
        let e = write_atomic(&path, b"two\n", || Err("audit log: disk full".into())).unwrap_err();
        assert!(e.contains("disk full"));
        assert_eq!(read_memory(&path).unwrap(), "one\n", "a write without its record took effect");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "a temporary file was left behind");
        std::fs::write(&path, "x".repeat(MAX_MEMORY + 1)).unwrap();
        assert!(read_memory(&path).unwrap_err().contains("larger than"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
