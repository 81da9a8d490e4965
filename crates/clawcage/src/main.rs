//! `clawcage`: the command line. Wiring only: parse arguments, load the
//! policy, hand a plan to the sandbox crate, map the outcome to an exit code.

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use clawcage_policy::{Changes, Context, Policy};
use clawcage_sandbox::{ExecSpec, Input, Options, Sandbox, Sink};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod agent_cmd;
mod audit;
mod audit_cmd;
mod egress;
mod review_cmd;
mod serve_cmd;
mod skill_cmd;
mod tasks_cmd;
mod term;

/// Exit status when clawcage itself fails (DESIGN.md).
const EXIT_SETUP: u8 = 125;
/// Exit status when the command may not run (an approval was denied or timed out).
const EXIT_REFUSED: u8 = 126;

#[derive(Parser)]
#[command(name = "clawcage", version, about = "Run AI agents' commands in a locked-down sandbox")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a command in a fresh sandbox under a policy.
    Run {
        /// Policy file (TOML); without it the built-in `default` profile applies.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Workspace directory (default: the current directory).
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Extra environment variable for the command (repeatable).
        #[arg(long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// Give the command a pseudo-terminal (private to the sandbox).
        #[arg(long)]
        tty: bool,
        /// Print each egress decision on stderr (they are always audited).
        #[arg(long)]
        log_network: bool,
        /// How file changes reach the workspace: `review` holds them for
        /// `clawcage diff/apply/discard TASK`, `direct` writes straight
        /// through (default: the policy's `[filesystem] changes`, else direct).
        #[arg(long, value_name = "review|direct")]
        changes: Option<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Run an AI agent on a task: the model loop on the host, every tool call in one sandbox.
    Agent {
        /// Policy file (TOML); without it the built-in `default` profile applies.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Workspace directory (default: the resumed task's, else the current directory).
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// provider:model, e.g. anthropic:claude-sonnet-4-5, openai:gpt-4o, ollama:llama3 (default: CLAWCAGE_MODEL).
        #[arg(long)]
        model: Option<String>,
        /// Most model calls in this run.
        #[arg(long, default_value_t = 50)]
        max_turns: u32,
        /// Most input + output tokens in this run.
        #[arg(long, default_value_t = 2_000_000)]
        max_tokens: u64,
        /// Longest wall-clock time of this run, in seconds.
        #[arg(long, default_value_t = 1800)]
        max_seconds: u64,
        /// Continue this task (same conversation, same workspace).
        #[arg(long, value_name = "TASK")]
        resume: Option<String>,
        /// How file changes reach the workspace: `review` holds them for
        /// `clawcage diff/apply/discard TASK`, `direct` writes straight
        /// through (default: the policy's `[filesystem] changes`, else review).
        #[arg(long, value_name = "review|direct")]
        changes: Option<String>,
        /// MCP servers to start inside the task's sandbox: a TOML file of `[mcp.NAME]` tables.
        #[arg(long, value_name = "FILE")]
        mcp: Option<PathBuf>,
        /// The model config file (base URLs, API key sources, default
        /// models; default: $CLAWCAGE_HOME/config.toml when it exists).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// What to do.
        prompt: String,
    },
    /// Policy files.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
    /// What this kernel supports and which mechanism each layer will use.
    Doctor,
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Skills: install (after approving their declared needs), list, show, remove.
    Skill {
        #[command(subcommand)]
        cmd: SkillCmd,
    },
    /// Show the changes a reviewed task holds, as a unified diff.
    Diff {
        /// The task id (printed by `run --changes review`).
        task: String,
    },
    /// Write a reviewed task's changes to the real workspace (refused, with
    /// the conflicting paths, when the workspace changed since the task started).
    Apply {
        /// The task id.
        task: String,
    },
    /// Drop a reviewed task's changes.
    Discard {
        /// The task id.
        task: String,
    },
    /// Tasks in the store (or one task, with its tool calls).
    Tasks {
        /// Show this task in detail.
        task: Option<String>,
        /// Only tasks with this status (queued, running, succeeded, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// At most this many, newest first.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Run the server: HTTP API, web UI, channels, scheduler, task queue.
    Serve {
        /// The config file.
        #[arg(long, default_value = "/etc/clawcage/serve.toml")]
        config: PathBuf,
        /// Validate the config (and every file it names), print a summary, exit.
        #[arg(long)]
        check_config: bool,
    },
    /// Scheduled tasks.
    Schedule {
        #[command(subcommand)]
        cmd: ScheduleCmd,
    },
    /// Internal: own one task's sandbox for `agent` (control socket on fd 3).
    #[command(name = "__sandbox-helper", hide = true)]
    SandboxHelper,
}

#[derive(Subcommand)]
enum ScheduleCmd {
    /// Add a cron (UTC) or one-shot schedule to a group.
    Add {
        /// The server's config file (the group is checked against it).
        #[arg(long, default_value = "/etc/clawcage/serve.toml")]
        config: PathBuf,
        /// The group its tasks run in.
        #[arg(long)]
        group: String,
        /// Cron expression, UTC (5 fields, or 6 with seconds).
        #[arg(long, conflicts_with = "at")]
        cron: Option<String>,
        /// One-shot time, RFC 3339 (e.g. 2027-01-31T09:00:00Z).
        #[arg(long)]
        at: Option<String>,
        /// The prompt of its tasks.
        prompt: String,
    },
    /// List schedules.
    List,
    /// Delete a schedule.
    Rm {
        /// Its id.
        id: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check the whole chain and the head: exit 0 intact, 1 tampered or invalid, 125 cannot check.
    Verify,
    /// Print the records for people.
    Show {
        /// Only the records of this task.
        #[arg(long)]
        task: Option<String>,
    },
    /// Print the log for a SIEM.
    Export {
        /// Output format: jsonl (the log's own lines).
        #[arg(long, default_value = "jsonl")]
        format: String,
    },
}

#[derive(Subcommand)]
enum SkillCmd {
    /// Install a skill directory or an https:// .tar.gz after showing its needs.
    Add {
        /// A directory holding SKILL.md, or an https:// URL of a .tar.gz.
        source: String,
        /// Approve without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Run a script of an approved skill under the task's policy intersected
    /// with the skill's declared needs (never more than either allows).
    Run {
        /// Skill name.
        name: String,
        /// The task's policy file (TOML); without it the built-in `default` profile.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The task's workspace (default: the current directory).
        #[arg(long)]
        workspace: Option<PathBuf>,
        /// Extra environment variable for the script (repeatable).
        #[arg(long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// The script (relative to the skill's directory) and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// The approved skills and whether their files still match.
    List,
    /// One skill's needs and approval.
    Show {
        /// Skill name.
        name: String,
    },
    /// Remove a skill.
    Rm {
        /// Skill name.
        name: String,
    },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Validate a policy file and print the effective policy.
    Check {
        /// The policy file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    // Bad arguments are bad input like any other: exit 125 (clap's own
    // status is 2); `--help` and `--version` print to stdout and exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.exit_code() {
                0 => ExitCode::SUCCESS,
                _ => ExitCode::from(EXIT_SETUP),
            };
        }
    };
    let result = match cli.cmd {
        Cmd::Run { policy, workspace, env, tty, log_network, changes, command } => {
            run(policy.as_deref(), workspace, &env, RunFlags { tty, log_network }, changes.as_deref(), command)
        }
        Cmd::Diff { task } => review_cmd::diff(&task),
        Cmd::Apply { task } => review_cmd::apply(&task),
        Cmd::Discard { task } => review_cmd::discard(&task),
        Cmd::Agent {
            policy,
            workspace,
            model,
            max_turns,
            max_tokens,
            max_seconds,
            resume,
            changes,
            mcp,
            config,
            prompt,
        } => {
            let limits = clawcage_agent::runner::Limits {
                max_turns,
                max_tokens,
                wall: std::time::Duration::from_secs(max_seconds),
            };
            let flags = agent_cmd::AgentFlags { changes, mcp, config };
            agent_cmd::agent(policy.as_deref(), workspace, model, limits, resume, flags, prompt)
        }
        Cmd::Policy { cmd: PolicyCmd::Check { file } } => policy_check(&file),
        Cmd::Doctor => doctor(),
        Cmd::Audit { cmd: AuditCmd::Verify } => audit_cmd::verify(),
        Cmd::Audit { cmd: AuditCmd::Show { task } } => audit_cmd::show(task.as_deref()),
        Cmd::Audit { cmd: AuditCmd::Export { format } } => audit_cmd::export(&format),
        Cmd::Skill { cmd: SkillCmd::Add { source, yes } } => skill_cmd::add(&source, yes),
        Cmd::Skill { cmd: SkillCmd::Run { name, policy, workspace, env, command } } => {
            skill_cmd::run(&name, policy.as_deref(), workspace, &env, command)
        }
        Cmd::Skill { cmd: SkillCmd::List } => skill_cmd::list(),
        Cmd::Skill { cmd: SkillCmd::Show { name } } => skill_cmd::show(&name),
        Cmd::Skill { cmd: SkillCmd::Rm { name } } => skill_cmd::rm(&name),
        Cmd::Serve { config, check_config } => serve_cmd::serve(&config, check_config),
        Cmd::Schedule { cmd: ScheduleCmd::Add { config, group, cron, at, prompt } } => {
            serve_cmd::schedule_add(&config, group, cron, at, prompt)
        }
        Cmd::Schedule { cmd: ScheduleCmd::List } => serve_cmd::schedule_list(),
        Cmd::Schedule { cmd: ScheduleCmd::Rm { id } } => serve_cmd::schedule_rm(&id),
        Cmd::Tasks { task, status, limit } => tasks_cmd::tasks(task.as_deref(), status.as_deref(), limit),
        Cmd::SandboxHelper => clawcage_agent::helper::serve().map(|()| ExitCode::SUCCESS).map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("clawcage: {e:#}");
            ExitCode::from(EXIT_SETUP)
        }
    }
}

/// `--changes review|direct` (of `run` and `agent`) over the policy's
/// `[filesystem] changes`; `None` keeps the policy's.
pub(crate) fn set_changes(policy: &mut Policy, changes: Option<&str>) -> Result<()> {
    match changes {
        Some("review") => policy.filesystem.changes = Some(Changes::Review),
        Some("direct") => policy.filesystem.changes = Some(Changes::Direct),
        Some(other) => anyhow::bail!("--changes {other:?}: expected \"review\" or \"direct\""),
        None => {}
    }
    Ok(())
}

pub(crate) fn load_policy(path: Option<&Path>) -> Result<Policy> {
    match path {
        Some(p) => Ok(clawcage_policy::load_file(p)?),
        None => clawcage_policy::builtin("default").context("built-in default profile missing"),
    }
}

fn policy_check(file: &Path) -> Result<ExitCode> {
    let policy = clawcage_policy::load_file(file)?;
    println!("# effective policy for {}", file.display());
    print!("{}", policy.to_toml());
    Ok(ExitCode::SUCCESS)
}

fn doctor() -> Result<ExitCode> {
    let report = clawcage_doctor::report();
    print!("{report}");
    Ok(if report.default_enforceable { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `run` switches.
struct RunFlags {
    tty: bool,
    log_network: bool,
}

fn run(
    policy_path: Option<&Path>,
    workspace: Option<PathBuf>,
    env: &[String],
    flags: RunFlags,
    changes: Option<&str>,
    command: Vec<String>,
) -> Result<ExitCode> {
    let policy = load_policy(policy_path)?;
    let name =
        policy_path.map_or("your policy file (the built-in default applies)".into(), |p| p.display().to_string());
    let workspace = match workspace {
        Some(w) => w,
        None => std::env::current_dir().context("current directory")?,
    };
    let workspace = std::fs::canonicalize(&workspace).with_context(|| format!("workspace {}", workspace.display()))?;
    run_policy(policy, &name, workspace, env, flags, changes, RunExtra { command, ..RunExtra::default() })
}

/// What callers of [`run_policy`] other than `run` add.
#[derive(Default)]
struct RunExtra {
    /// The command and its arguments.
    command: Vec<String>,
    /// Working directory inside (default: the workspace).
    cwd: Option<PathBuf>,
    /// An audit record `(kind, data)` appended right after the task's first records.
    record: Option<(&'static str, serde_json::Value)>,
}

/// `run` with the policy already loaded (`policy_name` names it in the
/// egress proxy's refusals) and a canonical workspace.
fn run_policy(
    mut policy: Policy,
    policy_name: &str,
    workspace: PathBuf,
    env: &[String],
    flags: RunFlags,
    changes: Option<&str>,
    extra: RunExtra,
) -> Result<ExitCode> {
    let tty = flags.tty;
    let command = extra.command;
    set_changes(&mut policy, changes)?;
    let extra_env = env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => anyhow::bail!("--env {kv:?}: expected K=V"),
        })
        .collect::<Result<Vec<_>>>()?;
    let ctx = Context {
        workspace,
        host_home: std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/nonexistent")),
        host_env: std::env::vars().collect(),
        extra_env,
        default_changes: Changes::Direct,
    };
    let mut plan = clawcage_policy::plan(&policy, &ctx);
    // The egress side: CA bundle and secret placeholders go into the plan
    // before the sandbox exists; the secrets' values stay in this process.
    let egress = match plan.network {
        Some(_) => Some(egress::prepare(&policy, &mut plan)?),
        None => None,
    };
    // The audit trail comes first: no record, no sandbox (exit 125).
    let mut record = audit::RunRecord::begin(&policy, &plan.workspace, &command)?;
    if let Some((kind, data)) = extra.record {
        record.log().append(Some(record.task()), kind, data)?;
    }
    let held = match plan.direct_changes {
        true => None,
        false => {
            Some(review_cmd::hold(record.task(), &policy, &plan.workspace).map_err(|e| record.failed("review", e))?)
        }
    };
    plan.review = held.as_ref().map(|r| r.layers());
    // A command an approval rule names waits for a person before anything starts.
    let denied = review_cmd::approve_run(&record, &policy, &command, &plan.workspace)
        .map_err(|e| record.failed("approval", e))?;
    if let Some(why) = denied {
        record.refused(&format!("not run: {why}"))?;
        eprintln!("clawcage: not run: {why}");
        return Ok(ExitCode::from(EXIT_REFUSED));
    }
    let mut sandbox = Sandbox::start(&plan, &Options { tty }).map_err(|e| record.failed("sandbox start", e.into()))?;
    record.sandbox_started(&sandbox.limits_mechanism().to_string())?;
    let proxy = match egress {
        Some(prepared) => {
            let started = egress::start(prepared, &policy, &mut sandbox, &record, policy_name, flags.log_network);
            Some(started.map_err(|e| record.failed("egress proxy", e))?)
        }
        None => None,
    };

    // Signals for the command arrive through a signalfd from now on.
    let signals = term::block_forwarded_signals(tty).context("signal setup")?;
    let spec = ExecSpec {
        argv: command,
        tty: if tty { Some(term::size()) } else { None },
        cwd: extra.cwd.clone(),
        ..ExecSpec::default()
    };
    record.exec(&spec.argv, spec.cwd.as_deref().unwrap_or(&plan.workspace))?;
    let raw = if tty { term::RawMode::enter() } else { None };
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let outcome = sandbox.exec(
        &spec,
        Input::Fd(stdin.as_fd()),
        Sink::Fd(stdout.as_fd()),
        Sink::Fd(stderr.as_fd()),
        Some(signals.as_fd()),
    );
    drop(raw);
    let outcome = outcome.map_err(|e| record.failed("exec", e.into()))?;
    record.exec_end(&outcome, sandbox.last_output_bytes())?;
    sandbox.stop()?;
    if let Some(p) = proxy {
        p.shutdown();
    }
    record.sandbox_stopped()?;
    if let Some(held) = &held {
        review_cmd::report_held(&record, held)?;
    }
    if let Some(reason) = outcome.reason() {
        eprintln!("clawcage: {reason}{}", limit_note(&outcome, &plan));
    }
    Ok(ExitCode::from(outcome.exit_code().clamp(0, 255) as u8))
}

fn limit_note(outcome: &clawcage_sandbox::Outcome, plan: &clawcage_policy::Plan) -> String {
    use clawcage_sandbox::Outcome::*;
    match outcome {
        TimedOut => plan.limits.timeout_ms.map(|ms| format!(" ({} s, [limits] timeout)", ms as f64 / 1000.0)),
        MemoryLimit => plan.limits.memory.map(|b| format!(" ({b} bytes, [limits] memory)")),
        OutputLimit => plan.limits.output.map(|b| format!(" ({b} bytes, [limits] output)")),
        _ => None,
    }
    .unwrap_or_default()
}
