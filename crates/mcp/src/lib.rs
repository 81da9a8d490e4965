//! clawcage's MCP client: the Model Context Protocol's stdio transport
//! (newline-delimited JSON-RPC 2.0 messages) to a server that runs inside
//! the task's sandbox, under the task's policy, like any other command.
//!
//! - [`config`]: `[mcp.NAME] command = [...]` tables.
//! - [`Client`]: `initialize`, `notifications/initialized`, `tools/list`
//!   (with pagination), `tools/call`; requests from the server are answered
//!   "method not found", notifications are skipped, every wait is bounded.
//! - [`qualified_name`] / [`split_qualified`]: tools are offered to the model
//!   as `mcp__SERVER__TOOL`.

pub mod config;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The protocol revision we speak.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// Longest message line accepted from a server.
pub const MAX_LINE: usize = 8 * 1024 * 1024;

/// Why talking to an MCP server failed.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// Writing to or reading from the server failed, or it closed its stdout.
    #[error("MCP server {server}: {detail}")]
    Transport {
        /// Server name.
        server: String,
        /// What happened.
        detail: String,
    },
    /// The server sent something that is not JSON-RPC 2.0 as the spec says.
    #[error("MCP server {server}: protocol: {detail}")]
    Protocol {
        /// Server name.
        server: String,
        /// What was wrong.
        detail: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("MCP server {server}: {method} failed: {message} (code {code})")]
    Rpc {
        /// Server name.
        server: String,
        /// The method called.
        method: String,
        /// JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// No answer in time.
    #[error("MCP server {server}: no answer to {method} within {secs} s")]
    Timeout {
        /// Server name.
        server: String,
        /// The method called.
        method: String,
        /// The limit.
        secs: u64,
    },
}

/// One tool a server offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Its name on the server.
    pub name: String,
    /// What it does (for the model).
    #[serde(default)]
    pub description: String,
    /// JSON Schema of its arguments.
    #[serde(rename = "inputSchema", default = "empty_schema")]
    pub input_schema: Value,
}

fn empty_schema() -> Value {
    json!({"type": "object"})
}

/// The result of `tools/call`, flattened for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// The text content blocks, joined by newlines (other blocks are named).
    pub text: String,
    /// The server reported the call as failed.
    pub is_error: bool,
}

/// `mcp__SERVER__TOOL`: the name the model sees.
pub fn qualified_name(server: &str, tool: &str) -> String {
    format!("mcp__{server}__{tool}")
}

/// `(server, tool)` of a qualified name.
pub fn split_qualified(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix("mcp__")?.split_once("__")
}

enum Line {
    Msg(String),
    TooLong,
    End(String),
}

/// A client for one server, over its stdin (`W`) and stdout.
pub struct Client<W: Write> {
    server: String,
    input: W,
    lines: Receiver<Line>,
    next_id: u64,
    timeout: Duration,
}

impl<W: Write> std::fmt::Debug for Client<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("server", &self.server).finish()
    }
}

impl<W: Write> Client<W> {
    /// A client writing requests to `input` and reading the server's
    /// `output` on a thread of its own (so that every wait can be bounded by
    /// `timeout`). Call [`Client::initialize`] first.
    pub fn new(server: &str, input: W, output: impl Read + Send + 'static, timeout: Duration) -> Client<W> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("mcp-{server}"))
            .spawn(move || {
                let mut reader = BufReader::new(output);
                loop {
                    let mut buf = Vec::new();
                    let got = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf);
                    let line = match got {
                        Ok(0) => Line::End("the server closed its stdout".into()),
                        Ok(_) if buf.len() > MAX_LINE => Line::TooLong,
                        Ok(_) => Line::Msg(String::from_utf8_lossy(&buf).into_owned()),
                        Err(e) => Line::End(e.to_string()),
                    };
                    let last = !matches!(line, Line::Msg(_));
                    if tx.send(line).is_err() || last {
                        return;
                    }
                }
            })
            .ok();
        Client { server: server.to_string(), input, lines: rx, next_id: 1, timeout }
    }

    /// How long each later request may wait for its answer.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    fn transport(&self, detail: String) -> McpError {
        McpError::Transport { server: self.server.clone(), detail }
    }

    fn protocol(&self, detail: String) -> McpError {
        McpError::Protocol { server: self.server.clone(), detail }
    }

    fn send(&mut self, msg: &Value) -> Result<(), McpError> {
        let mut line = msg.to_string();
        line.push('\n');
        self.input
            .write_all(line.as_bytes())
            .and_then(|()| self.input.flush())
            .map_err(|e| self.transport(e.to_string()))
    }

    /// Send a request and wait for its response (skipping notifications,
    /// refusing server-to-client requests).
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, McpError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(Line::Msg(l)) => l,
                Ok(Line::TooLong) => return Err(self.protocol(format!("a message longer than {MAX_LINE} bytes"))),
                Ok(Line::End(why)) => return Err(self.transport(why)),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(McpError::Timeout {
                        server: self.server.clone(),
                        method: method.into(),
                        secs: self.timeout.as_secs(),
                    })
                }
                Err(RecvTimeoutError::Disconnected) => return Err(self.transport("the reader stopped".into())),
            };
            if line.trim().is_empty() {
                continue;
            }
            let msg: Value = serde_json::from_str(&line)
                .map_err(|e| self.protocol(format!("not JSON ({e}): {:.200}", line.trim())))?;
            if msg.get("jsonrpc") != Some(&json!("2.0")) {
                return Err(self.protocol(format!("not JSON-RPC 2.0: {:.200}", line.trim())));
            }
            match (msg.get("id"), msg.get("method")) {
                (None, Some(_)) => continue, // a notification (log, progress): nothing to answer
                (Some(rid), Some(_)) => {
                    // The server asks us something (sampling, roots): we offer none.
                    let rid = rid.clone();
                    self.send(&json!({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "not supported by clawcage"}}))?;
                    continue;
                }
                (Some(rid), None) if rid == &json!(id) => {
                    if let Some(err) = msg.get("error") {
                        return Err(McpError::Rpc {
                            server: self.server.clone(),
                            method: method.into(),
                            code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                            message: err.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
                        });
                    }
                    return msg.get("result").cloned().ok_or_else(|| self.protocol("a response without result".into()));
                }
                _ => return Err(self.protocol(format!("an unexpected message: {:.200}", line.trim()))),
            }
        }
    }

    /// `initialize`, then `notifications/initialized`. Returns the server's
    /// `serverInfo` (name, version) as sent.
    pub fn initialize(&mut self) -> Result<Value, McpError> {
        let result = self.request(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "clawcage", "version": env!("CARGO_PKG_VERSION")},
            }),
        )?;
        if result.get("protocolVersion").and_then(Value::as_str).is_none() {
            return Err(self.protocol("initialize result without protocolVersion".into()));
        }
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(result.get("serverInfo").cloned().unwrap_or(Value::Null))
    }

    /// Every tool the server offers (`tools/list`, following `nextCursor`).
    pub fn list_tools(&mut self) -> Result<Vec<Tool>, McpError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = self.request("tools/list", params)?;
            let page: Vec<Tool> = serde_json::from_value(result.get("tools").cloned().unwrap_or(Value::Null))
                .map_err(|e| self.protocol(format!("tools/list: {e}")))?;
            tools.extend(page);
            cursor = result.get("nextCursor").and_then(Value::as_str).map(str::to_string);
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        Err(self.protocol("tools/list: more than 100 pages".into()))
    }

    /// `tools/call` with `arguments`.
    pub fn call_tool(&mut self, name: &str, arguments: Value) -> Result<CallResult, McpError> {
        let result = self.request("tools/call", json!({"name": name, "arguments": arguments}))?;
        let is_error = result.get("isError").and_then(Value::as_bool).unwrap_or(false);
        let mut parts = Vec::new();
        for block in result.get("content").and_then(Value::as_array).into_iter().flatten() {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => parts.push(block.get("text").and_then(Value::as_str).unwrap_or("").to_string()),
                Some(other) => parts.push(format!("[{other} content omitted]")),
                None => {}
            }
        }
        if parts.is_empty() {
            if let Some(s) = result.get("structuredContent") {
                parts.push(s.to_string());
            }
        }
        Ok(CallResult { text: parts.join("\n"), is_error })
    }
}
