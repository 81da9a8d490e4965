//! A task's life through the real binary: retried rate limits, a clear
//! error on a bad key, a missing key refused before anything starts,
//! `--resume` continuing the same conversation in the same (reviewed)
//! workspace state, and Ctrl-C cancelling cleanly with no sandbox left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_common;

use agent_common::*;
use clawcage_agent::testing::*;
use clawcage_store::TaskStatus;
use serde_json::json;
use std::time::Duration;

#[test]
fn a_rate_limit_with_retry_after_is_waited_out_then_the_task_succeeds() {
    let fx = AgentFixture::new("429");
    let server = FakeServer::start(
        FakeWire::Anthropic,
        vec![
            error(FakeWire::Anthropic, 429, "Number of requests has exceeded your rate limit", &[("retry-after", "1")]),
            steps(vec![text("hello")]),
        ],
    )
    .unwrap();
    let out = fx.run(&server, &["hi"]);
    out.expect(0);
    assert!(out.stderr.contains("HTTP 429") && out.stderr.contains("retrying in 1.0 s"), "{}", out.stderr);
    assert!(out.stdout.contains("hello"));
    assert_eq!(server.requests().len(), 2);
    assert_eq!(fx.only_task().status, TaskStatus::Succeeded);
}

#[test]
fn a_bad_key_fails_the_task_with_the_providers_message() {
    let fx = AgentFixture::new("401");
    let server = FakeServer::start(
        FakeWire::OpenAi,
        vec![error(FakeWire::OpenAi, 401, "Incorrect API key provided: sk-test", &[])],
    )
    .unwrap();
    let out = fx.run(&server, &["hi"]);
    out.expect(1);
    assert!(out.stderr.contains("401") && out.stderr.contains("Incorrect API key provided"), "{}", out.stderr);
    assert!(out.stderr.contains("check OPENAI_API_KEY"), "{}", out.stderr);
    assert_eq!(server.requests().len(), 1, "no retry on 401");
    let t = fx.only_task();
    assert_eq!(t.status, TaskStatus::Failed);
    assert!(t.detail.unwrap().contains("Incorrect API key"));
}

#[test]
fn a_missing_key_or_bad_model_is_refused_before_anything_starts() {
    let fx = AgentFixture::new("nokey");
    let server = FakeServer::start(FakeWire::Anthropic, vec![]).unwrap();
    let mut cmd = fx.command(&server, &["hi"]);
    cmd.env_remove("ANTHROPIC_API_KEY");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ANTHROPIC_API_KEY is not set"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawcage"))
        .env("CLAWCAGE_HOME", &fx.state)
        .args(["agent", "--model", "gemini:pro", "--workspace"])
        .arg(&fx.ws)
        .arg("hi")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown provider \"gemini\""));
    assert!(server.requests().is_empty());
    let out = fx.command(&server, &["--resume", "abcdef", "more"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such task"));
}

#[test]
fn resume_continues_the_conversation_in_the_same_workspace_state() {
    let fx = AgentFixture::new("resume");
    fx.write("base.txt", "from the host\n");
    let first = FakeServer::start(
        FakeWire::Anthropic,
        vec![
            steps(vec![tool("w1", "write_file", json!({"path": "notes.txt", "content": "remember: 42\n"}))]),
            steps(vec![text("Noted.")]),
        ],
    )
    .unwrap();
    fx.run(&first, &["take a note"]).expect(0);
    let task = fx.only_task();
    // Held for review: the real workspace does not have it.
    assert!(!fx.ws.join("notes.txt").exists());

    let second = FakeServer::start(
        FakeWire::Anthropic,
        vec![
            steps(vec![tool("b1", "bash", json!({"command": "cat notes.txt base.txt"}))]),
            steps(vec![text("It says 42.")]),
        ],
    )
    .unwrap();
    let out = fx.run(&second, &["--resume", &task.id, "what did you note?"]);
    out.expect(0);
    assert!(out.stdout.contains("It says 42."));

    // The model got the whole conversation, then the new prompt.
    let q = &second.requests()[0].body;
    let msgs = q["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["content"][0]["text"], "take a note");
    assert_eq!(msgs[1]["content"][0]["id"], "w1");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "w1");
    assert_eq!(msgs[3]["content"][0]["text"], "Noted.");
    assert_eq!(msgs.last().unwrap()["content"][0]["text"], "what did you note?");
    // The sandbox saw the first run's file: the same overlay.
    let r = tool_results(&second.requests()[1].body);
    let (id, content, err) = r.last().unwrap();
    assert_eq!(id, "b1");
    assert!(!err && content.contains("remember: 42") && content.contains("from the host"), "{content}");
    // Still one task, succeeded again, with both runs' usage.
    let t = fx.only_task();
    assert_eq!(t.id, task.id);
    assert_eq!(t.status, TaskStatus::Succeeded);
    assert_eq!(t.usage.input_tokens, 400);
}

/// Processes whose environment holds `mark` (the marked sleep inside the sandbox).
fn marked(mark: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if env.split(|b| *b == 0).any(|kv| kv == mark.as_bytes()) && !status.contains("State:\tZ") {
            out.push(pid);
        }
    }
    out
}

#[test]
fn ctrl_c_cancels_the_task_and_leaves_no_sandbox_process() {
    let fx = AgentFixture::new("sigint");
    let mark = format!("AGENT_TEST_MARK=sigint-{}", std::process::id());
    let server = FakeServer::start(
        FakeWire::Anthropic,
        vec![
            steps(vec![tool("s1", "bash", json!({"command": format!("{mark} sleep 60")}))]),
            steps(vec![text("never")]),
        ],
    )
    .unwrap();
    let mut cmd = fx.command(&server, &["wait a minute"]);
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    // Wait until the command runs inside the sandbox.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while marked(&mark).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the sleep never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGINT).unwrap();
    let out = wait_output(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(marked(&mark).is_empty(), "a sandbox process survived: {:?}", marked(&mark));
    let t = fx.only_task();
    assert_eq!(t.status, TaskStatus::Cancelled);
    let calls = fx.store().tool_calls(&t.id).unwrap();
    assert_eq!(calls[0].error.as_deref(), Some("cancelled"));
    assert_eq!(server.requests().len(), 1, "no model call after the cancel");
    let kinds: Vec<String> = fx.audit().iter().map(|r| r["kind"].as_str().unwrap().to_string()).collect();
    assert!(kinds.ends_with(&["sandbox_stop".into(), "file_changes".into(), "task_end".into()]), "{kinds:?}");

    // A cancelled task can be resumed: the unanswered call is answered with an error.
    let again = FakeServer::start(FakeWire::Anthropic, vec![steps(vec![text("ok, resumed")])]).unwrap();
    fx.run(&again, &["--resume", &t.id, "never mind"]).expect(0);
    let r = tool_results(&again.requests()[0].body);
    assert!(r.iter().any(|(id, c, err)| id == "s1" && *err && c.contains("stopped")), "{r:?}");
}

#[test]
fn the_turn_limit_ends_a_task_that_would_loop_forever() {
    let fx = AgentFixture::new("turns");
    let server = FakeServer::start_with(
        FakeWire::OpenAi,
        vec![],
        Some(steps(vec![tool("again", "bash", json!({"command": "true"}))])),
    )
    .unwrap();
    let out = fx.run(&server, &["--max-turns", "3", "loop"]);
    out.expect(1);
    assert!(out.stderr.contains("turn limit reached (3 model calls"), "{}", out.stderr);
    assert_eq!(server.requests().len(), 3);
    let t = fx.only_task();
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(fx.store().tool_calls(&t.id).unwrap().len(), 3);
}
