//! The HTTP API against a real server on 127.0.0.1: auth, JSON errors with
//! fields, tasks through the queue with live events, approvals, audit,
//! schedules, metrics and the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use clawcage_store::work::ApprovalKind;
use clawcage_store::{time, TaskStatus};
use common::*;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

async fn post(url: &str, body: Value) -> (u16, Value) {
    let r = client().post(url).bearer_auth(TOKEN).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str) -> (u16, Value) {
    let r = client().get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn task_status(url: &str, id: &str) -> String {
    get(&format!("{url}/api/tasks/{id}")).await.1["task"]["status"].as_str().unwrap().to_string()
}

async fn wait_status(url: &str, id: &str, want: &str) {
    eventually(&format!("task {id} {want}"), || async { (task_status(url, id).await == want).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_token_and_answers_bad_input_with_the_field() {
    let t = Tmp::new("auth");
    let s = start(&t, config(&t, 2, ""), Arc::new(Shared(TestRunner::new()))).await;
    let c = client();
    let r = c.get(format!("{}/api/tasks", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("bearer token"));
    let r = c.get(format!("{}/api/tasks", s.url)).bearer_auth("test-token-0123456788").send().await.unwrap();
    assert_eq!(r.status(), 401, "a token differing in its last character was accepted");
    let r = c.get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 401, "metrics are not public");
    assert_eq!(c.get(format!("{}/healthz", s.url)).send().await.unwrap().status(), 200);
    assert_eq!(get(&format!("{}/api/tasks", s.url)).await, (200, json!([])));

    let cases = [
        (json!({"group": "nope", "prompt": "x"}), "group"),
        (json!({"group": "dev", "prompt": "  "}), "prompt"),
        (json!({"group": "dev", "prompt": 5}), "prompt"),
        (json!({"group": "dev"}), "body"),
        (json!({"group": "dev", "prompt": "x", "priority": 1}), "priority"),
        (json!({"group": "dev", "prompt": "x", "conversation": ""}), "conversation"),
    ];
    for (body, field) in cases {
        let (code, err) = post(&format!("{}/api/tasks", s.url), body.clone()).await;
        assert_eq!((code, err["field"].as_str()), (400, Some(field)), "{body}: {err}");
    }
    let r = c.post(format!("{}/api/tasks", s.url)).bearer_auth(TOKEN).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let (code, err) = get(&format!("{}/api/tasks?status=done", s.url)).await;
    assert_eq!((code, err["field"].as_str()), (400, Some("status")));
    let (code, _) = get(&format!("{}/api/tasks/ffffffffffff", s.url)).await;
    assert_eq!(code, 404);
    let r = c.get(format!("{}/healthz", s.url)).send().await.unwrap();
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_through_the_queue_and_streams_its_events() {
    let t = Tmp::new("task");
    let runner = TestRunner::new();
    let s = start(&t, config(&t, 2, ""), Arc::new(Shared(Arc::clone(&runner)))).await;
    let (code, task) =
        post(&format!("{}/api/tasks", s.url), json!({"group": "dev", "prompt": "hold then say hi"})).await;
    assert_eq!(code, 201, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    assert_eq!(task["group"], "dev");
    wait_status(&s.url, &id, "running").await;

    // Subscribe mid-task: the backlog first, then live events, then the end.
    let resp = client().get(format!("{}/api/tasks/{id}/events", s.url)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    runner.release(1);
    let text = resp.text().await.unwrap();
    let kinds: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .collect();
    let k: Vec<&str> = kinds.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(k, ["status", "status", "text", "tool", "note", "end"], "{text}");
    assert_eq!(kinds[2]["text"], "working on: hold then say hi");
    assert_eq!(kinds[5]["text"], "succeeded");
    let seqs: Vec<u64> = kinds.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    let (_, detail) = get(&format!("{}/api/tasks/{id}", s.url)).await;
    assert_eq!(detail["task"]["status"], "succeeded");
    assert_eq!(detail["task"]["detail"], "done");

    // A task that ended is still streamable: its end comes at once.
    let again = client().get(format!("{}/api/tasks/{id}/events", s.url)).bearer_auth(TOKEN).send().await.unwrap();
    assert!(again.text().await.unwrap().contains("event: end"));

    let (_, audit) = get(&format!("{}/api/audit?task={id}", s.url)).await;
    let kinds: Vec<&str> = audit.as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["task_queued", "task_start", "task_end"]);
    let (_, v) = get(&format!("{}/api/audit/verify", s.url)).await;
    assert_eq!((v["ok"].as_bool(), v["records"].as_u64()), (Some(true), Some(3)), "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_limited_and_a_conversation_runs_one_task_at_a_time() {
    let t = Tmp::new("limits");
    let runner = TestRunner::new();
    let s = start(&t, config(&t, 2, ""), Arc::new(Shared(Arc::clone(&runner)))).await;
    let url = format!("{}/api/tasks", s.url);
    let mut ids = Vec::new();
    for i in 0..2 {
        let (_, t) =
            post(&url, json!({"group": "dev", "prompt": format!("hold chat {i}"), "conversation": "c1"})).await;
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    for i in 0..3 {
        let (_, t) = post(&url, json!({"group": "ops", "prompt": format!("hold free {i}")})).await;
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    eventually("two running", || async { (runner.running.load(Ordering::SeqCst) == 2).then_some(()) }).await;
    // The second of conversation c1 must wait for the first.
    let first_two = runner.prompts();
    assert_eq!(first_two[0], "hold chat 0");
    assert_ne!(first_two[1], "hold chat 1", "two tasks of one conversation ran at once");
    for _ in 0..5 {
        runner.release(1);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for id in &ids {
        wait_status(&s.url, id, "succeeded").await;
    }
    assert_eq!(runner.max_running.load(Ordering::SeqCst), 2, "the concurrency limit was exceeded");
    let order = runner.prompts();
    let pos = |p: &str| order.iter().position(|x| x == p).unwrap();
    assert!(pos("hold chat 0") < pos("hold chat 1"));
    assert_eq!(order.len(), 5, "a task ran twice: {order:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_listed_decided_once_and_audited() {
    let t = Tmp::new("approvals");
    let runner = TestRunner::new();
    let s = start(&t, config(&t, 1, ""), Arc::new(Shared(Arc::clone(&runner)))).await;
    let (_, task) = post(&format!("{}/api/tasks", s.url), json!({"group": "dev", "prompt": "hold push"})).await;
    let id = task["id"].as_str().unwrap().to_string();
    wait_status(&s.url, &id, "running").await;
    // What the approvals gate does when a rule matches: a pending request in the store.
    let (tid, db) = (id.clone(), s.state.db.clone());
    let a = db
        .call(move |st| {
            st.request_approval(&tid, ApprovalKind::Command, &json!(["git", "push"]), time::now_ms() + 60_000)
        })
        .await
        .unwrap();
    let (_, list) = get(&format!("{}/api/approvals", s.url)).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["subject"], json!(["git", "push"]));
    let (_, detail) = get(&format!("{}/api/tasks/{id}", s.url)).await;
    assert_eq!(detail["pending_approvals"][0]["id"], a.id.as_str());

    let (code, err) = post(&format!("{}/api/approvals/{}/approve", s.url, a.id), json!({"reason": 3})).await;
    assert_eq!((code, err["field"].as_str()), (400, Some("reason")));
    let (code, d) = post(&format!("{}/api/approvals/{}/approve", s.url, a.id), json!({"reason": "ok"})).await;
    assert_eq!((code, d["status"].as_str(), d["decided_by"].as_str()), (200, Some("approved"), Some("api")));
    let (code, _) = post(&format!("{}/api/approvals/{}/deny", s.url, a.id), json!({})).await;
    assert_eq!(code, 409, "a decided approval was decided again");
    let (code, _) = post(&format!("{}/api/approvals/nope/deny", s.url), json!({})).await;
    assert_eq!(code, 404);
    assert_eq!(get(&format!("{}/api/approvals", s.url)).await.1, json!([]));
    let (_, audit) = get(&format!("{}/api/audit?task={id}", s.url)).await;
    let decision = audit.as_array().unwrap().iter().find(|r| r["kind"] == "approval_decision").unwrap();
    assert_eq!(decision["data"]["decision"], "approved");

    // Cancel the running task: the runner stops, the task is cancelled.
    let (code, _) = post(&format!("{}/api/tasks/{id}/cancel", s.url), json!({})).await;
    assert_eq!(code, 200);
    wait_status(&s.url, &id, "cancelled").await;
    let (code, _) = post(&format!("{}/api/tasks/{id}/cancel", s.url), json!({})).await;
    assert_eq!(code, 409);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_the_openapi_document_describe_the_server() {
    let t = Tmp::new("metrics");
    let runner = TestRunner::new();
    let s = start(&t, config(&t, 1, ""), Arc::new(Shared(Arc::clone(&runner)))).await;
    let url = format!("{}/api/tasks", s.url);
    let (_, a) = post(&url, json!({"group": "dev", "prompt": "hold a"})).await;
    post(&url, json!({"group": "dev", "prompt": "b"})).await;
    wait_status(&s.url, a["id"].as_str().unwrap(), "running").await;
    let m = client().get(format!("{}/metrics", s.url)).bearer_auth(TOKEN).send().await.unwrap();
    assert!(m.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let m = m.text().await.unwrap();
    for line in [
        "clawcage_tasks{status=\"running\"} 1",
        "clawcage_tasks{status=\"queued\"} 1",
        "clawcage_queue_depth{state=\"waiting\"} 1",
        "clawcage_queue_depth{state=\"leased\"} 1",
        "clawcage_running_sandboxes 1",
        "clawcage_approvals_pending 0",
        "clawcage_http_requests_total{method=\"POST\",status=\"201\"} 2",
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
    }
    runner.release(1);

    let doc: Value = client().get(format!("{}/openapi.json", s.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    // Every documented path is served (no 404 from the router), with auth where it says so.
    for p in paths {
        let concrete = p.replace("{id}", "ffffffffffff");
        let methods = doc["paths"][p].as_object().unwrap();
        for (m, op) in methods {
            let req = client().request(m.to_uppercase().parse().unwrap(), format!("{}{concrete}", s.url));
            let r = req.send().await.unwrap();
            let open = op.get("security").is_none();
            let code = r.status().as_u16();
            if open {
                assert_eq!(code, 200, "{m} {p}");
            } else {
                assert_eq!(code, 401, "{m} {p} answered without a token");
            }
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_server_died_is_marked_failed_not_run_again() {
    let t = Tmp::new("restart");
    let cfg = config(&t, 2, "");
    // A server that died holding a task: its lease names a process that is gone.
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        child.id()
    };
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let owner = format!("serve:{}:{dead}:1", boot.trim());
    t.state().create().unwrap();
    let (interrupted, waiting) = {
        let st = clawcage_store::Store::open(&t.state().db).unwrap();
        let mut new = clawcage_store::NewTask::new(clawcage_store::TaskKind::Agent, "was running");
        new.group = Some("dev".into());
        let a = st.create_queued_task(&new, None, 0).unwrap();
        new.title = "never started".into();
        let b = st.create_queued_task(&new, None, 0).unwrap();
        let c = st.claim_next(&owner, time::now_ms(), 3_600_000).unwrap().unwrap();
        assert_eq!(c.task.id, a.id);
        (a.id, b.id)
    };
    let runner = TestRunner::new();
    let s = start(&t, cfg, Arc::new(Shared(Arc::clone(&runner)))).await;
    wait_status(&s.url, &interrupted, "failed").await;
    wait_status(&s.url, &waiting, "succeeded").await;
    assert_eq!(runner.prompts(), ["never started"], "the interrupted task ran again");
    let (_, d) = get(&format!("{}/api/tasks/{interrupted}", s.url)).await;
    assert!(d["task"]["detail"].as_str().unwrap().starts_with("interrupted"), "{d}");
    let st = clawcage_store::Store::open(&t.state().db).unwrap();
    assert_eq!(st.queue_depth(time::now_ms()).unwrap(), (0, 0));
    assert_eq!(st.task(&interrupted).unwrap().status, TaskStatus::Failed);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_running_tasks_and_leaves_the_queue_consistent() {
    let t = Tmp::new("shutdown");
    let runner = TestRunner::new();
    let s = start(&t, config(&t, 1, ""), Arc::new(Shared(Arc::clone(&runner)))).await;
    let url = format!("{}/api/tasks", s.url);
    let (_, a) = post(&url, json!({"group": "dev", "prompt": "hold forever"})).await;
    let (_, b) = post(&url, json!({"group": "dev", "prompt": "waits"})).await;
    let (a, b) = (a["id"].as_str().unwrap().to_string(), b["id"].as_str().unwrap().to_string());
    wait_status(&s.url, &a, "running").await;
    s.stop().await;
    let st = clawcage_store::Store::open(&t.state().db).unwrap();
    let ta = st.task(&a).unwrap();
    assert_eq!((ta.status, ta.detail.as_deref()), (TaskStatus::Cancelled, Some("cancelled: the server shut down")));
    assert_eq!(st.task(&b).unwrap().status, TaskStatus::Queued, "a task that never started was touched");
    assert_eq!(st.queue_depth(time::now_ms()).unwrap(), (1, 0), "the queue holds a lease or lost a task");
    assert_eq!(runner.prompts(), ["hold forever"]);
}
