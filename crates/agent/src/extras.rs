//! The tools a task gets beyond the built-in ones: its skills
//! (`load_skill`, `run_skill`, see [`crate::skills`]) and its MCP servers'
//! tools (`mcp__SERVER__TOOL`, see [`crate::mcp`]). They go through the same
//! steps as every tool call in [`crate::runner`]: a store row, the `tools`
//! need of the active skill, the gate, audit records before the effect.

use crate::conversation::ToolSpec;
use crate::mcp::McpServers;
use crate::runner::{cancelled, first_line, ms, outcome_text, ExecFail, Session, ToolResult};
use crate::skills::{skill_argv, SkillRun, TaskSkills};
use crate::tools;
use clawcage_policy::{Event, EventSink};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A task's skills and MCP servers (both may be absent).
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The task's skills.
    pub skills: Option<Arc<Mutex<TaskSkills>>>,
    /// The task's MCP servers (running in its sandbox).
    pub mcp: Arc<McpServers>,
}

/// A call of one of the extra tools, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtraCall {
    /// `load_skill`.
    LoadSkill {
        /// Skill name.
        name: String,
    },
    /// `run_skill`.
    RunSkill {
        /// Skill name.
        skill: String,
        /// Program and arguments as they run (script path made absolute).
        argv: Vec<String>,
    },
    /// An MCP server's tool.
    Mcp {
        /// `mcp__SERVER__TOOL`.
        name: String,
        /// Its arguments.
        arguments: Value,
    },
}

impl ExtraCall {
    /// What the gate and the store see as the call's command: the script
    /// for `run_skill`, `[mcp__S__T, ARGUMENTS-JSON]` for an MCP tool (so an
    /// `[approvals] commands` rule such as `"mcp__github__* *"` can ask).
    pub fn argv(&self) -> Vec<String> {
        match self {
            ExtraCall::LoadSkill { name } => vec!["load_skill".into(), name.clone()],
            ExtraCall::RunSkill { argv, .. } => argv.clone(),
            ExtraCall::Mcp { name, arguments } => vec![name.clone(), arguments.to_string()],
        }
    }

    /// One line for the terminal.
    pub fn describe(&self) -> String {
        let a = self.argv().join(" ");
        let mut cut: String = a.chars().map(|c| if c.is_control() { ' ' } else { c }).take(80).collect();
        if a.chars().count() > 80 {
            cut.push('…');
        }
        match self {
            ExtraCall::RunSkill { skill, .. } => format!("{skill}: {cut}"),
            _ => cut,
        }
    }
}

impl Extras {
    fn skills(&self) -> Option<std::sync::MutexGuard<'_, TaskSkills>> {
        self.skills.as_ref().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The extra tools' specs.
    pub fn specs(&self) -> Vec<ToolSpec> {
        let mut out = self.skills().map(|s| s.specs()).unwrap_or_default();
        out.extend(self.mcp.specs());
        out
    }

    /// Check a call of an extra tool; `None` when `name` is not one.
    pub fn parse(&self, name: &str, input: &Value) -> Option<Result<ExtraCall, String>> {
        let skills = self.skills.is_some() && crate::skills::SKILL_TOOLS.contains(&name);
        if !skills && !self.mcp.has(name) {
            return None;
        }
        let string = |k: &str| match input.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err(format!("field {k:?} is empty")),
            Some(other) => Err(format!("field {k:?} must be a string, got {other}")),
            None => Err(format!("missing required field {k:?}")),
        };
        Some((|| match name {
            "load_skill" => Ok(ExtraCall::LoadSkill { name: string("name")? }),
            "run_skill" => {
                let skill = string("skill")?;
                let command: Vec<String> = match input.get("command") {
                    Some(Value::Array(a)) if !a.is_empty() => a
                        .iter()
                        .map(|v| v.as_str().map(str::to_string).ok_or("field \"command\" must hold strings only"))
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err("field \"command\" must be a non-empty array of strings".to_string()),
                    None => return Err("missing required field \"command\"".to_string()),
                };
                Ok(ExtraCall::RunSkill { argv: skill_argv(&skill, &command), skill })
            }
            _ if input.is_object() => Ok(ExtraCall::Mcp { name: name.to_string(), arguments: input.clone() }),
            _ => Err("arguments must be a JSON object".to_string()),
        })())
    }

    /// The active skill's `tools` need: whether `tool` may be called now.
    pub fn allowed(&self, tool: &str) -> Result<(), String> {
        match self.skills() {
            Some(s) => s.allowed(tool),
            None => Ok(()),
        }
    }
}

/// The names of every tool a task offers.
pub fn tool_names(specs: &[ToolSpec]) -> Vec<String> {
    specs.iter().map(|t| t.name.to_string()).collect()
}

impl Session<'_> {
    /// Run an extra tool's call (the gate has allowed it).
    pub(crate) async fn perform_extra(
        &mut self,
        tool: &str,
        call: &ExtraCall,
        cancel: &mut watch::Receiver<bool>,
        deadline: tokio::time::Instant,
    ) -> Result<ToolResult, ExecFail> {
        match call {
            ExtraCall::LoadSkill { name } => {
                let loaded = match self.extras.skills() {
                    Some(mut s) => s.load(name),
                    None => Err("this task has no skills".to_string()),
                };
                Ok(match loaded {
                    Ok((body, tools)) => {
                        let declared = if tools.is_empty() { "none".to_string() } else { tools.join(", ") };
                        let text = format!(
                            "<skill name=\"{name}\" files=\"/skills/{name}\" declared_tools=\"{declared}\">\n{}\n</skill>\n\
                             (Instructions of a skill the operator installed and approved. While it is in use, only \
                             its declared tools are accepted; run its scripts with run_skill.)",
                            body.replace("</skill", "<\\/skill")
                        );
                        let summary = format!("loaded skill {name}");
                        ToolResult { content: text, is_error: false, summary, exit_status: None, output_bytes: 0 }
                    }
                    Err(why) => ToolResult::error(tool, &why),
                })
            }
            ExtraCall::RunSkill { skill, argv } => self.run_skill(tool, skill, argv, cancel, deadline).await,
            ExtraCall::Mcp { name, arguments } => self.call_mcp(tool, name, arguments, cancel, deadline).await,
        }
    }

    async fn run_skill(
        &mut self,
        tool: &str,
        skill: &str,
        argv: &[String],
        cancel: &mut watch::Receiver<bool>,
        deadline: tokio::time::Instant,
    ) -> Result<ToolResult, ExecFail> {
        let Some(skills) = self.extras.skills.clone() else {
            return Ok(ToolResult::error(tool, "this task has no skills"));
        };
        let mut specs = tools::specs();
        specs.extend(self.extras.specs());
        let task_tools = tool_names(&specs);
        let timeout = self.policy_timeout.map_or(tools::DEFAULT_TIMEOUT, |p| p.min(tools::DEFAULT_TIMEOUT));
        let record = {
            let s = skills.lock().unwrap_or_else(|p| p.into_inner());
            s.run_record(skill, &task_tools)
        };
        let record = match record {
            Ok(r) => r,
            Err(why) => return Ok(ToolResult::error(tool, &why)),
        };
        // What the script is given, then the command: both before it runs.
        self.sink.append("skill_run", record).map_err(|e| ExecFail::Fatal(format!("audit log: {e}")))?;
        self.execs += 1;
        let exec = self.execs;
        let sandbox = format!("{}/skill-{skill}", self.task);
        let cwd = crate::skills::skill_dir(skill).display().to_string();
        self.sink
            .record(&Event::Exec { sandbox: sandbox.clone(), exec, argv: argv.to_vec(), cwd })
            .map_err(|e| ExecFail::Fatal(format!("audit log: {e}")))?;
        let req = SkillRun {
            task: self.task.clone(),
            name: skill.to_string(),
            argv: argv.to_vec(),
            timeout,
            output_limit: self.output_limit.unwrap_or(crate::runner::DEFAULT_OUTPUT_LIMIT),
            task_tools,
        };
        let pid = Arc::new(AtomicU32::new(0));
        let pid2 = Arc::clone(&pid);
        let started = Instant::now();
        // A thread of its own: the skill's sandbox helper dies with the
        // thread that started it, and this one lives until the run is over.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new().name(format!("skill-{skill}")).spawn(move || {
            let mut s = skills.lock().unwrap_or_else(|p| p.into_inner());
            let _ = tx.send(s.run(&req, &pid2));
        });
        if let Err(e) = spawned {
            return Ok(ToolResult::error(tool, &format!("cannot start the skill's thread: {e}")));
        }
        let kill = |pid: &AtomicU32| {
            let p = pid.load(Ordering::SeqCst);
            if p != 0 {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), nix::sys::signal::Signal::SIGKILL);
            }
        };
        let result = tokio::select! {
            r = rx => r.unwrap_or_else(|_| Err("the skill's thread died".into())),
            _ = cancelled(cancel) => { kill(&pid); return Err(ExecFail::Cancelled); }
            _ = tokio::time::sleep_until(deadline) => { kill(&pid); return Err(ExecFail::WallTime); }
        };
        let c = match result {
            Ok(c) => c,
            Err(why) => return Ok(ToolResult::error(tool, &why)),
        };
        // After the effect: durable with the next record (group commit).
        self.sink
            .record_after(&Event::ExecEnd {
                sandbox,
                exec,
                outcome: crate::runner::outcome_name(&c.outcome).into(),
                status: c.outcome.exit_code(),
                duration_ms: ms(started),
                stdout_bytes: c.stdout.len() as u64,
                stderr_bytes: c.stderr.len() as u64,
            })
            .map_err(|e| ExecFail::Fatal(format!("audit log: {e}")))?;
        let status = outcome_text(&c.outcome, timeout);
        let stdout = String::from_utf8_lossy(&c.stdout);
        let stderr = String::from_utf8_lossy(&c.stderr);
        let body = tools::output_body(&status, &stdout, &stderr);
        let ok = c.outcome == clawcage_sandbox::Outcome::Exited(0);
        Ok(ToolResult {
            content: tools::frame(tool, &status, &body),
            is_error: !ok,
            summary: status,
            exit_status: Some(c.outcome.exit_code()),
            output_bytes: (c.stdout.len() + c.stderr.len()) as u64,
        })
    }

    async fn call_mcp(
        &mut self,
        tool: &str,
        name: &str,
        arguments: &Value,
        cancel: &mut watch::Receiver<bool>,
        deadline: tokio::time::Instant,
    ) -> Result<ToolResult, ExecFail> {
        let Some(caller) = self.extras.mcp.caller(name) else {
            return Ok(ToolResult::error(tool, &format!("no MCP tool {name}")));
        };
        let (server, server_tool) = (caller.server.clone(), caller.tool.clone());
        self.sink
            .append("mcp_call", json!({ "server": server, "tool": server_tool, "arguments": arguments }))
            .map_err(|e| ExecFail::Fatal(format!("audit log: {e}")))?;
        let started = Instant::now();
        let args = arguments.clone();
        let joined = tokio::task::spawn_blocking(move || caller.call(args));
        let result = tokio::select! {
            r = joined => r.unwrap_or_else(|e| Err(format!("MCP call: {e}"))),
            // The server lives in the sandbox: killing it ends the call.
            _ = cancelled(cancel) => { self.sandbox.kill(); return Err(ExecFail::Cancelled); }
            _ = tokio::time::sleep_until(deadline) => { self.sandbox.kill(); return Err(ExecFail::WallTime); }
        };
        let (text, is_error) = match &result {
            Ok(r) => (r.text.clone(), r.is_error),
            Err(why) => (why.clone(), true),
        };
        self.sink
            .append(
                "mcp_call_end",
                json!({ "server": server, "tool": server_tool, "is_error": is_error,
                        "bytes": text.len(), "duration_ms": ms(started) }),
            )
            .map_err(|e| ExecFail::Fatal(format!("audit log: {e}")))?;
        let status = if is_error { "error" } else { "ok" };
        let summary = if is_error { format!("error: {}", first_line(&text)) } else { format!("{} bytes", text.len()) };
        Ok(ToolResult {
            content: tools::frame(tool, status, &text),
            is_error,
            summary,
            exit_status: None,
            output_bytes: text.len() as u64,
        })
    }
}

/// How long an MCP call may take: the tools' default, capped by the policy.
pub fn mcp_timeout(policy_timeout: Option<Duration>) -> Duration {
    policy_timeout.map_or(tools::DEFAULT_TIMEOUT, |p| p.min(tools::DEFAULT_TIMEOUT))
}
