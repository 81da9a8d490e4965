//! Providers against fake servers on 127.0.0.1 speaking the real wire
//! formats: streamed text and tool calls, what goes back to the API, retries
//! on 429 / 529 honouring retry-after, and clear errors on 401 / 400.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clawcage_agent::conversation::{Block, ModelResponse, Speaker, StopReason, ToolSpec, Turn};
use clawcage_agent::provider::{ModelRequest, Observer, Provider, ProviderConfig, ProviderError, RetryPolicy};
use clawcage_agent::testing::*;
use serde_json::json;
use std::time::Duration;

#[derive(Default)]
struct Seen {
    text: String,
    notices: Vec<String>,
}

impl Observer for Seen {
    fn text(&mut self, d: &str) {
        self.text.push_str(d);
    }
    fn notice(&mut self, l: &str) {
        self.notices.push(l.to_string());
    }
}

fn provider(spec: &str, server: &FakeServer) -> Provider {
    let base = server.base_url();
    let env = move |k: &str| match k {
        "ANTHROPIC_API_KEY" | "OPENAI_API_KEY" => Some("sk-test".to_string()),
        "ANTHROPIC_BASE_URL" | "OPENAI_BASE_URL" => Some(base.clone()),
        _ => None,
    };
    let mut cfg = ProviderConfig::from_spec(spec, &env).unwrap();
    cfg.retry = RetryPolicy { attempts: 4, base: Duration::from_millis(10), max: Duration::from_secs(5) };
    Provider::new(cfg).unwrap()
}

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "bash".into(),
        description: "run a command".into(),
        input_schema: json!({"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
    }]
}

fn call(p: &Provider, turns: &[Turn]) -> (Result<ModelResponse, ProviderError>, Seen) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut seen = Seen::default();
    let tools = tools();
    let r = rt.block_on(p.complete(ModelRequest { system: "sys", turns, tools: &tools }, &mut seen));
    (r, seen)
}

fn conversation() -> Vec<Turn> {
    vec![
        Turn::user_text("list files"),
        Turn {
            role: Speaker::Assistant,
            content: vec![
                Block::Text { text: "Looking.".into() },
                Block::ToolUse {
                    id: "toolu_1".into(),
                    name: "bash".into(),
                    input: json!({"command": "ls"}),
                    invalid: None,
                },
            ],
        },
        Turn {
            role: Speaker::User,
            content: vec![Block::ToolResult {
                tool_use_id: "toolu_1".into(),
                content: "a\nb\n".into(),
                is_error: false,
            }],
        },
    ]
}

#[test]
fn anthropic_streams_text_and_a_tool_call_whose_json_arrives_in_pieces() {
    let server = FakeServer::start(
        FakeWire::Anthropic,
        vec![steps(vec![
            text("I will run ls, then report."),
            tool("toolu_9", "bash", json!({"command": "ls -la /work"})),
        ])],
    )
    .unwrap();
    let p = provider("anthropic:claude-sonnet-4-5", &server);
    let (r, seen) = call(&p, &conversation());
    let r = r.unwrap();
    assert_eq!(seen.text, "I will run ls, then report.");
    assert_eq!(r.stop, StopReason::ToolUse);
    assert_eq!((r.usage.input, r.usage.output), (100, 20));
    assert_eq!(
        r.content,
        vec![
            Block::Text { text: "I will run ls, then report.".into() },
            Block::ToolUse {
                id: "toolu_9".into(),
                name: "bash".into(),
                input: json!({"command": "ls -la /work"}),
                invalid: None
            },
        ]
    );
    // What the API received: key, version, tools, and the conversation with
    // the tool_result answering the tool_use id.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!(q.header("x-api-key"), Some("sk-test"));
    assert_eq!(q.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(q.body["model"], "claude-sonnet-4-5");
    assert_eq!(q.body["stream"], true);
    assert_eq!(q.body["system"], "sys");
    assert_eq!(q.body["tools"][0]["name"], "bash");
    assert_eq!(
        q.body["messages"][1]["content"][1],
        json!({"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"}})
    );
    assert_eq!(
        q.body["messages"][2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a\nb\n", "is_error": false}]})
    );
}

#[test]
fn openai_streams_tool_call_deltas_split_across_chunks() {
    let server = FakeServer::start(
        FakeWire::OpenAi,
        vec![steps(vec![
            text("Two calls."),
            tool("call_a", "bash", json!({"command": "echo one"})),
            tool("call_b", "bash", json!({"command": "echo two"})),
        ])],
    )
    .unwrap();
    let p = provider("openai:gpt-4o", &server);
    let (r, seen) = call(&p, &conversation());
    let r = r.unwrap();
    assert_eq!(seen.text, "Two calls.");
    assert_eq!(r.stop, StopReason::ToolUse);
    assert_eq!((r.usage.input, r.usage.output), (100, 20));
    let names: Vec<_> = r
        .content
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse { id, input, .. } => Some((id.clone(), input["command"].as_str().unwrap().to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(names, vec![("call_a".into(), "echo one".into()), ("call_b".into(), "echo two".into())]);
    let q = &server.requests()[0];
    assert_eq!(q.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(q.body["stream_options"]["include_usage"], true);
    assert_eq!(q.body["tools"][0]["function"]["name"], "bash");
    let msgs = q.body["messages"].as_array().unwrap();
    assert_eq!(msgs[0], json!({"role": "system", "content": "sys"}));
    assert_eq!(msgs[2]["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(msgs[2]["tool_calls"][0]["function"]["arguments"], "{\"command\":\"ls\"}");
    assert_eq!(msgs[3], json!({"role": "tool", "tool_call_id": "toolu_1", "content": "a\nb\n"}));
}

#[test]
fn ollama_speaks_the_openai_wire_without_a_key() {
    let server = FakeServer::start(FakeWire::OpenAi, vec![steps(vec![text("hello from llama")])]).unwrap();
    let base = server.base_url();
    let env = move |k: &str| (k == "OLLAMA_BASE_URL").then(|| base.clone());
    let p = Provider::new(ProviderConfig::from_spec("ollama:llama3", &env).unwrap()).unwrap();
    let (r, seen) = call(&p, &[Turn::user_text("hi")]);
    assert_eq!(r.unwrap().stop, StopReason::EndTurn);
    assert_eq!(seen.text, "hello from llama");
    let q = &server.requests()[0];
    assert_eq!(q.header("authorization"), None);
    assert_eq!(q.body["max_tokens"], 8192);
}

#[test]
fn malformed_tool_arguments_are_flagged_not_fatal() {
    for wire in [FakeWire::Anthropic, FakeWire::OpenAi] {
        let server =
            FakeServer::start(wire, vec![steps(vec![tool_raw("t1", "bash", "{\"command\": \"ls\"")])]).unwrap();
        let spec = if wire == FakeWire::Anthropic { "anthropic:claude-x" } else { "openai:gpt-4o" };
        let (r, _) = call(&provider(spec, &server), &[Turn::user_text("x")]);
        let r = r.unwrap();
        match &r.content[0] {
            Block::ToolUse { input, invalid: Some(why), .. } => {
                assert_eq!(input, &json!({}));
                assert!(why.contains("not valid JSON"), "{why}");
            }
            other => panic!("{wire:?}: {other:?}"),
        }
    }
}

#[test]
fn rate_limits_and_overload_are_retried_honouring_retry_after() {
    let server = FakeServer::start(
        FakeWire::Anthropic,
        vec![
            error(FakeWire::Anthropic, 429, "rate limited", &[("retry-after", "1")]),
            error(FakeWire::Anthropic, 529, "Overloaded", &[]),
            steps(vec![text("finally")]),
        ],
    )
    .unwrap();
    let (r, seen) = call(&provider("anthropic:claude-x", &server), &[Turn::user_text("x")]);
    assert_eq!(r.unwrap().content, vec![Block::Text { text: "finally".into() }]);
    assert_eq!(server.requests().len(), 3);
    assert_eq!(seen.notices.len(), 2, "{:?}", seen.notices);
    assert!(seen.notices[0].contains("429") && seen.notices[0].contains("rate limited"), "{:?}", seen.notices);
    // retry-after: 1 is honoured instead of the 10 ms backoff.
    assert!(seen.notices[0].contains("retrying in 1.0 s"), "{:?}", seen.notices);
    assert!(seen.notices[1].contains("529") && seen.notices[1].contains("Overloaded"), "{:?}", seen.notices);
}

#[test]
fn an_overloaded_error_event_mid_stream_is_retried() {
    let overloaded = Reply::Status {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        body: "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":1}}}\n\n\
               event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
            .into(),
    };
    let server = FakeServer::start(FakeWire::Anthropic, vec![overloaded, steps(vec![text("ok")])]).unwrap();
    let (r, seen) = call(&provider("anthropic:claude-x", &server), &[Turn::user_text("x")]);
    assert_eq!(r.unwrap().content, vec![Block::Text { text: "ok".into() }]);
    assert!(seen.notices[0].contains("overloaded_error"), "{:?}", seen.notices);
}

#[test]
fn unauthorized_and_bad_requests_fail_at_once_with_the_providers_message() {
    let server =
        FakeServer::start(FakeWire::Anthropic, vec![error(FakeWire::Anthropic, 401, "invalid x-api-key", &[])])
            .unwrap();
    let (r, _) = call(&provider("anthropic:claude-x", &server), &[Turn::user_text("x")]);
    let e = r.unwrap_err().to_string();
    assert!(e.contains("401") && e.contains("invalid x-api-key") && e.contains("ANTHROPIC_API_KEY"), "{e}");
    assert_eq!(server.requests().len(), 1, "no retry on 401");

    let server = FakeServer::start(
        FakeWire::OpenAi,
        vec![error(FakeWire::OpenAi, 400, "Unrecognized request argument supplied: foo", &[])],
    )
    .unwrap();
    let (r, _) = call(&provider("openai:gpt-4o", &server), &[Turn::user_text("x")]);
    let e = r.unwrap_err().to_string();
    assert!(e.contains("400") && e.contains("Unrecognized request argument"), "{e}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn persistent_server_errors_give_up_after_the_attempts() {
    let server =
        FakeServer::start_with(FakeWire::OpenAi, vec![], Some(error(FakeWire::OpenAi, 503, "down", &[]))).unwrap();
    let (r, seen) = call(&provider("openai:gpt-4o", &server), &[Turn::user_text("x")]);
    let e = r.unwrap_err();
    assert!(matches!(e, ProviderError::Exhausted { attempts: 4, .. }), "{e}");
    assert!(e.to_string().contains("down"));
    assert_eq!(server.requests().len(), 4);
    assert_eq!(seen.notices.len(), 3);
}
