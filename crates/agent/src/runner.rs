//! The agent loop of one task: ask the model, run the tool calls it asks
//! for in the task's sandbox, hand the results back, until it answers
//! without tool calls or a limit (turns, tokens, wall time) or a
//! cancellation ends it. Every message, tool call, exec and usage is
//! recorded as it happens.

use crate::audit::AuditSink;
use crate::conversation::{Block, ModelResponse, Speaker, StopReason, Turn};
use crate::gate::{GateRequest, ToolGate, Verdict};
use crate::helper::{Client, HelperError};
use crate::host_tools::HostTools;
use crate::provider::{price, ModelRequest, Observer, Provider, ProviderError};
use crate::tools::{self, Call};
use clawcage_policy::{Event, EventSink};
use clawcage_sandbox::{Collected, ExecSpec, Outcome};
use clawcage_store::{NewToolCall, Role, Store, ToolCallEnd, Usage};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Limits of one task run (a resumed task gets them afresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Model calls.
    pub max_turns: u32,
    /// Input + output tokens over all model calls.
    pub max_tokens: u64,
    /// Wall-clock time of the whole run.
    pub wall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_turns: 50, max_tokens: 2_000_000, wall: Duration::from_secs(30 * 60) }
    }
}

/// What the person watching sees.
pub trait Ui: Send {
    /// A piece of the model's text as it streams.
    fn text(&mut self, delta: &str);
    /// A one-line notice (retries, limits).
    fn notice(&mut self, line: &str);
    /// A tool call starts: its name and a short description.
    fn tool_start(&mut self, tool: &str, what: &str);
    /// It ended: a one-line result summary.
    fn tool_end(&mut self, tool: &str, summary: &str, ok: bool);
}

struct Obs<'a>(&'a mut dyn Ui);

impl Observer for Obs<'_> {
    fn text(&mut self, delta: &str) {
        self.0.text(delta)
    }
    fn notice(&mut self, line: &str) {
        self.0.notice(line)
    }
}

/// Cancels a run from another task or a signal handler.
#[derive(Debug, Clone)]
pub struct Canceller(Arc<watch::Sender<bool>>);

impl Canceller {
    /// Cancel: the model call or command under way is abandoned, the sandbox
    /// is killed, and the run ends as cancelled.
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }
}

/// A cancellation signal and its trigger.
pub fn cancellation() -> (Canceller, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    (Canceller(Arc::new(tx)), rx)
}

pub(crate) async fn cancelled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|c| *c).await.is_err() {
        // The sender is gone: nobody can cancel any more.
        std::future::pending::<()>().await;
    }
}

/// The task's sandbox, owned by its helper process.
#[derive(Clone)]
pub struct SandboxHandle {
    client: Arc<Mutex<Option<Client>>>,
    pid: u32,
}

impl SandboxHandle {
    /// Wrap a started helper.
    pub fn new(client: Client) -> SandboxHandle {
        let pid = client.pid();
        SandboxHandle { client: Arc::new(Mutex::new(Some(client))), pid }
    }

    async fn exec(&self, spec: ExecSpec, stdin: Vec<u8>) -> Result<Collected, HelperError> {
        let client = self.client.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut guard = client.lock().map_err(|_| HelperError::Gone("client lock poisoned".into()))?;
            match guard.as_mut() {
                Some(c) => c.exec_collect(&spec, &stdin),
                None => Err(HelperError::Gone("the sandbox is stopped".into())),
            }
        })
        .await;
        joined.unwrap_or_else(|e| Err(HelperError::Gone(format!("exec task: {e}"))))
    }

    /// Start a background command (an MCP server) in the sandbox.
    pub fn spawn_background(&self, spec: &ExecSpec) -> Result<crate::helper::Background, HelperError> {
        let mut guard = self.client.lock().map_err(|_| HelperError::Gone("client lock poisoned".into()))?;
        match guard.as_mut() {
            Some(c) => c.spawn_background(spec),
            None => Err(HelperError::Gone("the sandbox is stopped".into())),
        }
    }

    /// Kill the helper at once (SIGKILL), and with it every sandbox process.
    /// Safe to call while a command runs; that command's call then fails.
    pub fn kill(&self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), nix::sys::signal::Signal::SIGKILL);
    }

    /// Stop the sandbox (waits for the helper to exit). After [`SandboxHandle::kill`]
    /// this only reaps the helper.
    pub fn stop(&self) -> Result<(), HelperError> {
        let client = self.client.lock().map_err(|_| HelperError::Gone("client lock poisoned".into()))?.take();
        match client {
            Some(c) => c.stop(),
            None => Ok(()),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The model answered without tool calls.
    Done,
    /// A limit was reached (turns, tokens, wall time); the text says which.
    Limit(String),
    /// Cancelled (Ctrl-C).
    Cancelled,
    /// The model API failed for good.
    Failed(String),
}

/// One task's loop state.
pub struct Session<'a> {
    /// Task id (also the sandbox id in audit records).
    pub task: String,
    /// The model.
    pub provider: &'a Provider,
    /// The sandbox.
    pub sandbox: SandboxHandle,
    /// The store.
    pub store: &'a Store,
    /// The audit log, as this task's records.
    pub sink: AuditSink,
    /// The approvals hook.
    pub gate: Arc<dyn ToolGate>,
    /// Limits.
    pub limits: Limits,
    /// System prompt.
    pub system: String,
    /// The conversation so far (the new user turn included).
    pub turns: Vec<Turn>,
    /// Workspace (the commands' working directory).
    pub workspace: PathBuf,
    /// The policy's per-command timeout.
    pub policy_timeout: Option<Duration>,
    /// The policy's output limit per command.
    pub output_limit: Option<u64>,
    /// Whether the policy allows any network.
    pub network: bool,
    /// Commands run in this sandbox so far (numbers the exec records).
    pub execs: u64,
    /// Skills and MCP servers.
    pub extras: crate::extras::Extras,
    /// Tools answered on the host (the server's), offered beside the sandbox's.
    pub host_tools: Option<Arc<dyn HostTools>>,
}

/// A tool call's result for the model and the record.
pub(crate) struct ToolResult {
    pub(crate) content: String,
    pub(crate) is_error: bool,
    pub(crate) summary: String,
    pub(crate) exit_status: Option<i32>,
    pub(crate) output_bytes: u64,
}

impl ToolResult {
    pub(crate) fn error(tool: &str, why: &str) -> ToolResult {
        ToolResult {
            content: tools::frame(tool, "error", why),
            is_error: true,
            summary: format!("error: {}", first_line(why)),
            exit_status: None,
            output_bytes: 0,
        }
    }
}

pub(crate) fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("");
    let mut out: String = l.chars().take(100).collect();
    if l.chars().count() > 100 || s.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

/// Why a command did not give a result.
pub(crate) enum ExecFail {
    Cancelled,
    WallTime,
    /// The sandbox or the audit log failed: the run cannot go on.
    Fatal(String),
}

/// Error of the run itself (store or audit failures end it: fail closed).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] clawcage_store::StoreError),
    /// An audit record could not be made durable.
    #[error("audit log: {0}")]
    Audit(String),
    /// The sandbox broke.
    #[error("sandbox: {0}")]
    Sandbox(String),
}

impl Session<'_> {
    /// Run until the model is done, a limit hits, or `cancel` fires.
    pub async fn run(&mut self, ui: &mut dyn Ui, mut cancel: watch::Receiver<bool>) -> Result<Ending, RunError> {
        let deadline = tokio::time::Instant::now() + self.limits.wall;
        let mut specs = tools::specs();
        specs.extend(self.extras.specs());
        if let Some(h) = &self.host_tools {
            specs.extend(h.specs());
        }
        let mut tokens = 0u64;
        for turn in 0.. {
            if turn >= self.limits.max_turns {
                return Ok(Ending::Limit(format!(
                    "turn limit reached ({} model calls, --max-turns)",
                    self.limits.max_turns
                )));
            }
            if tokens >= self.limits.max_tokens {
                return Ok(Ending::Limit(format!(
                    "token limit reached ({tokens} of {} tokens)",
                    self.limits.max_tokens
                )));
            }
            let req = ModelRequest { system: &self.system, turns: &self.turns, tools: &specs };
            let mut obs = Obs(&mut *ui);
            let resp: ModelResponse = tokio::select! {
                r = self.provider.complete(req, &mut obs) => match r {
                    Ok(r) => r,
                    Err(e) => return Ok(Ending::Failed(describe_provider_error(&e))),
                },
                _ = cancelled(&mut cancel) => return Ok(Ending::Cancelled),
                _ = tokio::time::sleep_until(deadline) => return Ok(Ending::Limit(wall_text(self.limits.wall))),
            };
            ui.text("\n");
            tokens = tokens.saturating_add(resp.usage.input).saturating_add(resp.usage.output);
            let cfg = self.provider.config();
            let cost = price::cost_micro_usd(&cfg.provider, &cfg.model, resp.usage.input, resp.usage.output);
            let usage = Usage {
                input_tokens: resp.usage.input,
                output_tokens: resp.usage.output,
                cost_micro_usd: cost.unwrap_or(0),
            };
            let assistant = Turn { role: Speaker::Assistant, content: resp.content.clone() };
            self.store.add_reply(&self.task, usage, Role::Assistant, &turn_json(&assistant))?;
            self.turns.push(assistant);

            let calls: Vec<(String, String, Value, Option<String>)> = resp
                .content
                .iter()
                .filter_map(|b| match b {
                    Block::ToolUse { id, name, input, invalid } => {
                        Some((id.clone(), name.clone(), input.clone(), invalid.clone()))
                    }
                    _ => None,
                })
                .collect();
            if calls.is_empty() {
                if resp.stop == StopReason::MaxTokens {
                    ui.notice("the model hit its output token limit");
                }
                return Ok(Ending::Done);
            }
            let mut results = Vec::new();
            let mut ending = None;
            for (id, name, input, invalid) in calls {
                if ending.is_some() {
                    // Every tool_use needs an answer, even when we stop.
                    results.push(Block::ToolResult {
                        tool_use_id: id,
                        content: tools::frame(&name, "error", "not run: the task was stopped"),
                        is_error: true,
                    });
                    continue;
                }
                match self.tool_call(ui, &id, &name, &input, invalid.as_deref(), &mut cancel, deadline).await? {
                    Ok(r) => {
                        results.push(Block::ToolResult { tool_use_id: id, content: r.content, is_error: r.is_error })
                    }
                    Err(end) => {
                        results.push(Block::ToolResult {
                            tool_use_id: id,
                            content: tools::frame(&name, "error", "not finished: the task was stopped"),
                            is_error: true,
                        });
                        ending = Some(end);
                    }
                }
            }
            let user = Turn { role: Speaker::User, content: results };
            self.store.append_message(&self.task, Role::Tool, &turn_json(&user))?;
            self.turns.push(user);
            if let Some(end) = ending {
                return Ok(end);
            }
        }
        Ok(Ending::Done)
    }

    /// One tool call: check, gate, run, record. `Ok(Err(ending))` when a
    /// cancellation or the wall-time limit stopped it.
    #[allow(clippy::too_many_arguments)]
    async fn tool_call(
        &mut self,
        ui: &mut dyn Ui,
        id: &str,
        name: &str,
        input: &Value,
        invalid: Option<&str>,
        cancel: &mut watch::Receiver<bool>,
        deadline: tokio::time::Instant,
    ) -> Result<Result<ToolResult, Ending>, RunError> {
        if let Some(host) = self.host_tools.clone().filter(|h| h.handles(name)) {
            return self.host_call(ui, host.as_ref(), id, name, input, invalid).map(Ok);
        }
        let parsed = match invalid {
            Some(why) => Err(format!("malformed tool call: {why}")),
            None => match self.extras.parse(name, input) {
                Some(extra) => extra.map(Call::Extra),
                None => tools::parse(name, input),
            }
            .map_err(|e| format!("malformed tool call: {e}")),
        };
        let what = parsed.as_ref().map(tools::describe).unwrap_or_default();
        ui.tool_start(name, &what);
        let first_argv = parsed.as_ref().ok().map(|c| tools::argv(c).0);
        let seq = self
            .store
            .start_tool_call(
                &self.task,
                &NewToolCall { call_id: Some(id), tool: name, input, argv: first_argv.as_deref() },
            )?
            .seq;
        let started = Instant::now();
        let result = match parsed {
            Err(why) => ToolResult::error(name, &why),
            Ok(call) => {
                let req = self.gate_request(id, name, input, &call);
                // The active skill's `tools` need comes before the gate.
                let verdict = match self.extras.allowed(name) {
                    Ok(()) => self.gate.check(&req).await,
                    Err(why) => Verdict::Deny(why),
                };
                match verdict {
                    Verdict::Deny(reason) => {
                        self.sink
                            .append(
                                "tool_denied",
                                json!({ "call": id, "tool": name, "argv": req.argv, "reason": reason }),
                            )
                            .map_err(|e| RunError::Audit(e.to_string()))?;
                        ToolResult::error(name, &format!("denied by the approver: {reason}"))
                    }
                    Verdict::Allow => match self.perform(name, &call, cancel, deadline).await {
                        Ok(r) => r,
                        Err(ExecFail::Fatal(why)) => {
                            let end = ToolCallEnd {
                                exit_status: None,
                                duration_ms: ms(started),
                                output_bytes: 0,
                                error: Some(why.clone()),
                            };
                            let _ = self.store.finish_tool_call(&self.task, seq, &end);
                            return Err(RunError::Sandbox(why));
                        }
                        Err(fail) => {
                            let (end, why) = match fail {
                                ExecFail::WallTime => (Ending::Limit(wall_text(self.limits.wall)), "wall-clock limit"),
                                _ => (Ending::Cancelled, "cancelled"),
                            };
                            let rec = ToolCallEnd {
                                exit_status: None,
                                duration_ms: ms(started),
                                output_bytes: 0,
                                error: Some(why.into()),
                            };
                            self.store.finish_tool_call(&self.task, seq, &rec)?;
                            ui.tool_end(name, why, false);
                            return Ok(Err(end));
                        }
                    },
                }
            }
        };
        let end = ToolCallEnd {
            exit_status: result.exit_status,
            duration_ms: ms(started),
            output_bytes: result.output_bytes,
            error: result.is_error.then(|| result.summary.clone()),
        };
        self.store.finish_tool_call(&self.task, seq, &end)?;
        ui.tool_end(name, &result.summary, !result.is_error);
        Ok(Ok(result))
    }

    /// A call of a host tool: recorded like any tool call, answered by `host`.
    fn host_call(
        &mut self,
        ui: &mut dyn Ui,
        host: &dyn HostTools,
        id: &str,
        name: &str,
        input: &Value,
        invalid: Option<&str>,
    ) -> Result<ToolResult, RunError> {
        let what = input.get("action").and_then(Value::as_str).unwrap_or_default().to_string();
        ui.tool_start(name, &what);
        let call = NewToolCall { call_id: Some(id), tool: name, input, argv: None };
        let seq = self.store.start_tool_call(&self.task, &call)?.seq;
        let started = Instant::now();
        let answer = match (invalid, self.extras.allowed(name)) {
            (Some(why), _) => Err(format!("malformed tool call: {why}")),
            // The active skill's `tools` need holds for host tools too.
            (None, Err(why)) => {
                self.sink
                    .append("tool_denied", json!({ "call": id, "tool": name, "reason": why }))
                    .map_err(|e| RunError::Audit(e.to_string()))?;
                Err(format!("denied: {why}"))
            }
            (None, Ok(())) => host.call(&self.task, name, input),
        };
        let result = match answer {
            Ok(text) => ToolResult {
                summary: first_line(&text),
                content: tools::frame(name, "ok", &text),
                is_error: false,
                exit_status: None,
                output_bytes: 0,
            },
            Err(why) => ToolResult::error(name, &why),
        };
        let end = ToolCallEnd {
            exit_status: None,
            duration_ms: ms(started),
            output_bytes: 0,
            error: result.is_error.then(|| result.summary.clone()),
        };
        self.store.finish_tool_call(&self.task, seq, &end)?;
        ui.tool_end(name, &result.summary, !result.is_error);
        Ok(result)
    }

    fn gate_request(&self, id: &str, name: &str, input: &Value, call: &Call) -> GateRequest {
        let (argv, _) = tools::argv(call);
        GateRequest {
            task: self.task.clone(),
            call_id: id.to_string(),
            tool: name.to_string(),
            input: input.clone(),
            argv,
            cwd: self.workspace.clone(),
            writes: match call {
                Call::WriteFile { path, .. } | Call::EditFile { path, .. } => Some(path.clone()),
                _ => None,
            },
            url: match call {
                Call::FetchUrl { url } => Some(url.clone()),
                _ => None,
            },
        }
    }

    /// Run the commands of a call and shape the result.
    async fn perform(
        &mut self,
        tool: &str,
        call: &Call,
        cancel: &mut watch::Receiver<bool>,
        deadline: tokio::time::Instant,
    ) -> Result<ToolResult, ExecFail> {
        if let Call::Extra(x) = call {
            return self.perform_extra(tool, x, cancel, deadline).await;
        }
        let (argv, limit) = tools::argv(call);
        let stdin = match call {
            Call::WriteFile { content, .. } => content.clone().into_bytes(),
            _ => Vec::new(),
        };
        let (c, timeout) = self.exec(argv.clone(), stdin, limit, cancel, deadline).await?;
        let stdout = String::from_utf8_lossy(&c.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&c.stderr).into_owned();
        let bytes = (c.stdout.len() + c.stderr.len()) as u64;
        let status = outcome_text(&c.outcome, timeout);
        let ok = c.outcome == Outcome::Exited(0);
        let r = |content: String, is_error: bool, summary: String| ToolResult {
            content,
            is_error,
            summary,
            exit_status: Some(c.outcome.exit_code()),
            output_bytes: bytes,
        };
        Ok(match call {
            Call::Bash { .. } => {
                let body = tools::output_body(&status, &stdout, &stderr);
                let lines = stdout.lines().count() + stderr.lines().count();
                r(tools::frame(tool, &status, &body), !ok, format!("{status}, {lines} lines of output"))
            }
            Call::ReadFile { path, offset, limit } if ok => {
                let text = tools::line_range(&stdout, *offset, *limit);
                let n = text.lines().count();
                r(tools::frame(tool, "ok", &text), false, format!("{n} lines of {path}"))
            }
            Call::EditFile { path, old_text, new_text } if ok => match tools::edit(&stdout, old_text, new_text, path) {
                Err(why) => r(tools::frame(tool, "error", &why), true, format!("error: {why}")),
                Ok(edited) => {
                    let (wargv, wlimit) = (tools::write_argv(path), tools::FILE_TIMEOUT);
                    let (w, wt) = self.exec(wargv, edited.into_bytes(), wlimit, cancel, deadline).await?;
                    if w.outcome == Outcome::Exited(0) {
                        r(tools::frame(tool, "ok", &format!("edited {path}")), false, format!("edited {path}"))
                    } else {
                        let why =
                            format!("{}: {}", outcome_text(&w.outcome, wt), String::from_utf8_lossy(&w.stderr).trim());
                        r(tools::frame(tool, "error", &why), true, format!("error: {}", first_line(&why)))
                    }
                }
            },
            Call::WriteFile { path, content } if ok => {
                let msg = format!("wrote {} bytes to {path}", content.len());
                r(tools::frame(tool, "ok", &msg), false, msg)
            }
            Call::ListFiles { .. } if ok => {
                let mut entries: Vec<String> = stdout
                    .lines()
                    .filter(|l| l.len() > 2)
                    .map(|l| match l.strip_prefix("d ") {
                        Some(dir) => format!("{dir}/"),
                        None => l.get(2..).unwrap_or("").to_string(),
                    })
                    .collect();
                entries.sort();
                let n = entries.len();
                r(tools::frame(tool, "ok", &entries.join("\n")), false, format!("{n} entries"))
            }
            Call::Grep { .. } if ok || c.outcome == Outcome::Exited(1) => {
                let n = stdout.lines().count();
                let body = if n == 0 { "no matches".to_string() } else { stdout.clone() };
                r(tools::frame(tool, "ok", &body), false, format!("{n} matching lines"))
            }
            Call::FetchUrl { url } if ok => {
                r(tools::frame(tool, "ok", &stdout), false, format!("fetched {url}, {} bytes", c.stdout.len()))
            }
            Call::FetchUrl { url } => {
                let mut why = format!("fetching {url} failed ({status}): {}", stderr.trim());
                if !self.network {
                    why.push_str("\nThe policy allows no network: the sandbox cannot reach any host.");
                }
                r(tools::frame(tool, "error", &why), true, format!("error: {}", first_line(&why)))
            }
            _ => {
                let why = format!("{status}: {}", stderr.trim());
                r(tools::frame(tool, "error", &why), true, format!("error: {}", first_line(&why)))
            }
        })
    }

    /// Run one command in the sandbox, audited: the exec record is durable
    /// before the command starts (or the command does not run).
    async fn exec(
        &mut self,
        argv: Vec<String>,
        stdin: Vec<u8>,
        tool_limit: Duration,
        cancel: &mut watch::Receiver<bool>,
        deadline: tokio::time::Instant,
    ) -> Result<(Collected, Duration), ExecFail> {
        let timeout = match self.policy_timeout {
            Some(p) => tool_limit.min(p),
            None => tool_limit,
        };
        self.execs += 1;
        let exec = self.execs;
        let cwd = self.workspace.display().to_string();
        self.sink
            .record(&Event::Exec { sandbox: self.task.clone(), exec, argv: argv.clone(), cwd })
            .map_err(|e| ExecFail::Fatal(format!("audit log: {e}")))?;
        let spec = ExecSpec {
            argv,
            cwd: Some(self.workspace.clone()),
            timeout: Some(timeout),
            output_limit: Some(self.output_limit.unwrap_or(DEFAULT_OUTPUT_LIMIT)),
            ..ExecSpec::default()
        };
        let started = Instant::now();
        let result = tokio::select! {
            r = self.sandbox.exec(spec, stdin) => r,
            _ = cancelled(cancel) => {
                self.sandbox.kill();
                return Err(ExecFail::Cancelled);
            }
            _ = tokio::time::sleep_until(deadline) => {
                self.sandbox.kill();
                return Err(ExecFail::WallTime);
            }
        };
        let c = result.map_err(|e| ExecFail::Fatal(e.to_string()))?;
        // After the effect: durable with the next record (group commit).
        self.sink
            .record_after(&Event::ExecEnd {
                sandbox: self.task.clone(),
                exec,
                outcome: outcome_name(&c.outcome).into(),
                status: c.outcome.exit_code(),
                duration_ms: ms(started),
                stdout_bytes: c.stdout.len() as u64,
                stderr_bytes: c.stderr.len() as u64,
            })
            .map_err(|e| ExecFail::Fatal(format!("audit log: {e}")))?;
        Ok((c, timeout))
    }
}

/// Output limit per command when the policy sets none (the host keeps the
/// output in memory).
pub const DEFAULT_OUTPUT_LIMIT: u64 = 10 * 1024 * 1024;

pub(crate) fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn wall_text(wall: Duration) -> String {
    format!("wall-clock limit reached ({} s)", wall.as_secs())
}

fn describe_provider_error(e: &ProviderError) -> String {
    e.to_string()
}

/// How an outcome reads to the model and the person.
pub(crate) fn outcome_text(o: &Outcome, timeout: Duration) -> String {
    match o {
        Outcome::Exited(c) => format!("exit status {c}"),
        Outcome::Signaled(s) => format!("killed by signal {s}"),
        Outcome::TimedOut => format!("timed out: killed after {} s", timeout.as_secs_f64()),
        Outcome::MemoryLimit => "killed: memory limit reached".into(),
        Outcome::OutputLimit => "killed: output limit reached".into(),
        Outcome::StartFailed(_, why) => format!("could not start: {why}"),
    }
}

/// How an outcome is named in `exec_end` records (as `run` names them).
pub fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Exited(_) => "exited",
        Outcome::Signaled(_) => "signaled",
        Outcome::TimedOut => "timeout",
        Outcome::MemoryLimit => "memory",
        Outcome::OutputLimit => "output",
        Outcome::StartFailed(..) => "start_failed",
    }
}

/// A turn as stored in a message row.
pub fn turn_json(t: &Turn) -> Value {
    json!({ "content": t.content })
}

/// The conversation kept in the store, as turns: the system message is
/// skipped (it is rebuilt from the policy), tool results are user turns.
/// A tool call left without a result (the task was interrupted) gets an
/// error result, so the conversation can go on.
pub fn turns_from_store(store: &Store, task: &str) -> Result<(Vec<Turn>, Option<Turn>), RunError> {
    let mut turns = Vec::new();
    for m in store.messages(task)? {
        let role = match m.role {
            Role::System => continue,
            Role::User | Role::Tool => Speaker::User,
            Role::Assistant => Speaker::Assistant,
        };
        let content: Vec<Block> =
            m.content.get("content").cloned().and_then(|c| serde_json::from_value(c).ok()).ok_or_else(|| {
                RunError::Sandbox(format!("message {} of task {task} is not a conversation turn", m.seq))
            })?;
        turns.push(Turn { role, content });
    }
    let repair = match turns.last() {
        Some(t) if t.role == Speaker::Assistant => {
            let results: Vec<Block> = t
                .content
                .iter()
                .filter_map(|b| match b {
                    Block::ToolUse { id, name, .. } => Some(Block::ToolResult {
                        tool_use_id: id.clone(),
                        content: tools::frame(name, "error", "not run: the task was interrupted"),
                        is_error: true,
                    }),
                    _ => None,
                })
                .collect();
            (!results.is_empty()).then_some(Turn { role: Speaker::User, content: results })
        }
        _ => None,
    };
    Ok((turns, repair))
}
