//! Schedules fire exactly once, the queue's leases, approvals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::tests::Tmp;
use crate::work::*;
use crate::*;
use serde_json::json;

const MIN: i64 = 60_000;

fn schedule(s: &Store, kind: ScheduleKind, due: i64) -> Schedule {
    s.create_schedule(&NewSchedule {
        group: Some("ops".into()),
        kind,
        spec: "*/1 * * * *".into(),
        title: "daily report".into(),
        payload: json!({"workspace": "/srv/reports"}),
        first_due_ms: due,
    })
    .unwrap()
}

fn every_minute(_: &Schedule, due: i64) -> Option<i64> {
    Some(due + MIN)
}

fn runs(s: &Store) -> i64 {
    s.conn().query_row("SELECT count(*) FROM schedule_runs", [], |r| r.get(0)).unwrap()
}

#[test]
fn a_one_shot_fires_once_and_queues_its_task() {
    let t = Tmp::new("once");
    let s = Store::open(&t.db()).unwrap();
    let sc = schedule(&s, ScheduleKind::Once, 10_000);
    assert!(s.fire_due(9_999, every_minute).unwrap().is_empty());
    let fired = s.fire_due(10_000, |_, _| panic!("a one-shot asks for no next time")).unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].due_ms, fired[0].schedule.id.as_str()), (10_000, sc.id.as_str()));
    let task = &fired[0].task;
    assert_eq!((task.kind, task.status, task.title.as_str()), (TaskKind::Agent, TaskStatus::Queued, "daily report"));
    assert_eq!(task.group.as_deref(), Some("ops"));
    assert!(s.fire_due(1_000_000, every_minute).unwrap().is_empty());
    assert_eq!(s.schedule(&sc.id).unwrap().next_due_ms, None);
    assert_eq!(runs(&s), 1);
    let claim = s.claim_next("w", 10_000, MIN).unwrap().unwrap();
    assert_eq!(claim.task.id, task.id);
}

#[test]
fn a_cron_schedule_fires_once_per_due_time() {
    let t = Tmp::new("cron");
    let s = Store::open(&t.db()).unwrap();
    let sc = schedule(&s, ScheduleKind::Cron, 5 * MIN);
    assert_eq!(s.fire_due(5 * MIN, every_minute).unwrap().len(), 1);
    assert!(s.fire_due(5 * MIN + 1, every_minute).unwrap().is_empty(), "fired twice for one due time");
    assert_eq!(s.schedule(&sc.id).unwrap().next_due_ms, Some(6 * MIN));
    // Behind by three due times: one firing per call, oldest first.
    let late = 8 * MIN + 5;
    let dues: Vec<i64> = (0..4).flat_map(|_| s.fire_due(late, every_minute).unwrap()).map(|f| f.due_ms).collect();
    assert_eq!(dues, [6 * MIN, 7 * MIN, 8 * MIN]);
    assert_eq!(runs(&s), 4);
    // A next time that does not move forward ends the schedule instead of looping.
    let stuck = schedule(&s, ScheduleKind::Cron, MIN);
    assert_eq!(s.fire_due(MIN, |_, due| Some(due)).unwrap().len(), 1);
    assert_eq!(s.schedule(&stuck.id).unwrap().next_due_ms, None);
}

#[test]
fn disabled_schedules_do_not_fire() {
    let t = Tmp::new("disabled");
    let s = Store::open(&t.db()).unwrap();
    let sc = schedule(&s, ScheduleKind::Once, 0);
    assert!(!s.set_schedule_enabled(&sc.id, false).unwrap().enabled);
    assert!(s.fire_due(MIN, every_minute).unwrap().is_empty());
    s.set_schedule_enabled(&sc.id, true).unwrap();
    assert_eq!(s.fire_due(MIN, every_minute).unwrap().len(), 1);
    assert!(matches!(s.set_schedule_enabled("nope", true), Err(StoreError::Unknown { what: "schedule", .. })));
}

#[test]
fn schedulers_racing_on_one_database_fire_each_due_time_once() {
    let t = Tmp::new("race");
    let ids: Vec<String> = {
        let s = Store::open(&t.db()).unwrap();
        (0..5).map(|i| schedule(&s, ScheduleKind::Cron, i * 1000).id).collect()
    };
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let p = t.db();
            std::thread::spawn(move || {
                let s = Store::open(&p).unwrap();
                (0..3).map(|_| s.fire_due(10_000, every_minute).unwrap().len()).sum::<usize>()
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 5);
    let s = Store::open(&t.db()).unwrap();
    assert_eq!(runs(&s), 5);
    let queued: i64 = s.conn().query_row("SELECT count(*) FROM queue", [], |r| r.get(0)).unwrap();
    assert_eq!(queued, 5);
    for id in ids {
        assert!(s.schedule(&id).unwrap().next_due_ms.unwrap() > 10_000);
    }
}

#[test]
fn a_crash_before_the_commit_fires_nothing() {
    let t = Tmp::new("crash");
    let s = Store::open(&t.db()).unwrap();
    schedule(&s, ScheduleKind::Cron, 0);
    // The scheduler dies inside the firing transaction (a panic unwinds
    // through it, as a crash would abandon it): nothing is kept.
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.fire_due(MIN, |_, _| panic!("scheduler died")).unwrap();
    }));
    assert!(died.is_err());
    assert_eq!(runs(&s), 0);
    assert!(s.list_tasks(&TaskFilter::default()).unwrap().is_empty());
    // The next scheduler fires it, once.
    assert_eq!(s.fire_due(MIN, every_minute).unwrap().len(), 1);
    assert_eq!(runs(&s), 1);
}

#[test]
fn the_queue_leases_tasks_and_hands_back_those_of_a_dead_worker() {
    let t = Tmp::new("queue");
    let s = Store::open(&t.db()).unwrap();
    let a = s.create_task(&NewTask::new(TaskKind::Agent, "a")).unwrap();
    let b = s.create_task(&NewTask::new(TaskKind::Agent, "b")).unwrap();
    let later = s.create_task(&NewTask::new(TaskKind::Agent, "later")).unwrap();
    s.enqueue(&a.id, 0).unwrap();
    s.enqueue(&b.id, 0).unwrap();
    s.enqueue(&a.id, 0).unwrap(); // already queued: no second entry
    s.enqueue(&later.id, 50_000).unwrap();
    assert!(matches!(s.enqueue("nope", 0), Err(StoreError::UnknownTask(_))));

    let c1 = s.claim_next("w1", 1_000, 10_000).unwrap().unwrap();
    assert_eq!((c1.task.id.as_str(), c1.attempts, c1.task.status), (a.id.as_str(), 1, TaskStatus::Running));
    let c2 = s.claim_next("w2", 1_000, 10_000).unwrap().unwrap();
    assert_eq!(c2.task.id, b.id);
    assert!(s.claim_next("w3", 1_000, 10_000).unwrap().is_none(), "a leased or future task was handed out");

    assert!(s.renew_lease(&a.id, "w1", 5_000, 10_000).unwrap());
    assert!(!s.renew_lease(&a.id, "w2", 5_000, 10_000).unwrap());
    assert!(s.dequeue(&b.id, "w2").unwrap());
    // w1 dies; after its lease (renewed to 15 s) ends, a's claim goes to w3
    // with the second attempt showing.
    assert!(s.claim_next("w3", 14_999, 10_000).unwrap().is_none());
    let c3 = s.claim_next("w3", 15_000, 10_000).unwrap().unwrap();
    assert_eq!((c3.task.id.as_str(), c3.attempts), (a.id.as_str(), 2));
    assert!(!s.dequeue(&a.id, "w1").unwrap(), "a dead worker's late dequeue took the task from its new owner");
    assert!(s.dequeue(&a.id, "w3").unwrap());
    assert_eq!(s.claim_next("w4", 60_000, 1).unwrap().unwrap().task.id, later.id);
}

#[test]
fn approvals_are_decided_once_and_expire() {
    let t = Tmp::new("approvals");
    let s = Store::open(&t.db()).unwrap();
    let task = s.create_task(&NewTask::new(TaskKind::Agent, "push")).unwrap();
    let argv = json!(["git", "push", "origin", "main"]);
    let a = s.request_approval(&task.id, ApprovalKind::Command, &argv, 100_000).unwrap();
    assert_eq!((a.status, &a.subject), (ApprovalStatus::Pending, &argv));
    let n = s.request_approval(&task.id, ApprovalKind::Network, &json!({"host": "x.org", "port": 443}), 500).unwrap();
    assert_eq!(s.pending_approvals(Some(&task.id)).unwrap().len(), 2);

    let d = s.decide_approval(&a.id, true, "alice", Some("release day"), 1_000).unwrap();
    assert_eq!(
        (d.status, d.decided_by.as_deref(), d.decided_ms),
        (ApprovalStatus::Approved, Some("alice"), Some(1_000))
    );
    let again = s.decide_approval(&a.id, false, "mallory", None, 1_001).unwrap_err();
    assert!(matches!(again, StoreError::ApprovalClosed { status: "approved", .. }), "{again}");

    // Past its expiry, nobody can approve it any more.
    let late = s.decide_approval(&n.id, true, "bob", None, 501).unwrap_err();
    assert!(matches!(late, StoreError::ApprovalClosed { status: "expired", .. }), "{late}");
    assert!(s.pending_approvals(None).unwrap().is_empty());
    let e = s.request_approval(&task.id, ApprovalKind::Command, &argv, 2_000).unwrap();
    let expired = s.expire_approvals(2_000).unwrap();
    assert_eq!(expired.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [e.id.as_str()]);
    assert_eq!(expired[0].status, ApprovalStatus::Expired);
    assert!(matches!(s.approval("nope"), Err(StoreError::Unknown { what: "approval", .. })));
    assert!(matches!(s.request_approval("nope", ApprovalKind::Command, &argv, 1), Err(StoreError::UnknownTask(_))));
}

#[test]
fn a_conversation_runs_one_task_at_a_time_in_order() {
    let t = Tmp::new("conversation");
    let s = Store::open(&t.db()).unwrap();
    let new = |title: &str| s.create_task(&NewTask::new(TaskKind::Agent, title)).unwrap().id;
    let (a1, a2, b1, free) = (new("a1"), new("a2"), new("b1"), new("free"));
    s.enqueue_in(&a1, Some("telegram:1"), 0).unwrap();
    s.enqueue_in(&a2, Some("telegram:1"), 0).unwrap();
    s.enqueue_in(&b1, Some("telegram:2"), 0).unwrap();
    s.enqueue(&free, 0).unwrap();
    let c1 = s.claim_next("w1", 1_000, 10_000).unwrap().unwrap();
    assert_eq!((c1.task.id.as_str(), c1.conversation.as_deref()), (a1.as_str(), Some("telegram:1")));
    // a2 waits for a1; the other conversation and the free task go ahead.
    let next: Vec<String> =
        (0..3).filter_map(|_| s.claim_next("w2", 1_000, 10_000).unwrap()).map(|c| c.task.id).collect();
    assert_eq!(next, [b1.clone(), free.clone()]);
    assert_eq!(s.queue_depth(1_000).unwrap(), (1, 3));
    assert!(s.dequeue(&a1, "w1").unwrap());
    assert_eq!(s.claim_next("w2", 1_000, 10_000).unwrap().unwrap().task.id, a2);
    // A broken lease hands the task out again at once, attempts showing it.
    assert_eq!(s.leases().unwrap().len(), 3);
    assert!(s.break_lease(&a2, "w2").unwrap());
    assert!(!s.break_lease(&a2, "someone else").unwrap());
    let again = s.claim_next("w3", 1_000, 10_000).unwrap().unwrap();
    assert_eq!((again.task.id.as_str(), again.attempts), (a2.as_str(), 2));
}

#[test]
fn schedules_are_listed_and_deleted() {
    let t = Tmp::new("list schedules");
    let s = Store::open(&t.db()).unwrap();
    let a = schedule(&s, ScheduleKind::Cron, 10);
    let b = schedule(&s, ScheduleKind::Once, 20);
    let ids: Vec<String> = s.list_schedules().unwrap().into_iter().map(|x| x.id).collect();
    assert_eq!(ids, [a.id.clone(), b.id.clone()]);
    let fired = s.fire_due(30, every_minute).unwrap();
    assert_eq!(fired.len(), 2);
    let claim = s.claim_next("w", 30, 1_000).unwrap().unwrap();
    assert_eq!(claim.conversation, Some(format!("schedule:{}", a.id)));
    s.delete_schedule(&a.id).unwrap();
    assert!(matches!(s.delete_schedule(&a.id), Err(StoreError::Unknown { what: "schedule", .. })));
    assert_eq!(s.list_schedules().unwrap().len(), 1);
    assert!(s.find_task(&fired[0].task.id).unwrap().is_some(), "deleting a schedule deleted its tasks");
}

#[test]
fn tasks_are_created_queued_finished_and_cancelled_atomically() {
    let t = Tmp::new("atomic");
    let s = Store::open(&t.db()).unwrap();
    let a = s.create_queued_task(&NewTask::new(TaskKind::Agent, "a"), Some("api:x"), 0).unwrap();
    let b = s.create_queued_task(&NewTask::new(TaskKind::Agent, "b"), None, 0).unwrap();
    assert_eq!(a.status, TaskStatus::Queued);
    assert_eq!(s.queue_depth(0).unwrap(), (2, 0));
    let c = s.claim_next("w", 10, 1_000).unwrap().unwrap();
    assert_eq!((c.task.id.as_str(), c.conversation.as_deref()), (a.id.as_str(), Some("api:x")));
    assert!(!s.cancel_waiting(&a.id, "no", 10).unwrap(), "a running task was cancelled as waiting");
    assert!(!s.finish_claimed(&a.id, "other", TaskStatus::Succeeded, None).unwrap());
    assert!(s.finish_claimed(&a.id, "w", TaskStatus::Succeeded, Some("done")).unwrap());
    assert_eq!(s.task(&a.id).unwrap().detail.as_deref(), Some("done"));
    assert!(s.cancel_waiting(&b.id, "cancelled by alice", 10).unwrap());
    assert_eq!(s.task(&b.id).unwrap().status, TaskStatus::Cancelled);
    assert_eq!(s.queue_depth(10).unwrap(), (0, 0));
    let counts = s.count_tasks_by_status().unwrap();
    assert_eq!(counts, [("cancelled".to_string(), 1), ("succeeded".to_string(), 1)]);
}

#[test]
fn channel_state_and_taken_events_survive_reopening_the_store() {
    let t = Tmp::new("channels");
    {
        let s = Store::open(&t.db()).unwrap();
        assert_eq!(s.channel_value("telegram", "offset").unwrap(), None);
        s.set_channel_value("telegram", "offset", "1001").unwrap();
        s.set_channel_value("telegram", "offset", "1002").unwrap();
        assert!(s.take_channel_event("slack", "Ev01").unwrap());
        assert!(!s.take_channel_event("slack", "Ev01").unwrap(), "an event was taken twice");
        assert!(s.take_channel_event("telegram", "Ev01").unwrap(), "channels share event ids");
    }
    // A restart: a new connection sees what the old one committed.
    let s = Store::open(&t.db()).unwrap();
    assert_eq!(s.channel_value("telegram", "offset").unwrap().as_deref(), Some("1002"));
    assert_eq!(s.channel_value("slack", "offset").unwrap(), None);
    s.set_channel_value("telegram", "reply_to:t1", "7").unwrap();
    assert_eq!(s.take_channel_value("telegram", "reply_to:t1").unwrap().as_deref(), Some("7"));
    assert_eq!(s.take_channel_value("telegram", "reply_to:t1").unwrap(), None, "a taken value stayed");
    assert_eq!(s.channel_value("telegram", "offset").unwrap().as_deref(), Some("1002"));
    assert!(!s.take_channel_event("slack", "Ev01").unwrap(), "a restart forgot a taken event");
    assert_eq!(s.forget_channel_events(time::now_ms() + 1).unwrap(), 2);
    assert!(s.take_channel_event("slack", "Ev01").unwrap());
}
