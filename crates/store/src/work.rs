//! Work that outlives a process: schedules (cron and one-shot) that fire
//! exactly once per due time, the task queue with leases, and approvals.
//!
//! # Exactly once
//! [`Store::fire_due`] fires each due occurrence in one transaction that
//! inserts `(schedule, due time)` into `schedule_runs` (its primary key),
//! creates the task, queues it and moves the schedule's next due time on. A
//! crash before the commit fires nothing (the next call fires it); after the
//! commit the occurrence exists and can never be inserted again, whichever
//! process or restart looks next.
//!
//! # The queue
//! A worker [`claim`](Store::claim_next)s a queued task for a lease, renews
//! the lease while it works, and [`dequeue`](Store::dequeue)s it when done.
//! A worker that dies leaves its lease to expire; the next claim gets the
//! task again with `attempts` > 1, so the worker can tell a task that was
//! interrupted (and resume it from its stored messages, or fail it) from a
//! fresh one: the store never runs anything by itself.
//!
//! A task queued [in a conversation](Store::enqueue_in) is not handed out
//! while another task of the same conversation holds a live lease, and the
//! oldest of a conversation goes first: a conversation's tasks run one at a
//! time, in order. A schedule's firings form the conversation
//! `schedule:<id>`.
//!
//! Cron expressions are the scheduler's business: `fire_due` asks the
//! caller for the next due time after each firing.

use crate::error::{Result, StoreError};
use crate::tasks::text_enum;
use crate::{random_hex, time, NewTask, Store, Task, TaskKind};
use rusqlite::{params, OptionalExtension, Row};
use serde_json::Value;

text_enum! {
    /// How a schedule repeats.
    ScheduleKind {
        /// A cron expression (`spec`); fires again and again.
        Cron = "cron",
        /// Once, at `spec` (an RFC 3339 time, for people; `next_due_ms` is what counts).
        Once = "once",
    }
}

text_enum! {
    /// What an approval is for.
    ApprovalKind {
        /// A command matched `[approvals] commands`; the subject is its argv.
        Command = "command",
        /// A connection to an unlisted host; the subject is host and port.
        Network = "network",
        /// File writes matched `[approvals] writes`; the subject names the paths.
        Write = "write",
    }
}

text_enum! {
    /// Where an approval request stands.
    ApprovalStatus {
        /// Waiting for a person.
        Pending = "pending",
        /// Allowed.
        Approved = "approved",
        /// Refused.
        Denied = "denied",
        /// Nobody decided in time (counts as refused).
        Expired = "expired",
    }
}

/// What [`Store::create_schedule`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    /// Agent group the tasks run in.
    pub group: Option<String>,
    /// Cron or one-shot.
    pub kind: ScheduleKind,
    /// The cron expression or the one-shot time, as the person wrote it.
    pub spec: String,
    /// Title (prompt) of the tasks it creates.
    pub title: String,
    /// Whatever the scheduler needs to start the task (workspace, model, ...).
    pub payload: Value,
    /// First due time (Unix ms).
    pub first_due_ms: i64,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Id (12 hex digits).
    pub id: String,
    /// Agent group.
    pub group: Option<String>,
    /// Cron or one-shot.
    pub kind: ScheduleKind,
    /// As written.
    pub spec: String,
    /// Title of its tasks.
    pub title: String,
    /// The scheduler's data.
    pub payload: Value,
    /// Whether it fires.
    pub enabled: bool,
    /// When it is due next; `None`: never again (a fired one-shot).
    pub next_due_ms: Option<i64>,
    /// Created (Unix ms).
    pub created_ms: i64,
    /// Last changed (Unix ms).
    pub updated_ms: i64,
}

/// One firing by [`Store::fire_due`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The schedule, as it was when it fired.
    pub schedule: Schedule,
    /// The due time that fired.
    pub due_ms: i64,
    /// The task it created (queued).
    pub task: Task,
}

/// A queued task claimed by a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The task (now `running`).
    pub task: Task,
    /// How many times it has been claimed, this one included: more than 1
    /// means an earlier worker died holding it.
    pub attempts: u32,
    /// The lease ends then (Unix ms) unless renewed.
    pub lease_until_ms: i64,
    /// The conversation it was queued in, if any.
    pub conversation: Option<String>,
}

/// A live or expired lease on a queued task.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The task.
    pub task_id: String,
    /// Who holds it.
    pub owner: String,
    /// Until when (Unix ms).
    pub until_ms: i64,
}

/// An approval request.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// Id (12 hex digits).
    pub id: String,
    /// The task that asks.
    pub task_id: String,
    /// What for.
    pub kind: ApprovalKind,
    /// What exactly (argv, or host and port), shown in full to the approver.
    pub subject: Value,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// Asked (Unix ms).
    pub requested_ms: i64,
    /// Expires then (Unix ms) if nobody decides.
    pub expires_ms: i64,
    /// Decided or expired (Unix ms).
    pub decided_ms: Option<i64>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// Why, if they said.
    pub reason: Option<String>,
}

const SCHEDULE_COLS: &str = "id, group_name, kind, spec, title, payload, enabled, next_due_ms, created_ms, updated_ms";
const APPROVAL_COLS: &str =
    "id, task_id, kind, subject, status, requested_ms, expires_ms, decided_ms, decided_by, reason";

impl Store {
    /// Create an enabled schedule, first due at `new.first_due_ms`.
    pub fn create_schedule(&self, new: &NewSchedule) -> Result<Schedule> {
        let id = random_hex(6)?;
        let now = time::now_ms();
        self.write("create schedule", |tx| {
            tx.execute(
                "INSERT INTO schedules (id, group_name, kind, spec, title, payload, next_due_ms, created_ms, \
                 updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    id,
                    new.group,
                    new.kind.as_str(),
                    new.spec,
                    new.title,
                    new.payload.to_string(),
                    new.first_due_ms,
                    now
                ],
            )
        })?;
        self.schedule(&id)
    }

    /// The schedule `id`.
    pub fn schedule(&self, id: &str) -> Result<Schedule> {
        let sql = format!("SELECT {SCHEDULE_COLS} FROM schedules WHERE id = ?1");
        let raw = self.conn().query_row(&sql, [id], raw_schedule).optional().map_err(self.db("read schedule"))?;
        match raw {
            Some(r) => r.into_schedule(self),
            None => Err(StoreError::Unknown { what: "schedule", id: id.to_string() }),
        }
    }

    /// Turn a schedule on or off.
    pub fn set_schedule_enabled(&self, id: &str, enabled: bool) -> Result<Schedule> {
        let n = self.write("enable schedule", |tx| {
            tx.execute(
                "UPDATE schedules SET enabled = ?2, updated_ms = ?3 WHERE id = ?1",
                params![id, enabled, time::now_ms()],
            )
        })?;
        if n == 0 {
            return Err(StoreError::Unknown { what: "schedule", id: id.to_string() });
        }
        self.schedule(id)
    }

    /// Fire every enabled schedule due at or before `now_ms`, each due time
    /// exactly once (module docs): a queued `agent` task per firing.
    /// `next_due(schedule, due_ms)` gives a cron schedule's next due time
    /// after `due_ms` (one-shots are never asked; they end). A schedule
    /// that fell behind fires once per call, for its oldest due time.
    pub fn fire_due(&self, now_ms: i64, mut next_due: impl FnMut(&Schedule, i64) -> Option<i64>) -> Result<Vec<Fired>> {
        let ids: Vec<String> = {
            let mut stmt = self
                .conn()
                .prepare_cached(
                    "SELECT id FROM schedules WHERE enabled = 1 AND next_due_ms IS NOT NULL AND next_due_ms <= ?1 \
                     ORDER BY next_due_ms",
                )
                .map_err(self.db("due schedules"))?;
            let rows = stmt.query_map([now_ms], |r| r.get(0)).map_err(self.db("due schedules"))?;
            rows.collect::<rusqlite::Result<_>>().map_err(self.db("due schedules"))?
        };
        let mut fired = Vec::new();
        for id in ids {
            let one = self.write_checked("fire schedule", |tx| {
                // Re-read under the write lock: another process may have fired it.
                let sql = format!("SELECT {SCHEDULE_COLS} FROM schedules WHERE id = ?1");
                let Some(raw) = tx.query_row(&sql, [&id], raw_schedule).optional().map_err(self.db("fire schedule"))?
                else {
                    return Ok(None);
                };
                let s = raw.into_schedule(self)?;
                let Some(due) = s.next_due_ms.filter(|d| s.enabled && *d <= now_ms) else { return Ok(None) };
                let mut new = NewTask::new(TaskKind::Agent, s.title.clone());
                new.group = s.group.clone();
                let task = self.insert_task(tx, &new, now_ms)?;
                // The primary key makes a second firing of this due time impossible.
                tx.execute(
                    "INSERT INTO schedule_runs (schedule_id, due_ms, task_id, fired_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![s.id, due, task, now_ms],
                )
                .map_err(self.db("fire schedule"))?;
                tx.execute(
                    "INSERT INTO queue (task_id, enqueued_ms, not_before_ms, conversation) \
                     VALUES (?1, ?2, ?2, 'schedule:' || ?3)",
                    params![task, now_ms, s.id],
                )
                .map_err(self.db("fire schedule"))?;
                let next = match s.kind {
                    ScheduleKind::Once => None,
                    ScheduleKind::Cron => next_due(&s, due).filter(|n| *n > due),
                };
                tx.execute(
                    "UPDATE schedules SET next_due_ms = ?2, updated_ms = ?3 WHERE id = ?1",
                    params![s.id, next, now_ms],
                )
                .map_err(self.db("fire schedule"))?;
                Ok(Some((s, due, task)))
            })?;
            if let Some((schedule, due_ms, task)) = one {
                fired.push(Fired { schedule, due_ms, task: self.task(&task)? });
            }
        }
        Ok(fired)
    }

    /// Queue `task` (not before `not_before_ms`); the task becomes `queued`.
    /// Queuing a task that is already queued changes nothing.
    pub fn enqueue(&self, task: &str, not_before_ms: i64) -> Result<()> {
        self.enqueue_in(task, None, not_before_ms)
    }

    /// Like [`Store::enqueue`], in `conversation` (module docs: one task of
    /// a conversation at a time).
    pub fn enqueue_in(&self, task: &str, conversation: Option<&str>, not_before_ms: i64) -> Result<()> {
        let now = time::now_ms();
        self.write_checked("enqueue", |tx| {
            self.touch_task(tx, task, now)?;
            tx.execute(
                "INSERT OR IGNORE INTO queue (task_id, enqueued_ms, not_before_ms, conversation) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![task, now, not_before_ms, conversation],
            )
            .and_then(|_| tx.execute("UPDATE tasks SET status = 'queued' WHERE id = ?1", [task]))
            .map_err(self.db("enqueue"))?;
            Ok(())
        })
    }

    /// Claim the oldest ready task (not before passed, no live lease) for
    /// `owner` until `now_ms + lease_ms`; the task becomes `running`.
    pub fn claim_next(&self, owner: &str, now_ms: i64, lease_ms: i64) -> Result<Option<Claim>> {
        let until = now_ms.saturating_add(lease_ms);
        let claimed = self.write("claim task", |tx| {
            // Skipped: tasks whose conversation has a live lease, or an
            // older task still waiting (so a conversation keeps its order).
            let row: Option<(String, i64, Option<String>)> = tx
                .query_row(
                    "SELECT task_id, attempts, conversation FROM queue q WHERE not_before_ms <= ?1 \
                     AND (lease_until_ms IS NULL OR lease_until_ms <= ?1) \
                     AND (conversation IS NULL OR NOT EXISTS (SELECT 1 FROM queue o \
                          WHERE o.conversation = q.conversation AND o.task_id <> q.task_id \
                          AND ((o.lease_until_ms IS NOT NULL AND o.lease_until_ms > ?1) \
                               OR o.enqueued_ms < q.enqueued_ms \
                               OR (o.enqueued_ms = q.enqueued_ms AND o.rowid < q.rowid)))) \
                     ORDER BY enqueued_ms, rowid LIMIT 1",
                    [now_ms],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((task, attempts, conversation)) = row else { return Ok(None) };
            tx.execute(
                "UPDATE queue SET lease_owner = ?2, lease_until_ms = ?3, attempts = attempts + 1 WHERE task_id = ?1",
                params![task, owner, until],
            )?;
            tx.execute("UPDATE tasks SET status = 'running', updated_ms = ?2 WHERE id = ?1", params![task, now_ms])?;
            Ok(Some((task, attempts + 1, conversation)))
        })?;
        match claimed {
            Some((task, attempts, conversation)) => Ok(Some(Claim {
                task: self.task(&task)?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                lease_until_ms: until,
                conversation,
            })),
            None => Ok(None),
        }
    }

    /// Extend `owner`'s lease on `task` to `now_ms + lease_ms`; `false` when
    /// the lease is no longer theirs (it expired and someone else claimed it).
    pub fn renew_lease(&self, task: &str, owner: &str, now_ms: i64, lease_ms: i64) -> Result<bool> {
        let n = self.write("renew lease", |tx| {
            tx.execute(
                "UPDATE queue SET lease_until_ms = ?3 WHERE task_id = ?1 AND lease_owner = ?2",
                params![task, owner, now_ms.saturating_add(lease_ms)],
            )
        })?;
        Ok(n == 1)
    }

    /// `owner` is done with `task`: it leaves the queue (set its status
    /// with [`Store::set_task_status`]). `false` if `owner` held no lease on it.
    pub fn dequeue(&self, task: &str, owner: &str) -> Result<bool> {
        let n = self.write("dequeue", |tx| {
            tx.execute("DELETE FROM queue WHERE task_id = ?1 AND lease_owner = ?2", params![task, owner])
        })?;
        Ok(n == 1)
    }

    /// Create a task and queue it in `conversation`, in one transaction (a
    /// crash leaves either both or neither: no `queued` task outside the queue).
    pub fn create_queued_task(&self, new: &NewTask, conversation: Option<&str>, not_before_ms: i64) -> Result<Task> {
        let now = time::now_ms();
        let mut new = new.clone();
        new.status = crate::TaskStatus::Queued;
        let id = self.write_checked("create queued task", |tx| {
            let id = self.insert_task(tx, &new, now)?;
            tx.execute(
                "INSERT INTO queue (task_id, enqueued_ms, not_before_ms, conversation) VALUES (?1, ?2, ?3, ?4)",
                params![id, now, not_before_ms, conversation],
            )
            .map_err(self.db("create queued task"))?;
            Ok(id)
        })?;
        self.task(&id)
    }

    /// `owner` is done with `task`: set its final status and detail and take
    /// it off the queue, in one transaction (a crash cannot leave a finished
    /// task in the queue to be claimed again). `false` (and nothing changed)
    /// if `owner` held no lease on it.
    pub fn finish_claimed(
        &self,
        task: &str,
        owner: &str,
        status: crate::TaskStatus,
        detail: Option<&str>,
    ) -> Result<bool> {
        let now = time::now_ms();
        self.write("finish task", |tx| {
            let n = tx.execute("DELETE FROM queue WHERE task_id = ?1 AND lease_owner = ?2", params![task, owner])?;
            if n == 1 {
                tx.execute(
                    "UPDATE tasks SET status = ?2, detail = ?3, updated_ms = ?4 WHERE id = ?1",
                    params![task, status.as_str(), detail, now],
                )?;
            }
            Ok(n == 1)
        })
    }

    /// Take a queued task that nobody holds off the queue and mark it
    /// `cancelled`; `false` if it is not waiting in the queue (running,
    /// leased, or done).
    pub fn cancel_waiting(&self, task: &str, detail: &str, now_ms: i64) -> Result<bool> {
        self.write("cancel waiting task", |tx| {
            let n = tx.execute(
                "DELETE FROM queue WHERE task_id = ?1 AND (lease_until_ms IS NULL OR lease_until_ms <= ?2)",
                params![task, now_ms],
            )?;
            if n == 1 {
                tx.execute(
                    "UPDATE tasks SET status = 'cancelled', detail = ?2, updated_ms = ?3 WHERE id = ?1",
                    params![task, detail, now_ms],
                )?;
            }
            Ok(n == 1)
        })
    }

    /// The conversation `task` was queued in, while it is in the queue.
    pub fn queued_conversation(&self, task: &str) -> Result<Option<String>> {
        self.conn()
            .query_row("SELECT conversation FROM queue WHERE task_id = ?1", [task], |r| r.get(0))
            .optional()
            .map(Option::flatten)
            .map_err(self.db("queued conversation"))
    }

    /// How many tasks have each status.
    pub fn count_tasks_by_status(&self) -> Result<Vec<(String, u64)>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT status, count(*) FROM tasks GROUP BY status ORDER BY status")
            .map_err(self.db("count tasks"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.db("count tasks"))?;
        Ok(rows)
    }

    /// How many tasks are in the queue: `(waiting, leased)` at `now_ms`.
    pub fn queue_depth(&self, now_ms: i64) -> Result<(u64, u64)> {
        self.conn()
            .query_row(
                "SELECT coalesce(sum(lease_until_ms IS NULL OR lease_until_ms <= ?1), 0), \
                 coalesce(sum(lease_until_ms > ?1), 0) FROM queue",
                [now_ms],
                |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, i64>(1)?.max(0) as u64)),
            )
            .map_err(self.db("queue depth"))
    }

    /// Every lease held on a queued task, live or expired.
    pub fn leases(&self) -> Result<Vec<Lease>> {
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT task_id, lease_owner, lease_until_ms FROM queue \
                 WHERE lease_owner IS NOT NULL AND lease_until_ms IS NOT NULL ORDER BY rowid",
            )
            .map_err(self.db("leases"))?;
        let rows = stmt
            .query_map([], |r| Ok(Lease { task_id: r.get(0)?, owner: r.get(1)?, until_ms: r.get(2)? }))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.db("leases"))?;
        Ok(rows)
    }

    /// End `owner`'s lease on `task` now (its holder is known to be dead), so
    /// the next claim gets the task, with its attempts showing the
    /// interruption. `false` if `owner` held no lease on it.
    pub fn break_lease(&self, task: &str, owner: &str) -> Result<bool> {
        let n = self.write("break lease", |tx| {
            tx.execute(
                "UPDATE queue SET lease_until_ms = 0 WHERE task_id = ?1 AND lease_owner = ?2",
                params![task, owner],
            )
        })?;
        Ok(n == 1)
    }

    /// Every schedule, oldest first.
    pub fn list_schedules(&self) -> Result<Vec<Schedule>> {
        let sql = format!("SELECT {SCHEDULE_COLS} FROM schedules ORDER BY created_ms, rowid");
        let mut stmt = self.conn().prepare_cached(&sql).map_err(self.db("list schedules"))?;
        let rows = stmt
            .query_map([], raw_schedule)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.db("list schedules"))?;
        rows.into_iter().map(|r| r.into_schedule(self)).collect()
    }

    /// Delete the schedule `id` (the tasks it created stay).
    pub fn delete_schedule(&self, id: &str) -> Result<()> {
        let n = self.write("delete schedule", |tx| tx.execute("DELETE FROM schedules WHERE id = ?1", [id]))?;
        if n == 0 {
            return Err(StoreError::Unknown { what: "schedule", id: id.to_string() });
        }
        Ok(())
    }

    /// Ask for an approval for `task`, pending until `expires_ms`.
    pub fn request_approval(
        &self,
        task: &str,
        kind: ApprovalKind,
        subject: &Value,
        expires_ms: i64,
    ) -> Result<Approval> {
        let id = random_hex(6)?;
        let now = time::now_ms();
        self.write_checked("request approval", |tx| {
            self.touch_task(tx, task, now)?;
            tx.execute(
                "INSERT INTO approvals (id, task_id, kind, subject, status, requested_ms, expires_ms) \
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6)",
                params![id, task, kind.as_str(), subject.to_string(), now, expires_ms],
            )
            .map_err(self.db("request approval"))?;
            Ok(())
        })?;
        self.approval(&id)
    }

    /// The approval `id`.
    pub fn approval(&self, id: &str) -> Result<Approval> {
        let sql = format!("SELECT {APPROVAL_COLS} FROM approvals WHERE id = ?1");
        let raw = self.conn().query_row(&sql, [id], raw_approval).optional().map_err(self.db("read approval"))?;
        match raw {
            Some(r) => r.into_approval(self),
            None => Err(StoreError::Unknown { what: "approval", id: id.to_string() }),
        }
    }

    /// Decide a pending approval at `now_ms`. A request decided already, or
    /// past its expiry (it becomes `expired`), cannot be decided:
    /// [`StoreError::ApprovalClosed`] with its status.
    pub fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<Approval> {
        let status = if approve { ApprovalStatus::Approved } else { ApprovalStatus::Denied };
        self.expire_approvals(now_ms)?;
        let n = self.write("decide approval", |tx| {
            tx.execute(
                "UPDATE approvals SET status = ?2, decided_ms = ?3, decided_by = ?4, reason = ?5 \
                 WHERE id = ?1 AND status = 'pending'",
                params![id, status.as_str(), now_ms, by, reason],
            )
        })?;
        let a = self.approval(id)?;
        if n == 0 {
            return Err(StoreError::ApprovalClosed { id: id.to_string(), status: a.status.as_str() });
        }
        Ok(a)
    }

    /// Mark every pending approval whose expiry is at or before `now_ms`
    /// `expired`; returns them.
    pub fn expire_approvals(&self, now_ms: i64) -> Result<Vec<Approval>> {
        let ids: Vec<String> = self.write("expire approvals", |tx| {
            let ids: Vec<String> = {
                let mut stmt =
                    tx.prepare_cached("SELECT id FROM approvals WHERE status = 'pending' AND expires_ms <= ?1")?;
                let rows = stmt.query_map([now_ms], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            tx.execute(
                "UPDATE approvals SET status = 'expired', decided_ms = ?1 WHERE status = 'pending' AND expires_ms <= ?1",
                [now_ms],
            )?;
            Ok(ids)
        })?;
        ids.iter().map(|id| self.approval(id)).collect()
    }

    /// Pending approvals (of one task, or all), oldest first.
    pub fn pending_approvals(&self, task: Option<&str>) -> Result<Vec<Approval>> {
        let sql = format!(
            "SELECT {APPROVAL_COLS} FROM approvals WHERE status = 'pending' AND (?1 IS NULL OR task_id = ?1) \
             ORDER BY requested_ms, rowid"
        );
        let mut stmt = self.conn().prepare_cached(&sql).map_err(self.db("pending approvals"))?;
        let rows = stmt
            .query_map([task], raw_approval)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.db("pending approvals"))?;
        rows.into_iter().map(|r| r.into_approval(self)).collect()
    }
}

/// A `schedules` row before its text columns are checked.
struct RawSchedule(String, Option<String>, String, String, String, String, bool, Option<i64>, i64, i64);

fn raw_schedule(r: &Row<'_>) -> rusqlite::Result<RawSchedule> {
    Ok(RawSchedule(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

impl RawSchedule {
    fn into_schedule(self, s: &Store) -> Result<Schedule> {
        let RawSchedule(id, group, kind, spec, title, payload, enabled, next_due_ms, created_ms, updated_ms) = self;
        Ok(Schedule {
            kind: kind.parse().map_err(|_| s.corrupt("schedules", "kind", &kind))?,
            payload: serde_json::from_str(&payload).map_err(|_| s.corrupt("schedules", "payload", &payload))?,
            id,
            group,
            spec,
            title,
            enabled,
            next_due_ms,
            created_ms,
            updated_ms,
        })
    }
}

/// An `approvals` row before its text columns are checked.
struct RawApproval(String, String, String, String, String, i64, i64, Option<i64>, Option<String>, Option<String>);

fn raw_approval(r: &Row<'_>) -> rusqlite::Result<RawApproval> {
    Ok(RawApproval(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

impl RawApproval {
    fn into_approval(self, s: &Store) -> Result<Approval> {
        let RawApproval(id, task_id, kind, subject, status, requested_ms, expires_ms, decided_ms, decided_by, reason) =
            self;
        Ok(Approval {
            kind: kind.parse().map_err(|_| s.corrupt("approvals", "kind", &kind))?,
            subject: serde_json::from_str(&subject).map_err(|_| s.corrupt("approvals", "subject", &subject))?,
            status: status.parse().map_err(|_| s.corrupt("approvals", "status", &status))?,
            id,
            task_id,
            requested_ms,
            expires_ms,
            decided_ms,
            decided_by,
            reason,
        })
    }
}
