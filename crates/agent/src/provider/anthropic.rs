//! The Anthropic Messages API, streamed: `POST {base}/v1/messages` with
//! `stream: true`, read as the SSE sequence message_start,
//! content_block_start / content_block_delta (text_delta, input_json_delta)
//! / content_block_stop, message_delta (stop_reason, usage), message_stop,
//! with ping and error events in between.

use super::{protocol, stream_events, Attempt, ModelRequest, Observer, ProviderConfig};
use crate::conversation::{parse_arguments, Block, ModelResponse, Speaker, StopReason, TokenUsage};
use crate::provider::ProviderError;
use serde::Serialize;
use serde_json::Value;

/// The request body, borrowing the conversation (serialised once, no copy).
#[derive(Serialize)]
pub(crate) struct Body<'a> {
    model: &'a str,
    max_tokens: u32,
    system: &'a str,
    messages: Vec<Message<'a>>,
    tools: Vec<Tool<'a>>,
    stream: bool,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Vec<Content<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Content<'a> {
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: &'a Value },
    ToolResult { tool_use_id: &'a str, content: &'a str, is_error: bool },
}

#[derive(Serialize)]
struct Tool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

/// The request body.
pub(crate) fn body<'a>(cfg: &'a ProviderConfig, req: ModelRequest<'a>) -> Body<'a> {
    let messages = req
        .turns
        .iter()
        .map(|t| Message {
            role: match t.role {
                Speaker::User => "user",
                Speaker::Assistant => "assistant",
            },
            content: t.content.iter().map(block).collect(),
        })
        .collect();
    let tools = req
        .tools
        .iter()
        .map(|t| Tool { name: &t.name, description: &t.description, input_schema: &t.input_schema })
        .collect();
    Body { model: &cfg.model, max_tokens: cfg.max_tokens, system: req.system, messages, tools, stream: true }
}

fn block(b: &Block) -> Content<'_> {
    match b {
        Block::Text { text } => Content::Text { text },
        Block::ToolUse { id, name, input, .. } => Content::ToolUse { id, name, input },
        Block::ToolResult { tool_use_id, content, is_error } => {
            Content::ToolResult { tool_use_id, content, is_error: *is_error }
        }
    }
}

/// One attempt.
pub(crate) async fn call(
    http: &reqwest::Client,
    cfg: &ProviderConfig,
    req: ModelRequest<'_>,
    obs: &mut dyn Observer,
) -> Result<ModelResponse, Attempt> {
    let mut rb = http
        .post(format!("{}/v1/messages", cfg.base_url))
        .header("anthropic-version", "2023-06-01")
        .header("accept", "text/event-stream")
        .json(&body(cfg, req));
    if let Some(key) = &cfg.api_key {
        rb = rb.header("x-api-key", key);
    }
    let mut state = State::default();
    if stream_events(cfg, rb, |ev| state.event(cfg, &ev.event, &ev.data, obs)).await? {
        return state.finish(cfg);
    }
    Err(Attempt::Retry { why: "the stream ended before message_stop".into(), after: None })
}

/// A content block being streamed.
enum Partial {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
    },
    /// Thinking and other blocks we do not keep.
    Skip,
}

#[derive(Default)]
struct State {
    blocks: Vec<(u64, Partial)>,
    done: Vec<Block>,
    usage: TokenUsage,
    stop: Option<String>,
}

impl State {
    /// Handle one event; `true` at message_stop.
    fn event(&mut self, cfg: &ProviderConfig, name: &str, data: &str, obs: &mut dyn Observer) -> Result<bool, Attempt> {
        let v: Value =
            serde_json::from_str(data).map_err(|e| protocol(cfg, format!("{name} event is not JSON ({e}): {data}")))?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(name);
        let u64_at = |p: &str| v.pointer(p).and_then(Value::as_u64);
        match kind {
            "message_start" => {
                self.usage.input = u64_at("/message/usage/input_tokens").unwrap_or(0)
                    + u64_at("/message/usage/cache_read_input_tokens").unwrap_or(0)
                    + u64_at("/message/usage/cache_creation_input_tokens").unwrap_or(0);
                self.usage.output = u64_at("/message/usage/output_tokens").unwrap_or(0);
            }
            "content_block_start" => {
                let index = u64_at("/index").ok_or_else(|| protocol(cfg, format!("no index: {data}")))?;
                let cb = v.get("content_block").cloned().unwrap_or(Value::Null);
                let str_of = |k: &str| cb.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let partial = match cb.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = str_of("text");
                        if !t.is_empty() {
                            obs.text(&t);
                        }
                        Partial::Text(t)
                    }
                    Some("tool_use") => Partial::Tool { id: str_of("id"), name: str_of("name"), json: String::new() },
                    _ => Partial::Skip,
                };
                self.blocks.push((index, partial));
            }
            "content_block_delta" => {
                let index = u64_at("/index").ok_or_else(|| protocol(cfg, format!("no index: {data}")))?;
                let Some((_, partial)) = self.blocks.iter_mut().find(|(i, _)| *i == index) else {
                    return Err(protocol(cfg, format!("delta for block {index} that never started")));
                };
                let delta = v.get("delta").cloned().unwrap_or(Value::Null);
                match (delta.get("type").and_then(Value::as_str), partial) {
                    (Some("text_delta"), Partial::Text(t)) => {
                        let piece = delta.get("text").and_then(Value::as_str).unwrap_or("");
                        obs.text(piece);
                        t.push_str(piece);
                    }
                    (Some("input_json_delta"), Partial::Tool { json, .. }) => {
                        json.push_str(delta.get("partial_json").and_then(Value::as_str).unwrap_or(""));
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = u64_at("/index").ok_or_else(|| protocol(cfg, format!("no index: {data}")))?;
                if let Some(pos) = self.blocks.iter().position(|(i, _)| *i == index) {
                    match self.blocks.remove(pos).1 {
                        Partial::Text(text) => self.done.push(Block::Text { text }),
                        Partial::Tool { id, name, json } => {
                            let (input, invalid) = parse_arguments(&json);
                            self.done.push(Block::ToolUse { id, name, input, invalid });
                        }
                        Partial::Skip => {}
                    }
                }
            }
            "message_delta" => {
                if let Some(s) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop = Some(s.to_string());
                }
                if let Some(o) = u64_at("/usage/output_tokens") {
                    self.usage.output = o;
                }
                if let Some(i) = u64_at("/usage/input_tokens") {
                    self.usage.input = self.usage.input.max(i);
                }
            }
            "message_stop" => return Ok(true),
            "ping" => {}
            "error" => {
                let etype = v.pointer("/error/type").and_then(Value::as_str).unwrap_or("error");
                let msg = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("");
                let why = format!("{etype}: {msg}");
                return Err(match etype {
                    "overloaded_error" | "api_error" | "rate_limit_error" => Attempt::Retry { why, after: None },
                    _ => Attempt::Fatal(ProviderError::Api {
                        provider: cfg.provider.clone(),
                        status: 200,
                        message: why,
                        hint: String::new(),
                    }),
                });
            }
            _ => {} // new event types are ignored, as the API asks
        }
        Ok(false)
    }

    fn finish(mut self, cfg: &ProviderConfig) -> Result<ModelResponse, Attempt> {
        // Blocks never stopped (a server that skips content_block_stop).
        for (_, partial) in std::mem::take(&mut self.blocks) {
            match partial {
                Partial::Text(text) => self.done.push(Block::Text { text }),
                Partial::Tool { id, name, json } => {
                    let (input, invalid) = parse_arguments(&json);
                    self.done.push(Block::ToolUse { id, name, input, invalid });
                }
                Partial::Skip => {}
            }
        }
        let stop = match self.stop.as_deref() {
            Some("end_turn") | Some("stop_sequence") => StopReason::EndTurn,
            Some("tool_use") => StopReason::ToolUse,
            Some("max_tokens") => StopReason::MaxTokens,
            Some(other) => StopReason::Other(other.to_string()),
            None if self.done.iter().any(|b| matches!(b, Block::ToolUse { .. })) => StopReason::ToolUse,
            None => return Err(protocol(cfg, "message_stop without a stop_reason".into())),
        };
        Ok(ModelResponse { content: self.done, stop, usage: self.usage })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::conversation::{ToolSpec, Turn};
    use serde_json::json;

    #[test]
    fn the_body_is_the_messages_api_shape() {
        let cfg =
            ProviderConfig::from_spec("anthropic:m", &|k| (k == "ANTHROPIC_API_KEY").then(|| "k".into())).unwrap();
        let turns = vec![
            Turn::user_text("hi"),
            Turn {
                role: Speaker::Assistant,
                content: vec![
                    Block::Text { text: "ok".into() },
                    Block::ToolUse {
                        id: "t1".into(),
                        name: "bash".into(),
                        input: json!({"command": "ls"}),
                        invalid: None,
                    },
                ],
            },
            Turn {
                role: Speaker::User,
                content: vec![Block::ToolResult { tool_use_id: "t1".into(), content: "out".into(), is_error: true }],
            },
        ];
        let tools =
            vec![ToolSpec { name: "bash".into(), description: "run".into(), input_schema: json!({"type": "object"}) }];
        let req = ModelRequest { system: "sys", turns: &turns, tools: &tools };
        assert_eq!(
            serde_json::to_value(body(&cfg, req)).unwrap(),
            json!({
                "model": "m", "max_tokens": 8192, "system": "sys", "stream": true,
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "ok"},
                        {"type": "tool_use", "id": "t1", "name": "bash", "input": {"command": "ls"}},
                    ]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "out", "is_error": true}]},
                ],
                "tools": [{"name": "bash", "description": "run", "input_schema": {"type": "object"}}],
            })
        );
    }
}
