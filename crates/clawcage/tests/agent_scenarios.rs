//! `clawcage agent` end to end: the real binary, a fake model on 127.0.0.1
//! replaying a scripted session in the provider's real wire format, every
//! tool call in the task's sandbox. Asserts on the workspace afterwards, on
//! what the model was sent, and on what the store and audit log kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_common;

use agent_common::*;
use clawcage_agent::testing::*;
use serde_json::json;

const CALC: &str = "add() { echo $(($1 - $2)); }\n";
const TEST: &str =
    ". ./calc.sh\nr=$(add 2 3)\nif [ \"$r\" = 5 ]; then echo PASS; else echo \"FAIL: add 2 3 = $r\"; exit 1; fi\n";

fn fix_the_test_script() -> Vec<Reply> {
    vec![
        steps(vec![
            text("I'll write the code and a test."),
            tool("t1", "write_file", json!({"path": "calc.sh", "content": CALC})),
            tool("t2", "write_file", json!({"path": "tests/test.sh", "content": TEST})),
        ]),
        steps(vec![tool("t3", "bash", json!({"command": "cp tests/test.sh . && sh test.sh"}))]),
        steps(vec![
            text("The test fails: subtraction instead of addition."),
            tool("t4", "edit_file", json!({"path": "calc.sh", "old_text": "$1 - $2", "new_text": "$1 + $2"})),
        ]),
        steps(vec![tool("t5", "bash", json!({"command": "sh test.sh"}))]),
        steps(vec![tool("t6", "read_file", json!({"path": "calc.sh"})), tool("t7", "list_files", json!({}))]),
        steps(vec![tool("t8", "grep", json!({"pattern": "add", "glob": "*.sh"}))]),
        steps(vec![text("Fixed: add now adds, and the test passes.")]),
    ]
}

/// `review`: the default for agent tasks (changes held in an overlay until
/// applied); otherwise the policy says `changes = "direct"`.
fn fix_the_test(wire: FakeWire, review: bool) {
    let mut fx = AgentFixture::new("fix");
    if !review {
        fx = fx.policy("[filesystem]\nchanges = \"direct\"\n");
    }
    let server = FakeServer::start(wire, fix_the_test_script()).unwrap();
    let out = fx.run(&server, &["make add work and test it"]);
    out.expect(0);
    let task = fx.only_task();
    if review {
        // The real workspace is untouched until the changes are applied.
        assert!(!fx.ws.join("calc.sh").exists());
        assert!(out.stderr.contains(&format!("clawcage diff {}", task.id)), "{}", out.stderr);
        let diff = fx.clawcage(&["diff", &task.id]);
        assert!(diff.stdout.contains("+add() { echo $(($1 + $2)); }"), "{}", diff.stdout);
        fx.clawcage(&["apply", &task.id]).expect(0);
    }

    // The workspace holds the model's work, done through the sandbox.
    assert_eq!(fx.read("calc.sh"), "add() { echo $(($1 + $2)); }\n");
    assert_eq!(fx.read("tests/test.sh"), TEST);

    // The terminal showed the streamed text and a line per tool call.
    assert!(out.stdout.contains("I'll write the code and a test."), "{}", out.stdout);
    assert!(out.stdout.contains("> bash sh test.sh"), "{}", out.stdout);
    assert!(out.stdout.contains("failed: exit status 1"), "{}", out.stdout);
    assert!(out.stdout.contains("Fixed: add now adds"), "{}", out.stdout);

    // What the model received: each result answers its call id; the failing
    // run is an error with the test's output, the green one is not.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 7);
    let after_fail = tool_results(&reqs[2].body);
    let (id, content, is_error) = after_fail.last().unwrap();
    assert_eq!(id, "t3");
    assert!(*is_error);
    assert!(content.contains("FAIL: add 2 3 = -1"), "{content}");
    assert!(content.contains("trust=\"untrusted\""), "{content}");
    let green = tool_results(&reqs[4].body);
    let (id, content, is_error) = green.last().unwrap();
    assert_eq!(id, "t5");
    assert!(!is_error, "{content}");
    assert!(content.contains("PASS"));
    let read = tool_results(&reqs[5].body);
    assert!(read.iter().any(|(id, c, _)| id == "t6" && c.contains("$1 + $2")), "{read:?}");
    assert!(
        read.iter().any(|(id, c, _)| id == "t7" && c.contains("tests/") && c.contains("tests/test.sh")),
        "{read:?}"
    );
    let grep = tool_results(&reqs[6].body);
    assert!(grep.iter().any(|(id, c, _)| id == "t8" && c.contains("calc.sh:1:add()")), "{grep:?}");
    // The system prompt told the model about its policy.
    let system = match wire {
        FakeWire::Anthropic => reqs[0].body["system"].as_str().unwrap().to_string(),
        FakeWire::OpenAi => reqs[0].body["messages"][0]["content"].as_str().unwrap().to_string(),
    };
    assert!(system.contains("Network: none"), "{system}");
    assert!(system.contains("Approvals: none: nothing waits for a person"), "{system}");
    assert!(system.contains(&fx.ws.canonicalize().unwrap().display().to_string()), "{system}");

    // The store kept the task, its conversation, every call and the usage.
    assert_eq!(task.status, clawcage_store::TaskStatus::Succeeded);
    assert_eq!(task.kind, clawcage_store::TaskKind::Agent);
    assert_eq!((task.usage.input_tokens, task.usage.output_tokens), (700, 140));
    assert!(task.usage.cost_micro_usd > 0, "a priced model has a cost");
    let calls = fx.store().tool_calls(&task.id).unwrap();
    let tools: Vec<&str> = calls.iter().map(|c| c.tool.as_str()).collect();
    assert_eq!(tools, ["write_file", "write_file", "bash", "edit_file", "bash", "read_file", "list_files", "grep"]);
    assert_eq!(calls[2].exit_status, Some(1));
    assert_eq!(calls[2].argv.as_deref().unwrap()[..2], ["bash".to_string(), "-c".to_string()]);
    assert_eq!(calls[4].exit_status, Some(0));
    assert!(calls.iter().all(|c| c.duration_ms.is_some()));
    assert!(calls[4].output_bytes.unwrap() >= 5);
    let messages = fx.store().messages(&task.id).unwrap();
    assert_eq!(messages.len(), 1 + 1 + 7 + 6, "system, user, 7 assistant turns, 6 tool-result turns");

    // The audit log: task start, sandbox start, an exec/exec_end pair per
    // command (edit_file runs two), sandbox stop, task end; and it verifies.
    let kinds: Vec<String> = fx.audit().iter().map(|r| r["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds.first().map(String::as_str), Some("task_start"));
    assert_eq!(kinds.iter().filter(|k| *k == "exec").count(), 9, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "exec_end").count(), 9, "{kinds:?}");
    let end: Vec<&str> = kinds.iter().map(String::as_str).skip_while(|k| *k != "sandbox_stop").collect();
    if review {
        assert_eq!(end[..3], ["sandbox_stop", "file_changes", "task_end"], "{kinds:?}");
    } else {
        assert_eq!(end, ["sandbox_stop", "task_end"], "{kinds:?}");
    }
    fx.clawcage(&["audit", "verify"]).expect(0);

    // `clawcage tasks` lists it; `tasks ID` shows its calls.
    let list = fx.tasks(&[]);
    assert!(list.stdout.contains(&task.id) && list.stdout.contains("succeeded"), "{}", list.stdout);
    let one = fx.tasks(&[&task.id]);
    assert!(one.stdout.contains("edit_file") && one.stdout.contains("exit 1"), "{}", one.stdout);
}

#[test]
fn anthropic_agent_writes_a_failing_test_fixes_the_code_and_reruns_it_green_held_for_review() {
    fix_the_test(FakeWire::Anthropic, true);
}

#[test]
fn openai_agent_writes_a_failing_test_fixes_the_code_and_reruns_it_green_directly() {
    fix_the_test(FakeWire::OpenAi, false);
}
