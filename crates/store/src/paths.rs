//! Where clawcage keeps its state (docs/ARCHITECTURE.md, "State directory").

use crate::error::{Result, StoreError};
use std::path::{Path, PathBuf};

/// File name of the SQLite database inside the state directory.
pub const DB_FILE: &str = "clawcage.db";
/// File name of the audit log inside the state directory.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// The state directory chosen from the environment: `$CLAWCAGE_HOME`, else
/// `/var/lib/clawcage` for root, else `$XDG_STATE_HOME/clawcage`, else
/// `~/.local/state/clawcage`. Empty variables count as unset.
pub fn state_dir_from_env() -> Result<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(home) = var("CLAWCAGE_HOME") {
        return Ok(home);
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/clawcage"));
    }
    if let Some(xdg) = var("XDG_STATE_HOME") {
        return Ok(xdg.join("clawcage"));
    }
    var("HOME").map(|h| h.join(".local/state/clawcage")).ok_or(StoreError::NoStateDir)
}

/// The files of one state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePaths {
    /// The directory itself.
    pub dir: PathBuf,
    /// `clawcage.db`.
    pub db: PathBuf,
    /// `audit.jsonl`.
    pub audit: PathBuf,
}

impl StatePaths {
    /// The paths inside `dir` (nothing is created).
    pub fn new(dir: &Path) -> StatePaths {
        StatePaths { dir: dir.to_path_buf(), db: dir.join(DB_FILE), audit: dir.join(AUDIT_FILE) }
    }

    /// The paths of the directory chosen by [`state_dir_from_env`], created
    /// (with parents) if missing; a directory we create gets mode 0700.
    pub fn from_env() -> Result<StatePaths> {
        let p = StatePaths::new(&state_dir_from_env()?);
        p.create()?;
        Ok(p)
    }

    /// Create the directory (mode 0700, parents as needed) if it is missing.
    pub fn create(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        if self.dir.is_dir() {
            return Ok(());
        }
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir).map_err(|source| StoreError::Io {
            path: self.dir.clone(),
            op: "create state directory",
            source,
        })
    }
}
