//! `clawcage skill add|list|show|rm`: wiring between the skills crate, the
//! store and the audit log. The approval decision is audited before it
//! takes effect.

use crate::audit;
use anyhow::{bail, Context as _, Result};
use clawcage_skills::install::{self, Staged};
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
