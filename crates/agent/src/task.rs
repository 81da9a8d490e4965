//! One `clawcage agent` run, start to end: the task row (new or resumed),
//! the sandbox helper, the audit trail, the loop on a tokio runtime, Ctrl-C,
//! and the final status. The CLI only parses arguments and calls [`run`].

use crate::audit::AuditSink;
use crate::config::ModelConfig;
use crate::conversation::{Block, Turn};
use crate::gate::ToolGate;
use crate::helper::Client;
use crate::host_tools::HostTools;
use crate::prompt::system_prompt;
use crate::provider::{Provider, ProviderConfig, RetryPolicy};
use crate::runner::{self, cancellation, Ending, Limits, SandboxHandle, Session, Ui};
use clawcage_policy::{Changes, Context, Event, EventSink, Plan, Policy};
use clawcage_store::audit::{AuditLog, SigningKey};
use clawcage_store::{NewTask, Role, StatePaths, Store, TaskKind, TaskStatus};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The program (and arguments) that serves as the sandbox helper: the
/// `clawcage` binary itself with `__sandbox-helper`.
#[derive(Debug, Clone)]
pub struct HelperCommand {
    /// Program path.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
}

/// Everything one run needs.
pub struct AgentOptions {
    /// The effective policy.
    pub policy: Policy,
    /// Workspace; `None`: the resumed task's, else the current directory.
    pub workspace: Option<PathBuf>,
    /// `provider:model`; `None`: the resumed task's, else `CLAWCAGE_MODEL`.
    pub model: Option<String>,
    /// The policy file, to name in the egress proxy's refusals.
    pub policy_file: Option<PathBuf>,
    /// The user's prompt.
    pub prompt: String,
    /// Continue this task.
    pub resume: Option<String>,
    /// Limits of this run.
    pub limits: Limits,
    /// The sandbox helper.
    pub helper: HelperCommand,
    /// The host environment (API keys, base URLs, `[env] pass`).
    pub env: BTreeMap<String, String>,
    /// The invoking user's home (for `~/` in the policy).
    pub host_home: PathBuf,
    /// The approvals hook; `None`: the policy's `[approvals]` asked at the
    /// terminal when it has rules, else allow-all.
    pub gate: Option<Arc<dyn ToolGate>>,
    /// Retry policy override (tests shorten it).
    pub retry: Option<RetryPolicy>,
    /// The model config file, if there is one (under `env` and `model`).
    pub config: Option<ModelConfig>,
    /// `[mcp.NAME]` servers to start inside the sandbox (`--mcp FILE`).
    pub mcp: Option<PathBuf>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReport {
    /// The task.
    pub task: String,
    /// Its status now.
    pub status: TaskStatus,
    /// Why (one line).
    pub detail: String,
}

/// Why a run could not start or broke (the CLI exits 125).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Bad input: model spec, missing key, unknown task, workspace.
    #[error("{0}")]
    Input(String),
    /// The state directory, store or audit log.
    #[error("{0}")]
    State(String),
    /// The sandbox could not be started.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// The run broke (store or audit failure, sandbox gone).
    #[error("task {task}: {source}")]
    Run {
        /// The task.
        task: String,
        /// What broke.
        source: Box<runner::RunError>,
    },
}

fn state<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> AgentError {
    move |e| AgentError::State(format!("{what}: {e}"))
}

/// Run (or resume) a task. Call it from the main thread: the sandbox
/// helper dies with the thread that starts it.
pub fn run(opts: AgentOptions, ui: &mut dyn Ui) -> Result<AgentReport, AgentError> {
    let paths = StatePaths::from_env().map_err(state("state directory"))?;
    let key = SigningKey::from_env().map_err(state("audit signing key"))?;
    let log = Arc::new(AuditLog::open(&paths, key).map_err(state("audit log"))?);
    let store = Store::open(&paths.db).map_err(state("store"))?;

    // Which task, workspace and model.
    let resumed = match &opts.resume {
        Some(id) => {
            let t = store
                .find_task(id)
                .map_err(state("store"))?
                .ok_or_else(|| AgentError::Input(format!("--resume {id}: no such task")))?;
            if t.kind != TaskKind::Agent {
                return Err(AgentError::Input(format!("--resume {id}: a {} task, not an agent task", t.kind)));
            }
            Some(t)
        }
        None => None,
    };
    let workspace = match (&opts.workspace, resumed.as_ref().and_then(|t| t.workspace.clone())) {
        (Some(w), _) => w.clone(),
        (None, Some(w)) => PathBuf::from(w),
        (None, None) => std::env::current_dir().map_err(|e| AgentError::Input(format!("current directory: {e}")))?,
    };
    let workspace = std::fs::canonicalize(&workspace)
        .map_err(|e| AgentError::Input(format!("workspace {}: {e}", workspace.display())))?;
    if let Some(t) = &resumed {
        if let Some(w) = &t.workspace {
            if std::path::Path::new(w) != workspace {
                return Err(AgentError::Input(format!(
                    "--resume {}: the task's workspace is {w}, not {}",
                    t.id,
                    workspace.display()
                )));
            }
        }
    }
    let model = opts
        .model
        .clone()
        .or_else(|| resumed.as_ref().and_then(|t| t.model.clone()))
        .or_else(|| opts.env.get("CLAWCAGE_MODEL").filter(|m| !m.is_empty()).cloned())
        .or_else(|| opts.config.as_ref().and_then(|c| c.model.as_ref()).map(|m| m.value.clone()))
        .ok_or_else(|| AgentError::Input("--model is required (e.g. anthropic:claude-sonnet-4-5, openai:gpt-4o, ollama:llama3), or set CLAWCAGE_MODEL, or model in the config file".into()))?;
    let env = opts.env.clone();
    let mut cfg = ProviderConfig::resolve(&model, opts.config.as_ref(), &move |k| env.get(k).cloned())
        .map_err(|e| AgentError::Input(e.to_string()))?;
    if let Some(r) = &opts.retry {
        cfg.retry = r.clone();
    }
    let provider = Provider::new(cfg).map_err(|e| AgentError::Input(e.to_string()))?;

    let mut planned = plan_task(&opts.policy, &workspace, &opts.host_home, &opts.env);
    if let (Some(t), true) = (&resumed, planned.plan.direct_changes) {
        held_changes_block_direct(&paths, &t.id)?;
    }
    let mcp_config = match &opts.mcp {
        Some(f) => crate::mcp::load_config(f).map_err(AgentError::Input)?,
        None => Default::default(),
    };
    let host = crate::skills::SkillHost {
        policy: opts.policy.clone(),
        policy_name: opts
            .policy_file
            .as_ref()
            .map_or("the built-in default policy".into(), |p| p.display().to_string()),
        workspace: workspace.clone(),
        host_home: opts.host_home.clone(),
        env: opts.env.clone(),
        helper: opts.helper.clone(),
        state_dir: paths.dir.clone(),
        held: !planned.plan.direct_changes,
    };
    let skills = planned.add_skills(&store, &paths.dir.join("skills"), host).map_err(state("store"))?;
    let Planned { plan, policy_hash, system } = planned;

    // The task row and the conversation so far.
    let (task, mut turns) = match &resumed {
        Some(t) => {
            let (mut turns, repair) = runner::turns_from_store(&store, &t.id)
                .map_err(|source| AgentError::Run { task: t.id.clone(), source: Box::new(source) })?;
            if let Some(r) = repair {
                store.append_message(&t.id, Role::Tool, &runner::turn_json(&r)).map_err(state("store"))?;
                turns.push(r);
            }
            if t.policy_hash.as_deref() != Some(policy_hash.as_str()) {
                ui.notice("note: the policy differs from the one this task started with; the new one applies");
            }
            store.set_task_status(&t.id, TaskStatus::Running, Some("resumed")).map_err(state("store"))?;
            (t.id.clone(), turns)
        }
        None => {
            let mut new = NewTask::new(TaskKind::Agent, opts.prompt.clone());
            new.workspace = Some(workspace.display().to_string());
            new.policy_hash = Some(policy_hash.clone());
            new.model = Some(provider.config().spec());
            new.status = TaskStatus::Running;
            let t = store.create_task(&new).map_err(state("store"))?;
            store
                .append_message(&t.id, Role::System, &json!({ "content": [{ "type": "text", "text": system }] }))
                .map_err(state("store"))?;
            (t.id, Vec::new())
        }
    };
    // The new prompt; after tool results it joins their turn (the APIs want
    // user and assistant turns to alternate).
    let user = Turn::user_text(opts.prompt.clone());
    store.append_message(&task, Role::User, &runner::turn_json(&user)).map_err(state("store"))?;
    match turns.last_mut() {
        Some(last) if last.role == crate::conversation::Speaker::User => {
            last.content.push(Block::Text { text: opts.prompt.clone() })
        }
        _ => turns.push(user),
    }
    ui.notice(&format!("task {task} ({}, workspace {})", provider.config().spec(), workspace.display()));

    let gate: Arc<dyn ToolGate> = match &opts.gate {
        Some(g) => g.clone(),
        None if !opts.policy.approvals.commands.is_empty() || !opts.policy.approvals.writes.is_empty() => {
            Arc::new(crate::gate::ApprovalsGate::new(
                paths.db.clone(),
                log.clone(),
                opts.policy.approvals.clone(),
                workspace.clone(),
                Arc::new(clawcage_review::approve::TerminalPrompter::new()),
            ))
        }
        None => Arc::new(crate::gate::AllowAll),
    };
    let sink = AuditSink::new(log, Some(task.clone()));
    let fail = |detail: String| {
        let _ = sink.append("task_end", json!({ "status": "failed", "detail": detail }));
        let _ = store.set_task_status(&task, TaskStatus::Failed, Some(&detail));
    };
    if let Err(e) = sink.append("task_start", json!({ "kind": "agent", "model": provider.config().spec(), "resumed": resumed.is_some(), "policy_hash": policy_hash })) {
        fail(format!("audit log: {e}"));
        return Err(AgentError::State(format!("audit log: {e}")));
    }
    if let Some(s) = &skills {
        if let Err(e) = record_skills(&sink, s, ui) {
            fail(format!("audit log: {e}"));
            return Err(AgentError::State(format!("audit log: {e}")));
        }
    }

    // One thread drives the loop: the model stream, the signals and the
    // waits for the sandbox (its blocking calls go to the blocking pool).
    // Nothing here computes in parallel, and every hand-off between worker
    // threads was a wake-up per streamed chunk and per tool call.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::State(format!("tokio runtime: {e}")))?;
    let (canceller, rx) = cancellation();
    let signals = rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        canceller.cancel();
    });
    let existing = Existing {
        task: &task,
        policy: &opts.policy,
        policy_name: opts
            .policy_file
            .as_ref()
            .map_or("your policy file (the built-in default applies)".into(), |p| p.display().to_string()),
        plan,
        policy_hash,
        system,
        turns,
        workspace: workspace.clone(),
        provider: &provider,
        store: &store,
        paths: &paths,
        sink: sink.clone(),
        gate,
        host_tools: None,
        skills,
        mcp: &mcp_config,
        limits: opts.limits,
        helper: &opts.helper,
        resumed: resumed.is_some(),
    };
    let result = run_existing(existing, &rt, rx, ui);
    signals.abort();
    drop(rt);
    let ending = match result {
        Ok(e) => e,
        Err(e) => {
            fail(e.to_string());
            return Err(e);
        }
    };
    let (status, detail) = match ending {
        Ending::Done => (TaskStatus::Succeeded, "the model finished".to_string()),
        Ending::Limit(why) => (TaskStatus::Failed, why),
        Ending::Cancelled => (TaskStatus::Cancelled, "cancelled (interrupt)".to_string()),
        Ending::Failed(why) => (TaskStatus::Failed, why),
    };
    let _ = sink.append("task_end", json!({ "status": status.as_str(), "detail": detail }));
    store.set_task_status(&task, status, Some(&detail)).map_err(state("store"))?;
    Ok(AgentReport { task, status, detail })
}

/// A task's plan, policy hash and system prompt.
pub struct Planned {
    /// The sandbox plan (changes held for review unless the policy says direct).
    pub plan: Plan,
    /// SHA-256 of the policy as TOML (recorded with the task and its sandbox).
    pub policy_hash: String,
    /// The system prompt.
    pub system: String,
}

impl Planned {
    /// Adds the approved skills under `root` to the task: each verified and
    /// copied for it (a changed one is refused), listed in the system prompt
    /// and mounted read-only at /skills/NAME. `None` when none is approved;
    /// `host` says how a skill's own commands run.
    pub fn add_skills(
        &mut self,
        store: &Store,
        root: &Path,
        host: crate::skills::SkillHost,
    ) -> Result<Option<crate::skills::TaskSkills>, clawcage_store::StoreError> {
        let approved = crate::skills::approved(store)?;
        if approved.is_empty() {
            return Ok(None);
        }
        let skills = crate::skills::TaskSkills::prepare(root, &approved, &std::env::temp_dir(), host);
        self.system.push_str(&skills.prompt_section());
        self.plan.mounts.extend(skills.mounts());
        Ok(Some(skills))
    }
}

/// Plan a task of `policy` in `workspace`. The model API key lives on the
/// host: nothing of `env` reaches the sandbox but what `[env] pass` names.
/// Agent tasks hold their changes for review unless the policy says direct.
pub fn plan_task(policy: &Policy, workspace: &Path, host_home: &Path, env: &BTreeMap<String, String>) -> Planned {
    let ctx = Context {
        workspace: workspace.to_path_buf(),
        host_home: host_home.to_path_buf(),
        host_env: env.clone(),
        extra_env: vec![],
        default_changes: Changes::Review,
    };
    let plan = clawcage_policy::plan(policy, &ctx);
    let policy_hash = clawcage_store::sha256_hex(policy.to_toml().as_bytes());
    let system = system_prompt(policy, &plan);
    Planned { plan, policy_hash, system }
}

/// A task whose row and conversation are in the store (made by [`run`], or
/// by the server's queue), ready to run in a new sandbox.
pub struct Existing<'a> {
    /// The task.
    pub task: &'a str,
    /// Its policy.
    pub policy: &'a Policy,
    /// The policy file, to name in the egress proxy's refusals.
    pub policy_name: String,
    /// From [`plan_task`].
    pub plan: Plan,
    /// From [`plan_task`].
    pub policy_hash: String,
    /// The system prompt (from [`plan_task`], plus what the caller adds).
    pub system: String,
    /// The conversation so far, the new prompt included.
    pub turns: Vec<Turn>,
    /// The workspace.
    pub workspace: PathBuf,
    /// The model.
    pub provider: &'a Provider,
    /// The store.
    pub store: &'a Store,
    /// The state directory (review layers, egress state).
    pub paths: &'a StatePaths,
    /// The audit log, as this task's records.
    pub sink: AuditSink,
    /// The approvals hook.
    pub gate: Arc<dyn ToolGate>,
    /// Tools answered on the host, if the caller offers any.
    pub host_tools: Option<Arc<dyn HostTools>>,
    /// The task's skills, prepared (their mounts already in `plan`, their
    /// prompt section in `system`, recorded with [`record_skills`]).
    pub skills: Option<crate::skills::TaskSkills>,
    /// MCP servers to start inside the sandbox.
    pub mcp: &'a BTreeMap<String, clawcage_mcp::config::Server>,
    /// Limits of this run.
    pub limits: Limits,
    /// The sandbox helper.
    pub helper: &'a HelperCommand,
    /// A resumed task reopens its review layers (the workspace as it left it).
    pub resumed: bool,
}

/// Run an existing task (see [`Existing`]) on `rt` until the model is done,
/// a limit hits or `cancel` fires: review layers, the sandbox helper (from
/// this thread: the sandbox dies with it) with its egress proxy,
/// `sandbox_start`, its MCP servers, the loop, the stop, `sandbox_stop`,
/// and the held changes (`file_changes`). The task's status is the caller's.
pub fn run_existing(
    x: Existing<'_>,
    rt: &tokio::runtime::Runtime,
    cancel: tokio::sync::watch::Receiver<bool>,
    ui: &mut dyn Ui,
) -> Result<Ending, AgentError> {
    let task = x.task.to_string();
    let mut plan = x.plan;
    // Reviewed changes: the task's overlay layers, made once and reused on
    // resume, so a resumed task sees the workspace as it left it.
    let held = match plan.direct_changes {
        true => None,
        false => Some(
            hold(x.paths, &task, x.policy, &x.workspace, x.resumed)
                .map_err(|e| AgentError::State(format!("review: {e}")))?,
        ),
    };
    plan.review = held.as_ref().map(|h| h.layers());

    // The sandbox, in its helper process, started from this thread.
    let args: Vec<&str> = x.helper.args.iter().map(String::as_str).collect();
    let egress = plan.network.as_ref().map(|_| crate::helper::EgressStart {
        policy_toml: x.policy.to_toml(),
        policy_name: x.policy_name.clone(),
        sandbox: task.clone(),
        state_dir: x.paths.dir.clone(),
    });
    let client = Client::spawn_with(&x.helper.program, &args, &plan, false, egress)
        .map_err(|e| AgentError::Sandbox(format!("start: {e}")))?;
    let limits_mechanism = client.limits_mechanism().to_string();
    let sandbox = SandboxHandle::new(client);
    if let Err(e) = x.sink.record(&Event::SandboxStart {
        sandbox: task.clone(),
        policy_hash: x.policy_hash.clone(),
        backend: "ns".into(),
        limits: limits_mechanism,
    }) {
        sandbox.kill();
        let _ = sandbox.stop();
        return Err(AgentError::State(format!("audit log: {e}")));
    }
    let policy_timeout = plan.limits.timeout_ms.map(std::time::Duration::from_millis);
    let mcp = match start_mcp(&x.sink, &sandbox, x.mcp, &x.workspace, policy_timeout) {
        Ok(m) => m,
        Err(e) => {
            sandbox.kill();
            let _ = sandbox.stop();
            let _ = x.sink.record(&Event::SandboxStop { sandbox: task.clone() });
            return Err(AgentError::Sandbox(e));
        }
    };

    let mut session = Session {
        task: task.clone(),
        provider: x.provider,
        sandbox: sandbox.clone(),
        store: x.store,
        sink: x.sink.clone(),
        gate: x.gate,
        limits: x.limits,
        system: x.system,
        turns: x.turns,
        workspace: x.workspace.clone(),
        policy_timeout,
        output_limit: plan.limits.output,
        network: !x.policy.network.allow.is_empty(),
        execs: 0,
        extras: crate::extras::Extras {
            skills: x.skills.map(|s| Arc::new(std::sync::Mutex::new(s))),
            mcp: Arc::new(mcp),
        },
        host_tools: x.host_tools,
    };
    let result = rt.block_on(session.run(ui, cancel));

    // The sandbox goes first, then its record.
    let stopped = sandbox.stop();
    if let Err(e) = &stopped {
        // After a kill the helper is gone already: the sandbox with it.
        if !matches!(result, Ok(Ending::Cancelled) | Ok(Ending::Limit(_))) {
            ui.notice(&format!("sandbox stop: {e}"));
        }
    }
    let _ = x.sink.record(&Event::SandboxStop { sandbox: task.clone() });
    let ending = result.map_err(|source| AgentError::Run { task: task.clone(), source: Box::new(source) })?;
    if let Some(h) = &held {
        report_held(&x.sink, h, &task, ui);
    }
    Ok(ending)
}

/// Audit which skills the task offers and which it refused (and say so).
pub fn record_skills(
    sink: &AuditSink,
    skills: &crate::skills::TaskSkills,
    ui: &mut dyn Ui,
) -> Result<(), clawcage_policy::SinkError> {
    for (name, why) in skills.refused() {
        ui.notice(&format!("skill {name} refused: {why}"));
        sink.append("skill_refused", json!({ "name": name, "reason": why }))?;
    }
    let offered: Vec<_> = skills.usable().into_iter().map(|(n, h)| json!({ "name": n, "hash": h })).collect();
    sink.append("skills_offered", json!({ "skills": offered }))
}

/// Start the configured MCP servers inside the task's sandbox; each start
/// is audited before it happens. Blocking.
pub fn start_mcp(
    sink: &AuditSink,
    sandbox: &SandboxHandle,
    config: &BTreeMap<String, clawcage_mcp::config::Server>,
    workspace: &std::path::Path,
    policy_timeout: Option<std::time::Duration>,
) -> Result<crate::mcp::McpServers, String> {
    for (name, server) in config {
        sink.append("mcp_start", json!({ "server": name, "command": server.command }))
            .map_err(|e| format!("audit log: {e}"))?;
    }
    let servers =
        crate::mcp::McpServers::start(sandbox, config, workspace, crate::extras::mcp_timeout(policy_timeout))?;
    for s in servers.servers() {
        let tools: Vec<&str> = s.tools.iter().map(|t| t.name.as_str()).collect();
        sink.append("mcp_ready", json!({ "server": s.name, "tools": tools })).map_err(|e| format!("audit log: {e}"))?;
    }
    Ok(servers)
}

/// The review directory of `task`: created for a new task, opened again on
/// resume (the same upper layer: the same workspace state).
fn hold(
    paths: &StatePaths,
    task: &str,
    policy: &Policy,
    workspace: &std::path::Path,
    resumed: bool,
) -> Result<clawcage_review::ReviewDir, String> {
    let dir = clawcage_review::task_dir(&paths.dir, task).map_err(|e| e.to_string())?;
    if dir.starts_with(workspace) {
        return Err(format!(
            "the state directory {} is inside the workspace {}: reviewed changes cannot be held there",
            paths.dir.display(),
            workspace.display()
        ));
    }
    if resumed && dir.join("review.json").exists() {
        return clawcage_review::ReviewDir::open(&dir).map_err(|e| e.to_string());
    }
    let protect = clawcage_review::protect_for(policy, workspace);
    let mut held = clawcage_review::ReviewDir::create(&dir, workspace, protect).map_err(|e| e.to_string())?;
    held.set_write_approvals(&policy.approvals).map_err(|e| e.to_string())?;
    Ok(held)
}

/// A task resumed with direct changes must not hold reviewed ones: the
/// sandbox would not see them, and applying them later would clash.
fn held_changes_block_direct(paths: &StatePaths, task: &str) -> Result<(), AgentError> {
    let dir = clawcage_review::task_dir(&paths.dir, task).map_err(|e| AgentError::State(e.to_string()))?;
    if !dir.join("review.json").exists() {
        return Ok(());
    }
    let held = clawcage_review::ReviewDir::open(&dir).map_err(|e| AgentError::State(format!("review: {e}")))?;
    let changes = held.changes().map_err(|e| AgentError::State(format!("review: {e}")))?;
    if changes.is_empty() {
        return Ok(());
    }
    Err(AgentError::Input(format!(
        "--resume {task}: the task holds reviewed changes ({}); resume it with --changes review, \
         or `clawcage apply {task}` / `clawcage discard {task}` first",
        clawcage_review::diff::summary(&changes)
    )))
}

/// Record the held changes and tell the person how to review them.
fn report_held(sink: &AuditSink, held: &clawcage_review::ReviewDir, task: &str, ui: &mut dyn Ui) {
    match held.changes() {
        Ok(changes) => {
            let _ = sink.append("file_changes", clawcage_review::summary_json(&changes));
            ui.notice(&format!("{} held for review in task {task}", clawcage_review::diff::summary(&changes)));
            if !changes.is_empty() {
                ui.notice(&format!(
                    "see `clawcage diff {task}`, then `clawcage apply {task}` or `clawcage discard {task}`"
                ));
            }
        }
        Err(e) => ui.notice(&format!("reading the held changes: {e}")),
    }
}

/// The terminal: model text streams to stdout as it arrives; each tool call
/// is one line there too; notices go to stderr.
#[derive(Debug, Default)]
pub struct TerminalUi {
    at_line_start: bool,
}

impl TerminalUi {
    /// A terminal UI.
    pub fn new() -> TerminalUi {
        TerminalUi { at_line_start: true }
    }

    fn line(&mut self, s: &str) {
        let mut out = std::io::stdout().lock();
        if !self.at_line_start {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
        self.at_line_start = true;
    }
}

impl Ui for TerminalUi {
    fn text(&mut self, delta: &str) {
        if delta.is_empty() || (delta == "\n" && self.at_line_start) {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(delta.as_bytes());
        let _ = out.flush();
        self.at_line_start = delta.ends_with('\n');
    }
    fn notice(&mut self, line: &str) {
        eprintln!("clawcage: {line}");
    }
    fn tool_start(&mut self, tool: &str, what: &str) {
        self.line(&format!("> {tool} {what}"));
    }
    fn tool_end(&mut self, _tool: &str, summary: &str, ok: bool) {
        self.line(&format!("  {} {summary}", if ok { "ok:" } else { "failed:" }));
    }
}
