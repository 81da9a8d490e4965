//! The Slack channel: signed Events API requests into the server (v0
//! signatures, timestamp window, url_verification, retries deduplicated)
//! and answers through a fake Web API on 127.0.0.1 (chat.postMessage in the
//! message's thread, with the bot token).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const SECRET: &str = "slack-signing-secret-for-tests";
const BOT: &str = "xoxb-fake-bot-token";

fn signed(url: &str, body: &Value, ts: i64, secret: &str) -> reqwest::RequestBuilder {
    let body = body.to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let sig = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    client()
        .post(format!("{url}/channels/slack/events"))
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", sig)
        .header("content-type", "application/json")
        .body(body)
}

fn message(event_id: &str, user: &str, text: &str, ts: &str, bot: bool) -> Value {
    let mut ev = json!({"type": "message", "user": user, "text": text, "channel": "C1", "ts": ts});
    if bot {
        ev["bot_id"] = json!("B1");
    }
    json!({"type": "event_callback", "team_id": "T1", "event_id": event_id, "event_time": 0, "event": ev})
}

/// A fake Slack Web API (chat.postMessage with the bot token); what it was sent.
async fn fake_web_api() -> (String, Arc<Mutex<Vec<Value>>>) {
    let posted: Arc<Mutex<Vec<Value>>> = Arc::default();
    let p = Arc::clone(&posted);
    let app = Router::new().route(
        "/chat.postMessage",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let p = Arc::clone(&p);
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {BOT}")) {
                    return Json(json!({"ok": false, "error": "invalid_auth"}));
                }
                p.lock().unwrap().push(body.clone());
                Json(json!({"ok": true, "channel": body["channel"], "ts": "2.0"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (api_base, posted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_events_are_verified_and_answered_in_their_thread() {
    let (api_base, posted) = fake_web_api().await;
    let t = Tmp::new("slack");
    std::fs::write(t.0.join("bot"), BOT).unwrap();
    std::fs::write(t.0.join("secret"), SECRET).unwrap();
    let extra = format!(
        "[roles.dev]\nmembers = [\"slack:U1\"]\nstart = [\"dev\"]\n\n\
         [channels.slack]\nbot_token = \"file:bot\"\nsigning_secret = \"file:secret\"\ngroup = \"dev\"\napi_base = \"{api_base}\"\n"
    );
    let runner = TestRunner::new();
    let s = start(&t, config(&t, 2, &extra), Arc::new(Shared(Arc::clone(&runner)))).await;
    let now = clawcage_store::time::now_ms() / 1000;

    let hello = json!({"type": "url_verification", "token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"});
    let r = signed(&s.url, &hello, now, SECRET).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["challenge"], hello["challenge"]);

    let ev = message("Ev1", "U1", "fix the build", "1700000000.000100", false);
    assert_eq!(signed(&s.url, &ev, now, "wrong secret").send().await.unwrap().status(), 401);
    assert_eq!(signed(&s.url, &ev, now - 301, SECRET).send().await.unwrap().status(), 401, "a replay was accepted");
    let unsigned = client().post(format!("{}/channels/slack/events", s.url)).json(&ev).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(runner.prompts().is_empty());

    assert_eq!(signed(&s.url, &ev, now, SECRET).send().await.unwrap().status(), 200);
    // Slack retries an event it thinks was lost: one task only.
    assert_eq!(signed(&s.url, &ev, now, SECRET).send().await.unwrap().status(), 200);
    // Our own bot's message and an unknown user's: nothing.
    signed(&s.url, &message("Ev2", "U1", "echo", "1700000000.000200", true), now, SECRET).send().await.unwrap();
    signed(&s.url, &message("Ev3", "U666", "rm -rf /", "1700000000.000300", false), now, SECRET).send().await.unwrap();

    let sent = eventually("the answer in the thread", || async {
        let p = posted.lock().unwrap().clone();
        (p.len() >= 2).then_some(p)
    })
    .await;
    assert!(sent[0]["text"].as_str().unwrap().ends_with("queued"), "{sent:?}");
    assert_eq!(sent[1]["text"], "answer to fix the build");
    for m in &sent {
        assert_eq!((m["channel"].as_str(), m["thread_ts"].as_str()), (Some("C1"), Some("1700000000.000100")));
    }
    let r = client().get(format!("{}/api/audit", s.url)).bearer_auth(TOKEN).send().await.unwrap();
    let audit: Value = r.json().await.unwrap();
    let kinds: Vec<&str> = audit.as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "channel_rejected").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "channel_ignored").count(), 1, "{kinds:?}");
    assert_eq!(runner.prompts(), ["fix the build"]);
    assert_eq!(posted.lock().unwrap().len(), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_retry_after_a_restart_starts_no_second_task() {
    let (api_base, posted) = fake_web_api().await;
    let t = Tmp::new("slack-restart");
    std::fs::write(t.0.join("bot"), BOT).unwrap();
    std::fs::write(t.0.join("secret"), SECRET).unwrap();
    let extra = format!(
        "[roles.dev]\nmembers = [\"slack:U1\"]\nstart = [\"dev\"]\n\n\
         [channels.slack]\nbot_token = \"file:bot\"\nsigning_secret = \"file:secret\"\ngroup = \"dev\"\napi_base = \"{api_base}\"\n"
    );
    let first = TestRunner::new();
    let s = start(&t, config(&t, 2, &extra), Arc::new(Shared(Arc::clone(&first)))).await;
    let now = clawcage_store::time::now_ms() / 1000;
    let ev = message("EvR1", "U1", "deploy it", "1700000001.000100", false);
    assert_eq!(signed(&s.url, &ev, now, SECRET).send().await.unwrap().status(), 200);
    eventually("the first answer", || async {
        posted.lock().unwrap().iter().any(|m| m["text"] == "answer to deploy it").then_some(())
    })
    .await;
    s.stop().await;

    // Slack did not see our 200 in time and retries, to a restarted server.
    let second = TestRunner::new();
    let s = start(&t, config(&t, 2, &extra), Arc::new(Shared(Arc::clone(&second)))).await;
    let now = clawcage_store::time::now_ms() / 1000;
    for n in ["1", "2"] {
        let r = signed(&s.url, &ev, now, SECRET)
            .header("x-slack-retry-num", n)
            .header("x-slack-retry-reason", "http_timeout")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a retry must be acknowledged, or Slack retries again");
    }
    // A new event still runs: the retries were dropped, not the channel.
    let fresh = message("EvR2", "U1", "and the docs", "1700000002.000100", false);
    assert_eq!(signed(&s.url, &fresh, now, SECRET).send().await.unwrap().status(), 200);
    eventually("the second answer", || async {
        posted.lock().unwrap().iter().any(|m| m["text"] == "answer to and the docs").then_some(())
    })
    .await;
    assert_eq!(second.prompts(), ["and the docs"], "a retried event ran again after the restart");
    assert_eq!(first.prompts(), ["deploy it"]);
    let acks = posted.lock().unwrap().iter().filter(|m| m["thread_ts"] == "1700000001.000100").count();
    assert_eq!(acks, 2, "the retried event was answered again");
    s.stop().await;
}
