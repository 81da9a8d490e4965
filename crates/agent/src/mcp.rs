//! MCP servers of a task: started INSIDE the task's sandbox (a background
//! command under the task's policy, like any other), their tools offered to
//! the model as `mcp__SERVER__TOOL`, each call through the same gate, store
//! rows and audit records as any tool call. They stop with the sandbox.
//!
//! Configuration: `[mcp.NAME]` tables ([`clawcage_mcp::config`]) in the
//! file given to `clawcage agent --mcp FILE`, or named by an agent group's
//! `mcp = "FILE"`. A configured server that does not start (or does not
//! answer `initialize` and `tools/list`) fails the task: it was asked for.

use crate::conversation::ToolSpec;
use crate::runner::SandboxHandle;
use clawcage_mcp::config::Server;
use clawcage_mcp::{qualified_name, split_qualified, CallResult, Client, McpError, Tool};
use clawcage_sandbox::ExecSpec;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One `[mcp.NAME]` table.
pub use clawcage_mcp::config::Server as ServerConfig;

/// How long a server may take to answer `initialize` and `tools/list`.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Most stderr kept from a server (for error messages).
const STDERR_KEEP: usize = 4096;

/// One running server.
pub struct McpServer {
    /// Its name in the configuration.
    pub name: String,
    /// The tools it offers.
    pub tools: Vec<Tool>,
    client: Arc<Mutex<Client<File>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer").field("name", &self.name).field("tools", &self.tools.len()).finish()
    }
}

/// The servers of one task.
#[derive(Debug, Default)]
pub struct McpServers {
    servers: Vec<McpServer>,
}

/// Read `[mcp.NAME]` tables from `path`.
pub fn load_config(path: &Path) -> Result<BTreeMap<String, Server>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    clawcage_mcp::config::parse(&text, &path.display().to_string())
}

impl McpServers {
    /// Start each server in `sandbox` (environment: the sandbox's plus the
    /// server's own), `initialize` it and list its tools; each call waits at
    /// most `call_timeout`. Blocking.
    pub fn start(
        sandbox: &SandboxHandle,
        config: &BTreeMap<String, Server>,
        cwd: &Path,
        call_timeout: Duration,
    ) -> Result<McpServers, String> {
        let mut servers = Vec::new();
        for (name, server) in config {
            // The sandbox's environment as the helper made it (proxy, CA
            // bundle, secret placeholders), plus the server's own through
            // env(1), which keeps the rest.
            let mut argv = Vec::new();
            if !server.env.is_empty() {
                argv.extend(["env".to_string(), "--".to_string()]);
                argv.extend(server.env.iter().map(|(k, v)| format!("{k}={v}")));
            }
            argv.extend(server.command.iter().cloned());
            let spec = ExecSpec { argv, cwd: Some(cwd.to_path_buf()), ..ExecSpec::default() };
            let bg = sandbox.spawn_background(&spec).map_err(|e| format!("MCP server {name}: {e}"))?;
            let stderr = Arc::new(Mutex::new(Vec::new()));
            drain(name, File::from(bg.stderr), Arc::clone(&stderr));
            let mut client = Client::new(name, File::from(bg.stdin), File::from(bg.stdout), START_TIMEOUT);
            let started = client.initialize().and_then(|_| client.list_tools());
            let tools = started.map_err(|e| with_stderr(&e.to_string(), &stderr))?;
            for t in &tools {
                let ok = !t.name.is_empty()
                    && t.name.len() <= 64
                    && t.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !ok {
                    return Err(format!(
                        "MCP server {name}: tool name {:?} is not letters, digits, `_` or `-`",
                        t.name
                    ));
                }
            }
            client.set_timeout(call_timeout);
            servers.push(McpServer { name: name.clone(), tools, client: Arc::new(Mutex::new(client)), stderr });
        }
        Ok(McpServers { servers })
    }

    /// No servers.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// The servers.
    pub fn servers(&self) -> &[McpServer] {
        &self.servers
    }

    /// Every server's tools as the model sees them.
    pub fn specs(&self) -> Vec<ToolSpec> {
        let mut out = Vec::new();
        for s in &self.servers {
            for t in &s.tools {
                out.push(ToolSpec {
                    name: qualified_name(&s.name, &t.name).into(),
                    description: format!("[MCP server {}, runs in the sandbox] {}", s.name, t.description).into(),
                    input_schema: t.input_schema.clone(),
                });
            }
        }
        out
    }

    /// Whether `qualified` names one of the servers' tools.
    pub fn has(&self, qualified: &str) -> bool {
        self.find(qualified).is_some()
    }

    fn find<'a>(&self, qualified: &'a str) -> Option<(&McpServer, &'a str)> {
        let (server, tool) = split_qualified(qualified)?;
        let s = self.servers.iter().find(|s| s.name == server)?;
        s.tools.iter().any(|t| t.name == tool).then_some((s, tool))
    }

    /// A handle to call `qualified` from a blocking thread.
    pub fn caller(&self, qualified: &str) -> Option<McpCall> {
        let (s, tool) = self.find(qualified)?;
        Some(McpCall {
            server: s.name.clone(),
            tool: tool.to_string(),
            client: Arc::clone(&s.client),
            stderr: Arc::clone(&s.stderr),
        })
    }
}

/// A call about to be made.
pub struct McpCall {
    /// Server name.
    pub server: String,
    /// Tool name on the server.
    pub tool: String,
    client: Arc<Mutex<Client<File>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl McpCall {
    /// `tools/call` (blocking).
    pub fn call(&self, arguments: serde_json::Value) -> Result<CallResult, String> {
        let mut c = self.client.lock().map_err(|_| format!("MCP server {}: client lock poisoned", self.server))?;
        c.call_tool(&self.tool, arguments).map_err(|e| match e {
            McpError::Transport { .. } => with_stderr(&e.to_string(), &self.stderr),
            other => other.to_string(),
        })
    }
}

fn with_stderr(msg: &str, stderr: &Arc<Mutex<Vec<u8>>>) -> String {
    // Give the reader a moment to collect what a dying server printed.
    std::thread::sleep(Duration::from_millis(50));
    let tail = stderr.lock().map(|v| String::from_utf8_lossy(&v).trim().to_string()).unwrap_or_default();
    if tail.is_empty() {
        msg.to_string()
    } else {
        format!("{msg}; its stderr: {tail}")
    }
}

/// Read a server's stderr so it never blocks on a full pipe; keep the start.
fn drain(name: &str, mut from: File, keep: Arc<Mutex<Vec<u8>>>) {
    let _ = std::thread::Builder::new().name(format!("mcp-{name}-stderr")).spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                return;
            }
            if let Ok(mut k) = keep.lock() {
                let room = STDERR_KEEP.saturating_sub(k.len());
                k.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    });
}
