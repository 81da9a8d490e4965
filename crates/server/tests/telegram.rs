//! The Telegram channel against a fake Bot API on 127.0.0.1 speaking its
//! wire format (getUpdates long polling, sendMessage with reply_parameters):
//! roles decide who may start tasks and answer approvals, unknown senders
//! are ignored and audited, long answers are split at 4096 characters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use clawcage_store::time;
use clawcage_store::work::{ApprovalKind, ApprovalStatus};
use common::*;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BOT_TOKEN: &str = "123456:fake-bot-token";

#[derive(Default)]
struct Fake {
    updates: Mutex<VecDeque<Value>>,
    next_id: Mutex<i64>,
    sent: Mutex<Vec<Value>>,
    polls: Mutex<Vec<Value>>,
    /// Hand out every update on every poll, whatever the offset (as if no
    /// confirmation ever reached Telegram): replays and restarts must still
    /// run each update once.
    replay: std::sync::atomic::AtomicBool,
}

impl Fake {
    fn message(&self, from: i64, chat: i64, text: &str) -> i64 {
        let mut n = self.next_id.lock().unwrap();
        *n += 1;
        let id = *n;
        self.updates.lock().unwrap().push_back(json!({
            "update_id": 1000 + id,
            "message": {"message_id": id, "from": {"id": from, "is_bot": false, "first_name": "x"},
                        "chat": {"id": chat, "type": "private"}, "date": 0, "text": text}
        }));
        id
    }
    fn sent_to(&self, chat: i64) -> Vec<Value> {
        self.sent.lock().unwrap().iter().filter(|m| m["chat_id"] == chat).cloned().collect()
    }
}

async fn bot_api(
    State(f): State<Arc<Fake>>,
    Path((bot, method)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    if bot != format!("bot{BOT_TOKEN}") {
        return Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"}));
    }
    match method.as_str() {
        "getUpdates" => {
            f.polls.lock().unwrap().push(body.clone());
            let offset = body["offset"].as_i64().unwrap_or(0);
            for _ in 0..50 {
                let ready: Vec<Value> = {
                    let mut q = f.updates.lock().unwrap();
                    if !f.replay.load(std::sync::atomic::Ordering::SeqCst) {
                        q.retain(|u| u["update_id"].as_i64().unwrap() >= offset);
                    }
                    q.iter().cloned().collect()
                };
                if !ready.is_empty() {
                    return Json(json!({"ok": true, "result": ready}));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Json(json!({"ok": true, "result": []}))
        }
        "sendMessage" => {
            assert!(body["text"].as_str().unwrap().chars().count() <= 4096, "a message over Telegram's limit");
            f.sent.lock().unwrap().push(body.clone());
            Json(
                json!({"ok": true, "result": {"message_id": 9999, "chat": {"id": body["chat_id"]}, "date": 0, "text": body["text"]}}),
            )
        }
        _ => Json(json!({"ok": false, "error_code": 404, "description": "Not Found"})),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_users_start_tasks_and_answer_approvals_by_role() {
    let fake = Arc::new(Fake::default());
    let app = Router::new().route("/{bot}/{method}", post(bot_api)).with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let t = Tmp::new("telegram");
    std::fs::write(t.0.join("tg-token"), format!("{BOT_TOKEN}\n")).unwrap();
    let extra = format!(
        "[roles.dev]\nmembers = [\"telegram:42\"]\nstart = [\"dev\"]\n\n\
         [roles.lead]\nmembers = [\"telegram:7\"]\napprove = [\"dev\"]\n\n\
         [channels.telegram]\ntoken = \"file:tg-token\"\ngroup = \"dev\"\napi_base = \"{api_base}\"\n"
    );
    let runner = TestRunner::new();
    let s = start(&t, config(&t, 2, &extra), Arc::new(Shared(Arc::clone(&runner)))).await;

    // A member of `dev` starts a task: acknowledged, run, answered as a reply.
    let m1 = fake.message(42, 500, "summarise the README");
    let answers = eventually("the task's answer", || async {
        let sent = fake.sent_to(500);
        (sent.len() >= 2).then_some(sent)
    })
    .await;
    assert!(answers[0]["text"].as_str().unwrap().ends_with("queued"), "{answers:?}");
    assert_eq!(answers[0]["reply_parameters"]["message_id"], m1);
    assert_eq!(answers[1]["text"], "answer to summarise the README");
    assert_eq!(answers[1]["reply_parameters"]["message_id"], m1);
    assert_eq!(runner.prompts(), ["summarise the README"]);
    // The poller confirmed the update (offset past it).
    assert!(fake.polls.lock().unwrap().iter().any(|p| p["offset"] == 1000 + m1 + 1));

    // An unknown sender: nothing runs, nothing is said, it is on the record.
    fake.message(666, 600, "cat /etc/shadow");
    // A sender whose role may only approve cannot start tasks.
    fake.message(7, 700, "delete everything");
    let refused = eventually("the refusal", || async { fake.sent_to(700).pop() }).await;
    assert_eq!(refused["text"], "you may not start tasks in group dev");
    let audit = eventually("the ignored message on record", || async {
        let r = client().get(format!("{}/api/audit", s.url)).bearer_auth(TOKEN).send().await.unwrap();
        let v: Value = r.json().await.unwrap();
        v.as_array().unwrap().iter().find(|r| r["kind"] == "channel_ignored").cloned()
    })
    .await;
    assert_eq!((audit["data"]["sender"].as_str(), audit["data"]["channel"].as_str()), (Some("666"), Some("telegram")));
    assert!(fake.sent_to(600).is_empty(), "an unknown sender got an answer");
    assert_eq!(runner.prompts().len(), 1, "a task ran for a sender without the right");

    // A long answer is split at 4096 characters.
    let long = format!("hold {}", "x".repeat(5000));
    fake.message(42, 800, &long);
    eventually("running", || async { (runner.running.load(std::sync::atomic::Ordering::SeqCst) == 1).then_some(()) })
        .await;

    // The held task asks for an approval (as the gate does); the developer may not answer it, the lead may.
    let task_id = runner.runs.lock().unwrap().last().unwrap().0.clone();
    let db = s.state.db.clone();
    let a = db
        .call(move |st| {
            st.request_approval(&task_id, ApprovalKind::Command, &json!(["git", "push"]), time::now_ms() + 60_000)
        })
        .await
        .unwrap();
    // The task's chat is told, once, how to answer it.
    let notice = eventually("the approval notice", || async {
        fake.sent_to(800).into_iter().find(|m| m["text"].as_str().unwrap().starts_with("approval needed"))
    })
    .await;
    let text = notice["text"].as_str().unwrap();
    assert!(text.contains("git push") && text.contains(&format!("/approve {}", a.id)), "{text}");
    fake.message(42, 800, &format!("/approve {}", a.id));
    fake.message(7, 700, "/approvals");
    fake.message(7, 700, &format!("/approve {} looks fine", a.id));
    let done = eventually("the lead's approval", || async {
        let sent = fake.sent_to(700);
        sent.iter().any(|m| m["text"] == format!("{} approved", a.id)).then_some(sent)
    })
    .await;
    assert!(done.iter().any(|m| m["text"].as_str().unwrap().contains(&format!("{} task", a.id))), "{done:?}");
    let dev_answers = fake.sent_to(800);
    assert!(dev_answers.iter().any(|m| m["text"] == "you may not answer approvals in group dev"), "{dev_answers:?}");
    let id = a.id.clone();
    let decided = db.call(move |st| st.approval(&id)).await.unwrap();
    assert_eq!((decided.status, decided.decided_by.as_deref()), (ApprovalStatus::Approved, Some("telegram:7")));
    assert_eq!(decided.reason.as_deref(), Some("looks fine"));

    runner.release(1);
    let parts = eventually("the long answer", || async {
        let sent = fake.sent_to(800);
        let parts: Vec<String> = sent
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .skip_while(|t| !t.starts_with("answer to"))
            .collect();
        (parts.len() == 2).then_some(parts)
    })
    .await;
    assert_eq!(parts[0].chars().count(), 4096);
    assert_eq!(parts.concat(), format!("answer to {long}"));
    let notices =
        fake.sent_to(800).iter().filter(|m| m["text"].as_str().unwrap().starts_with("approval needed")).count();
    assert_eq!(notices, 1, "an approval was announced more than once");
    s.stop().await;
}

async fn fake_bot_api(fake: &Arc<Fake>) -> String {
    let app = Router::new().route("/{bot}/{method}", post(bot_api)).with_state(Arc::clone(fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    api_base
}

/// A state directory and the config lines for a Telegram channel on
/// `api_base` whose user 42 may start tasks.
fn member_of_dev(api_base: &str, tag: &str) -> (Tmp, String) {
    let t = Tmp::new(tag);
    std::fs::write(t.0.join("tg-token"), format!("{BOT_TOKEN}\n")).unwrap();
    let extra = format!(
        "[roles.dev]\nmembers = [\"telegram:42\"]\nstart = [\"dev\"]\n\n\
         [channels.telegram]\ntoken = \"file:tg-token\"\ngroup = \"dev\"\napi_base = \"{api_base}\"\n"
    );
    (t, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_updates_run_once_across_replays_and_a_restart() {
    let fake = Arc::new(Fake::default());
    fake.replay.store(true, std::sync::atomic::Ordering::SeqCst);
    let api_base = fake_bot_api(&fake).await;
    let (t, extra) = member_of_dev(&api_base, "telegram-restart");

    let first = TestRunner::new();
    let s = start(&t, config(&t, 2, &extra), Arc::new(Shared(Arc::clone(&first)))).await;
    let m1 = fake.message(42, 500, "first message");
    eventually("the first answer", || async { (fake.sent_to(500).len() >= 2).then_some(()) }).await;
    // The same update comes back on later polls: it is not run again.
    let polls = fake.polls.lock().unwrap().len();
    eventually("more polls", || async { (fake.polls.lock().unwrap().len() >= polls + 3).then_some(()) }).await;
    assert_eq!(first.prompts(), ["first message"]);
    s.stop().await;

    // A restart: a new server on the same state directory.
    let polls_before = fake.polls.lock().unwrap().len();
    let second = TestRunner::new();
    let s = start(&t, config(&t, 2, &extra), Arc::new(Shared(Arc::clone(&second)))).await;
    eventually("a poll of the new server", || async { fake.polls.lock().unwrap().get(polls_before).cloned() }).await;
    // It asks from where the old one stopped, not from the start.
    assert_eq!(fake.polls.lock().unwrap()[polls_before]["offset"], 1000 + m1 + 1);
    fake.message(42, 500, "second message");
    eventually("the second answer", || async {
        fake.sent_to(500).iter().any(|m| m["text"] == "answer to second message").then_some(())
    })
    .await;
    let polls = fake.polls.lock().unwrap().len();
    eventually("more polls", || async { (fake.polls.lock().unwrap().len() >= polls + 3).then_some(()) }).await;
    assert_eq!(second.prompts(), ["second message"], "the restart replayed an old update");
    let answers: Vec<Value> =
        fake.sent_to(500).into_iter().filter(|m| m["text"] == "answer to first message").collect();
    assert_eq!(answers.len(), 1, "an update ran twice: {answers:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_answers_reply_to_their_message_after_a_restart() {
    let fake = Arc::new(Fake::default());
    let api_base = fake_bot_api(&fake).await;
    let (t, extra) = member_of_dev(&api_base, "telegram-reply-restart");

    // One task at a time: the first holds the slot, the second waits queued.
    let first = TestRunner::new();
    let s = start(&t, config(&t, 1, &extra), Arc::new(Shared(Arc::clone(&first)))).await;
    fake.message(42, 600, "hold the first");
    eventually("the first task running", || async { (first.prompts().len() == 1).then_some(()) }).await;
    let m2 = fake.message(42, 600, "hold the second");
    eventually("the second task queued", || async {
        fake.sent_to(600).iter().any(|m| m["reply_parameters"]["message_id"] == m2).then_some(())
    })
    .await;
    assert_eq!(first.prompts(), ["hold the first"], "the second task ran before the restart");
    s.stop().await;

    // A restart: the new server runs the queued task and answers it as a
    // reply to the message that asked for it.
    let second = TestRunner::new();
    let s = start(&t, config(&t, 1, &extra), Arc::new(Shared(Arc::clone(&second)))).await;
    eventually("the queued task running", || async { (second.prompts().len() == 1).then_some(()) }).await;
    assert_eq!(second.prompts(), ["hold the second"]);
    let task = second.runs.lock().unwrap()[0].0.clone();
    second.release(1);
    let answer = eventually("the queued task's answer", || async {
        fake.sent_to(600).into_iter().find(|m| m["text"] == "answer to hold the second")
    })
    .await;
    assert_eq!(answer["reply_parameters"]["message_id"], m2, "the answer lost its reply: {answer}");
    // Its last answer posted, the task's stored message id is gone.
    let key = format!("reply_to:{task}");
    let left = s.state.db.call(move |st| st.channel_value("telegram", &key)).await.unwrap();
    assert_eq!(left, None);
    s.stop().await;
}
