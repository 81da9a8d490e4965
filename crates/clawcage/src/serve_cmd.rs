//! `clawcage serve` and `clawcage schedule add|list|rm`: wiring to
//! clawcage-server.

use anyhow::{Context as _, Result};
use clawcage_agent::config::ModelConfig;
use clawcage_agent::runner::Limits;
use clawcage_agent::task::HelperCommand;
use clawcage_server::schedule::{self, NewScheduleRequest};
use clawcage_store::{StatePaths, Store};
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `serve [--config F] [--check-config]`.
pub fn serve(config: &Path, check: bool) -> Result<ExitCode> {
    let cfg = clawcage_server::config::load(config)?;
    // The model config file of the state directory, as `agent` reads it.
    let models = ModelConfig::load_default(&StatePaths::from_env()?.dir)?;
    if check {
        println!("ok: {}", config.display());
        if let Some(m) = models.as_ref() {
            let default = m.model.as_ref().map_or("none", |d| d.value.as_str());
            println!("model config: {} provider(s), default model {default}", m.providers.len());
        }
        println!("listen {} (concurrency {})", cfg.server.listen, cfg.server.concurrency);
        for g in cfg.groups.values() {
            let model = g.model.as_deref().unwrap_or("(agent default)");
            println!(
                "group {}: policy {}, workspace {}, model {model}",
                g.name,
                g.policy_file.display(),
                g.workspace.display()
            );
            if let Some(m) = &g.memory {
                println!("  memory {} (the agent may update it)", m.display());
            }
            match g.agent_schedules {
                Some(n) => println!("  the agent may keep {n} schedule(s)"),
                None => println!("  the agent may not schedule"),
            }
        }
        for (name, r) in &cfg.roles {
            println!("role {name}: {} member(s)", r.members.len());
        }
        let ch = &cfg.channels;
        for (name, on) in
            [("telegram", ch.telegram.is_some()), ("slack", ch.slack.is_some()), ("discord", ch.discord.is_some())]
        {
            if on {
                println!("channel {name}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    init_logs();
    let paths = StatePaths::from_env()?;
    paths.create()?;
    let key = clawcage_store::audit::SigningKey::from_env()?;
    let program = std::env::current_exe().context("path of the clawcage binary")?;
    let runner = clawcage_server::agent_runner::AgentRunner {
        helper: HelperCommand { program, args: vec!["__sandbox-helper".into()] },
        env: std::env::vars().collect(),
        host_home: std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/nonexistent")),
        limits: Limits::default(),
        paths: paths.clone(),
        audit: Arc::new(clawcage_store::audit::AuditLog::open(&paths, key.clone())?),
        models: models.map(Arc::new),
    };
    clawcage_server::run_until_signal(cfg, paths, key, Arc::new(runner))?;
    Ok(ExitCode::SUCCESS)
}

/// JSON logs on stderr, filtered by RUST_LOG (default info).
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// `schedule add`.
pub fn schedule_add(
    config: &Path,
    group: String,
    cron: Option<String>,
    at: Option<String>,
    prompt: String,
) -> Result<ExitCode> {
    let cfg = clawcage_server::config::load(config)?;
    let paths = StatePaths::from_env()?;
    let s = schedule::add_now(&cfg, &paths, &NewScheduleRequest { group, prompt, cron, at }).map_err(|e| match e {
        schedule::ScheduleCliError::Invalid { field, message } => {
            let flag = if field == "prompt" { "PROMPT".to_string() } else { format!("--{field}") };
            anyhow::anyhow!("{flag}: {message}")
        }
        e => e.into(),
    })?;
    let next = s.next_due_ms.map(clawcage_store::time::rfc3339_secs).unwrap_or_else(|| "never".into());
    println!("{}  next {next}", s.id);
    Ok(ExitCode::SUCCESS)
}

/// `schedule list`.
pub fn schedule_list() -> Result<ExitCode> {
    let paths = StatePaths::from_env()?;
    if !paths.db.exists() {
        return Ok(ExitCode::SUCCESS);
    }
    let store = Store::open(&paths.db)?;
    for s in store.list_schedules()? {
        let next = s.next_due_ms.map(clawcage_store::time::rfc3339_secs).unwrap_or_else(|| "never".into());
        let on = if s.enabled { "on " } else { "off" };
        println!(
            "{}  {on}  {:<5} {:<20} {:<10} next {next}  {}",
            s.id,
            s.kind.as_str(),
            s.spec,
            s.group.as_deref().unwrap_or("-"),
            s.title.lines().next().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `schedule rm ID`.
pub fn schedule_rm(id: &str) -> Result<ExitCode> {
    let paths = StatePaths::from_env()?;
    schedule::remove_now(&paths, id)?;
    println!("removed {id}");
    Ok(ExitCode::SUCCESS)
}
