//! `clawcage tasks [TASK] [--status S] [--limit N]`: the tasks in the store,
//! or one task with its tool calls.

use anyhow::{Context as _, Result};
use clawcage_store::paths::state_dir_from_env;
use clawcage_store::time::rfc3339_secs;
use clawcage_store::{StatePaths, Store, Task, TaskFilter, TaskStatus};
use std::process::ExitCode;

/// Run `tasks`. An empty state directory has no tasks (nothing is created).
pub fn tasks(task: Option<&str>, status: Option<&str>, limit: Option<u32>) -> Result<ExitCode> {
    let status = status.map(|s| s.parse::<TaskStatus>().context("--status")).transpose()?;
    let paths = StatePaths::new(&state_dir_from_env()?);
    let store = if paths.db.exists() { Some(Store::open(&paths.db)?) } else { None };
    if let Some(id) = task {
        let Some(store) = store.as_ref() else { anyhow::bail!("unknown task {id:?}") };
        return show(store, &store.task(id)?);
    }
    let Some(store) = store else {
        println!("no tasks");
        return Ok(ExitCode::SUCCESS);
    };
    let list = store.list_tasks(&TaskFilter { status, limit, ..TaskFilter::default() })?;
    if list.is_empty() {
        println!("no tasks");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<12}  {:<5}  {:<9}  {:<20}  {:>9}  TITLE", "ID", "KIND", "STATUS", "CREATED", "TOKENS");
    for t in list {
        let tokens = t.usage.input_tokens.saturating_add(t.usage.output_tokens);
        println!(
            "{:<12}  {:<5}  {:<9}  {:<20}  {:>9}  {}",
            t.id,
            t.kind.as_str(),
            t.status.as_str(),
            rfc3339_secs(t.created_ms),
            tokens,
            one_line(&t.title, 80)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(store: &Store, t: &Task) -> Result<ExitCode> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("task:      {}", t.id);
    println!("kind:      {}", t.kind);
    println!("status:    {}{}", t.status, t.detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default());
    println!("title:     {}", t.title);
    println!("group:     {}", opt(&t.group));
    println!("workspace: {}", opt(&t.workspace));
    println!("policy:    {}", opt(&t.policy_hash));
    println!("model:     {}", opt(&t.model));
    println!("created:   {}", rfc3339_secs(t.created_ms));
    println!("updated:   {}", rfc3339_secs(t.updated_ms));
    let u = &t.usage;
    println!(
        "usage:     {} input + {} output tokens, ${}.{:06}",
        u.input_tokens,
        u.output_tokens,
        u.cost_micro_usd / 1_000_000,
        u.cost_micro_usd % 1_000_000
    );
    println!("messages:  {}", store.messages(&t.id)?.len());
    for c in store.tool_calls(&t.id)? {
        let what = c.argv.as_ref().map(|a| crate::audit::shell_words(a)).unwrap_or_else(|| c.input.to_string());
        let end = match (c.exit_status, c.duration_ms, &c.error) {
            (_, None, _) => "not finished".to_string(),
            (Some(s), Some(d), _) => format!("exit {s}, {d} ms, {} bytes", c.output_bytes.unwrap_or(0)),
            (None, Some(d), e) => format!("{}, {d} ms", e.as_deref().unwrap_or("done")),
        };
        println!("call {:>3}:  {} {} [{end}]", c.seq, c.tool, one_line(&what, 100));
    }
    Ok(ExitCode::SUCCESS)
}

/// `s` on one line, cut to `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}
