//! Test support (feature `testing`): fake model providers on 127.0.0.1 that
//! speak the real wire formats — Anthropic's SSE event sequence with
//! `input_json_delta` split across several events, OpenAI's streamed
//! `tool_calls` deltas split across chunks — replay a scripted session, and
//! record every request they received so tests can assert on it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One step of a scripted model reply.
#[derive(Debug, Clone)]
pub enum Step {
    /// Some text.
    Text(String),
    /// A tool call with these raw JSON arguments (sent in fragments; they
    /// need not be valid JSON — that is how malformed calls are tested).
    Tool {
        /// The call id.
        id: String,
        /// The tool name.
        name: String,
        /// Raw argument text.
        json: String,
    },
}

/// A text step.
pub fn text(t: &str) -> Step {
    Step::Text(t.to_string())
}

/// A tool-call step with `args` as its (valid) JSON arguments.
pub fn tool(id: &str, name: &str, args: Value) -> Step {
    Step::Tool { id: id.into(), name: name.into(), json: args.to_string() }
}

/// A tool-call step with raw, possibly broken, argument text.
pub fn tool_raw(id: &str, name: &str, raw: &str) -> Step {
    Step::Tool { id: id.into(), name: name.into(), json: raw.into() }
}

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A streamed model reply made of these steps.
    Steps(Vec<Step>),
    /// A plain HTTP response (errors: 401, 429 with retry-after, 529, ...).
    Status {
        /// HTTP status.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body (JSON in the provider's error format).
        body: String,
    },
    /// Wait this long, then answer with the inner reply (a slow model).
    Delay(Duration, Box<Reply>),
}

/// A reply of these steps.
pub fn steps(s: Vec<Step>) -> Reply {
    Reply::Steps(s)
}

/// An error reply in the provider's JSON error format.
pub fn error(wire: FakeWire, status: u16, message: &str, headers: &[(&str, &str)]) -> Reply {
    let body = match wire {
        FakeWire::Anthropic => {
            let etype = match status {
                401 => "authentication_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                400 => "invalid_request_error",
                _ => "api_error",
            };
            json!({ "type": "error", "error": { "type": etype, "message": message } })
        }
        FakeWire::OpenAi => json!({ "error": { "message": message, "type": "invalid_request_error", "code": status } }),
    };
    Reply::Status {
        status,
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: body.to_string(),
    }
}

/// Which API the fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeWire {
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAi,
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Request path.
    pub path: String,
    /// Headers (names lowercase).
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Value,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

struct Shared {
    script: Vec<Reply>,
    /// After the script: answer every further request with this one.
    repeat: Option<Reply>,
    next: usize,
    /// Whether requests are kept (the benchmark's fake keeps none: parsing
    /// every growing conversation is the fake's cost, not the agent's).
    record: bool,
    requests: Vec<Recorded>,
}

/// A fake provider serving a script; stops when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    wire: FakeWire,
    shared: Arc<Mutex<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    /// Serve `script` (one reply per request, in order; past its end, 500s).
    pub fn start(wire: FakeWire, script: Vec<Reply>) -> std::io::Result<FakeServer> {
        FakeServer::start_with(wire, script, None)
    }

    /// Like [`FakeServer::start`], answering every request past the script with `repeat`.
    pub fn start_with(wire: FakeWire, script: Vec<Reply>, repeat: Option<Reply>) -> std::io::Result<FakeServer> {
        FakeServer::serve(wire, script, repeat, true)
    }

    /// Like [`FakeServer::start`], keeping no requests ([`FakeServer::requests`] stays empty).
    pub fn start_unrecorded(wire: FakeWire, script: Vec<Reply>) -> std::io::Result<FakeServer> {
        FakeServer::serve(wire, script, None, false)
    }

    fn serve(wire: FakeWire, script: Vec<Reply>, repeat: Option<Reply>, record: bool) -> std::io::Result<FakeServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared { script, repeat, next: 0, record, requests: Vec::new() }));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new().name("fake-model".into()).spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            // Small SSE frames must not wait for delayed ACKs (Nagle).
                            let _ = tcp.set_nodelay(true);
                            let sh = sh.clone();
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| handle(wire, sh.clone(), req));
                                let io = hyper_util::rt::TokioIo::new(tcp);
                                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                            });
                        }
                    }
                }
            });
        })?;
        Ok(FakeServer { addr, wire, shared, stop: Some(stop), thread: Some(thread) })
    }

    /// The base URL a provider config takes (`http://127.0.0.1:PORT`, plus
    /// `/v1` for the OpenAI wire).
    pub fn base_url(&self) -> String {
        match self.wire {
            FakeWire::Anthropic => format!("http://{}", self.addr),
            FakeWire::OpenAi => format!("http://{}/v1", self.addr),
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().map(|s| s.requests.clone()).unwrap_or_default()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

async fn handle(
    wire: FakeWire,
    shared: Arc<Mutex<Shared>>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let record = shared.lock().map(|s| s.record).unwrap_or(true);
    let body: Value = if record { serde_json::from_slice(&bytes).unwrap_or(Value::Null) } else { Value::Null };
    let reply = {
        let Ok(mut s) = shared.lock() else { return Ok(plain(500, &[], "poisoned".into())) };
        if record {
            s.requests.push(Recorded { path: path.clone(), headers, body });
        }
        let r = s.script.get(s.next).cloned().or_else(|| s.repeat.clone());
        s.next += 1;
        r
    };
    let expected = match wire {
        FakeWire::Anthropic => "/v1/messages",
        FakeWire::OpenAi => "/v1/chat/completions",
    };
    if path != expected {
        return Ok(plain(404, &[], format!("{{\"error\":{{\"message\":\"no route {path}\"}}}}")));
    }
    let mut reply = match reply {
        Some(r) => r,
        None => return Ok(plain(500, &[], "{\"error\":{\"message\":\"the fake's script is exhausted\"}}".into())),
    };
    while let Reply::Delay(d, inner) = reply {
        tokio::time::sleep(d).await;
        reply = *inner;
    }
    Ok(match reply {
        Reply::Status { status, headers, body } => plain(status, &headers, body),
        Reply::Steps(steps) => {
            let chunks = match wire {
                FakeWire::Anthropic => anthropic_chunks(&steps),
                FakeWire::OpenAi => openai_chunks(&steps),
            };
            let frames = futures_util::stream::iter(
                chunks.into_iter().map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c)))),
            );
            let body = StreamBody::new(frames).boxed();
            let mut resp = hyper::Response::new(body);
            resp.headers_mut().insert("content-type", http::HeaderValue::from_static("text/event-stream"));
            resp
        }
        Reply::Delay(..) => plain(500, &[], String::new()),
    })
}

fn plain(status: u16, headers: &[(String, String)], body: String) -> hyper::Response<Body> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// `s` cut into `n` pieces of roughly equal size (on char boundaries).
fn pieces(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn sse(event: &str, data: &Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// The Anthropic event sequence for `steps`, each event split in two
/// network writes, tool arguments in three `input_json_delta` events.
pub fn anthropic_chunks(steps: &[Step]) -> Vec<String> {
    let mut events = vec![
        sse(
            "message_start",
            &json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant",
                "model": "fake", "content": [], "stop_reason": null, "usage": {"input_tokens": 100, "output_tokens": 1}}}),
        ),
        sse("ping", &json!({"type": "ping"})),
    ];
    let mut has_tool = false;
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Text(t) => {
                events.push(sse(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}),
                ));
                for p in pieces(t, 3) {
                    events.push(sse(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": p}}),
                    ));
                }
            }
            Step::Tool { id, name, json } => {
                has_tool = true;
                events.push(sse("content_block_start", &json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
                for p in pieces(json, 3) {
                    events.push(sse("content_block_delta", &json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": p}})));
                }
            }
        }
        events.push(sse("content_block_stop", &json!({"type": "content_block_stop", "index": i})));
    }
    let stop = if has_tool { "tool_use" } else { "end_turn" };
    events.push(sse("message_delta", &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 20}})));
    events.push(sse("message_stop", &json!({"type": "message_stop"})));
    events.into_iter().flat_map(|e| pieces(&e, 2)).collect()
}

/// The OpenAI chunk sequence for `steps`: text in several content deltas,
/// each tool call as a first delta (index, id, name) and its arguments in
/// three further deltas; finish_reason, a usage chunk, `[DONE]`.
pub fn openai_chunks(steps: &[Step]) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let mut out = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    let mut index = 0;
    for step in steps {
        match step {
            Step::Text(t) => {
                for p in pieces(t, 3) {
                    out.push(chunk(json!({"content": p}), Value::Null));
                }
            }
            Step::Tool { id, name, json } => {
                out.push(chunk(
                    json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                    Value::Null,
                ));
                for p in pieces(json, 3) {
                    out.push(chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": p}}]}),
                        Value::Null,
                    ));
                }
                index += 1;
            }
        }
    }
    let finish = if index > 0 { "tool_calls" } else { "stop" };
    out.push(chunk(json!({}), json!(finish)));
    let usage = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake",
        "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}});
    out.push(format!("data: {usage}\n\n"));
    out.push("data: [DONE]\n\n".into());
    out.into_iter().flat_map(|e| pieces(&e, 2)).collect()
}
