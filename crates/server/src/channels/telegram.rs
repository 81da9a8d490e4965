//! Telegram Bot API: `getUpdates` long polling, `sendMessage` with replies
//! (`reply_parameters`), answers longer than 4096 characters split. The
//! update offset and the update ids already taken are kept in the store, so
//! a restart neither replays old updates nor runs one twice; so is the
//! message each pending task answers, so its answer is still a reply after a
//! restart.

use super::{handle, split_message, Handled, Incoming};
use crate::config::Telegram;
use crate::state::{Reply, State};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Telegram's limit on one message's text.
pub const MAX_MESSAGE: usize = 4096;
/// The store key (channel `telegram`) of the next update to ask for.
const OFFSET_KEY: &str = "offset";
/// The store key (channel `telegram`) of the message task `task` answers.
fn reply_key(task: &str) -> String {
    format!("reply_to:{task}")
}
/// Seconds a `getUpdates` call waits for news.
const LONG_POLL_SECS: u64 = 25;

#[derive(Deserialize)]
struct Updates {
    ok: bool,
    #[serde(default)]
    result: Vec<Update>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    #[serde(default)]
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    #[serde(default)]
    from: Option<User>,
    chat: Chat,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: i64,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

/// Run the Telegram channel until shutdown: poll for messages, answer them,
/// and post tasks' answers (from `answers`, subscribed to `state.replies`
/// before the queue starts, so none finished early is missed) to their chats.
pub async fn run(state: Arc<State>, cfg: Telegram, answers: broadcast::Receiver<Reply>) {
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(LONG_POLL_SECS + 10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "telegram: no HTTP client");
            return;
        }
    };
    let bot = Bot { http, base: format!("{}/bot{}", cfg.api_base, cfg.token.0) };
    let poster = tokio::spawn(post_answers(Arc::clone(&state), bot.clone(), answers));
    let mut shutdown = state.shutdown.subscribe();
    // Where the last run stopped: a restart does not see old updates again.
    let mut offset = match state.db.call(|s| s.channel_value("telegram", OFFSET_KEY)).await {
        Ok(v) => v.and_then(|v| v.parse::<i64>().ok()),
        Err(e) => {
            tracing::error!(error = %e, "telegram: cannot read the stored update offset; the channel stays off");
            poster.abort();
            return;
        }
    };
    loop {
        let poll = bot.get_updates(offset);
        let updates = tokio::select! {
            u = poll => u,
            _ = shutdown.wait_for(|d| *d) => break,
        };
        let updates = match updates {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "telegram: getUpdates failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    _ = shutdown.wait_for(|d| *d) => break,
                }
            }
        };
        for u in updates {
            offset = Some(u.update_id + 1);
            // Taken (committed) before it is acted on: at most once, even
            // when a crash comes before the offset is stored.
            let id = u.update_id;
            let fresh = state
                .db
                .call(move |s| {
                    let fresh = s.take_channel_event("telegram", &id.to_string())?;
                    s.set_channel_value("telegram", OFFSET_KEY, &(id + 1).to_string())?;
                    Ok(fresh)
                })
                .await;
            match fresh {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(error = %e, update = id, "telegram: cannot record the update; skipped");
                    continue;
                }
            }
            let Some(m) = u.message else { continue };
            let (Some(from), Some(text)) = (m.from, m.text) else { continue };
            let msg = Incoming {
                channel: "telegram",
                sender: from.id.to_string(),
                conversation: format!("telegram:{}", m.chat.id),
                group: cfg.group.clone(),
                text,
            };
            let answer = match handle(&state, &msg).await {
                Handled::Ignored => continue,
                Handled::Answer(a) => a,
                Handled::Queued { task, text } => {
                    // Which message the task answers, kept in the store so
                    // its answer is a reply even after a restart.
                    let (key, reply_to) = (reply_key(&task), m.message_id.to_string());
                    if let Err(e) = state.db.call(move |s| s.set_channel_value("telegram", &key, &reply_to)).await {
                        tracing::warn!(error = %e, task = %task, "telegram: cannot store the message to reply to");
                    }
                    text
                }
            };
            if let Err(e) = bot.send(m.chat.id, &answer, Some(m.message_id)).await {
                tracing::warn!(error = %e, "telegram: sendMessage failed");
            }
        }
    }
    poster.abort();
}

async fn post_answers(state: Arc<State>, bot: Bot, mut rx: broadcast::Receiver<Reply>) {
    loop {
        let r = match rx.recv().await {
            Ok(r) => r,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(skipped = n, "telegram: answers skipped");
                continue;
            }
            Err(_) => return,
        };
        let Some(chat) = r.conversation.strip_prefix("telegram:").and_then(|c| c.parse::<i64>().ok()) else {
            continue;
        };
        // The last answer of a task takes (removes) its stored message id.
        let (key, last) = (reply_key(&r.task), r.last);
        let stored = state
            .db
            .call(
                move |s| if last { s.take_channel_value("telegram", &key) } else { s.channel_value("telegram", &key) },
            )
            .await;
        let reply_to = match stored {
            Ok(v) => v.and_then(|v| v.parse::<i64>().ok()),
            Err(e) => {
                tracing::warn!(error = %e, task = %r.task, "telegram: cannot read the message to reply to");
                None
            }
        };
        if let Err(e) = bot.send(chat, &r.text, reply_to).await {
            tracing::warn!(error = %e, task = %r.task, "telegram: posting the answer failed");
        }
    }
}

#[derive(Clone)]
struct Bot {
    http: reqwest::Client,
    base: String,
}

impl Bot {
    async fn get_updates(&self, offset: Option<i64>) -> Result<Vec<Update>, String> {
        let mut body = json!({"timeout": LONG_POLL_SECS, "allowed_updates": ["message"]});
        if let Some(o) = offset {
            body["offset"] = json!(o);
        }
        let r = self.http.post(format!("{}/getUpdates", self.base)).json(&body).send().await.map_err(redact)?;
        let u: Updates = r.json().await.map_err(redact)?;
        if !u.ok {
            return Err(u.description.unwrap_or_else(|| "not ok".into()));
        }
        Ok(u.result)
    }

    /// Send `text` (split at the limit); the first piece replies to `reply_to`.
    async fn send(&self, chat: i64, text: &str, reply_to: Option<i64>) -> Result<(), String> {
        for (i, piece) in split_message(text, MAX_MESSAGE).iter().enumerate() {
            let mut body = json!({"chat_id": chat, "text": piece});
            if let (0, Some(id)) = (i, reply_to) {
                body["reply_parameters"] = json!({"message_id": id, "allow_sending_without_reply": true});
            }
            let r = self.http.post(format!("{}/sendMessage", self.base)).json(&body).send().await.map_err(redact)?;
            if !r.status().is_success() {
                return Err(format!("sendMessage: HTTP {}", r.status()));
            }
        }
        Ok(())
    }
}

/// A reqwest error without its URL (which holds the bot token).
fn redact(e: reqwest::Error) -> String {
    e.without_url().to_string()
}
