//! Schedules through the API and the scheduler: validation with fields,
//! each due time fired exactly once across restarts, missed windows run once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use clawcage_store::work::{NewSchedule, ScheduleKind};
use clawcage_store::{time, Store, TaskFilter, TaskStatus};
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;

async fn post(url: &str, body: Value) -> (u16, Value) {
    let r = client().post(url).bearer_auth(TOKEN).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_validated_created_listed_disabled_and_deleted() {
    let t = Tmp::new("sched-api");
    let s = start(&t, config(&t, 1, ""), Arc::new(Shared(TestRunner::new()))).await;
    let url = format!("{}/api/schedules", s.url);
    for (body, field) in [
        (json!({"group": "dev", "prompt": "x", "cron": "every day"}), "cron"),
        (json!({"group": "dev", "prompt": "x"}), "cron"),
        (json!({"group": "dev", "prompt": "x", "cron": "0 9 * * *", "at": "2030-01-01T00:00:00Z"}), "at"),
        (json!({"group": "dev", "prompt": "x", "at": "tomorrow"}), "at"),
        (json!({"group": "nope", "prompt": "x", "cron": "0 9 * * *"}), "group"),
        (json!({"group": "dev", "prompt": "", "cron": "0 9 * * *"}), "prompt"),
        (json!({"group": "dev", "prompt": "x", "cron": "0 9 * * *", "tz": "UTC"}), "tz"),
    ] {
        let (code, e) = post(&url, body.clone()).await;
        assert_eq!((code, e["field"].as_str()), (400, Some(field)), "{body}: {e}");
    }
    let (code, c) = post(&url, json!({"group": "dev", "prompt": "report", "cron": "0 9 * * *"})).await;
    assert_eq!(code, 201, "{c}");
    let id = c["id"].as_str().unwrap();
    assert!(c["next_due_ms"].as_i64().unwrap() > time::now_ms());
    assert!(c["next_due"].as_str().unwrap().ends_with("T09:00:00Z"), "{c}");
    assert_eq!(c["by"], "api", "{c}");
    let list: Value = client().get(&url).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let r =
        client().patch(format!("{url}/{id}")).bearer_auth(TOKEN).json(&json!({"enabled": false})).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["enabled"], false);
    let r = client().delete(format!("{url}/{id}")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = client().delete(format!("{url}/{id}")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_schedule_runs_once_and_never_again_across_restarts() {
    let t = Tmp::new("sched-missed");
    t.state().create().unwrap();
    let now = time::now_ms();
    let (cron_id, once_id) = {
        let st = Store::open(&t.state().db).unwrap();
        // Every minute, first due an hour ago: sixty missed windows.
        let cron = st
            .create_schedule(&NewSchedule {
                group: Some("dev".into()),
                kind: ScheduleKind::Cron,
                spec: "* * * * *".into(),
                title: "every minute".into(),
                payload: json!({}),
                first_due_ms: now - 3_600_000,
            })
            .unwrap();
        let once = st
            .create_schedule(&NewSchedule {
                group: Some("ops".into()),
                kind: ScheduleKind::Once,
                spec: "2020-01-01T00:00:00Z".into(),
                title: "one shot".into(),
                payload: json!({}),
                first_due_ms: now - 1_000,
            })
            .unwrap();
        (cron.id, once.id)
    };
    for round in 0..2 {
        let runner = TestRunner::new();
        let s = start(&t, config(&t, 2, ""), Arc::new(Shared(Arc::clone(&runner)))).await;
        if round == 0 {
            eventually("both fired and ran", || async {
                let mut p = runner.prompts();
                p.sort();
                (p == ["every minute", "one shot"]).then_some(())
            })
            .await;
        }
        s.stop().await;
        if round == 1 {
            // The restart found nothing due: the next minute had not come... unless it
            // had, in which case exactly one more run of the cron schedule is right.
            assert!(runner.prompts().iter().all(|p| p == "every minute"), "{:?}", runner.prompts());
            assert!(runner.prompts().len() <= 1);
        }
    }
    let st = Store::open(&t.state().db).unwrap();
    let tasks = st.list_tasks(&TaskFilter::default()).unwrap();
    let once_runs = tasks.iter().filter(|t| t.title == "one shot").count();
    let cron_runs = tasks.iter().filter(|t| t.title == "every minute").count();
    assert_eq!(once_runs, 1);
    assert!((1..=2).contains(&cron_runs), "{cron_runs} runs for sixty missed windows and a restart");
    assert!(tasks.iter().all(|t| t.status == TaskStatus::Succeeded));
    assert_eq!(st.schedule(&once_id).unwrap().next_due_ms, None);
    assert!(st.schedule(&cron_id).unwrap().next_due_ms.unwrap() > now);
}
