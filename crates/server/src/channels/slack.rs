//! Slack: the Events API (HTTP POSTs to `/channels/slack/events` on the
//! server's listener, each verified with the signing secret — `v0`
//! HMAC-SHA256 over `v0:<timestamp>:<body>`, timestamp within five minutes,
//! compared in constant time — before anything else is read), the
//! `url_verification` handshake, and `chat.postMessage` answers in the
//! message's thread. Each thread is a conversation. Event ids are taken in
//! the store, so Slack's retries of an event (`X-Slack-Retry-Num`, the same
//! `event_id`) never start a second task, before or after a restart.

use super::{handle, split_message, Handled, Incoming};
use crate::config::Slack;
use crate::state::{Reply, State};
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Requests older or newer than this (seconds) are refused (replays).
pub const MAX_SKEW_SECS: i64 = 300;
/// Slack's advice for one message's text.
const MAX_MESSAGE: usize = 4000;

/// The Events API route.
pub fn routes() -> Router<Arc<State>> {
    Router::new().route("/channels/slack/events", post(events))
}

/// Whether `signature` (`v0=<hex>`) signs `body` sent at `timestamp` with
/// `secret`, and `timestamp` is within [`MAX_SKEW_SECS`] of `now_secs`.
pub fn verify(secret: &[u8], timestamp: &str, signature: &str, body: &[u8], now_secs: i64) -> bool {
    let Ok(ts) = timestamp.parse::<i64>() else { return false };
    if (now_secs - ts).abs() > MAX_SKEW_SECS {
        return false;
    }
    let Some(hex_sig) = signature.strip_prefix("v0=") else { return false };
    let Ok(sig) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else { return false };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    event: Option<Event>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    thread_ts: Option<String>,
    #[serde(default)]
    bot_id: Option<String>,
    #[serde(default)]
    subtype: Option<String>,
}

async fn events(AxState(state): AxState<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(cfg) = state.config.channels.slack.clone() else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "the slack channel is not configured"}))).into_response();
    };
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let now = clawcage_store::time::now_ms() / 1000;
    let (ts, sig) = (h("x-slack-request-timestamp"), h("x-slack-signature"));
    if !verify(cfg.signing_secret.0.as_bytes(), ts, sig, &body, now) {
        let data = json!({"channel": "slack", "why": "bad signature or timestamp", "bytes": body.len()});
        if let Err(e) = state.audit(None, "channel_rejected", data).await {
            tracing::error!(error = %e, "audit failed");
        }
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad or stale X-Slack-Signature"}))).into_response();
    }
    let env: Envelope = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": e.to_string(), "field": "body"}))).into_response()
        }
    };
    match env.kind.as_str() {
        "url_verification" => Json(json!({"challenge": env.challenge.unwrap_or_default()})).into_response(),
        "event_callback" => {
            if let Some(id) = env.event_id.clone() {
                // Slack retries (X-Slack-Retry-Num) an event it thinks we
                // missed, with the same event_id, also across our restarts.
                let retry = h("x-slack-retry-num").to_string();
                match state.db.call(move |s| s.take_channel_event("slack", &id)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(event = ?env.event_id, retry = %retry, "slack: event seen before; dropped");
                        return StatusCode::OK.into_response();
                    }
                    Err(e) => {
                        // Not recorded: Slack will retry; better than running it twice.
                        tracing::error!(error = %e, "slack: cannot record the event");
                        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "store unavailable"})))
                            .into_response();
                    }
                }
            }
            if let Some(ev) = env.event {
                // Answer within Slack's three seconds; the work goes on after.
                tokio::spawn(on_event(state, cfg, ev));
            }
            StatusCode::OK.into_response()
        }
        _ => StatusCode::OK.into_response(),
    }
}

async fn on_event(state: Arc<State>, cfg: Slack, ev: Event) {
    if !matches!(ev.kind.as_str(), "message" | "app_mention") || ev.bot_id.is_some() || ev.subtype.is_some() {
        return; // our own answers, edits, joins
    }
    let (Some(user), Some(text), Some(channel), Some(ts)) = (ev.user, ev.text, ev.channel, ev.ts) else { return };
    let thread = ev.thread_ts.unwrap_or(ts);
    let msg = Incoming {
        channel: "slack",
        sender: user,
        conversation: format!("slack:{channel}:{thread}"),
        group: cfg.group.clone(),
        text,
    };
    let answer = match handle(&state, &msg).await {
        Handled::Ignored => return,
        Handled::Answer(a) | Handled::Queued { text: a, .. } => a,
    };
    if let Err(e) = post_message(&cfg, &channel, &thread, &answer).await {
        tracing::warn!(error = %e, "slack: chat.postMessage failed");
    }
}

/// Post tasks' answers into their threads until shutdown. `rx` is
/// subscribed by the caller before the queue starts, so the answer of a task
/// resumed at start-up is not missed.
pub async fn run(state: Arc<State>, cfg: Slack, mut rx: tokio::sync::broadcast::Receiver<Reply>) {
    let mut shutdown = state.shutdown.subscribe();
    loop {
        let r = tokio::select! {
            r = rx.recv() => r,
            _ = shutdown.wait_for(|d| *d) => return,
        };
        let r = match r {
            Ok(r) => r,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let Some((channel, thread)) = r.conversation.strip_prefix("slack:").and_then(|c| c.split_once(':')) else {
            continue;
        };
        if let Err(e) = post_message(&cfg, channel, thread, &r.text).await {
            tracing::warn!(error = %e, task = %r.task, "slack: posting the answer failed");
        }
    }
}

async fn post_message(cfg: &Slack, channel: &str, thread: &str, text: &str) -> Result<(), String> {
    let http = reqwest::Client::new();
    for piece in split_message(text, MAX_MESSAGE) {
        let r = http
            .post(format!("{}/chat.postMessage", cfg.api_base))
            .bearer_auth(&cfg.bot_token.0)
            .json(&json!({"channel": channel, "text": piece, "thread_ts": thread}))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let v: serde_json::Value = r.json().await.map_err(|e| e.without_url().to_string())?;
        if v["ok"] != true {
            return Err(format!("chat.postMessage: {}", v["error"]));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sign(secret: &str, ts: &str, body: &str) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked_with_the_secret_body_and_time_window() {
        // Slack's documented example.
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let ts = "1531420618";
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(sign(secret, ts, body), sig);
        let now = 1531420618;
        assert!(verify(secret.as_bytes(), ts, sig, body.as_bytes(), now));
        assert!(verify(secret.as_bytes(), ts, sig, body.as_bytes(), now + MAX_SKEW_SECS));
        assert!(!verify(secret.as_bytes(), ts, sig, body.as_bytes(), now + MAX_SKEW_SECS + 1), "a replay was accepted");
        assert!(!verify(b"another secret", ts, sig, body.as_bytes(), now));
        assert!(!verify(secret.as_bytes(), ts, sig, format!("{body}x").as_bytes(), now), "a changed body passed");
        assert!(!verify(secret.as_bytes(), "1531420619", sig, body.as_bytes(), now), "a changed timestamp passed");
        assert!(!verify(secret.as_bytes(), ts, &sig.replace("v0=", "v1="), body.as_bytes(), now));
        assert!(!verify(secret.as_bytes(), ts, "v0=zz", body.as_bytes(), now));
        assert!(!verify(secret.as_bytes(), "", sig, body.as_bytes(), now));
    }
}
