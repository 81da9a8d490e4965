//! OpenAI-compatible Chat Completions, streamed: `POST {base}/chat/completions`
//! with `stream: true` and `stream_options.include_usage`, read as `data:`
//! chunks whose `choices[0].delta` carries text and `tool_calls` fragments
//! (index, id, function.name, pieces of function.arguments), then
//! `finish_reason`, a usage chunk, and `data: [DONE]`. Ollama's and vLLM's
//! `/v1` endpoints speak the same.

use super::{protocol, stream_events, Attempt, ModelRequest, Observer, ProviderConfig};
use crate::conversation::{parse_arguments, Block, ModelResponse, Speaker, StopReason, TokenUsage};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;

/// The request body, borrowing the conversation where the wire allows.
#[derive(Serialize)]
pub(crate) struct Body<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    tools: Vec<Tool<'a>>,
    stream: bool,
    stream_options: StreamOptions,
    /// OpenAI's own API wants max_completion_tokens; compatible servers know max_tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    /// `null` for an assistant turn of tool calls only.
    content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

impl<'a> Message<'a> {
    fn new(role: &'static str, content: Option<Cow<'a, str>>) -> Message<'a> {
        Message { role, content, tool_call_id: None, tool_calls: Vec::new() }
    }
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    /// The arguments as a JSON string, as the wire has them.
    arguments: String,
}

#[derive(Serialize)]
struct Tool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

/// The request body.
pub(crate) fn body<'a>(cfg: &'a ProviderConfig, req: ModelRequest<'a>) -> Body<'a> {
    let mut messages = vec![Message::new("system", Some(Cow::Borrowed(req.system)))];
    for t in req.turns {
        match t.role {
            Speaker::User => {
                for b in &t.content {
                    match b {
                        Block::ToolResult { tool_use_id, content, is_error } => {
                            let content = if *is_error {
                                Cow::Owned(format!("ERROR: {content}"))
                            } else {
                                Cow::Borrowed(content.as_str())
                            };
                            let mut m = Message::new("tool", Some(content));
                            m.tool_call_id = Some(tool_use_id);
                            messages.push(m);
                        }
                        Block::Text { text } => messages.push(Message::new("user", Some(Cow::Borrowed(text)))),
                        Block::ToolUse { .. } => {}
                    }
                }
            }
            Speaker::Assistant => {
                let text = t.text();
                let mut m = Message::new("assistant", (!text.is_empty()).then_some(Cow::Owned(text)));
                m.tool_calls = t
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolUse { id, name, input, .. } => Some(ToolCall {
                            id,
                            kind: "function",
                            function: FunctionCall { name, arguments: input.to_string() },
                        }),
                        _ => None,
                    })
                    .collect();
                messages.push(m);
            }
        }
    }
    let tools = req
        .tools
        .iter()
        .map(|t| Tool {
            kind: "function",
            function: Function { name: &t.name, description: &t.description, parameters: &t.input_schema },
        })
        .collect();
    let own_api = cfg.provider == "openai";
    Body {
        model: &cfg.model,
        messages,
        tools,
        stream: true,
        stream_options: StreamOptions { include_usage: true },
        max_completion_tokens: own_api.then_some(cfg.max_tokens),
        max_tokens: (!own_api).then_some(cfg.max_tokens),
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
        .post(format!("{}/chat/completions", cfg.base_url))
        .header("accept", "text/event-stream")
        .json(&body(cfg, req));
    if let Some(key) = &cfg.api_key {
        rb = rb.bearer_auth(key);
    }
    let mut state = State::default();
    // Some servers close the stream after finish_reason without [DONE].
    if stream_events(cfg, rb, |ev| state.chunk(cfg, &ev.data, obs)).await? || state.finish_reason.is_some() {
        return Ok(state.finish());
    }
    Err(Attempt::Retry { why: "the stream ended before finish_reason".into(), after: None })
}

#[derive(Default)]
struct Call {
    index: u64,
    id: String,
    name: String,
    arguments: String,
}

#[derive(Default)]
struct State {
    text: String,
    calls: Vec<Call>,
    finish_reason: Option<String>,
    usage: TokenUsage,
}

impl State {
    /// Handle one `data:` payload; `true` at `[DONE]`.
    fn chunk(&mut self, cfg: &ProviderConfig, data: &str, obs: &mut dyn Observer) -> Result<bool, Attempt> {
        if data.trim() == "[DONE]" {
            return Ok(true);
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| protocol(cfg, format!("chunk is not JSON ({e}): {data}")))?;
        if let Some(err) = v.get("error") {
            let msg = err.get("message").and_then(Value::as_str).unwrap_or("error").to_string();
            return Err(Attempt::Retry { why: format!("error in stream: {msg}"), after: None });
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage.input = u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(self.usage.input);
            self.usage.output = u.get("completion_tokens").and_then(Value::as_u64).unwrap_or(self.usage.output);
        }
        let Some(choice) = v.get("choices").and_then(Value::as_array).and_then(|c| c.first()) else {
            return Ok(false);
        };
        if let Some(delta) = choice.get("delta") {
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                if !t.is_empty() {
                    obs.text(t);
                    self.text.push_str(t);
                }
            }
            for tc in delta.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
                let index = tc.get("index").and_then(Value::as_u64).unwrap_or(self.calls.len() as u64);
                let pos = match self.calls.iter().position(|c| c.index == index) {
                    Some(p) => p,
                    None => {
                        self.calls.push(Call { index, ..Call::default() });
                        self.calls.len() - 1
                    }
                };
                let call = &mut self.calls[pos];
                if let Some(id) = tc.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                    call.id = id.to_string();
                }
                let f = tc.get("function");
                if let Some(n) = f.and_then(|f| f.get("name")).and_then(Value::as_str) {
                    call.name.push_str(n);
                }
                if let Some(a) = f.and_then(|f| f.get("arguments")).and_then(Value::as_str) {
                    call.arguments.push_str(a);
                }
            }
        }
        if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(r.to_string());
        }
        Ok(false)
    }

    fn finish(self) -> ModelResponse {
        let mut content = Vec::new();
        if !self.text.is_empty() {
            content.push(Block::Text { text: self.text });
        }
        let has_calls = !self.calls.is_empty();
        for (n, c) in self.calls.into_iter().enumerate() {
            let (input, invalid) = parse_arguments(&c.arguments);
            // Some compatible servers send no id: make one the result can echo.
            let id = if c.id.is_empty() { format!("call_{n}") } else { c.id };
            content.push(Block::ToolUse { id, name: c.name, input, invalid });
        }
        let stop = match self.finish_reason.as_deref() {
            _ if has_calls => StopReason::ToolUse,
            Some("stop") | None => StopReason::EndTurn,
            Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
            Some("length") => StopReason::MaxTokens,
            Some(other) => StopReason::Other(other.to_string()),
        };
        ModelResponse { content, stop, usage: self.usage }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::conversation::{ToolSpec, Turn};
    use serde_json::json;

    #[test]
    fn the_body_is_the_chat_completions_shape() {
        let turns = vec![
            Turn::user_text("hi"),
            Turn {
                role: Speaker::Assistant,
                content: vec![Block::ToolUse {
                    id: "c1".into(),
                    name: "bash".into(),
                    input: json!({"command": "ls"}),
                    invalid: None,
                }],
            },
            Turn {
                role: Speaker::User,
                content: vec![
                    Block::ToolResult { tool_use_id: "c1".into(), content: "bad".into(), is_error: true },
                    Block::Text { text: "more".into() },
                ],
            },
            Turn { role: Speaker::Assistant, content: vec![Block::Text { text: "done".into() }] },
        ];
        let tools =
            vec![ToolSpec { name: "bash".into(), description: "run".into(), input_schema: json!({"type": "object"}) }];
        let req = ModelRequest { system: "sys", turns: &turns, tools: &tools };
        let messages = json!([
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": "{\"command\":\"ls\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "ERROR: bad"},
            {"role": "user", "content": "more"},
            {"role": "assistant", "content": "done"},
        ]);
        let tools_json = json!([{"type": "function", "function": {"name": "bash", "description": "run", "parameters": {"type": "object"}}}]);
        let openai = ProviderConfig::from_spec("openai:g", &|k| (k == "OPENAI_API_KEY").then(|| "k".into())).unwrap();
        assert_eq!(
            serde_json::to_value(body(&openai, req)).unwrap(),
            json!({"model": "g", "messages": messages, "tools": tools_json, "stream": true,
                   "stream_options": {"include_usage": true}, "max_completion_tokens": 8192})
        );
        let ollama = ProviderConfig::from_spec("ollama:l", &|_| None).unwrap();
        let v = serde_json::to_value(body(&ollama, req)).unwrap();
        assert_eq!((v["max_tokens"].as_u64(), v.get("max_completion_tokens")), (Some(8192), None));
    }
}
