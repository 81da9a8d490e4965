//! Unit tests of the schema and the task/message/tool-call API, on real
//! SQLite files in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use serde_json::json;

/// A fresh directory, removed on drop.
pub(crate) struct Tmp(pub PathBuf);

impl Tmp {
    pub(crate) fn new(tag: &str) -> Tmp {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "clawcage-store-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
    pub(crate) fn db(&self) -> PathBuf {
        self.0.join("clawcage.db")
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn open_sets_wal_foreign_keys_and_latest_schema() {
    let t = Tmp::new("open");
    let s = Store::open(&t.db()).unwrap();
    assert_eq!(s.schema_version().unwrap(), Store::latest_schema_version());
    let mode: String = s.conn().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = s.conn().query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(fk, 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.db()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "database file mode {mode:o}");
    // Re-opening an up-to-date database changes nothing.
    drop(s);
    let s = Store::open(&t.db()).unwrap();
    assert_eq!(s.schema_version().unwrap(), Store::latest_schema_version());
}

#[test]
fn migrations_apply_on_top_of_an_older_schema() {
    let t = Tmp::new("migrate");
    {
        // A database as migration 1 alone left it, with a task in it.
        let c = rusqlite::Connection::open(t.db()).unwrap();
        c.execute_batch(schema::MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute(
            "INSERT INTO tasks (id, kind, title, status, created_ms, updated_ms) VALUES ('aaa', 'run', 't', 'queued', 1, 1)",
            [],
        )
        .unwrap();
    }
    let s = Store::open(&t.db()).unwrap();
    assert_eq!(s.schema_version().unwrap(), Store::latest_schema_version());
    assert_eq!(s.task("aaa").unwrap().title, "t");
    let n: i64 = s.conn().query_row("SELECT count(*) FROM schedules", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn a_newer_schema_is_refused() {
    let t = Tmp::new("newer");
    {
        let s = Store::open(&t.db()).unwrap();
        s.conn().pragma_update(None, "user_version", Store::latest_schema_version() + 1).unwrap();
    }
    let err = Store::open(&t.db()).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
    assert!(err.to_string().contains("clawcage.db"), "{err}");
}

#[test]
fn concurrent_first_opens_migrate_once() {
    let t = Tmp::new("race");
    let path = t.db();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let p = path.clone();
            std::thread::spawn(move || Store::open(&p).map(|s| s.schema_version().unwrap()))
        })
        .collect();
    for th in threads {
        assert_eq!(th.join().unwrap().unwrap(), Store::latest_schema_version());
    }
}

#[test]
fn closing_the_last_connection_keeps_the_wal_and_its_commits() {
    let t = Tmp::new("wal-kept");
    let id = {
        let s = Store::open(&t.db()).unwrap();
        s.create_task(&NewTask::new(TaskKind::Run, "true")).unwrap().id
    };
    // No checkpoint on close: the commit is still (only) in the WAL file.
    let wal = t.db().with_extension("db-wal");
    assert!(wal.metadata().unwrap().len() > 0, "the WAL was checkpointed and removed on close");
    let s = Store::open(&t.db()).unwrap();
    assert_eq!(s.task(&id).unwrap().title, "true");
}

#[test]
fn the_wal_is_checkpointed_while_it_is_small() {
    // Each process's first connection reads the whole WAL to rebuild its
    // index, so a WAL left to grow (SQLite's default: 1000 pages) makes
    // every short-lived `clawcage run` slower. 400 short-lived connections,
    // one task each, as 400 runs would be: the WAL never passes a few
    // checkpoint intervals.
    let t = Tmp::new("wal-small");
    let wal = t.db().with_extension("db-wal");
    let mut largest = 0;
    for i in 0..400 {
        let s = Store::open(&t.db()).unwrap();
        let id = s.create_task(&NewTask::new(TaskKind::Run, format!("run {i}"))).unwrap().id;
        s.set_task_status(&id, TaskStatus::Succeeded, Some("exit status 0")).unwrap();
        largest = largest.max(wal.metadata().unwrap().len());
    }
    let page = 4096 + 24; // a WAL frame: page + frame header
    assert!(largest <= 4 * u64::from(WAL_CHECKPOINT_PAGES) * page, "WAL grew to {largest} bytes");
    let all = TaskFilter { limit: Some(1000), ..TaskFilter::default() };
    assert_eq!(Store::open(&t.db()).unwrap().list_tasks(&all).unwrap().len(), 400);
}

#[test]
fn tasks_round_trip_and_change_status() {
    let t = Tmp::new("tasks");
    let s = Store::open(&t.db()).unwrap();
    let mut new = NewTask::new(TaskKind::Agent, "fix the tests");
    new.group = Some("dev".into());
    new.workspace = Some("/src/x".into());
    new.policy_hash = Some("ab".repeat(32));
    new.model = Some("m-1".into());
    let task = s.create_task(&new).unwrap();
    assert_eq!(task.id.len(), 12);
    assert_eq!(task.status, TaskStatus::Queued);
    assert_eq!(task.group.as_deref(), Some("dev"));
    assert_eq!(task.usage, Usage::default());
    assert_eq!(s.task(&task.id).unwrap(), task);

    let t2 = s.set_task_status(&task.id, TaskStatus::Failed, Some("exit status 3")).unwrap();
    assert_eq!(t2.status, TaskStatus::Failed);
    assert_eq!(t2.detail.as_deref(), Some("exit status 3"));
    assert!(t2.updated_ms >= task.updated_ms);
    // A resumed task may run again.
    let t3 = s.set_task_status(&task.id, TaskStatus::Running, None).unwrap();
    assert_eq!((t3.status, t3.detail), (TaskStatus::Running, None));

    let u = s.add_usage(&task.id, Usage { input_tokens: 10, output_tokens: 5, cost_micro_usd: 1_500 }).unwrap();
    assert_eq!(u, Usage { input_tokens: 10, output_tokens: 5, cost_micro_usd: 1_500 });
    let u = s.add_usage(&task.id, Usage { input_tokens: 1, output_tokens: 2, cost_micro_usd: 3 }).unwrap();
    assert_eq!(u, Usage { input_tokens: 11, output_tokens: 7, cost_micro_usd: 1_503 });
}

#[test]
fn a_reply_adds_usage_and_its_message_in_one_step() {
    let t = Tmp::new("reply");
    let s = Store::open(&t.db()).unwrap();
    let task = s.create_task(&NewTask::new(TaskKind::Agent, "x")).unwrap();
    s.append_message(&task.id, Role::User, &json!({"content": "hi"})).unwrap();
    let usage = Usage { input_tokens: 7, output_tokens: 3, cost_micro_usd: 9 };
    let (m, totals) = s.add_reply(&task.id, usage, Role::Assistant, &json!({"content": "hello"})).unwrap();
    assert_eq!((m.seq, m.role, totals), (2, Role::Assistant, usage));
    let (_, totals) = s.add_reply(&task.id, usage, Role::Assistant, &json!({"content": "again"})).unwrap();
    assert_eq!(totals.input_tokens, 14);
    assert_eq!(s.task(&task.id).unwrap().usage, totals);
    assert_eq!(s.messages(&task.id).unwrap()[1], m);
    // Nothing of a refused reply is kept.
    let huge = Usage { output_tokens: u64::MAX, ..Usage::default() };
    assert!(s.add_reply(&task.id, huge, Role::Assistant, &json!({})).is_err());
    assert!(matches!(s.add_reply("nope", usage, Role::Assistant, &json!({})), Err(StoreError::UnknownTask(_))));
    assert_eq!(s.messages(&task.id).unwrap().len(), 3);
}

#[test]
fn unknown_tasks_are_errors() {
    let t = Tmp::new("unknown");
    let s = Store::open(&t.db()).unwrap();
    assert!(s.find_task("nope").unwrap().is_none());
    assert!(matches!(s.task("nope"), Err(StoreError::UnknownTask(id)) if id == "nope"));
    assert!(matches!(s.set_task_status("nope", TaskStatus::Running, None), Err(StoreError::UnknownTask(_))));
    assert!(matches!(s.add_usage("nope", Usage::default()), Err(StoreError::UnknownTask(_))));
    assert!(matches!(s.append_message("nope", Role::User, &json!("hi")), Err(StoreError::UnknownTask(_))));
    assert!(matches!(s.messages("nope"), Err(StoreError::UnknownTask(_))));
    let call = NewToolCall { call_id: None, tool: "sh", input: &json!({}), argv: None };
    assert!(matches!(s.start_tool_call("nope", &call), Err(StoreError::UnknownTask(_))));
    assert!(matches!(s.tool_calls("nope"), Err(StoreError::UnknownTask(_))));
}

#[test]
fn usage_beyond_i64_is_refused() {
    let t = Tmp::new("usage");
    let s = Store::open(&t.db()).unwrap();
    let task = s.create_task(&NewTask::new(TaskKind::Agent, "x")).unwrap();
    let err = s.add_usage(&task.id, Usage { input_tokens: u64::MAX, ..Usage::default() }).unwrap_err();
    assert!(matches!(err, StoreError::Invalid { what: "input_tokens", .. }), "{err}");
}

#[test]
fn list_tasks_filters_and_orders_newest_first() {
    let t = Tmp::new("list");
    let s = Store::open(&t.db()).unwrap();
    let a = s.create_task(&NewTask::new(TaskKind::Run, "a")).unwrap();
    let mut nb = NewTask::new(TaskKind::Agent, "b");
    nb.group = Some("ops".into());
    let b = s.create_task(&nb).unwrap();
    let c = s.create_task(&NewTask::new(TaskKind::Run, "c")).unwrap();
    s.set_task_status(&c.id, TaskStatus::Succeeded, None).unwrap();

    let ids = |f: &TaskFilter| s.list_tasks(f).unwrap().into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(&TaskFilter::default()), [c.id.clone(), b.id.clone(), a.id.clone()]);
    assert_eq!(ids(&TaskFilter { kind: Some(TaskKind::Run), ..Default::default() }), [c.id.clone(), a.id.clone()]);
    assert_eq!(ids(&TaskFilter { status: Some(TaskStatus::Succeeded), ..Default::default() }), [c.id.as_str()]);
    assert_eq!(ids(&TaskFilter { group: Some("ops".into()), ..Default::default() }), [b.id.as_str()]);
    assert_eq!(ids(&TaskFilter { limit: Some(2), ..Default::default() }), [c.id, b.id]);
}

#[test]
fn messages_are_numbered_per_task_in_order() {
    let t = Tmp::new("messages");
    let s = Store::open(&t.db()).unwrap();
    let a = s.create_task(&NewTask::new(TaskKind::Agent, "a")).unwrap();
    let b = s.create_task(&NewTask::new(TaskKind::Agent, "b")).unwrap();
    let m1 = s.append_message(&a.id, Role::System, &json!({"text": "be careful"})).unwrap();
    let m2 = s.append_message(&a.id, Role::User, &json!({"text": "hello"})).unwrap();
    let n1 = s.append_message(&b.id, Role::User, &json!("other")).unwrap();
    let m3 = s.append_message(&a.id, Role::Assistant, &json!([{"type": "text", "text": "hi"}])).unwrap();
    assert_eq!((m1.seq, m2.seq, m3.seq, n1.seq), (1, 2, 3, 1));
    let got = s.messages(&a.id).unwrap();
    assert_eq!(got, [m1, m2, m3]);
    assert_eq!(s.messages(&b.id).unwrap(), [n1]);
}

#[test]
fn messages_from_many_connections_get_distinct_numbers() {
    let t = Tmp::new("msg-race");
    let task = Store::open(&t.db()).unwrap().create_task(&NewTask::new(TaskKind::Agent, "a")).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let (p, id) = (t.db(), task.id.clone());
            std::thread::spawn(move || {
                let s = Store::open(&p).unwrap();
                for i in 0..25 {
                    s.append_message(&id, Role::User, &json!({"w": w, "i": i})).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let msgs = Store::open(&t.db()).unwrap().messages(&task.id).unwrap();
    let seqs: Vec<u64> = msgs.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<u64>>());
    // Each writer's messages keep their order.
    for w in 0..4 {
        let mine: Vec<i64> =
            msgs.iter().filter(|m| m.content["w"] == w).map(|m| m.content["i"].as_i64().unwrap()).collect();
        assert_eq!(mine, (0..25).collect::<Vec<i64>>());
    }
}

#[test]
fn tool_calls_start_finish_once_and_keep_argv() {
    let t = Tmp::new("calls");
    let s = Store::open(&t.db()).unwrap();
    let task = s.create_task(&NewTask::new(TaskKind::Agent, "a")).unwrap();
    let argv = vec!["git".to_string(), "status".into()];
    let input = json!({"command": "git status"});
    let c1 = s
        .start_tool_call(
            &task.id,
            &NewToolCall { call_id: Some("toolu_1"), tool: "shell", input: &input, argv: Some(&argv) },
        )
        .unwrap();
    assert_eq!((c1.seq, c1.ended_ms, c1.exit_status), (1, None, None));
    assert_eq!(c1.argv.as_deref(), Some(&argv[..]));
    assert_eq!(s.tool_call(&task.id, 1).unwrap(), c1, "what start returns is what is stored");
    let c2 = s
        .start_tool_call(
            &task.id,
            &NewToolCall { call_id: None, tool: "read_file", input: &json!({"path": "a"}), argv: None },
        )
        .unwrap();
    assert_eq!(c2.seq, 2);

    let end = ToolCallEnd { exit_status: Some(0), duration_ms: 42, output_bytes: 1234, error: None };
    let done = s.finish_tool_call(&task.id, 1, &end).unwrap();
    assert_eq!((done.exit_status, done.duration_ms, done.output_bytes), (Some(0), Some(42), Some(1234)));
    assert!(done.ended_ms.is_some_and(|e| e >= done.started_ms));
    assert!(matches!(s.finish_tool_call(&task.id, 1, &end), Err(StoreError::ToolCallFinished { seq: 1, .. })));
    assert!(matches!(s.finish_tool_call(&task.id, 9, &end), Err(StoreError::UnknownToolCall { seq: 9, .. })));
    let err = ToolCallEnd { error: Some("no such file".into()), ..ToolCallEnd::default() };
    s.finish_tool_call(&task.id, 2, &err).unwrap();

    let calls = s.tool_calls(&task.id).unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0], done);
    assert_eq!(calls[0].call_id.as_deref(), Some("toolu_1"));
    assert_eq!(calls[1].error.as_deref(), Some("no such file"));
    assert_eq!(calls[1].argv, None);
}

#[test]
fn enum_text_round_trips_and_rejects_unknown() {
    for s in TaskStatus::ALL {
        assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), *s);
    }
    for k in TaskKind::ALL {
        assert_eq!(k.as_str().parse::<TaskKind>().unwrap(), *k);
    }
    let err = "done".parse::<TaskStatus>().unwrap_err().to_string();
    assert!(err.contains("queued, running, succeeded, failed, cancelled"), "{err}");
}

#[test]
fn a_hand_edited_row_is_reported_as_corrupt() {
    let t = Tmp::new("corrupt");
    let s = Store::open(&t.db()).unwrap();
    let task = s.create_task(&NewTask::new(TaskKind::Agent, "a")).unwrap();
    s.append_message(&task.id, Role::User, &json!("x")).unwrap();
    // The CHECK constraint stops a bad role; drop it the way an editor would.
    s.conn().pragma_update(None, "ignore_check_constraints", "ON").unwrap();
    s.conn().execute("UPDATE messages SET role = 'robot'", []).unwrap();
    let err = s.messages(&task.id).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { table: "messages", column: "role", .. }), "{err}");
}
