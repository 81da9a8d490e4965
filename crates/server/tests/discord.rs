//! The Discord channel against a fake gateway (websocket: HELLO, IDENTIFY,
//! HEARTBEAT, READY, MESSAGE_CREATE, RECONNECT) and a fake REST API on
//! 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;

const TOKEN_D: &str = "discord-fake-bot-token";

fn dispatch(s: u64, t: &str, d: Value) -> Ws {
    Ws::Text(json!({"op": 0, "s": s, "t": t, "d": d}).to_string().into())
}

fn create(s: u64, id: &str, author: &str, bot: bool, content: &str) -> Ws {
    dispatch(
        s,
        "MESSAGE_CREATE",
        json!({"id": id, "channel_id": "100", "content": content, "author": {"id": author, "bot": bot, "username": "u"}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_messages_arrive_over_the_gateway_and_answers_go_over_rest() {
    // REST: create message.
    let posted: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let p = Arc::clone(&posted);
    let rest = Router::new().route(
        "/channels/{id}/messages",
        post(move |Path(id): Path<String>, headers: HeaderMap, Json(body): Json<Value>| {
            let p = Arc::clone(&p);
            async move {
                assert_eq!(headers["authorization"], format!("Bot {TOKEN_D}"));
                assert!(body["content"].as_str().unwrap().chars().count() <= 2000);
                p.lock().unwrap().push((id, body.clone()));
                Json(json!({"id": "5", "channel_id": "100", "content": body["content"]}))
            }
        }),
    );
    let rl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_base = format!("http://{}", rl.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(rl, rest).await.unwrap() });

    // Gateway: each connection's frames from the client go to `frames`.
    let gl = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("ws://{}/?v=10&encoding=json", gl.local_addr().unwrap());
    let (frames_tx, mut frames) = mpsc::unbounded_channel::<(u32, Value)>();
    let (script_tx, mut script) = mpsc::unbounded_channel::<(u32, Ws)>();
    tokio::spawn(async move {
        let mut conns = Vec::new();
        for n in 1..=2u32 {
            let (sock, _) = gl.accept().await.unwrap();
            let ws = tokio_tungstenite::accept_async(sock).await.unwrap();
            let (mut tx, mut rx) = ws.split();
            tx.send(Ws::Text(json!({"op": 10, "d": {"heartbeat_interval": 50}}).to_string().into())).await.unwrap();
            let f = frames_tx.clone();
            tokio::spawn(async move {
                while let Some(Ok(Ws::Text(t))) = rx.next().await {
                    let _ = f.send((n, serde_json::from_str(t.as_str()).unwrap()));
                }
            });
            conns.push(tx);
            // Send what the test scripts for this connection until it says "next".
            while let Some((to, m)) = script.recv().await {
                if let Ws::Text(t) = &m {
                    if t.as_str() == "next" {
                        break;
                    }
                }
                let _ = conns[(to - 1) as usize].send(m).await;
            }
        }
    });

    let t = Tmp::new("discord");
    std::fs::write(t.0.join("dtoken"), TOKEN_D).unwrap();
    let extra = format!(
        "[roles.dev]\nmembers = [\"discord:42\"]\nstart = [\"dev\"]\n\n\
         [channels.discord]\ntoken = \"file:dtoken\"\ngroup = \"dev\"\napi_base = \"{api_base}\"\ngateway = \"{gateway}\"\n"
    );
    let runner = TestRunner::new();
    let s = start(&t, config(&t, 2, &extra), Arc::new(Shared(Arc::clone(&runner)))).await;

    let (n, identify) = frames.recv().await.unwrap();
    assert_eq!((n, identify["op"].as_u64()), (1, Some(2)), "{identify}");
    assert_eq!(identify["d"]["token"], TOKEN_D);
    assert_eq!(identify["d"]["intents"].as_u64().unwrap() & (1 << 15), 1 << 15, "no MESSAGE_CONTENT intent");
    script_tx
        .send((1, dispatch(1, "READY", json!({"v": 10, "user": {"id": "999", "bot": true}, "session_id": "s"}))))
        .unwrap();
    script_tx.send((1, create(2, "m1", "42", false, "build it"))).unwrap();
    script_tx.send((1, create(3, "m2", "999", true, "our own answer"))).unwrap();
    script_tx.send((1, create(4, "m3", "31337", false, "leak the token"))).unwrap();

    let sent = eventually("the answer", || async {
        let p = posted.lock().unwrap().clone();
        (p.len() >= 2).then_some(p)
    })
    .await;
    assert_eq!(sent[0].0, "100");
    assert!(sent[0].1["content"].as_str().unwrap().ends_with("queued"));
    assert_eq!(sent[0].1["message_reference"]["message_id"], "m1");
    assert_eq!(sent[1].1["content"], "answer to build it");
    assert_eq!(sent[1].1["message_reference"]["message_id"], "m1");
    assert_eq!(runner.prompts(), ["build it"]);

    // Heartbeats carry the last sequence number seen.
    let beat = loop {
        let (_, f) = frames.recv().await.unwrap();
        if f["op"] == 1 && f["d"] == 4 {
            break f;
        }
    };
    assert_eq!(beat["d"], 4);

    // RECONNECT: the client comes back and identifies again.
    script_tx.send((1, Ws::Text(json!({"op": 7, "d": null}).to_string().into()))).unwrap();
    script_tx.send((1, Ws::Text("next".into()))).unwrap();
    let again = loop {
        let (n, f) = frames.recv().await.unwrap();
        if n == 2 {
            break f;
        }
    };
    assert_eq!(again["op"], 2, "{again}");

    let r = client().get(format!("{}/api/audit", s.url)).bearer_auth(TOKEN).send().await.unwrap();
    let audit: Value = r.json().await.unwrap();
    let ignored: Vec<&Value> = audit.as_array().unwrap().iter().filter(|r| r["kind"] == "channel_ignored").collect();
    assert_eq!(ignored.len(), 1);
    assert_eq!(ignored[0]["data"]["sender"], "31337");
    assert_eq!(posted.lock().unwrap().len(), 2, "the bot answered itself or a stranger");
    s.stop().await;
}
