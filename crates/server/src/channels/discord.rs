//! Discord: the gateway websocket (HELLO → IDENTIFY with the message
//! intents → READY, HEARTBEAT at the interval HELLO gave, MESSAGE_CREATE
//! dispatches; reconnect on close, RECONNECT or INVALID_SESSION) and the
//! REST API for answers (`POST /channels/{id}/messages`, replying to the
//! message, split at 2000 characters). Each channel is a conversation.

use super::{handle, split_message, Handled, Incoming};
use crate::config::Discord;
use crate::state::{Reply, State};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Discord's limit on one message's content.
pub const MAX_MESSAGE: usize = 2000;
/// GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT.
pub const INTENTS: u64 = (1 << 9) | (1 << 12) | (1 << 15);

/// Run the Discord channel until shutdown. `answers` is subscribed by the
/// caller before the queue starts, so the answer of a task resumed at
/// start-up is not missed.
pub async fn run(state: Arc<State>, cfg: Discord, answers: tokio::sync::broadcast::Receiver<Reply>) {
    let replies_to: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let rest = Rest { http: reqwest::Client::new(), base: cfg.api_base.clone(), token: cfg.token.0.clone() };
    let poster = tokio::spawn(post_answers(rest.clone(), Arc::clone(&replies_to), answers));
    let mut shutdown = state.shutdown.subscribe();
    loop {
        let session = session(&state, &cfg, &rest, &replies_to);
        tokio::select! {
            r = session => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "discord: gateway session ended; reconnecting");
                }
            }
            _ = shutdown.wait_for(|d| *d) => break,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.wait_for(|d| *d) => break,
        }
    }
    poster.abort();
}

/// One gateway connection, until it closes or asks to reconnect.
async fn session(
    state: &Arc<State>,
    cfg: &Discord,
    rest: &Rest,
    replies_to: &Arc<Mutex<HashMap<String, String>>>,
) -> Result<(), String> {
    let (ws, _) = tokio_tungstenite::connect_async(cfg.gateway.as_str()).await.map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = ws.split();
    let hello = next_json(&mut rx).await?;
    if hello["op"] != 10 {
        return Err(format!("expected HELLO (op 10), got op {}", hello["op"]));
    }
    let interval =
        hello["d"]["heartbeat_interval"].as_u64().filter(|i| *i > 0).ok_or("HELLO without heartbeat_interval")?;
    let identify = json!({"op": 2, "d": {
        "token": cfg.token.0, "intents": INTENTS,
        "properties": {"os": "linux", "browser": "clawcage", "device": "clawcage"}
    }});
    tx.send(Ws::Text(identify.to_string().into())).await.map_err(|e| e.to_string())?;
    let mut seq: Option<u64> = None;
    let mut me: Option<String> = None;
    let mut beat = tokio::time::interval(Duration::from_millis(interval));
    beat.tick().await;
    loop {
        tokio::select! {
            _ = beat.tick() => {
                let hb = json!({"op": 1, "d": seq});
                tx.send(Ws::Text(hb.to_string().into())).await.map_err(|e| e.to_string())?;
            }
            frame = next_json(&mut rx) => {
                let v = frame?;
                if let Some(s) = v["s"].as_u64() {
                    seq = Some(s);
                }
                match v["op"].as_u64() {
                    Some(0) => match v["t"].as_str() {
                        Some("READY") => me = v["d"]["user"]["id"].as_str().map(str::to_string),
                        Some("MESSAGE_CREATE") => on_message(state, cfg, rest, replies_to, &v["d"], me.as_deref()).await,
                        _ => {}
                    },
                    Some(1) => {
                        let hb = json!({"op": 1, "d": seq});
                        tx.send(Ws::Text(hb.to_string().into())).await.map_err(|e| e.to_string())?;
                    }
                    Some(7) => return Err("the gateway asked to reconnect".into()),
                    Some(9) => return Err("invalid session".into()),
                    _ => {} // 11 HEARTBEAT_ACK and others
                }
            }
        }
    }
}

async fn next_json<S>(rx: &mut S) -> Result<Value, String>
where
    S: futures_util::Stream<Item = Result<Ws, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match rx.next().await {
            None => return Err("gateway closed".into()),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(Ws::Text(t))) => return serde_json::from_str(t.as_str()).map_err(|e| e.to_string()),
            Some(Ok(Ws::Close(c))) => return Err(format!("gateway closed: {c:?}")),
            Some(Ok(_)) => {} // ping/pong/binary
        }
    }
}

async fn on_message(
    state: &Arc<State>,
    cfg: &Discord,
    rest: &Rest,
    replies_to: &Arc<Mutex<HashMap<String, String>>>,
    d: &Value,
    me: Option<&str>,
) {
    let author = d["author"]["id"].as_str().unwrap_or_default();
    if d["author"]["bot"] == true || Some(author) == me {
        return;
    }
    let (Some(channel), Some(id), Some(text)) = (d["channel_id"].as_str(), d["id"].as_str(), d["content"].as_str())
    else {
        return;
    };
    let msg = Incoming {
        channel: "discord",
        sender: author.to_string(),
        conversation: format!("discord:{channel}"),
        group: cfg.group.clone(),
        text: text.to_string(),
    };
    let answer = match handle(state, &msg).await {
        Handled::Ignored => return,
        Handled::Answer(a) => a,
        Handled::Queued { task, text } => {
            replies_to.lock().unwrap_or_else(|p| p.into_inner()).insert(task, id.to_string());
            text
        }
    };
    if let Err(e) = rest.send(channel, &answer, Some(id)).await {
        tracing::warn!(error = %e, "discord: create message failed");
    }
}

async fn post_answers(
    rest: Rest,
    replies_to: Arc<Mutex<HashMap<String, String>>>,
    mut rx: tokio::sync::broadcast::Receiver<Reply>,
) {
    loop {
        let r = match rx.recv().await {
            Ok(r) => r,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let Some(channel) = r.conversation.strip_prefix("discord:") else { continue };
        let reply_to = {
            let mut m = replies_to.lock().unwrap_or_else(|p| p.into_inner());
            if r.last {
                m.remove(&r.task)
            } else {
                m.get(&r.task).cloned()
            }
        };
        if let Err(e) = rest.send(channel, &r.text, reply_to.as_deref()).await {
            tracing::warn!(error = %e, task = %r.task, "discord: posting the answer failed");
        }
    }
}

#[derive(Clone)]
struct Rest {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Rest {
    async fn send(&self, channel: &str, text: &str, reply_to: Option<&str>) -> Result<(), String> {
        if !channel.bytes().all(|b| b.is_ascii_digit()) || channel.is_empty() {
            return Err(format!("{channel:?} is not a channel id"));
        }
        for (i, piece) in split_message(text, MAX_MESSAGE).iter().enumerate() {
            let mut body = json!({"content": piece, "allowed_mentions": {"parse": []}});
            if let (0, Some(m)) = (i, reply_to) {
                body["message_reference"] = json!({"message_id": m, "fail_if_not_exists": false});
            }
            let r = self
                .http
                .post(format!("{}/channels/{channel}/messages", self.base))
                .header("authorization", format!("Bot {}", self.token))
                .json(&body)
                .send()
                .await
                .map_err(|e| e.without_url().to_string())?;
            if !r.status().is_success() {
                return Err(format!("create message: HTTP {}", r.status()));
            }
        }
        Ok(())
    }
}
