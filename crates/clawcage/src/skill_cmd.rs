//! `clawcage skill add|list|show|rm`: wiring between the skills crate, the
//! store and the audit log. The approval decision is audited before it
//! takes effect.

use crate::audit;
use anyhow::{bail, Context as _, Result};
use clawcage_policy::PathSpec;
use clawcage_skills::install::{self, Staged};
use clawcage_skills::intersect::{intersect, Task};
use clawcage_skills::{present, Needs};
use clawcage_store::skills::SkillRecord;
use clawcage_store::{StatePaths, Store};
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where installed skills live inside the state directory.
pub fn skills_root(paths: &StatePaths) -> PathBuf {
    paths.dir.join("skills")
}

/// `skill add DIR|URL [--yes]`.
pub fn add(source: &str, yes: bool) -> Result<ExitCode> {
    let paths = audit::state()?;
    let root = skills_root(&paths);
    let staged = stage(source, &root)?;
    let store = Store::open(&paths.db)?;
    let m = &staged.loaded.manifest;
    let previous = store.skill(&m.name)?;
    let prev_needs: Option<Needs> = previous.as_ref().and_then(|p| serde_json::from_value(p.needs.clone()).ok());
    let prev = previous.as_ref().zip(prev_needs.as_ref()).map(|(p, n)| (p.hash.as_str(), n));
    print!("{}", present::approval_text(m, &staged.loaded.hash, prev));
    let log = audit::open_log(&paths)?;
    let data = json!({
        "name": m.name,
        "hash": staged.loaded.hash,
        "source": source,
        "needs": serde_json::to_value(&m.needs)?,
    });
    let approver = if yes { Some("--yes".to_string()) } else { confirm()? };
    let Some(approver) = approver else {
        log.append(None, "skill_refused", data)?;
        eprintln!("clawcage: skill {} not installed (not approved)", m.name);
        return Ok(ExitCode::from(1));
    };
    // Audited first: an approval that cannot be recorded is no approval.
    log.append(None, "skill_approved", json!({ "approved_by": approver, "skill": data }))?;
    let rec = SkillRecord {
        name: m.name.clone(),
        description: m.description.clone(),
        hash: staged.loaded.hash.clone(),
        needs: serde_json::to_value(&m.needs)?,
        source: source.to_string(),
        dir: root.join(&m.name).display().to_string(),
        approved_by: Some(approver),
        approved_ms: 0,
    };
    let dir = staged.commit(&root)?;
    store.put_skill(&rec)?;
    println!("installed {} at {}", rec.name, dir.display());
    Ok(ExitCode::SUCCESS)
}

fn stage(source: &str, root: &Path) -> Result<Staged> {
    if source.starts_with("https://") || source.starts_with("http://") {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("runtime")?;
        let bytes = rt.block_on(install::fetch(source))?;
        return Ok(install::stage_tarball(&bytes, source, root)?);
    }
    if source.contains("://") {
        bail!("{source}: a skill is a directory or an https:// URL of a .tar.gz");
    }
    Ok(install::stage_dir(Path::new(source), root)?)
}

/// Ask at the terminal; `Some(user)` when approved.
fn confirm() -> Result<Option<String>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        print!("Install this skill with these permissions? [y/N] ");
        std::io::stdout().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        let user = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "terminal".into());
        Ok(Some(user))
    } else {
        Ok(None)
    }
}

/// `skill list`: every approved skill and whether its files still match.
pub fn list() -> Result<ExitCode> {
    let paths = audit::state()?;
    let store = Store::open(&paths.db)?;
    let root = skills_root(&paths);
    for s in store.skills()? {
        let state = match install::verify(&root, &s.name, &s.hash) {
            Ok(_) => "ok".to_string(),
            Err(e @ clawcage_skills::SkillError::Tampered { .. }) => format!("REFUSED: {e}"),
            Err(e) => format!("REFUSED: {e}"),
        };
        println!("{}\t{}\t{}\t{}", s.name, &s.hash[..16], state, s.description);
    }
    Ok(ExitCode::SUCCESS)
}

/// `skill show NAME`: its approval, needs and files' state.
pub fn show(name: &str) -> Result<ExitCode> {
    let paths = audit::state()?;
    let store = Store::open(&paths.db)?;
    let Some(s) = store.skill(name)? else { bail!("no skill named {name:?} (see `clawcage skill list`)") };
    match install::verify(&skills_root(&paths), name, &s.hash) {
        Ok(loaded) => {
            print!("{}", present::approval_text(&loaded.manifest, &s.hash, None));
            println!("source: {}\ninstalled: {}\napproved by: {}", s.source, s.dir, s.approved_by.unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => bail!("{e}"),
    }
}

/// `skill rm NAME`.
pub fn rm(name: &str) -> Result<ExitCode> {
    let paths = audit::state()?;
    let store = Store::open(&paths.db)?;
    if store.skill(name)?.is_none() {
        bail!("no skill named {name:?}");
    }
    audit::open_log(&paths)?.append(None, "skill_removed", json!({ "name": name }))?;
    install::remove(&skills_root(&paths), name)?;
    store.remove_skill(name)?;
    println!("removed {name}");
    Ok(ExitCode::SUCCESS)
}

/// `skill run NAME [--policy F] [--workspace W] -- SCRIPT ARGS`: the script
/// runs in its own sandbox under the task's policy ∩ the skill's approved
/// needs, with the skill's directory visible read-only and as the working
/// directory. A skill whose files changed since approval is refused.
pub fn run(
    name: &str,
    policy_path: Option<&Path>,
    workspace: Option<PathBuf>,
    env: &[String],
    mut command: Vec<String>,
) -> Result<ExitCode> {
    let paths = audit::state()?;
    let store = Store::open(&paths.db)?;
    let Some(rec) = store.skill(name)? else { bail!("no skill named {name:?} (see `clawcage skill list`)") };
    // The sandbox sees a fresh copy, verified after it was made.
    let snap = install::snapshot(&skills_root(&paths), name, &rec.hash, &std::env::temp_dir())?;
    let loaded = snap.loaded().context("skill snapshot")?.clone();
    let policy = crate::load_policy(policy_path)?;
    let workspace = match workspace {
        Some(w) => w,
        None => std::env::current_dir().context("current directory")?,
    };
    let workspace = std::fs::canonicalize(&workspace).with_context(|| format!("workspace {}", workspace.display()))?;
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/nonexistent"));
    let tools: Vec<String> = clawcage_agent::tools::specs().iter().map(|t| t.name.to_string()).collect();
    let task = Task { policy: &policy, workspace: &workspace, home: &home, tools: &tools };
    let eff = intersect(&task, &loaded.manifest.needs);
    for n in &eff.notes {
        eprintln!("clawcage: skill {name}: {} {}: {}", n.kind, n.need, n.outcome);
    }
    let dir = loaded.dir.clone();
    let mut effective = eff.policy.clone();
    effective.filesystem.read.push(PathSpec::Absolute(dir.display().to_string()));
    if let Some(first) = command.first_mut() {
        if !first.starts_with('/') && first.contains('/') {
            *first = dir.join(&*first).display().to_string();
        }
    }
    let record = json!({
        "name": name,
        "hash": rec.hash,
        "network": effective.network.allow,
        "secrets": eff.secrets,
        "read": effective.filesystem.read.iter().map(|p| String::from(p.clone())).collect::<Vec<_>>(),
        "write": effective.filesystem.write.iter().map(|p| String::from(p.clone())).collect::<Vec<_>>(),
        "tools": eff.tools,
        "dropped": serde_json::to_value(&eff.notes)?,
    });
    let policy_name = format!(
        "skill {name}'s declared needs (within {})",
        policy_path.map_or("the built-in default policy".into(), |p| p.display().to_string())
    );
    let code = crate::run_policy(
        effective,
        &policy_name,
        workspace,
        env,
        crate::RunFlags { tty: false, log_network: false },
        None,
        crate::RunExtra { command, cwd: Some(dir), record: Some(("skill_run", record)) },
    );
    drop(snap);
    code
}
