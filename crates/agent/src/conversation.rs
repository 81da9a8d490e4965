//! The conversation as the agent keeps it, independent of any provider's
//! wire format: turns of text, tool uses and tool results. Providers
//! translate it to and from their own API; the store keeps it as JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One piece of a turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// Text from the person or the model.
    Text {
        /// The text.
        text: String,
    },
    /// The model asks for a tool call.
    ToolUse {
        /// The provider's id for this call (echoed in the result).
        id: String,
        /// Tool name as the model wrote it.
        name: String,
        /// Arguments (an object; `{}` when they were not valid JSON).
        input: Value,
        /// Set when the arguments the model sent were not a JSON object:
        /// the parse error and the raw text. The call is answered with an error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invalid: Option<String>,
    },
    /// A tool's result, handed back to the model.
    ToolResult {
        /// The call it answers.
        tool_use_id: String,
        /// What the tool produced (already framed as untrusted data).
        content: String,
        /// Whether the call failed.
        is_error: bool,
    },
}

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    /// The person, or tool results on their behalf.
    User,
    /// The model.
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Who.
    pub role: Speaker,
    /// What.
    pub content: Vec<Block>,
}

impl Turn {
    /// A user turn with one text block.
    pub fn user_text(text: impl Into<String>) -> Turn {
        Turn { role: Speaker::User, content: vec![Block::Text { text: text.into() }] }
    }

    /// Whether every block is a tool result (kept as role `tool` in the store).
    pub fn is_tool_results(&self) -> bool {
        !self.content.is_empty() && self.content.iter().all(|b| matches!(b, Block::ToolResult { .. }))
    }

    /// The text blocks joined.
    pub fn text(&self) -> String {
        let parts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|b| match b {
                Block::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        parts.join("")
    }
}

/// A tool as offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Name (the built-in tools' are literals; MCP tools' are made at run time).
    pub name: std::borrow::Cow<'static, str>,
    /// What it does, for the model.
    pub description: std::borrow::Cow<'static, str>,
    /// JSON Schema of its arguments.
    pub input_schema: Value,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// It finished its answer.
    EndTurn,
    /// It wants tool calls answered.
    ToolUse,
    /// It hit the output token limit.
    MaxTokens,
    /// Anything else the provider said.
    Other(String),
}

/// Tokens used by one model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
}

/// What one model call returned.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelResponse {
    /// The assistant turn's blocks, in order.
    pub content: Vec<Block>,
    /// Why it stopped.
    pub stop: StopReason,
    /// Tokens used.
    pub usage: TokenUsage,
}

/// Parse tool arguments the model streamed: a JSON object, or `{}` plus
/// the reason it was refused (empty text means no arguments).
pub fn parse_arguments(raw: &str) -> (Value, Option<String>) {
    if raw.trim().is_empty() {
        return (Value::Object(Default::default()), None);
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => (v, None),
        Ok(other) => (Value::Object(Default::default()), Some(format!("arguments must be a JSON object, got {other}"))),
        Err(e) => (Value::Object(Default::default()), Some(format!("arguments are not valid JSON ({e}): {raw}"))),
    }
}
