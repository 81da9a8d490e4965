//! `clawcage`: the command line. Wiring only: parse arguments, load the
//! policy, hand a plan to the sandbox crate, map the outcome to an exit code.

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use clawcage_policy::{Changes, Context, Policy};
use clawcage_sandbox::{ExecSpec, Input, Options, Sandbox, Sink};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod audit;
mod audit_cmd;
mod review_cmd;
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
        /// How file changes reach the workspace: `review` holds them for
        /// `clawcage diff/apply/discard TASK`, `direct` writes straight
        /// through (default: the policy's `[filesystem] changes`, else direct).
        #[arg(long, value_name = "review|direct")]
        changes: Option<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
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
    /// Internal: own one task's sandbox for `agent` (control socket on fd 3).
    #[command(name = "__sandbox-helper", hide = true)]
    SandboxHelper,
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
enum PolicyCmd {
    /// Validate a policy file and print the effective policy.
    Check {
        /// The policy file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run { policy, workspace, env, tty, changes, command } => {
            run(policy.as_deref(), workspace, &env, tty, changes.as_deref(), command)
        }
        Cmd::Diff { task } => review_cmd::diff(&task),
        Cmd::Apply { task } => review_cmd::apply(&task),
        Cmd::Discard { task } => review_cmd::discard(&task),
        Cmd::Policy { cmd: PolicyCmd::Check { file } } => policy_check(&file),
        Cmd::Doctor => doctor(),
        Cmd::Audit { cmd: AuditCmd::Verify } => audit_cmd::verify(),
        Cmd::Audit { cmd: AuditCmd::Show { task } } => audit_cmd::show(task.as_deref()),
        Cmd::Audit { cmd: AuditCmd::Export { format } } => audit_cmd::export(&format),
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

fn load_policy(path: Option<&Path>) -> Result<Policy> {
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

fn run(
    policy: Option<&Path>,
    workspace: Option<PathBuf>,
    env: &[String],
    tty: bool,
    changes: Option<&str>,
    command: Vec<String>,
) -> Result<ExitCode> {
    let mut policy = load_policy(policy)?;
    match changes {
        Some("review") => policy.filesystem.changes = Some(Changes::Review),
        Some("direct") => policy.filesystem.changes = Some(Changes::Direct),
        Some(other) => anyhow::bail!("--changes {other:?}: expected \"review\" or \"direct\""),
        None => {}
    }
    let workspace = match workspace {
        Some(w) => w,
        None => std::env::current_dir().context("current directory")?,
    };
    let workspace = std::fs::canonicalize(&workspace).with_context(|| format!("workspace {}", workspace.display()))?;
    let extra_env = env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => anyhow::bail!("--env {kv:?}: expected K=V"),
        })
        .collect::<Result<Vec<_>>>()?;
    if !policy.network.allow.is_empty() {
        eprintln!("clawcage: note: [network] allow has no effect yet (no egress proxy in this build): the sandbox has loopback only");
    }
    let ctx = Context {
        workspace,
        host_home: std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/nonexistent")),
        host_env: std::env::vars().collect(),
        extra_env,
        default_changes: Changes::Direct,
    };
    let mut plan = clawcage_policy::plan(&policy, &ctx);
    // The audit trail comes first: no record, no sandbox (exit 125).
    let mut record = audit::RunRecord::begin(&policy, &plan.workspace, &command)?;
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

    // Signals for the command arrive through a signalfd from now on.
    let signals = term::block_forwarded_signals(tty).context("signal setup")?;
    let spec = ExecSpec { argv: command, tty: if tty { Some(term::size()) } else { None }, ..ExecSpec::default() };
    record.exec(&spec.argv, &plan.workspace)?;
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
