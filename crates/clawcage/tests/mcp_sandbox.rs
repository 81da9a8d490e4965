//! An MCP server (a small stand-in for a third-party tool server, speaking
//! the real newline-delimited JSON-RPC 2.0 of MCP's stdio transport) runs in
//! the background INSIDE the task's sandbox, through the sandbox helper, and
//! the MCP client drives it: initialize, tools/list with pagination,
//! tools/call. Its tools are bound by the sandbox like any command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use clawcage_agent::helper::Client;
use clawcage_mcp::{qualified_name, split_qualified, Client as Mcp};
use clawcage_policy::Context;
use clawcage_sandbox::{ExecSpec, Outcome};
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SERVER: &str = r#"
import json, os, sys

TOOLS = [
    {"name": "read_text", "description": "Read a text file.",
     "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
    {"name": "probe", "description": "Report how this process is confined.",
     "inputSchema": {"type": "object"}},
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
        continue  # notifications/initialized, or the answer to our roots/list
    if method == "initialize":
        # A log notification and a server-to-client request come first.
        send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "hello"}})
        send({"jsonrpc": "2.0", "id": "srv-1", "method": "roots/list"})
        result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "files-server", "version": "1.0"}}
    elif method == "tools/list":
        # One tool per page: the client must follow nextCursor.
        i = int(msg.get("params", {}).get("cursor", "0"))
        result = {"tools": [TOOLS[i]]}
        if i + 1 < len(TOOLS):
            result["nextCursor"] = str(i + 1)
    elif method == "tools/call":
        name, args = msg["params"]["name"], msg["params"].get("arguments", {})
        if name == "read_text":
            try:
                with open(args["path"]) as f:
                    result = text(f.read())
            except OSError as e:
                result = text("error: " + e.strerror, True)
            with open("/tmp/mcp-was-here", "w") as f:
                f.write("server pid %d\n" % os.getpid())
        elif name == "probe":
            status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
            result = text("NoNewPrivs=%s Seccomp=%s CapEff=%s" % (status["NoNewPrivs"].strip(), status["Seccomp"].strip(), status["CapEff"].strip()))
        else:
            send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32602, "message": "unknown tool " + name}})
            continue
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "no method " + method}})
        continue
    send({"jsonrpc": "2.0", "id": mid, "result": result})
"#;

fn plan_for(ws: &Path) -> clawcage_policy::Plan {
    let policy = clawcage_policy::parse_str("[filesystem]\nchanges = \"direct\"\n", "task.toml").unwrap();
    let ctx = Context {
        workspace: std::fs::canonicalize(ws).unwrap(),
        host_home: PathBuf::from("/nonexistent"),
        host_env: Default::default(),
        extra_env: vec![],
        default_changes: clawcage_policy::Changes::Direct,
    };
    clawcage_policy::plan(&policy, &ctx)
}

#[test]
fn an_mcp_server_runs_inside_the_sandbox_and_its_tools_work_end_to_end() {
    let ws = TempDir::new("mcp");
    ws.write("server.py", SERVER);
    ws.write("notes.txt", "workspace notes\n");
    let outside = TempDir::new("mcp-outside");
    let host_file = outside.write("host-secret.txt", "host only\n");
    let plan = plan_for(ws.path());
    let mut sb = Client::spawn(Path::new(bin()), &["__sandbox-helper"], &plan, false).unwrap();

    let spec = ExecSpec { argv: vec!["python3".into(), "-u".into(), "server.py".into()], ..ExecSpec::default() };
    let bg = sb.spawn_background(&spec).unwrap();
    let mut mcp =
        Mcp::new("files", std::fs::File::from(bg.stdin), std::fs::File::from(bg.stdout), Duration::from_secs(60));

    let info = mcp.initialize().unwrap();
    assert_eq!(info["name"], "files-server");
    let tools = mcp.list_tools().unwrap();
    let names: Vec<String> = tools.iter().map(|t| qualified_name("files", &t.name)).collect();
    assert_eq!(names, vec!["mcp__files__read_text", "mcp__files__probe"]);
    assert_eq!(split_qualified(&names[0]), Some(("files", "read_text")));
    assert_eq!(tools[0].input_schema["required"], json!(["path"]));

    // The legitimate path: a workspace file.
    let r = mcp.call_tool("read_text", json!({"path": "notes.txt"})).unwrap();
    assert_eq!((r.text.as_str(), r.is_error), ("workspace notes\n", false));

    // Reaching out of the sandbox fails: the host's /etc/shadow, a host file
    // outside the workspace.
    let r = mcp.call_tool("read_text", json!({"path": "/etc/shadow"})).unwrap();
    assert!(r.is_error, "{}", r.text);
    let r = mcp.call_tool("read_text", json!({"path": host_file.to_str().unwrap()})).unwrap();
    assert!(r.is_error && r.text.contains("No such file"), "{}", r.text);

    // Confined like every command of the sandbox.
    let r = mcp.call_tool("probe", json!({})).unwrap();
    assert_eq!(r.text, "NoNewPrivs=1 Seccomp=2 CapEff=0000000000000000", "{}", r.text);

    // Ordinary commands run beside it, in the same sandbox (its /tmp).
    let out = sb
        .exec_collect(&ExecSpec { argv: vec!["cat".into(), "/tmp/mcp-was-here".into()], ..ExecSpec::default() }, b"")
        .unwrap();
    assert_eq!(out.outcome, Outcome::Exited(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("server pid "));
    assert!(!Path::new("/tmp/mcp-was-here").exists(), "the sandbox's /tmp is its own");

    // Errors from the server come back as errors; it keeps serving.
    let e = mcp.call_tool("nope", json!({})).unwrap_err().to_string();
    assert!(e.contains("unknown tool nope") && e.contains("-32602"), "{e}");
    assert!(!mcp.call_tool("read_text", json!({"path": "notes.txt"})).unwrap().is_error);

    // Stopping the sandbox ends the server: the client sees end of file.
    sb.stop().unwrap();
    let e = mcp.call_tool("probe", json!({})).unwrap_err().to_string();
    assert!(e.contains("closed its stdout") || e.contains("Broken pipe"), "{e}");
}

#[test]
fn a_server_that_cannot_start_is_reported_and_the_sandbox_goes_on() {
    let ws = TempDir::new("mcp-missing");
    let plan = plan_for(ws.path());
    let mut sb = Client::spawn(Path::new(bin()), &["__sandbox-helper"], &plan, false).unwrap();
    let spec = ExecSpec { argv: vec!["/no/such/server".into()], ..ExecSpec::default() };
    let e = sb.spawn_background(&spec).unwrap_err().to_string();
    assert!(e.contains("cannot run /no/such/server"), "{e}");
    let out = sb.exec_collect(&ExecSpec { argv: vec!["true".into()], ..ExecSpec::default() }, b"").unwrap();
    assert_eq!(out.outcome, Outcome::Exited(0));
    sb.stop().unwrap();
}
