//! `clawcage serve` end to end: the real binary with the real agent runtime
//! (each task in its own sandbox, through the sandbox helper), a fake model
//! on 127.0.0.1 speaking the Anthropic wire format, driven over the HTTP API.
//! Includes the load test: 200 queued tasks, kill -9 of the server part-way,
//! a restart, and nothing lost, nothing run twice, nothing leaked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_common;
mod common;
mod egress_support;

use clawcage_agent::testing::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "serve-e2e-token-0123456789";

struct Serve {
    root: PathBuf,
    state: PathBuf,
    ws: PathBuf,
    url: String,
    config: PathBuf,
}

impl Serve {
    fn new(tag: &str, concurrency: u32) -> Serve {
        Serve::with(tag, concurrency, "", "")
    }

    /// A config with `group` added to `[groups.dev]` and `extra` at the end.
    fn with(tag: &str, concurrency: u32, group: &str, extra: &str) -> Serve {
        let root = PathBuf::from(format!("/tmp/clawcage-serve-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (ws, state) = (root.join("ws"), root.join("state"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(root.join("policy.toml"), "extends = \"default\"\n").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = root.join("serve.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\nconcurrency = {concurrency}\n\n\
                 [groups.dev]\npolicy = \"policy.toml\"\nworkspace = \"ws\"\nmodel = \"anthropic:claude-sonnet-4-5\"\n\
                 {group}\n{extra}"
            ),
        )
        .unwrap();
        Serve { url: format!("http://127.0.0.1:{port}"), root, state, ws, config }
    }

    fn spawn(&self, model: &FakeServer) -> Proc {
        self.spawn_with(&[("ANTHROPIC_API_KEY", "sk-test-key"), ("ANTHROPIC_BASE_URL", &model.base_url())])
    }

    /// `serve` with these provider variables and no others.
    fn spawn_with(&self, env: &[(&str, &str)]) -> Proc {
        // Waited for by `Proc` (on drop, or by the test).
        #[allow(clippy::zombie_processes)]
        let child = Command::new(env!("CARGO_BIN_EXE_clawcage"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("CLAWCAGE_HOME", &self.state)
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_BASE_URL")
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let proc = Proc(Some(child));
        for _ in 0..500 {
            if curl(&self.url, "GET", "/healthz", None).0 == 200 {
                return proc;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("serve did not come up");
    }
}

/// A running `clawcage serve`, killed if the test fails before it ends it.
struct Proc(Option<Child>);

impl Proc {
    fn id(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }
    fn take(mut self) -> Child {
        self.0.take().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// (status, body) of one API request, through curl.
fn curl(url: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-H"])
        .arg(format!("Authorization: Bearer {TOKEN}"))
        .arg(format!("{url}{path}"));
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary"]).arg(b.to_string());
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn json_of(url: &str, path: &str) -> Value {
    let (code, body) = curl(url, "GET", path, None);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// Start a task in group dev over the API and wait for its end: (id, GET /api/tasks/ID).
fn run_task(s: &Serve, prompt: &str) -> (String, Value) {
    let (code, body) = curl(&s.url, "POST", "/api/tasks", Some(&json!({"group": "dev", "prompt": prompt})));
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
    let task = wait_until("the task to end", Duration::from_secs(90), || {
        let t = json_of(&s.url, &format!("/api/tasks/{id}"));
        (t["task"]["status"] != "running" && t["task"]["status"] != "queued").then_some(t)
    });
    (id, task)
}

fn terminate(p: Proc) -> i32 {
    let mut child = p.take();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let st = wait_until("serve to exit", Duration::from_secs(60), || child.try_wait().unwrap());
    st.code().unwrap_or(-1)
}

fn audit(state: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(state.join("audit.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_task_runs_in_its_sandbox_and_its_changes_are_reviewed_over_the_api() {
    let s = Serve::new("e2e", 2);
    let model = FakeServer::start(
        FakeWire::Anthropic,
        vec![
            steps(vec![tool("t1", "write_file", json!({"path": "notes.txt", "content": "from the agent\n"}))]),
            steps(vec![tool("t2", "bash", json!({"command": "cat notes.txt; cat /etc/shadow; echo exit=$?"}))]),
            steps(vec![text("Wrote notes.txt.")]),
        ],
    )
    .unwrap();
    let serve = s.spawn(&model);
    let (id, task) = run_task(&s, "write notes");
    assert_eq!(task["task"]["status"], "succeeded", "{task}");
    assert_eq!(task["review"], true);
    // The tool ran inside the sandbox: the file it read back is there, the host's shadow file is not.
    let calls = task["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{task}");
    let sent = model.requests();
    let last = sent.last().unwrap().body.to_string();
    assert!(last.contains("from the agent") && last.contains("exit=1"), "{last}");
    assert!(!std::path::Path::new(&s.ws.join("notes.txt")).exists(), "a reviewed change reached the workspace");

    let events = curl(&s.url, "GET", &format!("/api/tasks/{id}/events"), None).1;
    let streamed: String = events
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter(|e| e["kind"] == "text")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(streamed.trim(), "Wrote notes.txt.", "{events}");
    assert!(events.contains("event: tool") && events.contains("event: end"), "{events}");
    let diff = curl(&s.url, "GET", &format!("/api/tasks/{id}/diff"), None).1;
    assert!(diff.contains("+from the agent"), "{diff}");
    let (code, body) = curl(&s.url, "POST", &format!("/api/tasks/{id}/apply"), Some(&json!({})));
    assert_eq!(code, 200, "{body}");
    assert_eq!(std::fs::read_to_string(s.ws.join("notes.txt")).unwrap(), "from the agent\n");

    assert_eq!(terminate(serve), 0);
    let kinds: Vec<String> = audit(&s.state)
        .iter()
        .filter(|r| r["task"] == id.as_str())
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    for k in [
        "task_queued",
        "task_start",
        "sandbox_start",
        "exec",
        "sandbox_stop",
        "file_changes",
        "task_end",
        "changes_applied",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no {k} record in {kinds:?}");
    }
    let verify = Command::new(env!("CARGO_BIN_EXE_clawcage"))
        .args(["audit", "verify"])
        .env("CLAWCAGE_HOME", &s.state)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

#[test]
fn a_served_group_offers_its_approved_skills_and_its_mcp_servers_tools() {
    let s = Serve::with("skills", 1, "skills = \"skills\"\nmcp = \"mcp.toml\"\n", "");
    std::fs::write(s.ws.join("server.py"), agent_common::MCP_SERVER).unwrap();
    std::fs::write(s.ws.join("notes.txt"), "group notes\n").unwrap();
    std::fs::write(s.root.join("mcp.toml"), "[mcp.files]\ncommand = [\"python3\", \"-u\", \"server.py\"]\n").unwrap();
    // The group's skills directory holds the skill; `skill add` approved it.
    let script = "cat /skills/greet/SKILL.md >/dev/null && echo hello-from-greet\n\
                  echo x > notes.txt 2>/dev/null || echo workspace-not-declared\n";
    agent_common::add_skill_at(
        &s.state,
        &s.root.join("skills/greet"),
        "greet",
        "  tools: [mcp__files__read_text]\n",
        "greet body",
        script,
    );
    let model = FakeServer::start(
        FakeWire::Anthropic,
        vec![
            steps(vec![tool("t1", "load_skill", json!({"name": "greet"}))]),
            steps(vec![tool("t2", "run_skill", json!({"skill": "greet", "command": ["scripts/go.sh"]}))]),
            steps(vec![tool("t3", "mcp__files__read_text", json!({"path": "notes.txt"}))]),
            steps(vec![tool("t4", "bash", json!({"command": "echo hi"}))]),
            steps(vec![text("done")]),
        ],
    )
    .unwrap();
    let serve = s.spawn(&model);
    let (id, task) = run_task(&s, "greet");
    assert_eq!(task["task"]["status"], "succeeded", "{task}");
    let sent = model.requests();
    let system = sent[0].body["system"].as_str().unwrap();
    assert!(system.contains("- greet: Test skill greet."), "{system}");
    let results = |i: usize| agent_common::tool_results(&sent[i].body).last().cloned().unwrap();
    let (_, loaded, err) = results(1);
    assert!(!err && loaded.contains("greet body"), "{loaded}");
    let (_, ran, err) = results(2);
    assert!(!err && ran.contains("hello-from-greet") && ran.contains("workspace-not-declared"), "{ran}");
    let (_, read, err) = results(3);
    assert!(!err && read.contains("group notes"), "{read}");
    let (_, refused, err) = results(4);
    assert!(err && refused.contains("does not declare the tool \"bash\""), "{refused}");
    assert_eq!(terminate(serve), 0);
    let kinds: Vec<String> = audit(&s.state)
        .iter()
        .filter(|r| r["task"] == id.as_str())
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    for k in ["skills_offered", "skill_run", "mcp_start", "mcp_call", "tool_denied", "sandbox_stop"] {
        assert!(kinds.iter().any(|x| x == k), "no {k} record in {kinds:?}");
    }
}

/// Children of `pid` now (the sandbox helpers of a serve process).
#[test]
fn tasks_reach_their_provider_through_the_model_config_of_the_state_directory() {
    let s = Serve::new("models", 1);
    let model = FakeServer::start(FakeWire::Anthropic, vec![steps(vec![text("hi from the model")])]).unwrap();
    std::fs::create_dir_all(&s.state).unwrap();
    std::fs::write(
        s.state.join("config.toml"),
        format!("[providers.anthropic]\nbase_url = \"{}\"\napi_key_env = \"CORP_KEY\"\n", model.base_url()),
    )
    .unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_clawcage"))
        .args(["serve", "--check-config", "--config"])
        .arg(&s.config)
        .env("CLAWCAGE_HOME", &s.state)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&check.stdout).contains("model config: 1 provider(s)"), "{check:?}");
    let serve = s.spawn_with(&[("CORP_KEY", "sk-corp-9")]);
    let (_, task) = run_task(&s, "say hi");
    assert_eq!(task["task"]["status"], "succeeded", "{task}");
    assert_eq!(model.requests()[0].header("x-api-key"), Some("sk-corp-9"));
    assert_eq!(terminate(serve), 0);
}

fn helpers_of(pid: u32) -> Vec<u32> {
    common::children_of(pid)
}

#[test]
fn load_200_tasks_with_a_kill_9_and_a_restart_lose_nothing_and_run_nothing_twice() {
    const N: usize = 200;
    let s = Serve::new("load", 4);
    // Every model call answers with text after 100 ms: each task is one call
    // and one sandbox, and tasks are still running when the kill comes (an
    // instant answer let all 200 end before "a quarter done" saw a helper).
    let slow = Reply::Delay(Duration::from_millis(100), Box::new(steps(vec![text("done")])));
    let model = FakeServer::start_with(FakeWire::Anthropic, vec![], Some(slow)).unwrap();
    let serve = s.spawn(&model);
    let serve_pid = serve.id();
    let fds_before = std::fs::read_dir(format!("/proc/{serve_pid}/fd")).unwrap().count();
    let mut ids = Vec::new();
    for i in 0..N {
        let (code, body) =
            curl(&s.url, "POST", "/api/tasks", Some(&json!({"group": "dev", "prompt": format!("task {i}")})));
        assert_eq!(code, 201, "{body}");
        ids.push(serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string());
    }
    let mut helpers: HashSet<u32> = HashSet::new();
    // Part-way: kill -9 while tasks run.
    wait_until("a quarter done", Duration::from_secs(300), || {
        helpers.extend(helpers_of(serve_pid));
        let done = json_of(&s.url, "/api/tasks?status=succeeded&limit=1000").as_array().unwrap().len();
        (done >= N / 4 && !helpers_of(serve_pid).is_empty()).then_some(())
    });
    let mut serve = serve.take();
    serve.kill().unwrap();
    serve.wait().unwrap();
    // The helpers (and their sandboxes) die with the server.
    wait_until("the killed server's sandboxes to be gone", Duration::from_secs(20), || {
        helpers.iter().all(|p| !common::alive(*p)).then_some(())
    });

    let serve = s.spawn(&model);
    let serve_pid = serve.id();
    let tasks: Vec<Value> = wait_until("every task to end", Duration::from_secs(600), || {
        helpers.extend(helpers_of(serve_pid));
        let all = json_of(&s.url, "/api/tasks?limit=1000");
        let all = all.as_array().unwrap().clone();
        all.iter().all(|t| t["status"] != "queued" && t["status"] != "running").then_some(all)
    });
    assert_eq!(tasks.len(), N, "tasks were lost or made up");
    let by_status: HashMap<String, usize> = tasks.iter().fold(HashMap::new(), |mut m, t| {
        *m.entry(t["status"].as_str().unwrap().to_string()).or_default() += 1;
        m
    });
    let interrupted: Vec<&Value> =
        tasks.iter().filter(|t| t["detail"].as_str().unwrap_or("").starts_with("interrupted")).collect();
    assert_eq!(by_status.get("succeeded").copied().unwrap_or(0) + interrupted.len(), N, "{by_status:?}");
    assert!(interrupted.len() <= 4, "more tasks in flight than the concurrency: {}", interrupted.len());

    // Nothing ran twice: at most one start and one sandbox per task, and one model call per started task.
    let records = audit(&s.state);
    let count = |kind: &str, id: &str| records.iter().filter(|r| r["kind"] == kind && r["task"] == id).count();
    for id in &ids {
        assert!(count("task_start", id) <= 1, "task {id} started twice");
        assert!(count("sandbox_start", id) <= 1, "task {id} got two sandboxes");
    }
    let starts = records.iter().filter(|r| r["kind"] == "task_start").count();
    assert!(model.requests().len() <= starts, "{} model calls for {starts} starts", model.requests().len());
    assert!(model.requests().len() >= N - interrupted.len());

    // No leaks: no helper left, no cgroup of one, and the fds are back.
    let fds_after = std::fs::read_dir(format!("/proc/{serve_pid}/fd")).unwrap().count();
    assert!(helpers_of(serve_pid).is_empty(), "sandbox helpers outlived their tasks");
    assert!(fds_after <= fds_before + 16, "descriptors leaked: {fds_before} before, {fds_after} after {N} tasks");
    assert_eq!(terminate(serve), 0);
    for p in &helpers {
        assert!(!common::alive(*p), "helper {p} still alive");
        assert!(
            common::cgroup_leftovers(*p).is_empty(),
            "cgroups of helper {p} left: {:?}",
            common::cgroup_leftovers(*p)
        );
    }
    let verify = Command::new(env!("CARGO_BIN_EXE_clawcage"))
        .args(["audit", "verify"])
        .env("CLAWCAGE_HOME", &s.state)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

/// A fake Slack Web API on 127.0.0.1: answers every request `{"ok": true}`
/// and keeps the JSON bodies (chat.postMessage calls) it was sent.
fn fake_slack_web_api() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let posted: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = std::sync::Arc::default();
    let p = std::sync::Arc::clone(&posted);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    p.lock().unwrap().push(v);
                }
            }
            let answer = r#"{"ok":true,"ts":"2.0"}"#;
            let mut w = conn;
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, posted)
}

/// POST a Slack event to the server, signed with `secret` (v0), with extra headers.
fn slack_event(url: &str, secret: &str, event: &Value, headers: &[&str]) -> u16 {
    use hmac::{Hmac, Mac};
    let body = event.to_string();
    let ts = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let sig = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json"])
        .args(["-H", &format!("X-Slack-Request-Timestamp: {ts}"), "-H", &format!("X-Slack-Signature: {sig}")]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg("--data-binary").arg(&body).arg(format!("{url}/channels/slack/events")).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

fn slack_message(event_id: &str, text: &str, ts: &str) -> Value {
    json!({"type": "event_callback", "team_id": "T1", "event_id": event_id, "event_time": 0,
           "event": {"type": "message", "user": "U1", "text": text, "channel": "C1", "ts": ts}})
}

#[test]
fn a_slack_event_retried_after_a_kill_9_and_restart_runs_once() {
    const SECRET: &str = "slack-signing-secret-e2e";
    let (api, posted) = fake_slack_web_api();
    let extra = format!(
        "[roles.dev]\nmembers = [\"slack:U1\"]\nstart = [\"dev\"]\n\n\
         [channels.slack]\nbot_token = \"file:bot\"\nsigning_secret = \"file:secret\"\ngroup = \"dev\"\napi_base = \"{api}\"\n"
    );
    let s = Serve::with("slack", 2, "", &extra);
    std::fs::write(s.root.join("bot"), "xoxb-e2e").unwrap();
    std::fs::write(s.root.join("secret"), SECRET).unwrap();
    let model = FakeServer::start_with(FakeWire::Anthropic, vec![], Some(steps(vec![text("done")]))).unwrap();
    let in_thread =
        |ts: &str| -> Vec<Value> { posted.lock().unwrap().iter().filter(|m| m["thread_ts"] == ts).cloned().collect() };

    let serve = s.spawn(&model);
    let ev = slack_message("EvK1", "tidy the logs", "1700000001.000100");
    assert_eq!(slack_event(&s.url, SECRET, &ev, &[]), 200);
    wait_until("the answer", Duration::from_secs(60), || {
        in_thread("1700000001.000100").iter().any(|m| m["text"] == "done").then_some(())
    });
    // A crash, not a shutdown: nothing gets to be tidied up.
    let mut child = serve.take();
    child.kill().unwrap();
    child.wait().unwrap();

    let serve = s.spawn(&model);
    for n in ["1", "2"] {
        let code = slack_event(
            &s.url,
            SECRET,
            &ev,
            &[&format!("X-Slack-Retry-Num: {n}"), "X-Slack-Retry-Reason: http_timeout"],
        );
        assert_eq!(code, 200, "a retry must be acknowledged, or Slack retries again");
    }
    let fresh = slack_message("EvK2", "and the docs", "1700000002.000100");
    assert_eq!(slack_event(&s.url, SECRET, &fresh, &[]), 200);
    wait_until("the second answer", Duration::from_secs(60), || {
        in_thread("1700000002.000100").iter().any(|m| m["text"] == "done").then_some(())
    });
    assert_eq!(terminate(serve), 0);
    assert_eq!(
        in_thread("1700000001.000100").len(),
        2,
        "the retried event was answered again: {:?}",
        posted.lock().unwrap()
    );
    assert_eq!(model.requests().len(), 2, "a retried event ran a second task");
    let queued = audit(&s.state).iter().filter(|r| r["kind"] == "task_queued").count();
    assert_eq!(queued, 2);
}

fn tool_names(r: &Recorded) -> Vec<String> {
    r.body["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn an_agent_schedules_through_its_tool_when_its_group_allows_it() {
    let s = Serve::with("sched-tool", 2, "agent_schedules = 3\n", "");
    // The operator's own schedule (through the CLI), which the agent may not remove.
    let out = Command::new(env!("CARGO_BIN_EXE_clawcage"))
        .args(["schedule", "add", "--config"])
        .arg(&s.config)
        .args(["--group", "dev", "--cron", "0 0 1 1 *", "ops"])
        .env("CLAWCAGE_HOME", &s.state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let operator = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string();
    let soon = clawcage_store::time::rfc3339_secs(clawcage_store::time::now_ms() + 2000);
    let model = FakeServer::start_with(
        FakeWire::Anthropic,
        vec![
            steps(vec![tool(
                "s1",
                "schedule",
                json!({"action": "add", "prompt": "daily report", "cron": "0 9 * * *"}),
            )]),
            steps(vec![tool("s2", "schedule", json!({"action": "add", "prompt": "one-shot check", "at": soon}))]),
            steps(vec![tool("s3", "schedule", json!({"action": "add", "prompt": "spam", "cron": "* * * * * *"}))]),
            steps(vec![tool("s4", "schedule", json!({"action": "remove", "id": operator}))]),
            steps(vec![tool("s5", "schedule", json!({"action": "list"}))]),
            steps(vec![text("scheduled")]),
        ],
        Some(steps(vec![text("done")])),
    )
    .unwrap();
    let serve = s.spawn(&model);

    let (_, task) = run_task(&s, "set up the reports");
    assert_eq!(task["task"]["status"], "succeeded", "{task}");
    let id = task["task"]["id"].as_str().unwrap().to_string();
    let sent = model.requests();
    assert!(tool_names(&sent[0]).contains(&"schedule".to_string()), "{:?}", tool_names(&sent[0]));
    let result = |n: usize| sent[n].body["messages"].as_array().unwrap().last().unwrap().to_string();
    assert!(result(1).contains("created"), "{}", result(1));
    assert!(result(2).contains("created"), "{}", result(2));
    assert!(result(3).contains("more often than once a minute") && result(3).contains("is_error"), "{}", result(3));
    assert!(result(4).contains("may not remove it"), "{}", result(4));
    assert!(result(5).contains("2 of at most 3") && result(5).contains("daily report"), "{}", result(5));
    assert!(!result(5).contains("\\\"ops\\\""), "the operator's schedule was listed to the agent: {}", result(5));

    let all = json_of(&s.url, "/api/schedules");
    let by_agent: Vec<&Value> = all.as_array().unwrap().iter().filter(|x| x["by"] == "agent").collect();
    assert_eq!(by_agent.len(), 2, "{all}");
    assert!(by_agent.iter().all(|x| x["group"] == "dev"));
    assert_eq!(all.as_array().unwrap().len(), 3, "the operator's schedule was removed: {all}");
    // The one-shot fires: a task of the group with its prompt runs.
    wait_until("the one-shot's task", Duration::from_secs(60), || {
        let tasks = json_of(&s.url, "/api/tasks?status=succeeded&limit=100");
        tasks.as_array().unwrap().iter().any(|t| t["title"] == "one-shot check").then_some(())
    });
    assert_eq!(terminate(serve), 0);
    let records = audit(&s.state);
    let created: Vec<&Value> =
        records.iter().filter(|r| r["kind"] == "schedule_created" && r["task"] == id.as_str()).collect();
    assert_eq!(created.len(), 2, "{created:?}");
    assert!(created.iter().all(|r| r["data"]["by"] == "agent" && r["data"]["group"] == "dev"), "{created:?}");
}

#[test]
fn an_agent_of_a_group_without_agent_schedules_cannot_schedule() {
    let s = Serve::new("sched-none", 2);
    let model = FakeServer::start(
        FakeWire::Anthropic,
        vec![
            steps(vec![tool(
                "s1",
                "schedule",
                json!({"action": "add", "prompt": "every minute", "cron": "* * * * *"}),
            )]),
            steps(vec![text("could not")]),
        ],
    )
    .unwrap();
    let serve = s.spawn(&model);
    let (_, task) = run_task(&s, "schedule yourself");
    assert_eq!(task["task"]["status"], "succeeded", "{task}");
    let sent = model.requests();
    assert!(
        !tool_names(&sent[0]).contains(&"schedule".to_string()),
        "the tool was offered: {:?}",
        tool_names(&sent[0])
    );
    let result = sent[1].body["messages"].as_array().unwrap().last().unwrap().to_string();
    assert!(
        result.contains("not allowed") && result.contains("agent_schedules") && result.contains("is_error"),
        "{result}"
    );
    assert_eq!(json_of(&s.url, "/api/schedules"), json!([]));
    assert_eq!(terminate(serve), 0);
    let records = audit(&s.state);
    assert!(records.iter().any(|r| r["kind"] == "tool_refused" && r["data"]["tool"] == "schedule"));
    assert!(!records.iter().any(|r| r["kind"] == "schedule_created"));
}

#[test]
fn the_group_memory_is_read_into_the_prompt_and_updated_by_the_agent() {
    let s = Serve::with("memory", 1, "memory = \"MEMORY.md\"\n", "");
    let memory = s.root.join("MEMORY.md");
    std::fs::write(&memory, "the tests need python3\n").unwrap();
    let model = FakeServer::start(
        FakeWire::Anthropic,
        vec![
            steps(vec![tool("m1", "memory", json!({"action": "append", "text": "the build uses make"}))]),
            steps(vec![tool("m2", "memory", json!({"action": "replace", "text": "x".repeat(70_000)}))]),
            // The sandbox cannot reach the memory file: it is outside the workspace.
            steps(vec![tool(
                "m3",
                "bash",
                json!({"command": format!("echo hacked >> {}; echo rc=$?", memory.display())}),
            )]),
            steps(vec![text("noted")]),
            steps(vec![text("I remember")]),
        ],
    )
    .unwrap();
    let serve = s.spawn(&model);
    let (_, first) = run_task(&s, "learn");
    assert_eq!(first["task"]["status"], "succeeded", "{first}");
    let sent = model.requests();
    assert!(sent[0].body["system"].to_string().contains("the tests need python3"), "{}", sent[0].body["system"]);
    assert!(tool_names(&sent[0]).contains(&"memory".to_string()));
    let result = |n: usize| sent[n].body["messages"].as_array().unwrap().last().unwrap().to_string();
    assert!(result(1).contains("memory updated"), "{}", result(1));
    assert!(result(2).contains("more than the 65536 allowed") && result(2).contains("is_error"), "{}", result(2));
    // Whatever the sandbox wrote to that path (its private /tmp), the host's file is the tool's alone.
    assert!(result(3).contains("rc="), "{}", result(3));
    let text = std::fs::read_to_string(&memory).unwrap();
    assert_eq!(text, "the tests need python3\nthe build uses make");

    // A later task of the group sees it.
    let (_, second) = run_task(&s, "what do you know?");
    assert_eq!(second["task"]["status"], "succeeded", "{second}");
    let last = model.requests().last().unwrap().body["system"].to_string();
    assert!(last.contains("the build uses make"), "{last}");
    assert_eq!(terminate(serve), 0);
    let records = audit(&s.state);
    let updates: Vec<&Value> = records.iter().filter(|r| r["kind"] == "memory_updated").collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["data"]["sha256"], clawcage_store::sha256_hex(text.as_bytes()));
    assert_eq!(updates[0]["task"], first["task"]["id"]);
}

#[test]
fn a_served_group_reaches_its_allowed_hosts_through_the_egress_proxy_and_no_others() {
    let web = egress_support::Origin::start(egress_support::OriginOpts::http("web"));
    let s = Serve::new("egress", 1);
    let policy = format!(
        "extends = \"default\"\n[network]\nallow = [\"web.test:{p}\"]\nallow_ips = [\"127.0.0.1\"]\n\
         [network.hosts]\n\"web.test\" = \"127.0.0.1\"\n\"other.test\" = \"127.0.0.1\"\n",
        p = web.port
    );
    std::fs::write(s.root.join("policy.toml"), policy).unwrap();
    let model = FakeServer::start(
        FakeWire::Anthropic,
        vec![
            steps(vec![tool("n1", "fetch_url", json!({"url": format!("http://web.test:{}/served", web.port)}))]),
            steps(vec![tool(
                "n2",
                "bash",
                json!({"command": format!("curl -sS -w ' %{{http_code}}' http://other.test:{}/x", web.port)}),
            )]),
            steps(vec![text("fetched")]),
        ],
    )
    .unwrap();
    let serve = s.spawn(&model);
    let (_, task) = run_task(&s, "fetch");
    assert_eq!(task["task"]["status"], "succeeded", "{task}");
    let sent = model.requests();
    let result = |n: usize| sent[n].body["messages"].as_array().unwrap().last().unwrap().to_string();
    assert!(result(1).contains("origin=web path=/served"), "{}", result(1));
    assert!(result(2).contains("403") && result(2).contains("other.test"), "{}", result(2));
    assert_eq!(web.requests().len(), 1, "an unlisted host reached the origin");
    assert_eq!(terminate(serve), 0);
    let log = std::fs::read_to_string(s.state.join("audit.jsonl")).unwrap();
    assert!(log.contains("\"host\":\"other.test\"") && log.contains("\"decision\":\"deny\""), "{log}");
}

#[test]
fn sigterm_stops_a_running_tasks_sandbox_and_records_it_cancelled() {
    let s = Serve::new("sigterm", 1);
    let model = FakeServer::start(
        FakeWire::Anthropic,
        vec![steps(vec![tool("b1", "bash", json!({"command": "sleep 600"}))]), steps(vec![text("never")])],
    )
    .unwrap();
    let serve = s.spawn(&model);
    let pid = serve.id();
    let (code, body) = curl(&s.url, "POST", "/api/tasks", Some(&json!({"group": "dev", "prompt": "wait"})));
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
    let helpers = wait_until("the command to run in its sandbox", Duration::from_secs(60), || {
        let t = json_of(&s.url, &format!("/api/tasks/{id}"));
        let running = t["tool_calls"].as_array().is_some_and(|c| c.len() == 1) && !helpers_of(pid).is_empty();
        running.then(|| helpers_of(pid))
    });
    assert_eq!(terminate(serve), 0);
    for p in &helpers {
        assert!(!common::alive(*p), "helper {p} outlived the shutdown");
        // A killed helper's cgroups are removed by its watcher process, just after.
        wait_until("the killed helper's cgroups to be removed", Duration::from_secs(20), || {
            common::cgroup_leftovers(*p).is_empty().then_some(())
        });
    }
    let records = audit(&s.state);
    let of_task: Vec<&str> =
        records.iter().filter(|r| r["task"] == id.as_str()).map(|r| r["kind"].as_str().unwrap()).collect();
    assert!(of_task.contains(&"sandbox_stop"), "{of_task:?}");
    assert_eq!(model.requests().len(), 1, "the model was asked again after the shutdown");
    // After a restart the task stays cancelled: it is not run again.
    let serve = s.spawn(&model);
    let t = json_of(&s.url, &format!("/api/tasks/{id}"));
    assert_eq!(t["task"]["status"], "cancelled", "{t}");
    assert_eq!(terminate(serve), 0);
    assert_eq!(model.requests().len(), 1);
}
