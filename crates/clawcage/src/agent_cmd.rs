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

/// `agent`'s options beyond the policy, workspace, model and limits.
pub struct AgentArgs {
    /// `--resume TASK`.
    pub resume: Option<String>,
    /// `--changes review|direct`.
    pub changes: Option<String>,
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
    args: AgentArgs,
    prompt: String,
) -> Result<ExitCode> {
    let AgentArgs { resume, changes, config } = args;
    let policy_file = policy.map(Path::to_path_buf);
    let mut policy = crate::load_policy(policy)?;
    crate::set_changes(&mut policy, changes.as_deref())?;
    // The model config: --config, else $CLAWCAGE_HOME/config.toml if there is one.
    let config = match config {
        Some(file) => Some(ModelConfig::load(&file)?),
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
