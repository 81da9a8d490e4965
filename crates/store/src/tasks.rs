//! Tasks, their messages and their tool calls.
//!
//! A task is one unit of work: a `clawcage run` command or an agent
//! conversation. Messages (the model conversation) and tool calls are
//! numbered per task from 1 in the order they were added; numbers are
//! assigned by the store inside the write transaction, so several processes
//! may add to one task without clashing.

use crate::error::{Result, StoreError};
use crate::{random_hex, time, to_i64, Store};
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The text kept in the database and shown to people.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::StoreError;
            fn from_str(s: &str) -> $crate::Result<$name> {
                match s {
                    $($text => Ok($name::$var),)+
                    _ => Err($crate::StoreError::Invalid {
                        what: stringify!($name),
                        detail: format!(
                            "{s:?}: expected one of {}",
                            [$($text),+].join(", ")
                        ),
                    }),
                }
            }
        }
    };
}
pub(crate) use text_enum;

text_enum! {
    /// What started a task.
    TaskKind {
        /// `clawcage run`: one command in a sandbox.
        Run = "run",
        /// `clawcage agent` (or a channel, or a schedule): a model conversation.
        Agent = "agent",
    }
}

text_enum! {
    /// Where a task is in its life.
    TaskStatus {
        /// Waiting for a worker.
        Queued = "queued",
        /// Being worked on.
        Running = "running",
        /// Ended well.
        Succeeded = "succeeded",
        /// Ended badly (`detail` says why).
        Failed = "failed",
        /// Stopped by someone.
        Cancelled = "cancelled",
    }
}

impl TaskStatus {
    /// Whether the task has ended (succeeded, failed or cancelled).
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled)
    }
}

text_enum! {
    /// Who said a message.
    Role {
        /// Instructions to the model.
        System = "system",
        /// The person (or channel) the task serves.
        User = "user",
        /// The model.
        Assistant = "assistant",
        /// A tool's result, handed back to the model.
        Tool = "tool",
    }
}

/// Model usage of a task (totals, or an increment to add).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost in millionths of a US dollar (integers add up exactly).
    pub cost_micro_usd: u64,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Id: 12 lowercase hex digits, chosen by the store.
    pub id: String,
    /// What started it.
    pub kind: TaskKind,
    /// Agent group it belongs to, if any.
    pub group: Option<String>,
    /// The command line (`run`) or the prompt (`agent`).
    pub title: String,
    /// Host path of the workspace.
    pub workspace: Option<String>,
    /// SHA-256 (hex) of the effective policy's canonical TOML.
    pub policy_hash: Option<String>,
    /// Model name, for agent tasks.
    pub model: Option<String>,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// One line on the status (why it failed, the exit status).
    pub detail: Option<String>,
    /// When it was created (Unix ms).
    pub created_ms: i64,
    /// When it last changed (Unix ms): status, usage, a message or tool call.
    pub updated_ms: i64,
    /// Model usage so far.
    pub usage: Usage,
}

/// What [`Store::create_task`] needs. Start from [`NewTask::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    /// What starts it.
    pub kind: TaskKind,
    /// Agent group.
    pub group: Option<String>,
    /// The command line or the prompt.
    pub title: String,
    /// Host path of the workspace.
    pub workspace: Option<String>,
    /// SHA-256 (hex) of the effective policy.
    pub policy_hash: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// Initial status (usually `Queued` or `Running`).
    pub status: TaskStatus,
}

impl NewTask {
    /// A task of `kind` titled `title`, `Queued`, with nothing else set.
    pub fn new(kind: TaskKind, title: impl Into<String>) -> NewTask {
        NewTask {
            kind,
            group: None,
            title: title.into(),
            workspace: None,
            policy_hash: None,
            model: None,
            status: TaskStatus::Queued,
        }
    }
}

/// Which tasks [`Store::list_tasks`] returns; the default is every task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only tasks with this status.
    pub status: Option<TaskStatus>,
    /// Only tasks of this kind.
    pub kind: Option<TaskKind>,
    /// Only tasks of this group.
    pub group: Option<String>,
    /// At most this many (the newest).
    pub limit: Option<u32>,
}

/// One message of a task's conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The task.
    pub task_id: String,
    /// Number within the task, from 1.
    pub seq: u64,
    /// Who said it.
    pub role: Role,
    /// The message as the agent keeps it (provider-neutral JSON).
    pub content: serde_json::Value,
    /// When it was added (Unix ms).
    pub created_ms: i64,
}

/// A tool call about to start ([`Store::start_tool_call`]).
#[derive(Debug, Clone, Copy)]
pub struct NewToolCall<'a> {
    /// The model's id for the call (to pair it with its result), if any.
    pub call_id: Option<&'a str>,
    /// Tool name.
    pub tool: &'a str,
    /// The tool's input as the model gave it.
    pub input: &'a serde_json::Value,
    /// The command it runs in the sandbox, when it runs one.
    pub argv: Option<&'a [String]>,
}

/// How a tool call ended ([`Store::finish_tool_call`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCallEnd {
    /// Exit status of its command (as `clawcage run` reports it), if it ran one.
    pub exit_status: Option<i32>,
    /// How long it took, measured by the caller (monotonic clock).
    pub duration_ms: u64,
    /// Bytes of output it produced (stdout + stderr, or the result's size).
    pub output_bytes: u64,
    /// Why it failed, when it failed without an exit status.
    pub error: Option<String>,
}

/// A tool call as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The task.
    pub task_id: String,
    /// Number within the task, from 1.
    pub seq: u64,
    /// The model's id for the call.
    pub call_id: Option<String>,
    /// Tool name.
    pub tool: String,
    /// The tool's input.
    pub input: serde_json::Value,
    /// The command it ran, if any.
    pub argv: Option<Vec<String>>,
    /// Exit status, once ended (if it ran a command).
    pub exit_status: Option<i32>,
    /// Duration, once ended.
    pub duration_ms: Option<u64>,
    /// Output size, once ended.
    pub output_bytes: Option<u64>,
    /// Why it failed, if it did without an exit status.
    pub error: Option<String>,
    /// When it started (Unix ms).
    pub started_ms: i64,
    /// When it ended (Unix ms); `None` while running (or if its process died).
    pub ended_ms: Option<i64>,
}

const TASK_COLS: &str = "id, kind, group_name, title, workspace, policy_hash, model, status, detail, \
                         created_ms, updated_ms, input_tokens, output_tokens, cost_micro_usd";
const CALL_COLS: &str = "task_id, seq, call_id, tool, input, argv, exit_status, duration_ms, output_bytes, \
                         error, started_ms, ended_ms";

impl Store {
    /// Create a task; the store picks its id. Returns it as stored.
    pub fn create_task(&self, new: &NewTask) -> Result<Task> {
        let id = self.write_checked("create task", |tx| self.insert_task(tx, new, time::now_ms()))?;
        self.task(&id)
    }

    /// Insert `new` inside `tx` (so schedules can create a task in the same
    /// transaction that fires them); returns the id it chose.
    pub(crate) fn insert_task(&self, tx: &rusqlite::Transaction<'_>, new: &NewTask, now: i64) -> Result<String> {
        // 48 random bits; a clash (the primary key) just draws again.
        for _ in 0..8 {
            let id = random_hex(6)?;
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO tasks (id, kind, group_name, title, workspace, policy_hash, model, \
                     status, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                    params![
                        id,
                        new.kind.as_str(),
                        new.group,
                        new.title,
                        new.workspace,
                        new.policy_hash,
                        new.model,
                        new.status.as_str(),
                        now
                    ],
                )
                .map_err(self.db("create task"))?;
            if inserted == 1 {
                return Ok(id);
            }
        }
        Err(StoreError::Invalid { what: "task id", detail: "no free id after 8 draws".into() })
    }

    /// The task `id`, or `None`.
    pub fn find_task(&self, id: &str) -> Result<Option<Task>> {
        let sql = format!("SELECT {TASK_COLS} FROM tasks WHERE id = ?1");
        let row = self.conn().query_row(&sql, [id], raw_task).optional().map_err(self.db("read task"))?;
        row.map(|r| r.into_task(self)).transpose()
    }

    /// The task `id`; [`StoreError::UnknownTask`] if there is none.
    pub fn task(&self, id: &str) -> Result<Task> {
        self.find_task(id)?.ok_or_else(|| StoreError::UnknownTask(id.to_string()))
    }

    /// Tasks matching `filter`, newest first.
    pub fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        let sql = format!(
            "SELECT {TASK_COLS} FROM tasks WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2) \
             AND (?3 IS NULL OR group_name = ?3) ORDER BY created_ms DESC, rowid DESC LIMIT ?4"
        );
        let limit = filter.limit.map_or(-1, i64::from);
        let status = filter.status.map(TaskStatus::as_str);
        let kind = filter.kind.map(TaskKind::as_str);
        let mut stmt = self.conn().prepare_cached(&sql).map_err(self.db("list tasks"))?;
        let rows = stmt
            .query_map(params![status, kind, filter.group, limit], raw_task)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.db("list tasks"))?;
        rows.into_iter().map(|r| r.into_task(self)).collect()
    }

    /// Set a task's status and detail line (`None` clears the detail).
    /// Any transition is allowed (a resumed task goes from `succeeded` back
    /// to `running`); the caller owns the task's life cycle.
    pub fn set_task_status(&self, id: &str, status: TaskStatus, detail: Option<&str>) -> Result<Task> {
        let n = self.write("set task status", |tx| {
            tx.execute(
                "UPDATE tasks SET status = ?2, detail = ?3, updated_ms = ?4 WHERE id = ?1",
                params![id, status.as_str(), detail, time::now_ms()],
            )
        })?;
        if n == 0 {
            return Err(StoreError::UnknownTask(id.to_string()));
        }
        self.task(id)
    }

    /// Add `delta` to a task's usage; returns the new totals.
    pub fn add_usage(&self, id: &str, delta: Usage) -> Result<Usage> {
        let delta = UsageDelta::of(delta)?;
        self.write_checked("add usage", |tx| self.add_usage_in(tx, id, &delta, time::now_ms()))
    }

    /// A model reply in one transaction: its usage added to the task's
    /// totals and the message appended. Returns the message and the totals.
    pub fn add_reply(
        &self,
        task: &str,
        usage: Usage,
        role: Role,
        content: &serde_json::Value,
    ) -> Result<(Message, Usage)> {
        let delta = UsageDelta::of(usage)?;
        let text = content.to_string();
        let now = time::now_ms();
        let (seq, totals) = self.write_checked("add reply", |tx| {
            let totals = self.add_usage_in(tx, task, &delta, now)?;
            Ok((self.insert_message(tx, task, role, &text, now)?, totals))
        })?;
        Ok((Message { task_id: task.to_string(), seq, role, content: content.clone(), created_ms: now }, totals))
    }

    /// Inside `tx`: add `delta` (bumping `updated_ms`), return the totals.
    fn add_usage_in(&self, tx: &rusqlite::Transaction<'_>, id: &str, d: &UsageDelta, now: i64) -> Result<Usage> {
        let totals = tx
            .prepare_cached(
                "UPDATE tasks SET input_tokens = input_tokens + ?2, output_tokens = output_tokens + ?3, \
                 cost_micro_usd = cost_micro_usd + ?4, updated_ms = ?5 WHERE id = ?1 \
                 RETURNING input_tokens, output_tokens, cost_micro_usd",
            )
            .and_then(|mut st| {
                st.query_row(params![id, d.0, d.1, d.2, now], |r| {
                    Ok([r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?])
                })
                .optional()
            })
            .map_err(self.db("add usage"))?;
        // CHECK constraints keep these non-negative.
        let [i, o, c] = totals.ok_or_else(|| StoreError::UnknownTask(id.to_string()))?;
        Ok(Usage { input_tokens: i as u64, output_tokens: o as u64, cost_micro_usd: c as u64 })
    }

    /// Append a message to a task's conversation; returns it with its number.
    pub fn append_message(&self, task: &str, role: Role, content: &serde_json::Value) -> Result<Message> {
        let text = content.to_string();
        let now = time::now_ms();
        let seq = self.write_checked("append message", |tx| {
            self.touch_task(tx, task, now)?;
            self.insert_message(tx, task, role, &text, now)
        })?;
        Ok(Message { task_id: task.to_string(), seq, role, content: content.clone(), created_ms: now })
    }

    /// Inside `tx`: add message `text` as the task's next one; returns its number.
    fn insert_message(
        &self,
        tx: &rusqlite::Transaction<'_>,
        task: &str,
        role: Role,
        text: &str,
        now: i64,
    ) -> Result<u64> {
        tx.prepare_cached(
            "INSERT INTO messages (task_id, seq, role, content, created_ms) \
             SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4 FROM messages WHERE task_id = ?1 RETURNING seq",
        )
        .and_then(|mut st| st.query_row(params![task, role.as_str(), text, now], |r| r.get::<_, i64>(0)))
        .map(|seq| seq as u64)
        .map_err(self.db("append message"))
    }

    /// A task's messages in order ([`StoreError::UnknownTask`] if there is no such task).
    pub fn messages(&self, task: &str) -> Result<Vec<Message>> {
        self.task(task)?;
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT seq, role, content, created_ms FROM messages WHERE task_id = ?1 ORDER BY seq")
            .map_err(self.db("read messages"))?;
        let rows = stmt
            .query_map([task], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.db("read messages"))?;
        rows.into_iter()
            .map(|(seq, role, content, created_ms)| {
                Ok(Message {
                    task_id: task.to_string(),
                    seq: seq as u64,
                    role: role.parse().map_err(|_| self.corrupt("messages", "role", &role))?,
                    content: serde_json::from_str(&content)
                        .map_err(|_| self.corrupt("messages", "content", &content))?,
                    created_ms,
                })
            })
            .collect()
    }

    /// Record that a tool call starts; returns it with its number (pass
    /// that to [`Store::finish_tool_call`]).
    pub fn start_tool_call(&self, task: &str, call: &NewToolCall<'_>) -> Result<ToolCall> {
        let now = time::now_ms();
        let input = call.input.to_string();
        let argv = call.argv.map(|a| serde_json::Value::from(a.to_vec()).to_string());
        let seq = self.write_checked("start tool call", |tx| {
            self.touch_task(tx, task, now)?;
            tx.prepare_cached(
                "INSERT INTO tool_calls (task_id, seq, call_id, tool, input, argv, started_ms) \
                 SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6 FROM tool_calls WHERE task_id = ?1 \
                 RETURNING seq",
            )
            .and_then(|mut st| {
                st.query_row(params![task, call.call_id, call.tool, input, argv, now], |r| r.get::<_, i64>(0))
            })
            .map_err(self.db("start tool call"))
        })?;
        Ok(ToolCall {
            task_id: task.to_string(),
            seq: seq as u64,
            call_id: call.call_id.map(str::to_string),
            tool: call.tool.to_string(),
            input: call.input.clone(),
            argv: call.argv.map(<[String]>::to_vec),
            exit_status: None,
            duration_ms: None,
            output_bytes: None,
            error: None,
            started_ms: now,
            ended_ms: None,
        })
    }

    /// Record how tool call `seq` of `task` ended. A call ends once:
    /// [`StoreError::ToolCallFinished`] the second time.
    pub fn finish_tool_call(&self, task: &str, seq: u64, end: &ToolCallEnd) -> Result<ToolCall> {
        let now = time::now_ms();
        let (dur, bytes, seq_i) =
            (to_i64("duration_ms", end.duration_ms)?, to_i64("output_bytes", end.output_bytes)?, to_i64("seq", seq)?);
        let raw = self.write_checked("finish tool call", |tx| {
            // Only a running call ends; the row comes back as it is now.
            let sql = format!(
                "UPDATE tool_calls SET exit_status = ?3, duration_ms = ?4, output_bytes = ?5, error = ?6, \
                 ended_ms = ?7 WHERE task_id = ?1 AND seq = ?2 AND ended_ms IS NULL RETURNING {CALL_COLS}"
            );
            let updated = tx
                .prepare_cached(&sql)
                .and_then(|mut st| {
                    st.query_row(params![task, seq_i, end.exit_status, dur, bytes, end.error, now], raw_call).optional()
                })
                .map_err(self.db("finish tool call"))?;
            let Some(raw) = updated else {
                let exists = tx
                    .prepare_cached("SELECT 1 FROM tool_calls WHERE task_id = ?1 AND seq = ?2")
                    .and_then(|mut st| st.exists(params![task, seq_i]))
                    .map_err(self.db("finish tool call"))?;
                return Err(match exists {
                    true => StoreError::ToolCallFinished { task: task.to_string(), seq },
                    false => StoreError::UnknownToolCall { task: task.to_string(), seq },
                });
            };
            self.touch_task(tx, task, now)?;
            Ok(raw)
        })?;
        raw.into_call(self)
    }

    /// Tool call `seq` of `task`.
    pub fn tool_call(&self, task: &str, seq: u64) -> Result<ToolCall> {
        let sql = format!("SELECT {CALL_COLS} FROM tool_calls WHERE task_id = ?1 AND seq = ?2");
        let raw = self
            .conn()
            .query_row(&sql, params![task, to_i64("seq", seq)?], raw_call)
            .optional()
            .map_err(self.db("read tool call"))?;
        match raw {
            Some(r) => r.into_call(self),
            None => Err(StoreError::UnknownToolCall { task: task.to_string(), seq }),
        }
    }

    /// A task's tool calls in order ([`StoreError::UnknownTask`] if there is no such task).
    pub fn tool_calls(&self, task: &str) -> Result<Vec<ToolCall>> {
        self.task(task)?;
        let sql = format!("SELECT {CALL_COLS} FROM tool_calls WHERE task_id = ?1 ORDER BY seq");
        let mut stmt = self.conn().prepare_cached(&sql).map_err(self.db("read tool calls"))?;
        let rows = stmt
            .query_map([task], raw_call)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.db("read tool calls"))?;
        rows.into_iter().map(|r| r.into_call(self)).collect()
    }

    /// Bump a task's `updated_ms`; [`StoreError::UnknownTask`] if it does not exist.
    pub(crate) fn touch_task(&self, tx: &rusqlite::Transaction<'_>, task: &str, now: i64) -> Result<()> {
        let n = tx
            .prepare_cached("UPDATE tasks SET updated_ms = ?2 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![task, now]))
            .map_err(self.db("touch task"))?;
        if n == 0 {
            return Err(StoreError::UnknownTask(task.to_string()));
        }
        Ok(())
    }

    pub(crate) fn corrupt(&self, table: &'static str, column: &'static str, value: &str) -> StoreError {
        StoreError::Corrupt { path: self.path().to_path_buf(), table, column, value: value.to_string() }
    }
}

/// A usage increment as SQLite integers (checked to fit).
struct UsageDelta(i64, i64, i64);

impl UsageDelta {
    fn of(u: Usage) -> Result<UsageDelta> {
        Ok(UsageDelta(
            to_i64("input_tokens", u.input_tokens)?,
            to_i64("output_tokens", u.output_tokens)?,
            to_i64("cost_micro_usd", u.cost_micro_usd)?,
        ))
    }
}

/// A `tasks` row before its text columns are checked.
struct RawTask {
    id: String,
    kind: String,
    group: Option<String>,
    title: String,
    workspace: Option<String>,
    policy_hash: Option<String>,
    model: Option<String>,
    status: String,
    detail: Option<String>,
    created_ms: i64,
    updated_ms: i64,
    usage: [i64; 3],
}

fn raw_task(r: &Row<'_>) -> rusqlite::Result<RawTask> {
    Ok(RawTask {
        id: r.get(0)?,
        kind: r.get(1)?,
        group: r.get(2)?,
        title: r.get(3)?,
        workspace: r.get(4)?,
        policy_hash: r.get(5)?,
        model: r.get(6)?,
        status: r.get(7)?,
        detail: r.get(8)?,
        created_ms: r.get(9)?,
        updated_ms: r.get(10)?,
        usage: [r.get(11)?, r.get(12)?, r.get(13)?],
    })
}

impl RawTask {
    fn into_task(self, s: &Store) -> Result<Task> {
        let [i, o, c] = self.usage;
        Ok(Task {
            kind: self.kind.parse().map_err(|_| s.corrupt("tasks", "kind", &self.kind))?,
            status: self.status.parse().map_err(|_| s.corrupt("tasks", "status", &self.status))?,
            id: self.id,
            group: self.group,
            title: self.title,
            workspace: self.workspace,
            policy_hash: self.policy_hash,
            model: self.model,
            detail: self.detail,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            // CHECK constraints keep these non-negative.
            usage: Usage { input_tokens: i as u64, output_tokens: o as u64, cost_micro_usd: c as u64 },
        })
    }
}

/// A `tool_calls` row before its JSON columns are parsed.
struct RawCall {
    task_id: String,
    seq: i64,
    call_id: Option<String>,
    tool: String,
    input: String,
    argv: Option<String>,
    exit_status: Option<i32>,
    duration_ms: Option<i64>,
    output_bytes: Option<i64>,
    error: Option<String>,
    started_ms: i64,
    ended_ms: Option<i64>,
}

fn raw_call(r: &Row<'_>) -> rusqlite::Result<RawCall> {
    Ok(RawCall {
        task_id: r.get(0)?,
        seq: r.get(1)?,
        call_id: r.get(2)?,
        tool: r.get(3)?,
        input: r.get(4)?,
        argv: r.get(5)?,
        exit_status: r.get(6)?,
        duration_ms: r.get(7)?,
        output_bytes: r.get(8)?,
        error: r.get(9)?,
        started_ms: r.get(10)?,
        ended_ms: r.get(11)?,
    })
}

impl RawCall {
    fn into_call(self, s: &Store) -> Result<ToolCall> {
        let input = serde_json::from_str(&self.input).map_err(|_| s.corrupt("tool_calls", "input", &self.input))?;
        let argv = match &self.argv {
            Some(a) => Some(serde_json::from_str(a).map_err(|_| s.corrupt("tool_calls", "argv", a))?),
            None => None,
        };
        Ok(ToolCall {
            task_id: self.task_id,
            seq: self.seq as u64,
            call_id: self.call_id,
            tool: self.tool,
            input,
            argv,
            exit_status: self.exit_status,
            duration_ms: self.duration_ms.map(|v| v as u64),
            output_bytes: self.output_bytes.map(|v| v as u64),
            error: self.error,
            started_ms: self.started_ms,
            ended_ms: self.ended_ms,
        })
    }
}
