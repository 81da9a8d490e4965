//! The schema, as an append-only list of migrations. `PRAGMA user_version`
//! is the number of migrations applied; [`crate::Store::open`] applies the
//! missing ones in one `BEGIN IMMEDIATE` transaction, so two processes
//! opening a new database at once do not both migrate it. Never edit a
//! migration that has shipped: add one.
//!
//! Conventions: `STRICT` tables; times are `*_ms` integers (Unix epoch
//! milliseconds); JSON columns are text checked with `json_valid`; enums are
//! text checked against their values.

/// Migration 1: tasks, their messages and tool calls, and the audit head.
const V1: &str = "
CREATE TABLE tasks (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('run', 'agent')),
    group_name     TEXT,
    title          TEXT NOT NULL,
    workspace      TEXT,
    policy_hash    TEXT,
    model          TEXT,
    status         TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    detail         TEXT,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    input_tokens   INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens  INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cost_micro_usd INTEGER NOT NULL DEFAULT 0 CHECK (cost_micro_usd >= 0)
) STRICT;
CREATE INDEX tasks_by_created ON tasks (created_ms);
CREATE INDEX tasks_by_status ON tasks (status, created_ms);

CREATE TABLE messages (
    task_id    TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL CHECK (seq >= 1),
    role       TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content    TEXT NOT NULL CHECK (json_valid(content)),
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (task_id, seq)
) STRICT;

CREATE TABLE tool_calls (
    task_id      TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL CHECK (seq >= 1),
    call_id      TEXT,
    tool         TEXT NOT NULL,
    input        TEXT NOT NULL CHECK (json_valid(input)),
    argv         TEXT CHECK (argv IS NULL OR json_valid(argv)),
    exit_status  INTEGER,
    duration_ms  INTEGER CHECK (duration_ms IS NULL OR duration_ms >= 0),
    output_bytes INTEGER CHECK (output_bytes IS NULL OR output_bytes >= 0),
    error        TEXT,
    started_ms   INTEGER NOT NULL,
    ended_ms     INTEGER,
    PRIMARY KEY (task_id, seq)
) STRICT;

-- The last record of each audit log (keyed by its file name), so that a
-- truncated log is detected; `mac`: HMAC-SHA256 over the head when a
-- signing key is configured, `key_id`: which key.
CREATE TABLE audit_head (
    log        TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL CHECK (seq >= 1),
    hash       TEXT NOT NULL CHECK (length(hash) = 64),
    mac        TEXT,
    key_id     TEXT,
    updated_ms INTEGER NOT NULL
) STRICT;
";

/// Migration 2: schedules (cron and one-shot) with exactly-once firing, the
/// task queue, and approvals.
///
/// Exactly once: firing a due occurrence inserts `(schedule_id, due_ms)` into
/// `schedule_runs` (primary key), creates the task and queues it, and moves
/// `next_due_ms` on, all in one transaction: a crash before the commit fires
/// nothing, and after it the occurrence can never be inserted again.
/// The queue's lease says which worker holds a task and until when.
const V2: &str = "
CREATE TABLE schedules (
    id          TEXT PRIMARY KEY,
    group_name  TEXT,
    kind        TEXT NOT NULL CHECK (kind IN ('cron', 'once')),
    spec        TEXT NOT NULL,
    title       TEXT NOT NULL,
    payload     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    next_due_ms INTEGER,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
) STRICT;
CREATE INDEX schedules_due ON schedules (next_due_ms) WHERE enabled = 1 AND next_due_ms IS NOT NULL;

CREATE TABLE schedule_runs (
    schedule_id TEXT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    due_ms      INTEGER NOT NULL,
    task_id     TEXT NOT NULL REFERENCES tasks (id),
    fired_ms    INTEGER NOT NULL,
    PRIMARY KEY (schedule_id, due_ms)
) STRICT;

CREATE TABLE queue (
    task_id        TEXT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    enqueued_ms    INTEGER NOT NULL,
    not_before_ms  INTEGER NOT NULL,
    lease_owner    TEXT,
    lease_until_ms INTEGER,
    attempts       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0)
) STRICT;
CREATE INDEX queue_ready ON queue (not_before_ms);

CREATE TABLE approvals (
    id           TEXT PRIMARY KEY,
    task_id      TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('command', 'network')),
    subject      TEXT NOT NULL CHECK (json_valid(subject)),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    requested_ms INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    decided_ms   INTEGER,
    decided_by   TEXT,
    reason       TEXT
) STRICT;
CREATE INDEX approvals_pending ON approvals (status, expires_ms);
";

/// Migration 3: the conversation a queued task belongs to (a chat, a
/// thread, a schedule). At most one task of a conversation holds a live
/// lease at a time, so a conversation's tasks run one after another, oldest
/// first, whichever process claims them.
const V3: &str = "
ALTER TABLE queue ADD COLUMN conversation TEXT;
CREATE INDEX queue_conversation ON queue (conversation, lease_until_ms) WHERE conversation IS NOT NULL;
";

/// Migration 4: approvals of file writes (`[approvals] writes`): the kind
/// check of `approvals` admits `write`. SQLite cannot alter a CHECK, so the
/// table is rebuilt with its rows.
const V4: &str = "
CREATE TABLE approvals_v4 (
    id           TEXT PRIMARY KEY,
    task_id      TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('command', 'network', 'write')),
    subject      TEXT NOT NULL CHECK (json_valid(subject)),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    requested_ms INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    decided_ms   INTEGER,
    decided_by   TEXT,
    reason       TEXT
) STRICT;
INSERT INTO approvals_v4 SELECT id, task_id, kind, subject, status, requested_ms, expires_ms, decided_ms, decided_by, reason FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_v4 RENAME TO approvals;
CREATE INDEX approvals_pending ON approvals (status, expires_ms);
";

/// Migration 5: installed skills with the content hash and the needs an
/// operator approved (`needs`: the skill's `clawcage:` table as JSON). A
/// skill whose files no longer hash to `hash` is refused until re-approved.
const V5: &str = "
CREATE TABLE skills (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    hash        TEXT NOT NULL CHECK (length(hash) = 64),
    needs       TEXT NOT NULL CHECK (json_valid(needs)),
    source      TEXT NOT NULL,
    dir         TEXT NOT NULL,
    approved_by TEXT,
    approved_ms INTEGER NOT NULL
) STRICT;
";

/// Migration 6: chat channel state that survives a restart (see
/// `channels.rs`): one value per channel and key (Telegram's update offset)
/// and the event ids a channel has taken (Telegram updates, Slack events),
/// so a replayed or retried event never starts a second task.
const V6: &str = "
CREATE TABLE channel_state (
    channel    TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (channel, key)
) STRICT;
CREATE TABLE channel_events (
    channel  TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seen_ms  INTEGER NOT NULL,
    PRIMARY KEY (channel, event_id)
) STRICT;
CREATE INDEX channel_events_by_age ON channel_events (seen_ms);
";

/// Every migration, in order; `user_version` = how many are applied.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];
