//! `clawcage agent`: wiring only. The run itself is `clawcage_agent::task::run`.

use anyhow::{Context as _, Result};
use clawcage_agent::config::ModelConfig;
use clawcage_agent::runner::Limits;
use clawcage_agent::task::{AgentOptions, HelperCommand, TerminalUi};
use clawcage_store::TaskStatus;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status of a cancelled task (as a shell reports SIGINT).
const EXIT_CANCELLED: u8 = 130;

/// The flags of `agent` that only pass through.
pub struct AgentFlags {
    /// `--changes review|direct`.
    pub changes: Option<String>,
    /// `--mcp FILE`.
    pub mcp: Option<PathBuf>,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
}

/// Run `agent`: 0 when the task succeeded, 1 when it failed (a limit, the
/// model API), 130 when cancelled, 125 when clawcage could not run it.
pub fn agent(
    policy: Option<&Path>,
    workspace: Option<PathBuf>,
    model: Option<String>,
    limits: Limits,
    resume: Option<String>,
    flags: AgentFlags,
    prompt: String,
) -> Result<ExitCode> {
    let policy_file = policy.map(Path::to_path_buf);
    let mut policy = crate::load_policy(policy)?;
    crate::set_changes(&mut policy, flags.changes.as_deref())?;
    // The model config: --config, else $CLAWCAGE_HOME/config.toml if there is one.
    let config = match &flags.config {
        Some(file) => Some(ModelConfig::load(file)?),
        None => ModelConfig::load_default(&clawcage_store::StatePaths::from_env()?.dir)?,
    };
    let program = std::env::current_exe().context("path of the clawcage binary")?;
    let opts = AgentOptions {
        policy,
        workspace,
        model,
        policy_file,
        prompt,
        resume,
        limits,
        helper: HelperCommand { program, args: vec!["__sandbox-helper".into()] },
        env: std::env::vars().collect(),
        host_home: std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/nonexistent")),
        gate: None,
        retry: None,
        config,
        mcp: flags.mcp,
    };
    let mut ui = TerminalUi::new();
    let report = clawcage_agent::task::run(opts, &mut ui)?;
    eprintln!("clawcage: task {} {}: {}", report.task, report.status, report.detail);
    Ok(match report.status {
        TaskStatus::Succeeded => ExitCode::SUCCESS,
        TaskStatus::Cancelled => ExitCode::from(EXIT_CANCELLED),
        _ => ExitCode::from(1),
    })
}
