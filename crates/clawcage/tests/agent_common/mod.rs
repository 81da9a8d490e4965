//! Support for the `clawcage agent` end-to-end tests: a workspace and state
//! directory per test, the real binary pointed at a fake provider on
//! 127.0.0.1, and readers for what the store and audit log kept.
#![allow(dead_code)]

use clawcage_agent::testing::{FakeServer, FakeWire};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A test's directories: `ws` (the workspace), `home` (the invoking user's
/// $HOME), `state` (CLAWCAGE_HOME); removed on drop.
pub struct AgentFixture {
    pub root: PathBuf,
    pub ws: PathBuf,
    pub home: PathBuf,
    pub state: PathBuf,
    pub policy: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

impl AgentFixture {
    pub fn new(tag: &str) -> AgentFixture {
        use std::os::unix::fs::PermissionsExt;
        static N: AtomicU32 = AtomicU32::new(0);
        let root = PathBuf::from(format!(
            "/tmp/clawcage-agent-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let (ws, home, state) = (root.join("ws"), root.join("home"), root.join("state"));
        for d in [&root, &ws, &home] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        AgentFixture { root, ws, home, state, policy: None, env: Vec::new() }
    }

    pub fn policy(mut self, text: &str) -> AgentFixture {
        let f = self.root.join("policy.toml");
        std::fs::write(&f, text).unwrap();
        self.policy = Some(f);
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> AgentFixture {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.ws.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.ws.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// `clawcage agent --model M [--policy P] --workspace WS ARGS...` against `server`.
    pub fn command(&self, server: &FakeServer, args: &[&str]) -> Command {
        let (model, key, url) = match server_wire(server) {
            FakeWire::Anthropic => ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
            FakeWire::OpenAi => ("openai:gpt-4o", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawcage"));
        cmd.env("CLAWCAGE_HOME", &self.state)
            .env("HOME", &self.home)
            .env(key, "sk-test-key")
            .env(url, server.base_url())
            .arg("agent")
            .arg("--model")
            .arg(model)
            .arg("--workspace")
            .arg(&self.ws);
        if let Some(p) = &self.policy {
            cmd.arg("--policy").arg(p);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    /// Run the agent to its end (bounded: a hang fails the test).
    pub fn run(&self, server: &FakeServer, args: &[&str]) -> Out {
        let mut cmd = self.command(server, args);
        let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let out = wait_output(child, std::time::Duration::from_secs(120));
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `clawcage ARGS...` on this state directory.
    pub fn clawcage(&self, args: &[&str]) -> Out {
        let out =
            Command::new(env!("CARGO_BIN_EXE_clawcage")).env("CLAWCAGE_HOME", &self.state).args(args).output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `clawcage tasks ARGS...` on this state directory.
    pub fn tasks(&self, args: &[&str]) -> Out {
        let out = Command::new(env!("CARGO_BIN_EXE_clawcage"))
            .env("CLAWCAGE_HOME", &self.state)
            .arg("tasks")
            .args(args)
            .output()
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The store, opened read-write (as another clawcage process would).
    pub fn store(&self) -> clawcage_store::Store {
        clawcage_store::Store::open(&self.state.join("clawcage.db")).unwrap()
    }

    /// The audit log's records as JSON values.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.state.join("audit.jsonl")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The one agent task in the store.
    pub fn only_task(&self) -> clawcage_store::Task {
        let tasks = self.store().list_tasks(&Default::default()).unwrap();
        assert_eq!(tasks.len(), 1, "{tasks:#?}");
        tasks.into_iter().next().unwrap()
    }
}

impl Drop for AgentFixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The wire a fake speaks, from its base URL.
fn server_wire(server: &FakeServer) -> FakeWire {
    if server.base_url().ends_with("/v1") {
        FakeWire::OpenAi
    } else {
        FakeWire::Anthropic
    }
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn expect(&self, code: i32) -> &Out {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Wait for `child` with a hang limit, collecting its output.
pub fn wait_output(mut child: std::process::Child, limit: std::time::Duration) -> std::process::Output {
    use std::io::Read;
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("clawcage agent still running after {limit:?}: killed it");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::process::Output { status, stdout: t1.join().unwrap(), stderr: t2.join().unwrap() }
}

/// The tool_result blocks (Anthropic wire) or tool messages (OpenAI wire)
/// of a recorded request, as (id, content, is_error).
pub fn tool_results(body: &serde_json::Value) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for m in body["messages"].as_array().unwrap() {
        if m["role"] == "tool" {
            let c = m["content"].as_str().unwrap().to_string();
            out.push((m["tool_call_id"].as_str().unwrap().to_string(), c.clone(), c.starts_with("ERROR: ")));
        }
        if let Some(blocks) = m["content"].as_array() {
            for b in blocks {
                if b["type"] == "tool_result" {
                    out.push((
                        b["tool_use_id"].as_str().unwrap().to_string(),
                        b["content"].as_str().unwrap().to_string(),
                        b["is_error"].as_bool().unwrap(),
                    ));
                }
            }
        }
    }
    out
}

/// Whether a path is the workspace of `fx`, for messages.
pub fn ws_of(fx: &AgentFixture) -> &Path {
    &fx.ws
}

/// Write skill `name` at `src` (SKILL.md with the `clawcage:` lines
/// `needs`, a body, an executable scripts/go.sh) and approve it with
/// `clawcage skill add --yes` in the state directory `state`.
pub fn add_skill_at(state: &Path, src: &Path, name: &str, needs: &str, body: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(src.join("scripts")).unwrap();
    std::fs::write(
        src.join("SKILL.md"),
        format!("---\nname: {name}\ndescription: Test skill {name}.\nclawcage:\n{needs}---\n{body}\n"),
    )
    .unwrap();
    let go = src.join("scripts/go.sh");
    std::fs::write(&go, format!("#!/bin/sh\n{script}")).unwrap();
    std::fs::set_permissions(&go, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_clawcage"))
        .env("CLAWCAGE_HOME", state)
        .args(["skill", "add"])
        .arg(src)
        .arg("--yes")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "skill add: {}", String::from_utf8_lossy(&out.stderr));
}

/// A small MCP server speaking newline-delimited JSON-RPC 2.0 on stdio:
/// `read_text`, `reach_out` (a TCP connection out), `probe` (its confinement),
/// `fetch` (an HTTP(S) GET through the proxy the sandbox's environment names).
pub const MCP_SERVER: &str = r#"
import json, os, socket, sys

TOOLS = [
    {"name": "read_text", "description": "Read a text file.",
     "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
    {"name": "reach_out", "description": "Connect to a host outside.",
     "inputSchema": {"type": "object", "properties": {"host": {"type": "string"}}}},
    {"name": "probe", "description": "How this process is confined.", "inputSchema": {"type": "object"}},
    {"name": "fetch", "description": "GET a URL (through the sandbox's proxy).",
     "inputSchema": {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}},
]

def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()

def text(s, error=False):
    return {"content": [{"type": "text", "text": s}], "isError": error}

for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if mid is None or method is None:
        continue
    if method == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "files", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        name, args = msg["params"]["name"], msg["params"].get("arguments", {})
        if name == "read_text":
            try:
                result = text(open(args["path"]).read())
            except OSError as e:
                result = text("error: " + e.strerror, True)
        elif name == "fetch":
            import urllib.request
            try:
                result = text(urllib.request.urlopen(args["url"], timeout=20).read().decode())
            except Exception as e:
                result = text("cannot fetch: %s" % e, True)
        elif name == "reach_out":
            try:
                socket.create_connection((args.get("host", "1.1.1.1"), 80), timeout=5).close()
                result = text("connected")
            except OSError as e:
                result = text("cannot connect: %s" % e, True)
        else:
            st = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
            result = text("NoNewPrivs=%s CapEff=%s GREETING=%s" % (st["NoNewPrivs"].strip(), st["CapEff"].strip(), os.environ.get("GREETING", "unset")))
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "no method"}})
        continue
    send({"jsonrpc": "2.0", "id": mid, "result": result})
"#;
