//! `clawcage agent` options: `--changes review|direct` over the policy's
//! `[filesystem] changes`, and refusals of bad values (exit 125).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_common;

use agent_common::*;
use clawcage_agent::testing::*;
use serde_json::json;

fn write_note() -> Vec<Reply> {
    vec![
        steps(vec![tool("w1", "write_file", json!({"path": "note.txt", "content": "from the agent\n"}))]),
        steps(vec![text("wrote it")]),
    ]
}

fn clawcage(fx: &AgentFixture, args: &[&str]) -> Out {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawcage"))
        .env("CLAWCAGE_HOME", &fx.state)
        .args(args)
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn changes_direct_writes_through_although_agent_tasks_default_to_review() {
    let fx = AgentFixture::new("chg-direct");
    let server = FakeServer::start(FakeWire::Anthropic, write_note()).unwrap();
    let out = fx.run(&server, &["--changes", "direct", "write a note"]);
    out.expect(0);
    assert_eq!(fx.read("note.txt"), "from the agent\n");
    assert!(!out.stderr.contains("held for review"), "{}", out.stderr);
    let system = server.requests()[0].body["system"].as_str().unwrap().to_string();
    assert!(system.contains("written directly to the real workspace"), "{system}");
}

#[test]
fn changes_review_holds_changes_although_the_policy_says_direct() {
    let fx = AgentFixture::new("chg-review").policy("[filesystem]\nchanges = \"direct\"\n");
    let server = FakeServer::start(FakeWire::Anthropic, write_note()).unwrap();
    let out = fx.run(&server, &["--changes", "review", "write a note"]);
    out.expect(0);
    assert!(!fx.ws.join("note.txt").exists(), "held, not written");
    let task = fx.only_task();
    assert!(out.stderr.contains(&format!("clawcage diff {}", task.id)), "{}", out.stderr);
    let diff = clawcage(&fx, &["diff", &task.id]);
    assert!(diff.stdout.contains("+from the agent"), "{}", diff.stdout);
    let system = server.requests()[0].body["system"].as_str().unwrap().to_string();
    assert!(system.contains("held for review"), "{system}");

    // Resuming it with direct changes would hide what it holds: refused.
    let again = FakeServer::start(FakeWire::Anthropic, vec![steps(vec![text("ok")])]).unwrap();
    let out = fx.run(&again, &["--resume", &task.id, "--changes", "direct", "more"]);
    out.expect(125);
    assert!(out.stderr.contains("holds reviewed changes (1 change: 1 added"), "{}", out.stderr);
    assert!(again.requests().is_empty(), "refused before the model was asked");
}

#[test]
fn a_bad_changes_value_is_refused_before_anything_starts() {
    let fx = AgentFixture::new("chg-bad");
    let server = FakeServer::start(FakeWire::Anthropic, write_note()).unwrap();
    let out = fx.run(&server, &["--changes", "sideways", "write a note"]);
    out.expect(125);
    assert!(out.stderr.contains("--changes \"sideways\": expected \"review\" or \"direct\""), "{}", out.stderr);
    assert!(server.requests().is_empty());
    assert!(!fx.state.join("clawcage.db").exists(), "no task was created");
}
