//! OpenAI-compatible Chat Completions, streamed: `POST {base}/chat/completions`
//! with `stream: true` and `stream_options.include_usage`, read as `data:`
//! chunks whose `choices[0].delta` carries text and `tool_calls` fragments
//! (index, id, function.name, pieces of function.arguments), then
//! `finish_reason`, a usage chunk, and `data: [DONE]`. Ollama's and vLLM's
//! `/v1` endpoints speak the same.

use super::{failed_response, next_chunk, transport, Attempt, ModelRequest, Observer, ProviderConfig, SseParser};
use crate::conversation::{parse_arguments, Block, ModelResponse, Speaker, StopReason, TokenUsage};
use crate::provider::ProviderError;
use serde_json::{json, Value};

/// The request body.
pub(crate) fn body(cfg: &ProviderConfig, req: ModelRequest<'_>) -> Value {
    let mut messages = vec![json!({ "role": "system", "content": req.system })];
    for t in req.turns {
        match t.role {
            Speaker::User => {
                for b in &t.content {
                    match b {
                        Block::ToolResult { tool_use_id, content, is_error } => {
                            let content = if *is_error { format!("ERROR: {content}") } else { content.clone() };
                            messages.push(json!({ "role": "tool", "tool_call_id": tool_use_id, "content": content }));
                        }
                        Block::Text { text } => messages.push(json!({ "role": "user", "content": text })),
                        Block::ToolUse { .. } => {}
                    }
                }
            }
            Speaker::Assistant => {
                let text = t.text();
                let calls: Vec<Value> = t
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolUse { id, name, input, .. } => Some(json!({
                            "id": id,
                            "type": "function",
                            "function": { "name": name, "arguments": input.to_string() },
                        })),
                        _ => None,
                    })
                    .collect();
                let mut m = json!({ "role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) } });
                if !calls.is_empty() {
                    m["tool_calls"] = Value::Array(calls);
                }
                messages.push(m);
            }
        }
    }
    let tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| {
            json!({ "type": "function", "function": { "name": t.name, "description": t.description, "parameters": t.input_schema } })
        })
        .collect();
    let mut body = json!({
        "model": cfg.model,
        "messages": messages,
        "tools": tools,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    // OpenAI's own API wants max_completion_tokens; compatible servers know max_tokens.
    let key = if cfg.provider == "openai" { "max_completion_tokens" } else { "max_tokens" };
    body[key] = json!(cfg.max_tokens);
    body
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
    let resp = rb.send().await.map_err(transport)?;
    if !resp.status().is_success() {
        return Err(failed_response(cfg, resp).await);
    }
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::new();
    let mut state = State::default();
    while let Some(chunk) = next_chunk(&mut stream).await? {
        for ev in parser.feed(&chunk).map_err(|d| protocol(cfg, d))? {
            if state.chunk(cfg, &ev.data, obs)? {
                return Ok(state.finish());
            }
        }
    }
    if let Some(ev) = parser.finish() {
        if state.chunk(cfg, &ev.data, obs)? {
            return Ok(state.finish());
        }
    }
    if state.finish_reason.is_some() {
        // Some servers close the stream without [DONE].
        return Ok(state.finish());
    }
    Err(Attempt::Retry { why: "the stream ended before finish_reason".into(), after: None })
}

fn protocol(cfg: &ProviderConfig, detail: String) -> Attempt {
    Attempt::Fatal(ProviderError::Protocol { provider: cfg.provider.clone(), detail })
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
