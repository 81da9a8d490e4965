//! Chat channels: each is a client of the chat service's real API, turning
//! messages into tasks and posting answers back. The rules are the same for
//! all of them ([`handle`]):
//!
//! - a sender with no role is ignored: no answer, an audit record
//!   (`channel_ignored`) and a counter in `/metrics`;
//! - a plain message starts a task in the channel's group if one of the
//!   sender's roles may start tasks there; the conversation (chat, thread)
//!   runs its tasks one at a time;
//! - `/approve ID [reason]` and `/deny ID [reason]` answer an approval
//!   request if one of the sender's roles may approve in that task's group;
//!   `/approvals` lists the pending ones the sender may answer.

pub mod discord;
pub mod slack;
pub mod telegram;

use crate::api;
use crate::state::State;
use serde_json::json;
use std::sync::Arc;

/// One incoming chat message.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// `telegram`, `slack` or `discord`.
    pub channel: &'static str,
    /// The sender's id on that channel (as written in `[roles]`).
    pub sender: String,
    /// Where answers go (`telegram:<chat>`, ...); also the task's conversation.
    pub conversation: String,
    /// The group tasks from this channel run in.
    pub group: String,
    /// The text.
    pub text: String,
}

/// What to answer at once (the task's own answer comes later, through
/// [`State::replies`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Unknown sender: say nothing.
    Ignored,
    /// Answer this.
    Answer(String),
    /// A task was queued; answer this.
    Queued {
        /// The task.
        task: String,
        /// The acknowledgement.
        text: String,
    },
}

/// Apply the channel rules (module docs) to one message.
pub async fn handle(state: &Arc<State>, msg: &Incoming) -> Handled {
    let rights = state.config.rights(msg.channel, &msg.sender);
    let who = format!("{}:{}", msg.channel, msg.sender);
    if rights.roles.is_empty() {
        let data = json!({"channel": msg.channel, "sender": msg.sender, "bytes": msg.text.len()});
        if let Err(e) = state.audit(None, "channel_ignored", data).await {
            tracing::error!(error = %e, "audit of an ignored message failed");
        }
        *state
            .counters
            .ignored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(msg.channel.to_string())
            .or_default() += 1;
        tracing::info!(channel = msg.channel, sender = %msg.sender, "message from an unknown sender ignored");
        return Handled::Ignored;
    }
    let text = msg.text.trim();
    let mut words = text.split_whitespace();
    let command = words.next().unwrap_or("");
    match command {
        "/approve" | "/deny" => {
            let Some(id) = words.next() else { return Handled::Answer(format!("usage: {command} ID [reason]")) };
            let reason: Vec<&str> = words.collect();
            let reason = (!reason.is_empty()).then(|| reason.join(" "));
            Handled::Answer(decide(state, &rights, &who, id, command == "/approve", reason).await)
        }
        "/approvals" => Handled::Answer(pending_for(state, &rights).await),
        _ => {
            if !state.config.may_start(&rights, &msg.group) {
                let data =
                    json!({"channel": msg.channel, "sender": msg.sender, "group": msg.group, "why": "no start right"});
                if let Err(e) = state.audit(None, "channel_refused", data).await {
                    tracing::error!(error = %e, "audit failed");
                }
                return Handled::Answer(format!("you may not start tasks in group {}", msg.group));
            }
            match api::queue_task(state, &msg.group, text, Some(msg.conversation.clone()), &who).await {
                Ok(task) => Handled::Queued { text: format!("task {} queued", task.id), task: task.id },
                Err(e) => Handled::Answer(format!("not queued: {e}")),
            }
        }
    }
}

async fn decide(
    state: &Arc<State>,
    rights: &crate::config::Rights,
    who: &str,
    id: &str,
    yes: bool,
    reason: Option<String>,
) -> String {
    let i = id.to_string();
    let found = state
        .db
        .call(move |s| {
            let a = s.approval(&i)?;
            let task = s.task(&a.task_id)?;
            Ok((a, task))
        })
        .await;
    let Ok((_, task)) = found else { return format!("no approval request {id}") };
    let group = task.group.unwrap_or_default();
    if !state.config.may_approve(rights, &group) {
        let data = json!({"approval": id, "by": who, "why": "no approve right"});
        if let Err(e) = state.audit(Some(&task.id), "approval_refused", data).await {
            tracing::error!(error = %e, "audit failed");
        }
        return format!("you may not answer approvals in group {group}");
    }
    match api::decide_approval(state, id, yes, who, reason).await {
        Ok(a) => format!("{id} {}", a.status.as_str()),
        Err(e) => format!("{id}: {e}"),
    }
}

async fn pending_for(state: &Arc<State>, rights: &crate::config::Rights) -> String {
    let list = state
        .db
        .call(|s| {
            let mut out = Vec::new();
            for a in s.pending_approvals(None)? {
                let task = s.task(&a.task_id)?;
                out.push((a, task.group.unwrap_or_default()));
            }
            Ok(out)
        })
        .await
        .unwrap_or_default();
    let lines: Vec<String> = list
        .iter()
        .filter(|(_, g)| state.config.may_approve(rights, g))
        .map(|(a, _)| format!("{} task {} {}: {}", a.id, a.task_id, a.kind.as_str(), a.subject))
        .collect();
    if lines.is_empty() {
        "no pending approvals".into()
    } else {
        lines.join("\n")
    }
}

/// Split `text` into pieces of at most `max` characters, preferring line
/// breaks; joined again they are `text`.
pub fn split_message(text: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max {
        let cut = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let head = &rest[..cut];
        let at = match head.rfind('\n') {
            Some(nl) if nl > 0 => nl + 1,
            _ => cut,
        };
        out.push(rest[..at].to_string());
        rest = &rest[at..];
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// How often pending approvals are looked for.
const APPROVAL_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Tell each chat conversation about approval requests of its tasks (once
/// per request), with the command to answer them, until shutdown. Who may
/// answer is decided when the answer comes ([`handle`]).
pub async fn announce_approvals(state: Arc<State>) {
    let mut told = std::collections::HashSet::new();
    let mut shutdown = state.shutdown.subscribe();
    loop {
        let pending = state
            .db
            .call(|s| {
                let mut out = Vec::new();
                for a in s.pending_approvals(None)? {
                    if let Some(c) = s.queued_conversation(&a.task_id)? {
                        out.push((a, c));
                    }
                }
                Ok(out)
            })
            .await;
        match pending {
            Ok(list) => {
                for (a, conversation) in list {
                    let chat = ["telegram:", "slack:", "discord:"].iter().any(|p| conversation.starts_with(p));
                    if !chat || !told.insert(a.id.clone()) {
                        continue;
                    }
                    let what = match &a.subject {
                        serde_json::Value::Array(v) => v
                            .iter()
                            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join(" "),
                        other => other.to_string(),
                    };
                    let text = format!(
                        "approval needed ({}) for task {}: {what}\nanswer with /approve {} or /deny {}",
                        a.kind.as_str(),
                        a.task_id,
                        a.id,
                        a.id
                    );
                    let _ =
                        state.replies.send(crate::state::Reply { conversation, task: a.task_id, text, last: false });
                }
            }
            Err(e) => tracing::warn!(error = %e, "looking for pending approvals failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(APPROVAL_POLL) => {}
            _ = shutdown.wait_for(|d| *d) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::split_message;

    #[test]
    fn long_messages_split_at_the_limit_preferring_line_breaks() {
        let long = "é".repeat(9000);
        let parts = split_message(&long, 4096);
        assert_eq!(parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(), [4096, 4096, 808]);
        assert_eq!(parts.concat(), long);
        let lines = format!("{}\n{}", "a".repeat(3000), "b".repeat(3000));
        let parts = split_message(&lines, 4096);
        assert_eq!(parts, [format!("{}\n", "a".repeat(3000)), "b".repeat(3000)]);
        assert_eq!(split_message("", 4096), [""]);
    }
}
